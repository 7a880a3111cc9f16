//! The tuner: the loop that ties a scheduler to a backend (see `docs/design.md`, "The loop").
//!
//! The loop here waits for the backend's events, a deadline or an interrupt (it never sleeps
//! or polls) and carries out what the [`dispatcher`] decided, once the journal has it. The
//! dispatcher holds the experiment's state: the trial table ([`table`]), the incumbent and
//! its trajectory, the stopping criteria.

mod dispatcher;
mod table;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hpo_space::Config;
use serde::{Deserialize, Serialize};

use self::dispatcher::Dispatcher;
use crate::journal::{Journal, JournalSync};
use crate::traits::{Backend, BackendError, Context, Scheduler, SetupError};
use crate::types::{Metrics, TrialId};

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
    /// `max_wallclock` passed (running trials were stopped).
    MaxWallclock,
    /// The metric reached `metric_threshold`.
    MetricThreshold,
    /// `max_failures` trials failed.
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
    /// The name in the journal's `end` entry.
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
    /// The trial.
    pub trial_id: TrialId,
    /// The config it reached the value with.
    pub config: Config,
    /// The metric's value, in the user's units.
    pub value: f64,
    /// All metrics of the report that made it best.
    pub metrics: Metrics,
    /// When (backend seconds).
    pub time: f64,
}

/// The state of the experiment, as shown by a progress display.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Backend seconds since the start.
    pub time: f64,
    /// Workers busy.
    pub running: usize,
    /// Trials completed.
    pub completed: usize,
    /// Trials failed.
    pub failed: usize,
    /// Trials stopped early.
    pub stopped: usize,
    /// Trials paused now.
    pub paused: usize,
    /// Best value so far (user units) and the trial that reached it.
    pub best: Option<(f64, TrialId)>,
}

/// Receives progress after every batch of events (e.g. a live progress line).
pub trait Observer: Send {
    /// The latest state (at most every 50 ms, and once at the end).
    fn update(&mut self, progress: &Progress);

    /// A trial failed; `error` says why.
    fn trial_failed(&mut self, _trial_id: TrialId, _error: &str) {}
}

/// What a finished experiment reports.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Why it ended.
    pub reason: EndReason,
    /// Trials started.
    pub trials: usize,
    /// Trials completed.
    pub completed: usize,
    /// Trials failed.
    pub failed: usize,
    /// Trials stopped early.
    pub stopped: usize,
    /// Trials left paused.
    pub paused: usize,
    /// The best trial, if any reported.
    pub best: Option<Incumbent>,
    /// (time, best value so far) at every improvement: the any-time curve. With several
    /// objectives or constraints, of the first objective over the feasible reports.
    pub trajectory: Vec<(f64, f64)>,
    /// With several objectives or constraints: (time, every objective in its metric's units)
    /// of each feasible report that no earlier one dominated or equalled. The Pareto front of
    /// the reports up to any time is the front of these up to that time, so the hypervolume
    /// against time follows from them exactly.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub front_trajectory: Vec<(f64, Vec<f64>)>,
    /// Backend seconds from start to end.
    pub elapsed: f64,
    /// What went wrong, when the experiment ended because of an error.
    pub error: Option<String>,
    /// Trials that completed without a single report (`no_report` in the journal).
    pub no_report: usize,
}

