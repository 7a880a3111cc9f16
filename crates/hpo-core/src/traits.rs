//! The three extension points: which config next ([`Searcher`]), when and how long trials
//! run ([`Scheduler`]), and where they run ([`Backend`]).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use hpo_space::{Config, Space};
use serde::{Deserialize, Serialize};

use crate::pareto::Constraint;
use crate::types::{Decision, MetricError, Metrics, Objective, Report, Suggestion, TrialId};

/// What a searcher or scheduler learns about the experiment before the first suggestion.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Context {
    /// The search space.
    pub space: Space,
    /// The metric and its direction (with several objectives, the first).
    #[serde(flatten)]
    pub objective: Objective,
    /// Every objective when there are several (the first is `objective`); empty for one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objectives: Vec<Objective>,
    /// Outcome constraints: a report breaking one is infeasible ([`Report::violation`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// The reported key that counts training progress (e.g. `epoch`).
    pub resource_attr: Option<String>,
    /// The config key that tells a trial how far to train (e.g. `max_epochs`).
    pub max_resource_attr: Option<String>,
    /// The master seed; derive streams with [`crate::derive_rng`].
    pub seed: u64,
}

/// What a report says to a scheduler, from [`Context::score`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// The first objective, to minimize.
    pub objective: f64,
    /// How far training has gone.
    pub resource: f64,
    /// By how much the report breaks the constraints (0 when all hold).
    pub violation: f64,
}

impl Context {
    /// The context of one objective, without constraints.
    pub fn new(space: Space, objective: Objective, seed: u64) -> Context {
        Context {
            space,
            objective,
            objectives: Vec::new(),
            constraints: Vec::new(),
            resource_attr: None,
            max_resource_attr: None,
            seed,
        }
    }

    /// Every objective, the first being `objective`.
    pub fn objectives(&self) -> &[Objective] {
        if self.objectives.is_empty() { std::slice::from_ref(&self.objective) } else { &self.objectives }
    }

    /// Whether trials are ranked by more than one number: several objectives, or
    /// constraints (then a feasible trial ranks above every infeasible one).
    pub fn ranks_by_pareto(&self) -> bool {
        self.objectives.len() > 1 || !self.constraints.is_empty()
    }

    /// A trial's report scored: every objective (to minimize) into `objectives`, the
    /// resource (`reports` being the number of reports the trial has made, this one
    /// included, stands in when the `resource_attr` metric is absent) and the violation.
    /// `Err` when the report lacks a usable objective.
    pub fn score(&self, metrics: &Metrics, reports: u32, objectives: &mut Vec<f64>) -> Result<Score, MetricError> {
        objectives.clear();
        for objective in self.objectives() {
            objectives.push(objective.of(metrics)?);
        }
        let resource = self.resource_attr.as_deref().and_then(|attr| metrics.get(attr)).unwrap_or(f64::from(reports));
        let violation = self.constraints.iter().map(|c| c.violation(metrics)).sum();
        Ok(Score { objective: objectives[0], resource, violation })
    }
}

/// A searcher or scheduler was configured in a way it cannot work with.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// Decides which config to evaluate next.
///
/// Searchers are named types: `[searcher] type = "random"` in an experiment file builds the
/// one registered under that name.
#[typetag::serde(tag = "type")]
pub trait Searcher: Send {
    /// Called once before the first suggestion.
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError>;

    /// The config for the trial that will get `trial_id`, or `None` when there is none left.
    fn suggest(&mut self, trial_id: TrialId) -> Option<Config>;

    /// A trial reported a result (`objective` is to be minimized).
    fn on_report(&mut self, _report: &Report<'_>) {}

    /// A trial ended normally.
    fn on_complete(&mut self, _trial_id: TrialId) {}

    /// A trial failed; it will not report again.
    fn on_fail(&mut self, _trial_id: TrialId) {}

    /// The scheduler stopped or paused a trial: no result is on its way unless it resumes.
    fn on_stop(&mut self, _trial_id: TrialId) {}
}

/// Decides when and how long trials run; owns a searcher.
///
/// The tuner calls `suggest` whenever a worker is free and `on_report` for every report.
/// All values it passes are to be minimized: the tuner handles `mode` once for everyone.
#[typetag::serde(tag = "type")]
pub trait Scheduler: Send {
    /// Called once before the first suggestion.
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError>;

    /// What a free worker should do; `trial_id` is the id a new trial would get.
    fn suggest(&mut self, trial_id: TrialId) -> Suggestion;

