//! The tuner's state machine: events and suggestions in, journal entries and actions out.
//!
//! It does no I/O besides appending to the journal (flushed by the loop before it acts), so
//! it is tested directly: feed it events, look at what it wants done. The async loop in
//! `mod.rs` only waits for events and carries out the [`Actions`].

use std::borrow::Cow;
use std::sync::Arc;

use hpo_space::Config;

use super::table::{Phase, Trial, TrialTable};
use super::{EndReason, Incumbent, Progress, StopCriteria, Summary, TunerError};
use crate::interrupt;
use crate::journal::{Entry, Journal};
use crate::pareto::Front;
use crate::traits::{Context, Event, EventKind, Scheduler, TrialStart};
use crate::types::{Decision, Metrics, Report, Status, Suggestion, TrialId};

/// What the loop must do, once the journal holds everything that led to it.
#[derive(Debug, Default)]
pub(crate) struct Actions {
    /// Decisions for the backend, in order (a trial's last one is its last word).
    pub(crate) decisions: Vec<(TrialId, Decision)>,
    /// Trials to start or resume.
    pub(crate) starts: Vec<TrialStart>,
    /// Trials that failed, and why (for the observer).
    pub(crate) failures: Vec<(TrialId, String)>,
    /// Going on after the driver died: the backend takes over first ([`Backend::take_over`]).
    pub(crate) take_over: bool,
}

impl Actions {
    fn clear(&mut self) {
        self.decisions.clear();
        self.starts.clear();
        self.failures.clear();
        self.take_over = false;
    }
}

/// The experiment's state and the rules that change it.
pub(crate) struct Dispatcher {
    pub(crate) ctx: Context,
    pub(crate) scheduler: Box<dyn Scheduler>,
    pub(crate) workers: usize,
    pub(crate) criteria: StopCriteria,
    pub(crate) journal: Option<Journal>,
    trials: TrialTable,
    scheduler_done: bool,
    /// The scheduler waited while no trial ran that could change its mind.
    stalled: bool,
    ending: Option<EndReason>,
    incumbent: Option<Incumbent>,
    /// The incumbent's objective (to minimize); infinite before the first report.
    best_objective: f64,
    trajectory: Vec<(f64, f64)>,
    /// With several objectives or constraints: the feasible reports' Pareto front so far
    /// (to minimize), and each report that joined it, when (see [`Summary::front_trajectory`]).
    front: Front,
    front_trajectory: Vec<(f64, Vec<f64>)>,
    /// The objectives of the report being handled (kept to spare an allocation per report).
    objectives: Vec<f64>,
    /// The time of the latest event taken in.
    latest: f64,
    actions: Actions,
    /// A resumed run's budgets from where the record ends ([`Dispatcher::go_on_if_due`]).
    pub(crate) go_on: Option<(usize, StopCriteria)>,
    /// Whether the trials a resumed run's record shows running died with the run that
    /// recorded them (any backend but a simulated one, which simulates them again).
    pub(crate) relaunch_on_resume: bool,
}

impl Dispatcher {
    pub(crate) fn new(ctx: Context, scheduler: Box<dyn Scheduler>) -> Dispatcher {
        Dispatcher {
            ctx,
            scheduler,
            workers: 1,
            criteria: StopCriteria::default(),
            journal: None,
            trials: TrialTable::default(),
            scheduler_done: false,
            stalled: false,
            ending: None,
            incumbent: None,
            best_objective: f64::INFINITY,
            trajectory: Vec::new(),
            front: Front::default(),
            front_trajectory: Vec::new(),
            objectives: Vec::new(),
            latest: 0.0,
            actions: Actions::default(),
            go_on: None,
            relaunch_on_resume: false,
        }
    }

    /// Workers taken by trials the backend runs (and resumes about to start).
    pub(crate) fn busy_workers(&self) -> usize {
        self.trials.busy_workers()
    }

    /// Hands the actions of this round to the loop; give the value back with
    /// [`Dispatcher::recycle`] so that a long run does not allocate every round.
    pub(crate) fn take_actions(&mut self) -> Actions {
        std::mem::take(&mut self.actions)
    }

    /// Whether this round planned no action.
    pub(crate) fn nothing_to_do(&self) -> bool {
        let a = &self.actions;
        a.decisions.is_empty() && a.starts.is_empty() && a.failures.is_empty() && !a.take_over
    }