/// The experiment could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TunerError {
    /// The scheduler could not be set up.
    #[error("setting up the scheduler")]
    Setup(#[from] SetupError),
    /// The backend failed.
    #[error("backend")]
    Backend(#[from] BackendError),
    /// The journal could not be written.
    #[error("writing the journal")]
    Journal(#[from] std::io::Error),
    /// The scheduler suggested a config outside the space, or an impossible resume.
    #[error("the scheduler suggested something invalid for trial {trial_id}: {reason}")]
    BadSuggestion {
        /// The trial it was for.
        trial_id: TrialId,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend named a trial that was never started.
    #[error("the backend sent an event for trial {0}, which was never started")]
    UnknownTrial(TrialId),
    /// The backend ended a trial twice.
    #[error("the backend sent a second end event for trial {0}")]
    EndedTwice(TrialId),
    /// Going on with an experiment, the run did not make this recorded entry when due.
    #[error("going on with the experiment: the journal records `{0}` next, which this run did not make")]
    Diverged(String),
}

type Interrupt = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs an experiment. Build it, then `run().await` it.
pub struct Tuner {
    dispatcher: Dispatcher,
    backend: Box<dyn Backend>,
    observer: Option<Box<dyn Observer>>,
    interrupt: Option<Interrupt>,
    last_notify: std::time::Instant,
    /// Whether the scheduler was already set up ([`Tuner::set_up`]).
    set_up: bool,
}

/// How often the observer hears about progress (the final state is always reported).
const NOTIFY_EVERY: Duration = Duration::from_millis(50);

/// How long an entry may wait in the journal's buffer when the tuner need not flush every
/// round ([`Tuner::flush_now`]): readers of a running experiment see it this late at most.
const FLUSH_AFTER: Duration = Duration::from_millis(10);

impl Tuner {
    /// A tuner with no stopping criteria, no journal and one worker.
    pub fn new(ctx: Context, scheduler: Box<dyn Scheduler>, backend: Box<dyn Backend>) -> Tuner {
        Tuner {
            dispatcher: Dispatcher::new(ctx, scheduler),
            backend,
            observer: None,
            interrupt: None,
            last_notify: std::time::Instant::now(),
            set_up: false,
        }
    }

    /// How many trials run at once (at least 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.dispatcher.workers = workers.max(1);
        self
    }

    /// The stopping criteria.
    pub fn stop_when(mut self, criteria: StopCriteria) -> Self {
        self.dispatcher.criteria = criteria;
        self
    }

    /// Journal everything to this journal.
    pub fn journal(mut self, journal: Journal) -> Self {
        self.dispatcher.journal = Some(journal);
        self
    }

    /// For a run that goes on with an experiment ([`Journal::resume`]): the workers and
    /// criteria set by [`Tuner::workers`] and [`Tuner::stop_when`] must be the recorded ones,
    /// so that the run makes the recorded entries again; these take over once it has.
    pub fn after_replay(mut self, workers: usize, criteria: StopCriteria) -> Self {
        self.dispatcher.go_on = Some((workers.max(1), criteria));
        self
    }

    /// Tell this observer about progress and failures.
    pub fn observer(mut self, observer: Box<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Sets the scheduler up now (as `run` does otherwise), so that bad settings are found
    /// before anything is written.
    pub fn set_up(mut self) -> Result<Tuner, SetupError> {
        self.dispatcher.scheduler.init(&self.dispatcher.ctx)?;
        self.set_up = true;
        Ok(self)
    }

    /// When `signal` completes (e.g. Ctrl-C), running trials are stopped and the run ends
    /// with [`EndReason::Interrupted`].
    pub fn interrupt_on(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.interrupt = Some(Box::pin(signal));
        self
    }

    /// Runs the experiment to its end.
    ///
    /// Each event is a round of its own (taken in, then the criteria checked and free
    /// workers filled), so that the journal alone determines what the scheduler was told
    /// and asked, in order: a resumed run makes the recorded entries again from the recorded
    /// events. A simulated backend simulates them again; any other backend's trials died
    /// with the run that recorded them, so the events are taken from the journal, and the
    /// trials that were running are launched again where the record ends.
    pub async fn run(mut self) -> Result<Summary, TunerError> {
        if !self.set_up {
            self.dispatcher.scheduler.init(&self.dispatcher.ctx)?;
        }
        self.dispatcher.relaunch_on_resume = !self.backend.simulated();
        let mut events = Vec::new();
        self.fill()?;
        self.act().await?;
        loop {
            if self.go_on_if_due()? {
                self.fill()?;
                self.act().await?;
            }
            if self.dispatcher.busy_workers() == 0 {
                break;
            }
            self.dispatcher.apply_recorded_ending()?;
            if self.replays_events() {
                match self.dispatcher.recorded_event() {
                    Some(Ok(event)) => events.push(event),
                    Some(Err(entry)) => return Err(TunerError::Diverged(entry)),
                    None => {} // the record ends here
                }
            } else {
                let (deadline, flush_at) = (self.deadline(), self.flush_deadline());
                if self.interrupt.is_none() && deadline.is_none() && flush_at.is_none() {
                    // Nothing else to wait for (no interrupt, no deadline, nothing to flush): the
                    // events, without a future to allocate when there are some already.
                    self.backend.events_so_far(&mut events)?;
                    if events.is_empty() {
                        self.backend.next_events(&mut events).await?;
                    }
                } else {
                    tokio::select! {
                        biased;
                        () = wait_for(&mut self.interrupt) => {
                            self.interrupt = None;
                            self.dispatcher.end(EndReason::Interrupted, self.now())?;
                        }
                        () = sleep_until(deadline) => self.dispatcher.end(EndReason::MaxWallclock, self.now())?,
                        result = self.backend.next_events(&mut events) => result?,
                        () = sleep_until(flush_at) => self.dispatcher.flush()?,
                    }
                }
                let offset = self.clock_offset();
                events.iter_mut().for_each(|event| event.time += offset);
            }
            for event in events.drain(..) {
                self.dispatcher.handle(event)?;
                self.go_on_if_due()?;
                let now = self.time_after_event();
                self.dispatcher.check_criteria(now)?;
                self.fill_at(now)?;
            }
            self.act().await?;
            self.notify();
        }
        let time = self.now();
        if let Some(observer) = &mut self.observer {
            observer.update(&self.dispatcher.progress(time));
        }
        self.dispatcher.finish(time)
    }

    /// Plans work for the free workers, again if the experiment went on meanwhile (a resumed
    /// run whose record ended: see [`Dispatcher::go_on_if_due`]).
    fn fill(&mut self) -> Result<(), TunerError> {
        self.fill_at(self.now())
    }

    /// [`Tuner::fill`] at time `now`, just read.
    fn fill_at(&mut self, now: f64) -> Result<(), TunerError> {
        self.dispatcher.fill(now)?;
        if self.go_on_if_due()? {
            self.dispatcher.fill(self.now())?;
        }
        Ok(())
    }

    /// [`Dispatcher::go_on_if_due`], reading the clock only when the experiment can go on:
    /// with new budgets to apply, or while a record is made again (a clock read costs about
    /// a tenth of a trial's whole overhead on the thread backend).
    fn go_on_if_due(&mut self) -> Result<bool, TunerError> {
        if self.dispatcher.go_on.is_none() && !self.dispatcher.replaying() {
            return Ok(false);
        }
        let now = self.now();
        self.dispatcher.go_on_if_due(now)
    }

    /// The time for the criteria and the starts after an event: the clock's, unless all it
    /// can serve is the time of an ending for a criterion the event met (every worker busy,
    /// no time budget, a real clock): then the event's own, as exact, and a clock read less
    /// per report.
    fn time_after_event(&self) -> f64 {
        let d = &self.dispatcher;
        if self.simulated() || d.busy_workers() < d.workers || d.criteria.max_wallclock.is_some() || d.replaying() {
            self.now()
        } else {
            d.latest()
        }
    }

    /// Whether the backend's clock is simulated, as [`Backend::simulated`] said when the run
    /// began (kept by the dispatcher: a simulated backend's trials are not relaunched).
    fn simulated(&self) -> bool {
        !self.dispatcher.relaunch_on_resume
    }

    /// Whether events come from the journal: a resumed run of a backend that is not
    /// simulated, while recorded entries are still to be made again.
    fn replays_events(&self) -> bool {
        !self.simulated() && self.dispatcher.replaying()
    }

    /// The experiment's time: the backend's clock, which for a backend that is not
    /// simulated goes on from the time the record ends (a resumed run's backend starts at
    /// 0), and the record's own time while events come from the record.
    fn now(&self) -> f64 {
        match &self.dispatcher.journal {
            Some(journal) if self.replays_events() => journal.recorded_time(),
            _ => self.clock_offset() + self.backend.now(),
        }
    }

    /// What the backend's clock lags behind the experiment's: the time the record ends, for
    /// a resumed run of a backend that is not simulated.
    fn clock_offset(&self) -> f64 {
        match &self.dispatcher.journal {
            Some(journal) if !self.simulated() => journal.recorded_time(),
            _ => 0.0,
        }
    }

    /// When `max_wallclock` passes, for a backend with a real clock, until the experiment
    /// is ending.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        if self.dispatcher.ending().is_some() || self.simulated() {
            return None;
        }
        let left = self.dispatcher.criteria.max_wallclock?.saturating_sub(Duration::from_secs_f64(self.now()));
        tokio::time::Instant::now().checked_add(left)
    }

    /// Whether the journal must hand this round's entries to the OS before the round is
    /// acted on: always, unless the backend's trials run in this process (they end with it,
    /// so nothing outside it acts on an entry that could be lost) and `journal_sync` is `os`.
    /// Then entries are handed over in batches: when the buffer fills, when the oldest is
    /// [`FLUSH_AFTER`] old, or that long after the tuner began to wait.
    fn flush_now(&self) -> bool {
        let Some(journal) = &self.dispatcher.journal else { return false };
        !self.backend.runs_in_process()
            || journal.sync_mode() == JournalSync::Disk
            || journal.unflushed_since().is_some_and(|since| since.elapsed() >= FLUSH_AFTER)
    }

    /// When the entries waiting in the journal's buffer are due at the OS.
    fn flush_deadline(&self) -> Option<tokio::time::Instant> {
        let since = self.dispatcher.journal.as_ref()?.unflushed_since()?;
        Some(tokio::time::Instant::from_std(since + FLUSH_AFTER))
    }

    /// Carries out the decisions and starts of this round, once the journal has them. An
    /// interrupt is honoured also while a backend call hangs (a cluster's scheduler that does
    /// not answer): the call is dropped, starts not yet made are journaled as not started,
    /// and the decisions left are carried out, then the stops the interrupt adds.
    async fn act(&mut self) -> Result<(), TunerError> {
        loop {
            if self.flush_now() {
                self.dispatcher.flush()?;
            }
            if self.dispatcher.nothing_to_do() {
                return Ok(()); // most rounds of a trial's reports under FIFO
            }
            let mut actions = self.dispatcher.take_actions();
            if self.replays_events() {
                // The trials these were for died with the run that recorded them.
                self.dispatcher.recycle(actions);
                return Ok(());
            }
            if actions.take_over {
                self.backend.take_over();
            }
            let mut decided = 0;
            let mut interrupted = false;
            while decided < actions.decisions.len() && !interrupted {
                let (trial_id, decision) = actions.decisions[decided];
                interrupted = !unless_interrupted(&mut self.interrupt, self.backend.decide(trial_id, decision)).await?;
                decided += usize::from(!interrupted);
            }
            // Starts are moved to the backend; those it never got are remembered by id.
            let mut not_started = Vec::new();
            for start in actions.starts.drain(..) {
                if interrupted {
                    not_started.push((start.trial_id, start.resume));
                    continue;
                }
                let id = (start.trial_id, start.resume);
                interrupted = !unless_interrupted(&mut self.interrupt, self.backend.start(start)).await?;
                if interrupted {
                    not_started.push(id);
                }
            }
            if let Some(observer) = &mut self.observer {
                for (trial_id, error) in &actions.failures {
                    observer.trial_failed(*trial_id, error);
                }
            }
            if !interrupted {
                self.dispatcher.recycle(actions);
                return Ok(());
            }
            let time = self.now();
            for (trial_id, resume) in not_started {
                self.dispatcher.not_started(trial_id, resume, time)?;
            }
            self.dispatcher.requeue(&actions.decisions[decided..]);
            self.dispatcher.end(EndReason::Interrupted, time)?;
        }
    }

    /// Updates the observer, at most every [`NOTIFY_EVERY`].
    fn notify(&mut self) {
        if self.observer.is_some() && self.last_notify.elapsed() >= NOTIFY_EVERY {
            let progress = self.dispatcher.progress(self.now());
            self.last_notify = std::time::Instant::now();
            if let Some(observer) = &mut self.observer {
                observer.update(&progress);
            }
        }
    }
}

/// Runs a backend call unless the interrupt comes while it waits: `Ok(false)` if it did (the
/// call is dropped, and the interrupt spent). A call that is done at once is never dropped.
async fn unless_interrupted(
    interrupt: &mut Option<Interrupt>,
    call: impl Future<Output = Result<(), BackendError>>,
) -> Result<bool, TunerError> {
    if interrupt.is_none() {
        call.await?;
        return Ok(true);
    }
    tokio::select! {
        biased;
        result = call => {
            result?;
            Ok(true)
        }
        () = wait_for(interrupt) => {
            *interrupt = None;
            Ok(false)
        }
    }
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
