//! The tuner: the loop that ties a scheduler to a backend (see DESIGN.md, "The loop").
//!
//! It waits for the backend's events, asks the scheduler what to do about each, writes
//! everything to the journal *before* acting on it, keeps workers busy, checks the stopping
//! criteria, and keeps the incumbent and its trajectory. It never sleeps or polls: it waits
//! for events, a deadline or an interrupt.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hpo_space::Config;
use serde::{Deserialize, Serialize};

use crate::journal::{Entry, Journal};
use crate::traits::{Backend, BackendError, Context, Event, EventKind, Scheduler, SetupError, TrialStart};
use crate::types::{Decision, Metrics, Report, Status, Suggestion, TrialId};

/// When to stop starting trials (`max_trials`) or end the experiment (the others).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopCriteria {
    /// Start at most this many trials, then let the running ones finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trials: Option<u64>,
    /// End after this much time on the backend's clock (e.g. `"10m"`), stopping running trials.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::optional_duration_text")]
    pub max_wallclock: Option<Duration>,
    /// End as soon as the metric is at least this good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_threshold: Option<f64>,
    /// End once this many trials have failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<u64>,
}

/// Why an experiment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// `max_trials` were started and all of them ended.
    MaxTrials,
    MaxWallclock,
    MetricThreshold,
    MaxFailures,
    /// The scheduler has nothing left to run (e.g. a finished grid).
    SchedulerDone,
    /// The scheduler waits, but no trial is running that could change its mind.
    Stalled,
    /// Interrupted from outside (Ctrl-C).
    Interrupted,
    /// The scheduler failed (see [`Summary::error`]).
    SchedulerFailed,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::MaxTrials => "max_trials",
            EndReason::MaxWallclock => "max_wallclock",
            EndReason::MetricThreshold => "metric_threshold",
            EndReason::MaxFailures => "max_failures",
            EndReason::SchedulerDone => "scheduler_done",
            EndReason::Stalled => "stalled",
            EndReason::Interrupted => "interrupted",
            EndReason::SchedulerFailed => "scheduler_failed",
        }
    }

    /// Whether this ending means something went wrong (the CLI exits non-zero).
    pub fn is_error(self) -> bool {
        matches!(self, EndReason::MaxFailures | EndReason::Interrupted | EndReason::SchedulerFailed)
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The best trial so far.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Incumbent {
    pub trial_id: TrialId,
    pub config: Config,
    /// The metric's value, in the user's units.
    pub value: f64,
    /// All metrics of the report that made it best.
    pub metrics: Metrics,
    pub time: f64,
}

/// The state of the experiment, as shown by a progress display.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub time: f64,
    pub running: usize,
    pub completed: usize,
    pub failed: usize,
    pub stopped: usize,
    pub paused: usize,
    /// Best value so far (user units) and the trial that reached it.
    pub best: Option<(f64, TrialId)>,
}

/// Receives progress after every batch of events (e.g. a live progress line).
pub trait Observer: Send {
    fn update(&mut self, progress: &Progress);

    /// A trial failed; `error` says why.
    fn trial_failed(&mut self, _trial_id: TrialId, _error: &str) {}
}

/// What a finished experiment reports.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub reason: EndReason,
    pub trials: usize,
    pub completed: usize,
    pub failed: usize,
    pub stopped: usize,
    pub paused: usize,
    pub best: Option<Incumbent>,
    /// (time, best value so far) at every improvement: the any-time curve.
    pub trajectory: Vec<(f64, f64)>,
    pub elapsed: f64,
    /// What went wrong, when the experiment ended because of an error.
    pub error: Option<String>,
    /// Trials that completed without a single report (`no_report` in the journal).
    pub no_report: usize,
}

