//! The tuner's trials: one row per trial, each in one [`Phase`], with the number of trials in
//! each phase kept by the one function that changes a phase, so that the counts the tuner
//! decides on (busy workers, paused, completed, ...) can never drift from the rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use hpo_space::Config;

use crate::types::{Decision, Status, TrialId};

/// Where a trial is in its life, as the tuner sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Phase {
    /// Started or resumed with this config; it may run on. (Only a running trial's config is
    /// needed, and so kept: an experiment's memory does not grow with configs of the past.)
    Running(Arc<Config>),
    /// Told to stop or pause: it still runs until the backend says it ended.
    Ending(Decision),
    /// Told to stop or pause, and the scheduler has since asked to resume it with this
    /// config: it is resumed as soon as its pause takes effect. It holds two workers, its
    /// own and the one the resume will take, so that no new trial takes that one meanwhile.
    Resuming(Decision, Arc<Config>),
    /// Failed (a report without the metric, the error here) while its process still runs:
    /// the worker is busy, and the failure journaled, at the backend's end event.
    Failing(String),
    Paused,
    Completed,
    Stopped,
    Failed,
}

const PHASES: usize = 8;
/// Phases before this index are live: the backend still runs the trial.
const LIVE: usize = 4;
const RESUMING: usize = 2;
/// The status users see (`results.csv`, progress) of each phase, by index.
const STATUS: [Status; PHASES] = [
    Status::InProgress,
    Status::InProgress,
    Status::InProgress,
    Status::Failed,
    Status::Paused,
    Status::Completed,
    Status::Stopped,
    Status::Failed,
];

impl Phase {
    fn index(&self) -> usize {
        match self {
            Phase::Running(_) => 0,
            Phase::Ending(_) => 1,
            Phase::Resuming(..) => RESUMING,
            Phase::Failing(_) => 3,
            Phase::Paused => 4,
            Phase::Completed => 5,
            Phase::Stopped => 6,
            Phase::Failed => 7,
        }
    }

    /// Whether the backend still runs the trial (an end event is still to come).
    pub(crate) fn is_live(&self) -> bool {
        self.index() < LIVE
    }
}

/// One trial as the tuner knows it.
#[derive(Debug)]
pub(crate) struct Trial {
    phase: Phase,
    /// Reports taken in (late reports after a stop or pause are not counted).
    pub(crate) reports: u32,
    /// The resource of the trial's latest report.
    pub(crate) resource: Option<f64>,
    /// Launches so far: the start and each resume.
    pub(crate) launches: u32,
}

impl Trial {
    pub(crate) fn phase(&self) -> &Phase {
        &self.phase
    }
}

/// Every trial of the experiment, by id, and how many are in each phase.
#[derive(Debug, Default)]
pub(crate) struct TrialTable {
    trials: Vec<Trial>,
    counts: [usize; PHASES],
    /// Trials relaunched after the driver died, each with the resource up to which its
    /// reports were counted before (kept aside: rare, and a row's size is memory per trial).
    /// An entry goes when the trial reports beyond it, not when it leaves `Running`: paused
    /// before that and resumed, it repeats those reports from its checkpoint.
    counted_up_to: BTreeMap<TrialId, f64>,
}

impl TrialTable {
    /// The id the next trial gets.
    pub(crate) fn next_id(&self) -> TrialId {
        self.trials.len() as TrialId
    }

    pub(crate) fn len(&self) -> usize {
        self.trials.len()
    }

    /// Adds a trial that starts running now, with `config` (shared with the backend's start
    /// request: a config is never deep-copied per trial).
    pub(crate) fn push(&mut self, config: Arc<Config>) {
        let phase = Phase::Running(config);
        self.counts[phase.index()] += 1;
        self.trials.push(Trial { phase, reports: 0, resource: None, launches: 1 });
    }

    pub(crate) fn get(&self, id: TrialId) -> Option<&Trial> {
        self.trials.get(usize::try_from(id).ok()?)
    }

    pub(crate) fn get_mut(&mut self, id: TrialId) -> Option<&mut Trial> {
        self.trials.get_mut(usize::try_from(id).ok()?)
    }

    /// Moves a trial to another phase: the only place a phase (and so a count) changes.
    /// Returns the phase it left.
    pub(crate) fn set(&mut self, id: TrialId, phase: Phase) -> Phase {
        let trial = &mut self.trials[id as usize];
        self.counts[trial.phase.index()] -= 1;
        self.counts[phase.index()] += 1;
        std::mem::replace(&mut trial.phase, phase)
    }

    /// Up to which resource a relaunched trial's reports were counted before, until it
    /// reports beyond it.
    pub(crate) fn counted_up_to(&self, id: TrialId) -> Option<f64> {
        self.counted_up_to.get(&id).copied()
    }

    /// Sets or (`None`) clears [`TrialTable::counted_up_to`].
    pub(crate) fn set_counted_up_to(&mut self, id: TrialId, resource: Option<f64>) {
        match resource {
            Some(resource) => self.counted_up_to.insert(id, resource),
            None => self.counted_up_to.remove(&id),
        };
    }

    /// Workers taken: every live trial holds one, a trial waiting to resume holds two.
    pub(crate) fn busy_workers(&self) -> usize {
        self.counts[..LIVE].iter().sum::<usize>() + self.counts[RESUMING]
    }

    /// The trials, by id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TrialId, &Trial)> {
        self.trials.iter().enumerate().map(|(id, trial)| (id as TrialId, trial))
    }

    /// Trials whose status (as users see it) is `status`.
    pub(crate) fn with_status(&self, status: Status) -> usize {
        (0..PHASES).filter(|&i| STATUS[i] == status).map(|i| self.counts[i]).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recount(table: &TrialTable) -> [usize; PHASES] {
        let mut counts = [0; PHASES];
        for (_, trial) in table.iter() {
            counts[trial.phase.index()] += 1;
        }
        counts
    }

    #[test]
    fn a_row_is_48_bytes() {
        // The tuner's memory per trial: a million trials, 48 MB of rows.
        assert_eq!(std::mem::size_of::<Trial>(), 48);
    }

    #[test]
    fn counts_follow_every_phase_change() {
        let mut table = TrialTable::default();
        let config = Arc::new(Config::new());
        for _ in 0..4 {
            table.push(Arc::clone(&config));
        }
        assert_eq!(table.busy_workers(), 4);
        table.set(0, Phase::Ending(Decision::Pause));
        table.set(1, Phase::Resuming(Decision::Pause, Arc::clone(&config)));
        table.set(2, Phase::Failing("no metric".into()));
        table.set(3, Phase::Completed);
        assert_eq!(table.counts, recount(&table));
        assert_eq!(table.busy_workers(), 4, "ending 1 + resuming 2 + failing 1");
        assert_eq!(table.with_status(Status::InProgress), 2);
        assert_eq!(table.with_status(Status::Failed), 1);
        assert_eq!(table.set(2, Phase::Failed), Phase::Failing("no metric".into()));
        table.set(1, Phase::Running(Arc::clone(&config)));
        table.set(0, Phase::Paused);
        assert_eq!(table.counts, recount(&table));
        assert_eq!(table.busy_workers(), 1);
        assert_eq!(
            [Status::Paused, Status::Completed, Status::Failed, Status::InProgress].map(|s| table.with_status(s)),
            [1, 1, 1, 1]
        );
    }
}