    pub(crate) fn recycle(&mut self, mut actions: Actions) {
        actions.clear();
        self.actions = actions;
    }

    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.journal {
            Some(journal) => journal.flush(),
            None => Ok(()),
        }
    }

    /// Whether the journal is still making again what a resumed experiment recorded.
    pub(crate) fn replaying(&self) -> bool {
        self.journal.as_ref().is_some_and(Journal::replaying)
    }

    /// The backend event that made the next recorded entry (see [`Journal::recorded_event`]).
    pub(crate) fn recorded_event(&self) -> Option<Result<Event, String>> {
        self.journal.as_ref()?.recorded_event()
    }

    /// The time of the latest event taken in.
    pub(crate) fn latest(&self) -> f64 {
        self.latest
    }

    /// Why the experiment is ending, once it is.
    pub(crate) fn ending(&self) -> Option<EndReason> {
        self.ending
    }

    /// Goes on (journaled as `continued`) where a resumed run is due to: where the record
    /// went on before, and where the record ends, with the budgets of [`Dispatcher::go_on`]
    /// (a simulated run only if they differ or the record was interrupted). Due right when
    /// the record ends, before any new entry: it is checked before each entry is made.
    /// Whether it went on.
    pub(crate) fn go_on_if_due(&mut self, now: f64) -> Result<bool, TunerError> {
        let (t, workers, criteria) = if let Some(recorded) = self.journal.as_ref().and_then(Journal::recorded_go_on) {
            recorded
        } else if self.replaying() {
            return Ok(false);
        } else {
            let Some((workers, criteria)) = self.go_on.take() else { return Ok(false) };
            let unchanged = (workers, &criteria) == (self.workers, &self.criteria);
            if unchanged && !self.relaunch_on_resume && self.ending != Some(EndReason::Interrupted) {
                return Ok(false);
            }
            (now, workers, criteria)
        };
        self.go_on_with(workers, criteria, t)?;
        Ok(true)
    }

    /// Goes on from time `now` with these budgets (journaled), launching again the trials
    /// that died with the run before if need be. An experiment that had ended (no trial
    /// runs) or was interrupted is open again: the new budgets decide when it ends.
    fn go_on_with(&mut self, workers: usize, criteria: StopCriteria, now: f64) -> Result<(), TunerError> {
        self.log(&Entry::Continued { t: now, workers, stop: criteria.clone() })?;
        self.workers = workers;
        self.criteria = criteria;
        if self.relaunch_on_resume {
            self.actions.clear(); // what the record planned was for the trials that died
            self.actions.take_over = true;
            self.relaunch(now)?;
        }
        if self.busy_workers() == 0 || self.ending == Some(EndReason::Interrupted) {
            self.ending = None;
            self.stalled = false;
        }
        self.check_criteria(now)
    }

    /// Takes up at time `t` the trials of a run that died: their processes went with it. A
    /// running trial is launched again with the same id and config (a resume: it goes on
    /// from its checkpoint if it keeps one), and its reports up to the last one journaled are
    /// not counted again; a trial told to stop or pause is taken as stopped or paused, and a
    /// failing one as failed.
    fn relaunch(&mut self, t: f64) -> Result<(), TunerError> {
        let live: Vec<(TrialId, Phase)> = self
            .trials
            .iter()
            .filter(|(_, trial)| trial.phase().is_live())
            .map(|(id, trial)| (id, trial.phase().clone()))
            .collect();
        for (id, phase) in live {
            match phase {
                Phase::Running(config) => {
                    let Some(trial) = self.trials.get(id) else { return Err(TunerError::UnknownTrial(id)) };
                    self.trials.set_counted_up_to(id, trial.resource);
                    self.launch_again(id, config, t, true)?;
                }
                Phase::Failing(_) => self.on_failed(t, id, String::new())?,
                _ => self.on_ended(t, id, EventKind::Completed)?, // as it was told
            }
        }
        Ok(())
    }

    fn log(&mut self, entry: &Entry<'_>) -> Result<(), TunerError> {
        if !matches!(entry, Entry::Continued { .. })
            && let Some(t) = entry.time()
        {
            self.go_on_if_due(t)?;
        }
        if let Some(journal) = &mut self.journal {
            journal.append(entry)?;
        }
        Ok(())
    }

    /// Takes in one event of the backend.
    pub(crate) fn handle(&mut self, event: Event) -> Result<(), TunerError> {
        let Event { time, trial_id, kind } = event;
        // Workers read the clock before they send, so events of several workers can arrive
        // a hair out of time order: the experiment's time never goes back.
        let time = time.max(self.latest);
        self.latest = time;
        let Some(trial) = self.trials.get(trial_id) else {
            return Err(TunerError::UnknownTrial(trial_id));
        };
        if !trial.phase().is_live() {
            return match kind {
                EventKind::Report(_) => Ok(()), // a report that crossed the trial's end
                _ => Err(TunerError::EndedTwice(trial_id)),
            };
        }
        match kind {
            EventKind::Report(metrics) => self.on_report(time, trial_id, metrics),
            EventKind::Failed(error) => self.on_failed(time, trial_id, error),
            EventKind::Completed | EventKind::Stopped | EventKind::Paused => self.on_ended(time, trial_id, kind),
            EventKind::Preempted => self.on_preempted(time, trial_id),
        }
    }

    fn on_report(&mut self, time: f64, trial_id: TrialId, metrics: Metrics) -> Result<(), TunerError> {
        let Some(trial) = self.trials.get(trial_id) else { return Err(TunerError::UnknownTrial(trial_id)) };
        if !matches!(trial.phase(), Phase::Running(_)) {
            return Ok(()); // already told to stop or pause; late reports do not count
        }
        if let Some(done) = self.trials.counted_up_to(trial_id) {
            let resource = self.ctx.resource_attr.as_deref().and_then(|attr| metrics.get(attr));
            if resource.is_some_and(|r| r <= done) {
                // Relaunched, it made this report again: not counted, but answered (a
                // thread trial may wait for the answer).
                self.decide(trial_id, Decision::Continue);
                return Ok(());
            }
            self.trials.set_counted_up_to(trial_id, None);
        }
        let Some(trial) = self.trials.get_mut(trial_id) else { return Err(TunerError::UnknownTrial(trial_id)) };
        trial.reports += 1;
        let score = match self.ctx.score(&metrics, trial.reports, &mut self.objectives) {
            Ok(score) => score,
            Err(error) => {
                let (t, metrics, decision) = (time, Cow::Borrowed(&metrics), Decision::Stop);
                self.log(&Entry::Report { t, trial: trial_id, metrics, decision })?;
                self.trials.set(trial_id, Phase::Failing(error.to_string()));
                self.actions.decisions.push((trial_id, Decision::Stop));
                return Ok(());
            }
        };
        let (objective, resource, violation) = (score.objective, score.resource, score.violation);
        trial.resource = Some(resource);
        // The config, borrowed from the table (not cloned: a reference count per report).
        let Some(Phase::Running(config)) = self.trials.get(trial_id).map(Trial::phase) else {
            return Err(TunerError::UnknownTrial(trial_id));
        };
        let objectives = &self.objectives;
        let report = Report { trial_id, config, metrics: &metrics, resource, objective, objectives, violation };
        let decision = self.scheduler.on_report(&report);
        // The incumbent is the best feasible report by the first objective.
        if objective < self.best_objective && violation == 0.0 {
            self.best_objective = objective;
            let value = self.ctx.objective.to_metric(objective);
            self.trajectory.push((time, value));
            let config = (**config).clone();
            self.incumbent = Some(Incumbent { trial_id, config, value, metrics: metrics.clone(), time });
        }
        if decision != Decision::Continue {
            self.trials.set(trial_id, Phase::Ending(decision));
        }
        if self.ctx.ranks_by_pareto() && violation == 0.0 {
            self.join_front(time);
        }
        self.log(&Entry::Report { t: time, trial: trial_id, metrics: Cow::Owned(metrics), decision })?;
        self.decide(trial_id, decision);
        Ok(())
    }

    /// Plans telling the trial the decision on its report. A trial that does not wait for
    /// decisions ([`TrialStart::await_decisions`]) goes on by itself: it is told only to end.
    fn decide(&mut self, trial_id: TrialId, decision: Decision) {
        if decision != Decision::Continue || self.scheduler.interrupts_trials() {
            self.actions.decisions.push((trial_id, decision));
        }
    }

    /// Offers the objectives of the report being handled to the front; notes them if they
    /// joined it.
    fn join_front(&mut self, time: f64) {
        if self.front.offer(&self.objectives) {
            let objectives = self.ctx.objectives().iter().zip(&self.objectives);
            self.front_trajectory.push((time, objectives.map(|(o, v)| o.to_metric(*v)).collect()));
        }
    }

    fn on_failed(&mut self, time: f64, trial_id: TrialId, error: String) -> Result<(), TunerError> {
        match self.trials.get(trial_id).map(Trial::phase) {
            Some(Phase::Failing(found)) => self.fail(trial_id, time, found.clone()), // found first
            _ => self.fail(trial_id, time, error),
        }
    }

    /// The trial completed, stopped or paused.
    fn on_ended(&mut self, t: f64, trial: TrialId, kind: EventKind) -> Result<(), TunerError> {
        let told = match self.trials.get(trial).map(Trial::phase) {
            Some(Phase::Failing(error)) => return self.fail(trial, t, error.clone()),
            Some(Phase::Ending(told) | Phase::Resuming(told, _)) => Some(*told),
            _ => None,
        };
        // A trial told to pause or stop that finished first still counts as paused or
        // stopped (a script may end before the signal reaches it).
        let phase = match (kind, told) {
            (EventKind::Paused, _) | (EventKind::Completed, Some(Decision::Pause)) => Phase::Paused,
            (EventKind::Stopped, _) | (EventKind::Completed, Some(_)) => Phase::Stopped,
            _ => Phase::Completed,
        };
        // The config a resume waits with is taken from the phase it leaves (not cloned).
        let resume = match self.trials.set(trial, phase.clone()) {
            Phase::Resuming(_, config) => Some(config),
            _ => None,
        };
        let no_report = self.trials.get(trial).is_some_and(|trial| trial.reports == 0);
        self.log(&match phase {
            Phase::Paused => Entry::Paused { t, trial },
            Phase::Stopped => Entry::Stopped { t, trial },
            _ => Entry::Complete { t, trial, no_report },
        })?;
        match (phase, resume) {
            (Phase::Completed, _) => self.scheduler.on_complete(trial),
            (Phase::Paused, Some(config)) => self.resume(trial, config, t)?,
            _ => {} // a stopped trial is not resumed: the worker held for it is free again
        }
        Ok(())
    }

    /// The cluster took the trial's resources back: it runs again from its checkpoint, as
    /// a new launch, unless it was told to stop or pause (then that is how it ended) or the
    /// experiment is ending (then it is stopped). Not a failure.
    fn on_preempted(&mut self, t: f64, trial_id: TrialId) -> Result<(), TunerError> {
        let Some(trial) = self.trials.get(trial_id) else { return Err(TunerError::UnknownTrial(trial_id)) };
        match trial.phase().clone() {
            Phase::Running(config) if self.ending.is_none() => {
                self.log(&Entry::Preempted { t, trial: trial_id })?;
                self.resume(trial_id, config, t)
            }
            Phase::Running(_) => self.on_ended(t, trial_id, EventKind::Stopped),
            Phase::Failing(error) => self.fail(trial_id, t, error),
            _ => self.on_ended(t, trial_id, EventKind::Completed), // as it was told
        }
    }

    fn fail(&mut self, trial_id: TrialId, time: f64, error: String) -> Result<(), TunerError> {
        self.trials.set(trial_id, Phase::Failed);
        self.log(&Entry::Fail { t: time, trial: trial_id, error: error.clone() })?;
        self.scheduler.on_fail(trial_id);
        self.actions.failures.push((trial_id, error));
        Ok(())
    }

    /// Journals and plans a resume of a paused (or completed) trial.
    fn resume(&mut self, trial_id: TrialId, config: Arc<Config>, t: f64) -> Result<(), TunerError> {
        self.launch_again(trial_id, config, t, false)
    }

    /// Journals and plans a launch of a trial that ran before: a resume, or with `relaunch`
    /// the launch that died with the run before, made again.
    fn launch_again(
        &mut self,
        trial_id: TrialId,
        config: Arc<Config>,
        t: f64,
        relaunch: bool,
    ) -> Result<(), TunerError> {
        self.log(&Entry::Resume { t, trial: trial_id, config: Cow::Borrowed(&config) })?;
        self.trials.set(trial_id, Phase::Running(Arc::clone(&config)));
        let Some(trial) = self.trials.get_mut(trial_id) else { return Err(TunerError::UnknownTrial(trial_id)) };
        trial.launches += u32::from(!relaunch);
        let (resource_done, launch) = (trial.resource, trial.launches);
        let (checkpoint_from, await_decisions) = (None, self.scheduler.interrupts_trials());
        let start = TrialStart {
            trial_id,
            config,
            resume: true,
            checkpoint_from,
            resource_done,
            launch,
            relaunch,
            await_decisions,
        };
        self.actions.starts.push(start);
        Ok(())
    }

    /// A start or resume the backend was never given (the experiment was interrupted while
    /// the backend hung): a new trial fails, a resumed one is paused again.
    pub(crate) fn not_started(&mut self, trial: TrialId, resume: bool, t: f64) -> Result<(), TunerError> {
        if resume {
            self.trials.set(trial, Phase::Paused);
            self.log(&Entry::Paused { t, trial })
        } else {
            self.fail(trial, t, "not started: the experiment was interrupted".into())
        }
    }

    /// Decisions the backend was not given yet: carried out again, before any added later.
    pub(crate) fn requeue(&mut self, decisions: &[(TrialId, Decision)]) {
        self.actions.decisions.extend_from_slice(decisions);
    }

    /// Plans work for every free worker from what the scheduler suggests, at time `now`.
    pub(crate) fn fill(&mut self, now: f64) -> Result<(), TunerError> {
        while !self.apply_recorded_ending()?
            && self.busy_workers() < self.workers
            && self.ending.is_none()
            && !self.scheduler_done
            && self.scheduler.failure().is_none()
            && !interrupt::requested()
            && self.criteria.max_trials.is_none_or(|max| (self.trials.len() as u64) < max)
        {
            let next_id = self.trials.next_id();
            match self.scheduler.suggest(next_id) {
                Suggestion::Start { config, checkpoint_from } => self.start(next_id, config, checkpoint_from, now)?,
                Suggestion::Resume { trial_id, config } => self.plan_resume(trial_id, config, now)?,
                Suggestion::Wait => {
                    self.stalled = self.busy_workers() == 0;
                    break;
                }
                Suggestion::Done => self.scheduler_done = true,
            }
        }
        // A stop request may have cut the scheduler's answer short (a plugin that gave up
        // waiting): that is no stall, and nothing more starts.
        if interrupt::requested() {
            self.end(EndReason::Interrupted, now)?;
        }
        Ok(())
    }

    fn start(
        &mut self,
        trial_id: TrialId,
        config: Config,
        checkpoint_from: Option<TrialId>,
        t: f64,
    ) -> Result<(), TunerError> {
        let bad = |reason| TunerError::BadSuggestion { trial_id, reason };
        self.ctx
            .space
            .validate_except(&config, self.ctx.max_resource_attr.as_deref())
            .map_err(|e| bad(e.to_string()))?;
        let resource_done = match checkpoint_from {
            Some(from) => match self.trials.get(from) {
                Some(donor) => donor.resource,
                None => return Err(bad(format!("start from the checkpoint of trial {from}, which was never started"))),
            },
            None => None,
        };
        let config = Arc::new(config);
        self.log(&Entry::Start { t, trial: trial_id, config: Cow::Borrowed(&config), checkpoint_from })?;
        self.trials.push(Arc::clone(&config));
        let start = TrialStart {
            trial_id,
            config,
            resume: false,
            checkpoint_from,
            resource_done,
            launch: 1,
            relaunch: false,
            await_decisions: self.scheduler.interrupts_trials(),
        };
        self.actions.starts.push(start);
        Ok(())
    }

    fn plan_resume(&mut self, trial_id: TrialId, config: Config, now: f64) -> Result<(), TunerError> {
        let bad = |reason: String| TunerError::BadSuggestion { trial_id, reason };
        let Some(trial) = self.trials.get(trial_id) else {
            return Err(bad("resume a trial that was never started".into()));
        };
        match trial.phase() {
            // Still running until its pause takes effect: resume it right after.
            Phase::Ending(told) => {
                self.trials.set(trial_id, Phase::Resuming(*told, Arc::new(config)));
                Ok(())
            }
            Phase::Paused | Phase::Completed => self.resume(trial_id, Arc::new(config), now),
            Phase::Running(_) => Err(bad("resume a trial that is still running".into())),
            _ => Err(bad("resume a trial that failed or was stopped".into())),
        }
    }

    /// Ends the experiment if a stopping criterion holds at time `now`. While recorded
    /// entries are made again, the time is the record's and the end is the recorded one.
    pub(crate) fn check_criteria(&mut self, now: f64) -> Result<(), TunerError> {
        if self.apply_recorded_ending()? {
            return Ok(());
        }
        let replaying = self.replaying();
        let c = &self.criteria;
        let failures = self.trials.with_status(Status::Failed) as u64;
        let reason = if interrupt::requested() {
            Some(EndReason::Interrupted)
        } else if self.scheduler.failure().is_some() {
            Some(EndReason::SchedulerFailed)
        } else if c.max_failures.is_some_and(|max| failures >= max) {
            Some(EndReason::MaxFailures)
        } else if c.metric_threshold.is_some_and(|t| self.best_objective <= self.ctx.objective.to_minimize(t)) {
            Some(EndReason::MetricThreshold)
        } else if !replaying && c.max_wallclock.is_some_and(|d| now >= d.as_secs_f64()) {
            Some(EndReason::MaxWallclock)
        } else {
            None
        };
        match reason {
            Some(reason) => self.end(reason, now),
            None => Ok(()),
        }
    }

    /// Ends the experiment as the record says, if the next recorded entry is its ending
    /// (whether it ended for a reason that recurs, or for one of its own time: a deadline,
    /// an interrupt). Whether the experiment is ending.
    pub(crate) fn apply_recorded_ending(&mut self) -> Result<bool, TunerError> {
        if let Some((reason, t)) = self.journal.as_ref().and_then(Journal::recorded_ending) {
            self.end(reason, t)?;
        }
        Ok(self.ending.is_some())
    }

    /// Ends the experiment at time `t` (journaled): no new trials, no resumes, every running
    /// trial told to stop (after any decision already due this round, so the stop is the
    /// last word).
    pub(crate) fn end(&mut self, reason: EndReason, t: f64) -> Result<(), TunerError> {
        if self.ending.is_some() {
            return Ok(());
        }
        self.log(&Entry::Ending { t, reason })?;
        self.ending = Some(reason);
        let mut changes = Vec::new();
        for (id, trial) in self.trials.iter() {
            match trial.phase() {
                Phase::Running(_) => changes.push((id, Phase::Ending(Decision::Stop))),
                Phase::Resuming(told, _) => changes.push((id, Phase::Ending(*told))),
                _ => {}
            }
        }
        for (id, phase) in changes {
            if phase == Phase::Ending(Decision::Stop) {
                self.actions.decisions.push((id, Decision::Stop));
            }
            self.trials.set(id, phase);
        }
        Ok(())
    }

    pub(crate) fn progress(&self, time: f64) -> Progress {
        let count = |status| self.trials.with_status(status);
        Progress {
            time,
            running: self.busy_workers(),
            completed: count(Status::Completed),
            failed: count(Status::Failed),
            stopped: count(Status::Stopped),
            paused: count(Status::Paused),
            best: self.incumbent.as_ref().map(|i| (i.value, i.trial_id)),
        }
    }

    /// Why the experiment ended, once no trial runs.
    fn reason(&self) -> EndReason {
        self.ending.unwrap_or(if self.scheduler.failure().is_some() {
            EndReason::SchedulerFailed
        } else if self.scheduler_done {
            EndReason::SchedulerDone
        } else if self.stalled {
            EndReason::Stalled
        } else {
            EndReason::MaxTrials
        })
    }

    /// Journals the end and sums the experiment up.
    pub(crate) fn finish(mut self, time: f64) -> Result<Summary, TunerError> {
        self.apply_recorded_ending()?;
        let reason = self.reason();
        self.log(&Entry::End { t: time, reason: reason.as_str().to_owned() })?;
        self.flush()?;
        let progress = self.progress(time);
        let no_report = self.trials.iter().filter(|(_, t)| *t.phase() == Phase::Completed && t.reports == 0).count();
        Ok(Summary {
            reason,
            trials: self.trials.len(),
            completed: progress.completed,
            failed: progress.failed,
            stopped: progress.stopped,
            paused: progress.paused,
            best: self.incumbent,
            trajectory: self.trajectory,
            front_trajectory: self.front_trajectory,
            elapsed: time,
            error: self.scheduler.failure(),
            no_report,
        })
    }
}