/// The experiment could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TunerError {
    #[error("setting up the scheduler")]
    Setup(#[from] SetupError),
    #[error("backend")]
    Backend(#[from] BackendError),
    #[error("writing the journal")]
    Journal(#[from] std::io::Error),
    #[error("the scheduler suggested something invalid: {0}")]
    BadSuggestion(String),
}

struct TrialState {
    /// Shared with the backend's start request: a config is never deep-copied per trial.
    config: Arc<Config>,
    status: Status,
    reports: u32,
    /// Told to stop or pause, or failed: later reports are ignored.
    ending: bool,
    /// What the trial was last told: stop or pause (`None` while it may run on).
    told: Option<Decision>,
    /// A resume the scheduler asked for while the trial was still pausing.
    pending_resume: Option<Config>,
    /// The resource of the trial's latest report.
    resource: Option<f64>,
}

type Interrupt = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs an experiment. Build it, then `run().await` it.
pub struct Tuner {
    ctx: Context,
    scheduler: Box<dyn Scheduler>,
    backend: Box<dyn Backend>,
    workers: usize,
    criteria: StopCriteria,
    journal: Option<Journal>,
    observer: Option<Box<dyn Observer>>,
    interrupt: Option<Interrupt>,

    trials: Vec<TrialState>,
    running: usize,
    new_trials: u64,
    failures: u64,
    scheduler_done: bool,
    stalled: bool,
    ending: Option<EndReason>,
    incumbent: Option<Incumbent>,
    best_objective: f64,
    trajectory: Vec<(f64, f64)>,
    decisions: Vec<(TrialId, Decision)>,
    starts: Vec<TrialStart>,
    last_notify: std::time::Instant,
    /// Whether the scheduler was already set up ([`Tuner::set_up`]).
    set_up: bool,
}

/// How often the observer hears about progress (the final state is always reported).
const NOTIFY_EVERY: Duration = Duration::from_millis(50);

impl Tuner {
    /// A tuner with no stopping criteria, no journal and one worker.
    pub fn new(ctx: Context, scheduler: Box<dyn Scheduler>, backend: Box<dyn Backend>) -> Tuner {
        Tuner {
            ctx,
            scheduler,
            backend,
            workers: 1,
            criteria: StopCriteria::default(),
            journal: None,
            observer: None,
            interrupt: None,
            trials: Vec::new(),
            running: 0,
            new_trials: 0,
            failures: 0,
            scheduler_done: false,
            stalled: false,
            ending: None,
            incumbent: None,
            best_objective: f64::INFINITY,
            trajectory: Vec::new(),
            decisions: Vec::new(),
            starts: Vec::new(),
            last_notify: std::time::Instant::now(),
            set_up: false,
        }
    }

    /// How many trials run at once (at least 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    pub fn stop_when(mut self, criteria: StopCriteria) -> Self {
        self.criteria = criteria;
        self
    }

    pub fn journal(mut self, journal: Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    pub fn observer(mut self, observer: Box<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// When `signal` completes (e.g. Ctrl-C), running trials are stopped and the run ends
    /// with [`EndReason::Interrupted`].
    /// Sets the scheduler up now (as `run` does otherwise), so that bad settings are found
    /// before anything is written.
    pub fn set_up(mut self) -> Result<Tuner, SetupError> {
        self.scheduler.init(&self.ctx)?;
        self.set_up = true;
        Ok(self)
    }

    pub fn interrupt_on(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.interrupt = Some(Box::pin(signal));
        self
    }

    /// Runs the experiment to its end.
    pub async fn run(mut self) -> Result<Summary, TunerError> {
        if !self.set_up {
            self.scheduler.init(&self.ctx)?;
        }
        let mut deadline = self.criteria.max_wallclock.filter(|_| !self.backend.simulated()).and_then(|d| {
            tokio::time::Instant::now().checked_add(d.saturating_sub(Duration::from_secs_f64(self.backend.now())))
        });
        let mut interrupt = self.interrupt.take();
        let mut events = Vec::new();
        self.fill()?;
        self.act().await?;
        while self.running > 0 {
            events.clear();
            tokio::select! {
                biased;
                () = wait_for(&mut interrupt) => {
                    interrupt = None;
                    self.end(EndReason::Interrupted);
                }
                () = sleep_until(deadline) => {
                    deadline = None;
                    self.end(EndReason::MaxWallclock);
                }
                result = self.backend.next_events(&mut events) => result?,
            }
            for event in events.drain(..) {
                self.handle(event)?;
            }
            self.check_criteria();
            self.fill()?;
            self.act().await?;
            self.notify();
        }
        self.finish()
    }

    /// Carries out the decisions and starts of this round, once the journal has them.
    async fn act(&mut self) -> Result<(), TunerError> {
        if let Some(journal) = &mut self.journal {
            journal.flush()?;
        }
        for (trial_id, decision) in std::mem::take(&mut self.decisions) {
            self.backend.decide(trial_id, decision).await?;
        }
        let mut starts = std::mem::take(&mut self.starts);
        for start in starts.drain(..) {
            self.backend.start(start).await?;
        }
        self.starts = starts;
        Ok(())
    }

    /// Plans work for every free worker from what the scheduler suggests; [`Self::act`]
    /// starts it.
    fn fill(&mut self) -> Result<(), TunerError> {
        while self.running < self.workers
            && self.ending.is_none()
            && !self.scheduler_done
            && self.scheduler.failure().is_none()
        {
            if self.criteria.max_trials.is_some_and(|max| self.new_trials >= max) {
                break;
            }
            let next_id = self.trials.len() as TrialId;
            match self.scheduler.suggest(next_id) {
                Suggestion::Start { config, checkpoint_from } => {
                    let config = Arc::new(config);
                    self.ctx
                        .space
                        .validate_except(&config, self.ctx.max_resource_attr.as_deref())
                        .map_err(|e| TunerError::BadSuggestion(format!("trial {next_id}: {e}")))?;
                    let t = self.backend.now();
                    if let Some(journal) = &mut self.journal {
                        journal.append(&Entry::Start {
                            t,
                            trial: next_id,
                            config: Cow::Borrowed(&config),
                            checkpoint_from,
                        })?;
                    }
                    self.trials.push(TrialState {
                        config: Arc::clone(&config),
                        status: Status::InProgress,
                        reports: 0,
                        ending: false,
                        told: None,
                        pending_resume: None,
                        resource: None,
                    });
                    self.new_trials += 1;
                    self.running += 1;
                    let resource_done = checkpoint_from.and_then(|from| self.trials.get(from as usize)?.resource);
                    self.starts.push(TrialStart {
                        trial_id: next_id,
                        config,
                        resume: false,
                        checkpoint_from,
                        resource_done,
                    });
                }
                Suggestion::Resume { trial_id, config } => {
                    let Some(state) = self.trials.get_mut(trial_id as usize) else {
                        return Err(TunerError::BadSuggestion(format!(
                            "resume trial {trial_id}, which was never started"
                        )));
                    };
                    match state.status {
                        // Still running until its pause takes effect: resume it right after.
                        Status::InProgress if state.ending && state.pending_resume.is_none() => {
                            state.pending_resume = Some(config);
                            self.running += 1;
                        }
                        Status::Paused | Status::Completed => {
                            self.running += 1;
                            self.resume(trial_id, config, self.backend.now())?;
                        }
                        status => {
                            return Err(TunerError::BadSuggestion(format!(
                                "resume trial {trial_id}, which is {status} and cannot be resumed"
                            )));
                        }
                    }
                }
                Suggestion::Wait => {
                    self.stalled = self.running == 0;
                    break;
                }
                Suggestion::Done => self.scheduler_done = true,
            }
        }
        Ok(())
    }

    /// Journals and plans a resume; the worker it takes is already counted in `running`.
    fn resume(&mut self, trial_id: TrialId, config: Config, t: f64) -> Result<(), TunerError> {
        let config = Arc::new(config);
        log(&mut self.journal, &Entry::Resume { t, trial: trial_id, config: Cow::Borrowed(&config) })?;
        let state = &mut self.trials[trial_id as usize];
        state.config = Arc::clone(&config);
        state.status = Status::InProgress;
        state.ending = false;
        state.told = None;
        self.starts.push(TrialStart {
            trial_id,
            config,
            resume: true,
            checkpoint_from: None,
            resource_done: state.resource,
        });
        Ok(())
    }

    fn handle(&mut self, event: Event) -> Result<(), TunerError> {
        let Event { time, trial_id, kind } = event;
        let Some(state) = self.trials.get_mut(trial_id as usize) else {
            return Err(BackendError(format!("event for unknown trial {trial_id}")).into());
        };
        match kind {
            EventKind::Report(metrics) => {
                if state.ending {
                    return Ok(()); // already told to stop or pause; late reports do not count
                }
                state.reports += 1;
                let objective = match self.ctx.objective.of(&metrics) {
                    Ok(objective) => objective,
                    Err(error) => {
                        log(
                            &mut self.journal,
                            &Entry::Report {
                                t: time,
                                trial: trial_id,
                                metrics: Cow::Borrowed(&metrics),
                                decision: Decision::Stop,
                            },
                        )?;
                        self.fail(trial_id, time, error)?;
                        self.decisions.push((trial_id, Decision::Stop));
                        return Ok(());
                    }
                };
                let resource = self
                    .ctx
                    .resource_attr
                    .as_deref()
                    .and_then(|attr| metrics.get(attr).copied())
                    .unwrap_or(f64::from(state.reports));
                let decision = self.scheduler.on_report(&Report {
                    trial_id,
                    config: &state.config,
                    metrics: &metrics,
                    resource,
                    objective,
                });
                state.ending = decision != Decision::Continue;
                state.told = state.ending.then_some(decision);
                state.resource = Some(resource);
                if objective < self.best_objective {
                    self.best_objective = objective;
                    let value = self.ctx.objective.to_metric(objective);
                    self.trajectory.push((time, value));
                    self.incumbent = Some(Incumbent {
                        trial_id,
                        config: (*state.config).clone(),
                        value,
                        metrics: metrics.clone(),
                        time,
                    });
                }
                log(
                    &mut self.journal,
                    &Entry::Report { t: time, trial: trial_id, metrics: Cow::Owned(metrics), decision },
                )?;
                self.decisions.push((trial_id, decision));
            }
            EventKind::Failed(error) => {
                self.running -= 1;
                if state.pending_resume.take().is_some() {
                    self.running -= 1; // the reserved worker is not needed after all
                }
                if state.status != Status::Failed {
                    self.fail(trial_id, time, error)?;
                }
            }
            EventKind::Completed | EventKind::Stopped | EventKind::Paused => {
                self.running -= 1;
                // A trial told to pause or stop that finished first still counts as paused
                // or stopped (a script may end before the signal reaches it).
                let status = match (&kind, state.told) {
                    (EventKind::Paused, _) | (EventKind::Completed, Some(Decision::Pause)) => Status::Paused,
                    (EventKind::Stopped, _) | (EventKind::Completed, Some(_)) => Status::Stopped,
                    _ => Status::Completed,
                };
                let pending_resume = state.pending_resume.take();
                if state.status == Status::Failed {
                    if pending_resume.is_some() {
                        self.running -= 1;
                    }
                    return Ok(());
                }
                state.status = status;
                let (t, trial) = (time, trial_id);
                let entry = match status {
                    Status::Paused => Entry::Paused { t, trial },
                    Status::Stopped => Entry::Stopped { t, trial },
                    _ => Entry::Complete { t, trial, no_report: state.reports == 0 },
                };
                log(&mut self.journal, &entry)?;
                if status == Status::Completed {
                    self.scheduler.on_complete(trial_id);
                }
                match pending_resume {
                    Some(config) if status != Status::Stopped => return self.resume(trial_id, config, time),
                    Some(_) => self.running -= 1, // the reserved worker is not needed after all
                    None => {}
                }
            }
        }
        Ok(())
    }

    fn fail(&mut self, trial_id: TrialId, time: f64, error: String) -> Result<(), TunerError> {
        let state = &mut self.trials[trial_id as usize];
        state.status = Status::Failed;
        state.ending = true;
        self.failures += 1;
        log(&mut self.journal, &Entry::Fail { t: time, trial: trial_id, error: error.clone() })?;
        self.scheduler.on_fail(trial_id);
        if let Some(observer) = &mut self.observer {
            observer.trial_failed(trial_id, &error);
        }
        Ok(())
    }

    fn check_criteria(&mut self) {
        if self.ending.is_some() {
            return;
        }
        let c = &self.criteria;
        let reason = if self.scheduler.failure().is_some() {
            Some(EndReason::SchedulerFailed)
        } else if c.max_failures.is_some_and(|max| self.failures >= max) {
            Some(EndReason::MaxFailures)
        } else if c.metric_threshold.is_some_and(|t| self.best_objective <= self.ctx.objective.to_minimize(t)) {
            Some(EndReason::MetricThreshold)
        } else if c.max_wallclock.is_some_and(|d| self.backend.now() >= d.as_secs_f64()) {
            Some(EndReason::MaxWallclock)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.end(reason);
        }
    }

    /// Ends the experiment: no new trials, every running trial told to stop (after any
    /// decision already due this round, so the stop is the last word).
    fn end(&mut self, reason: EndReason) {
        if self.ending.is_some() {
            return;
        }
        self.ending = Some(reason);
        for (id, state) in self.trials.iter_mut().enumerate() {
            if state.status == Status::InProgress && !state.ending {
                state.ending = true;
                state.told = Some(Decision::Stop);
                self.decisions.push((id as TrialId, Decision::Stop));
            }
        }
    }

    fn progress(&self) -> Progress {
        let count = |status| self.trials.iter().filter(|t| t.status == status).count();
        Progress {
            time: self.backend.now(),
            running: self.running,
            completed: count(Status::Completed),
            failed: count(Status::Failed),
            stopped: count(Status::Stopped),
            paused: count(Status::Paused),
            best: self.incumbent.as_ref().map(|i| (i.value, i.trial_id)),
        }
    }

    /// Updates the observer, at most every [`NOTIFY_EVERY`]: counting trials scans them
    /// all, which must not happen on every event of a long run.
    fn notify(&mut self) {
        if self.observer.is_some() && self.last_notify.elapsed() >= NOTIFY_EVERY {
            self.last_notify = std::time::Instant::now();
            let progress = self.progress();
            if let Some(observer) = &mut self.observer {
                observer.update(&progress);
            }
        }
    }

    fn finish(mut self) -> Result<Summary, TunerError> {
        let reason = self.ending.unwrap_or(if self.scheduler.failure().is_some() {
            EndReason::SchedulerFailed
        } else if self.scheduler_done {
            EndReason::SchedulerDone
        } else if self.stalled {
            EndReason::Stalled
        } else {
            EndReason::MaxTrials
        });
        let progress = self.progress();
        if let Some(observer) = &mut self.observer {
            observer.update(&progress);
        }
        if let Some(journal) = &mut self.journal {
            journal.append(&Entry::End { t: progress.time, reason: reason.as_str().to_owned() })?;
            journal.flush()?;
        }
        Ok(Summary {
            reason,
            trials: self.trials.len(),
            completed: progress.completed,
            failed: progress.failed,
            stopped: progress.stopped,
            paused: progress.paused,
            best: self.incumbent,
            trajectory: self.trajectory,
            elapsed: progress.time,
            error: self.scheduler.failure(),
            no_report: self.trials.iter().filter(|t| t.status == Status::Completed && t.reports == 0).count(),
        })
    }
}

fn log(journal: &mut Option<Journal>, entry: &Entry<'_>) -> Result<(), TunerError> {
    if let Some(journal) = journal {
        journal.append(entry)?;
    }
    Ok(())
}

async fn wait_for(signal: &mut Option<Interrupt>) {
    match signal {
        Some(signal) => signal.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
