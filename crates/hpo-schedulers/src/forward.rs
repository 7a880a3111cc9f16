//! What every scheduler that owns a searcher tells it, written once: a scheduler implements
//! [`WithSearcher`] and expands [`searcher_events!`] inside its `impl Scheduler`.
//!
//! The order, the same for all:
//! - a report: the scheduler decides (or ignores the report, and then so does the searcher),
//!   the searcher sees the report, then hears of a stop or pause;
//! - a completion or failure: the scheduler first, then the searcher.

use hpo_core::{Decision, Report, Searcher, TrialId};
use serde::de::DeserializeOwned;

/// A scheduler's own rules beside its searcher.
pub(crate) trait WithSearcher {
    fn searcher(&mut self) -> &mut dyn Searcher;

    /// The decision on a report, or `None` for a report the scheduler ignores (a trial it
    /// does not know, or one restarted from scratch repeating what it reported before).
    fn decide(&mut self, report: &Report<'_>) -> Option<Decision>;

    /// A trial ended: completed, or `failed`.
    fn ended(&mut self, _trial_id: TrialId, _failed: bool) {}
}

pub(crate) fn on_report(scheduler: &mut impl WithSearcher, report: &Report<'_>) -> Decision {
    let Some(decision) = scheduler.decide(report) else { return Decision::Continue };
    let searcher = scheduler.searcher();
    searcher.on_report(report);
    if decision != Decision::Continue {
        searcher.on_stop(report.trial_id);
    }
    decision
}

pub(crate) fn on_end(scheduler: &mut impl WithSearcher, trial_id: TrialId, failed: bool) {
    scheduler.ended(trial_id, failed);
    let searcher = scheduler.searcher();
    if failed {
        searcher.on_fail(trial_id);
    } else {
        searcher.on_complete(trial_id);
    }
}

/// `Scheduler::on_report`, `on_complete` and `on_fail` through [`WithSearcher`].
macro_rules! searcher_events {
    () => {
        fn on_report(&mut self, report: &hpo_core::Report<'_>) -> hpo_core::Decision {
            crate::forward::on_report(self, report)
        }

        fn on_complete(&mut self, trial_id: hpo_core::TrialId) {
            crate::forward::on_end(self, trial_id, false);
        }

        fn on_fail(&mut self, trial_id: hpo_core::TrialId) {
            crate::forward::on_end(self, trial_id, true);
        }
    };
}
pub(crate) use searcher_events;

/// A scheduler or searcher from settings in its experiment-file form, every other setting at
/// its serde default: constructors use it, so each default is written once.
pub(crate) fn with_defaults<T: DeserializeOwned>(settings: serde_json::Value) -> T {
    match serde_json::from_value(settings) {
        Ok(value) => value,
        // Only the crate's own constructors call this, with settings of the right shape (a
        // unit test builds each one).
        Err(e) => panic!("built-in defaults do not deserialize: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use crate::{Asha, Hyperband, MedianStopping, Pbt, SuccessiveHalving, Variant};

    #[test]
    fn constructors_take_the_serde_defaults() {
        assert_eq!(Asha::new(Variant::Stopping, 1.0, 3.0, None).brackets, 1);
        assert_eq!(Hyperband::new(1.0, 3.0, None).brackets, None);
        assert_eq!(SuccessiveHalving::new(1.0, None, 2.0, 1).r_min, 1.0);
        assert_eq!(MedianStopping::new(1.0, 1, 1.0).rank_cutoff, 0.5);
        let pbt = Pbt::new(8, 1.0);
        assert_eq!((pbt.quantile_fraction, pbt.resample_probability), (0.25, 0.25));
    }
}