    /// A running trial reported; the answer says whether it goes on.
    fn on_report(&mut self, report: &Report<'_>) -> Decision;

    /// A trial ended normally (its training function returned).
    fn on_complete(&mut self, trial_id: TrialId);

    /// A trial failed (error, panic, missing or non-finite metric).
    fn on_fail(&mut self, trial_id: TrialId);

    /// Why the scheduler cannot go on, if it cannot (a plugin that died, hangs or keeps
    /// answering garbage); the tuner then ends the experiment cleanly.
    fn failure(&self) -> Option<String> {
        None
    }

    /// Whether `on_report` may answer anything but `Continue`. A scheduler that never stops
    /// or pauses a trial (FIFO) says `false`, and then a trial need not wait for the answer
    /// to its report ([`TrialStart::await_decisions`]).
    fn interrupts_trials(&self) -> bool {
        true
    }
}

/// How a trial is to be started.
#[derive(Clone, Debug)]
pub struct TrialStart {
    /// The trial.
    pub trial_id: TrialId,
    /// Its config.
    pub config: Arc<Config>,
    /// Whether this resumes a paused trial (with the same checkpoint folder).
    pub resume: bool,
    /// Start from a copy of this trial's checkpoint (population based training).
    pub checkpoint_from: Option<TrialId>,
    /// The resource the trial (or, with `checkpoint_from`, its donor) last reported: where
    /// training picks up from a checkpoint. `None` for a fresh start.
    pub resource_done: Option<f64>,
    /// Which launch of the trial this is: 1 for its start, one more for each resume.
    pub launch: u32,
    /// This launch was made before, by a run of hpo that died (`hpo resume`): a backend
    /// that can find it still running, or ended meanwhile (a cluster job), takes it up
    /// instead of launching it again.
    pub relaunch: bool,
    /// Whether the trial waits for the decision on each report, where the backend supports
    /// synchronous decisions: `false` when the scheduler never stops or pauses trials
    /// ([`Scheduler::interrupts_trials`]), so the trial goes on at once and is never told
    /// `Continue`. A stop the tuner sends later (the experiment ending) takes effect at the
    /// trial's next report.
    pub await_decisions: bool,
}

/// Something that happened to a running trial.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// The trial reported metrics and waits for [`Backend::decide`] where the backend
    /// supports synchronous decisions.
    Report(Metrics),
    /// The training function returned normally.
    Completed,
    /// The trial failed; the message says why.
    Failed(String),
    /// The trial ended after being told to stop.
    Stopped,
    /// The trial ended after being told to pause; it may be resumed.
    Paused,
    /// The cluster took the trial's resources back (a preempted or requeued job): not the
    /// trial's fault; it is launched again, from its checkpoint.
    Preempted,
}

/// An event with the backend's time (seconds since the backend started).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When (backend seconds).
    pub time: f64,
    /// The trial.
    pub trial_id: TrialId,
    /// What happened.
    pub kind: EventKind,
}

/// A backend could not do what it was asked; the experiment cannot go on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Runs trials: threads in this process, child processes, a simulator, a cluster.
///
/// A trial occupies a worker from `start` until its `Completed`, `Failed`, `Stopped` or
/// `Paused` event.
#[async_trait]
pub trait Backend: Send {
    /// Starts (or resumes) a trial on a free worker.
    async fn start(&mut self, trial: TrialStart) -> Result<(), BackendError>;

    /// Tells a trial what the scheduler decided after its latest report (`Continue` only to a
    /// trial that waits for it: [`TrialStart::await_decisions`]), or asks a running trial to
    /// stop or pause at any time.
    async fn decide(&mut self, trial_id: TrialId, decision: Decision) -> Result<(), BackendError>;

    /// Waits until at least one event happened and appends everything that happened so far.
    async fn next_events(&mut self, out: &mut Vec<Event>) -> Result<(), BackendError>;

    /// Appends the events that happened so far, without waiting (none if the backend cannot
    /// tell at once). The tuner takes these before it waits with [`Backend::next_events`]:
    /// a call without a future to allocate, for backends whose events come every few
    /// microseconds.
    fn events_so_far(&mut self, _out: &mut Vec<Event>) -> Result<(), BackendError> {
        Ok(())
    }

    /// Seconds since the backend started, on its own clock (simulated or wall).
    fn now(&self) -> f64;

    /// Whether `now` is a simulated clock (then wall-clock deadlines do not apply).
    fn simulated(&self) -> bool {
        false
    }

    /// Whether trials run inside this process (threads, simulator) and so end with it. Then
    /// the journal need not have an entry before the tuner acts on it: an entry lost with
    /// the process describes work lost with it, which a resumed run makes again.
    fn runs_in_process(&self) -> bool {
        self.simulated()
    }

    /// The folder where a trial keeps its checkpoints, if the backend keeps any.
    fn checkpoint_dir(&self, _trial_id: TrialId) -> Option<PathBuf> {
        None
    }

    /// Going on with an experiment whose driver died, before its trials are launched again:
    /// ends whatever that driver left running of them that this backend cannot follow.
    fn take_over(&mut self) {}
}
