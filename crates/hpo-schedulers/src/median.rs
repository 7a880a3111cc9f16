use hpo_core::{Context, Decision, Report, Scheduler, Searcher, SetupError, Suggestion, TrialId};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::fifo::{default_searcher, start_or_done};
use crate::forward::{WithSearcher, searcher_events, with_defaults};
use crate::quantile::RunningQuantile;
use crate::rungs::one_objective;

/// The median stopping rule (Golovin et al., 2017): at each time step, stop a trial whose
/// best value so far is worse than the median (`rank_cutoff` quantile) of the best values
/// the other trials had at that step, once at least `grace_population` others reported
/// there and the trial has trained for `grace_period`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedianStopping {
    /// No trial is stopped before it trained this much.
    #[serde(default = "crate::defaults::one")]
    pub grace_period: f64,
    /// Others that must have reported at a step before a trial is judged there.
    #[serde(default = "crate::defaults::one_count")]
    pub grace_population: usize,
    /// Resources are compared in steps of this size (`floor(resource / time_step)`).
    #[serde(default = "crate::defaults::one")]
    pub time_step: f64,
    /// The quantile a trial must beat (0.5: the median).
    #[serde(default = "crate::defaults::half")]
    pub rank_cutoff: f64,
    /// Where new configs come from.
    #[serde(default = "default_searcher")]
    pub searcher: Box<dyn Searcher>,
    #[serde(skip)]
    state: State,
}

#[derive(Default)]
struct State {
    /// Per step: the quantile of the best-so-far values trials had at that step.
    steps: FxHashMap<i64, RunningQuantile>,
    /// Per trial: best value so far and the last step it was recorded at.
    best: FxHashMap<TrialId, (f64, i64)>,
}

impl MedianStopping {
    /// The median stopping rule with these settings, the rest at their defaults.
    pub fn new(grace_period: f64, grace_population: usize, time_step: f64) -> Self {
        MedianStopping { grace_period, grace_population, time_step, ..with_defaults(serde_json::json!({})) }
    }

    /// The median rule for a report.
    fn rule(&mut self, report: &Report<'_>) -> Decision {
        let step = (report.resource / self.time_step).floor() as i64;
        let (best, last_step) = self.state.best.entry(report.trial_id).or_insert((f64::INFINITY, i64::MIN));
        *best = best.min(report.objective);
        if *last_step == step {
            return Decision::Continue; // judged at this step already
        }
        *last_step = step;
        let best = *best;
        let rank_cutoff = self.rank_cutoff;
        let others = self.state.steps.entry(step).or_insert_with(|| RunningQuantile::new(rank_cutoff));
        // Compare with the others before adding this trial's own value.
        let cutoff = others.value(self.grace_population.max(1));
        others.insert(best);
        match cutoff {
            Some(cutoff) if report.resource >= self.grace_period && best > cutoff => Decision::Stop,
            _ => Decision::Continue,
        }
    }
}

#[typetag::serde(name = "median_stopping")]
impl Scheduler for MedianStopping {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        one_objective("median_stopping", ctx)?;
        if self.time_step.is_nan() || self.time_step <= 0.0 || !(0.0..=1.0).contains(&self.rank_cutoff) {
            return Err(SetupError(format!(
                "median_stopping: need time_step > 0 and 0 <= rank_cutoff <= 1, got {} and {}",
                self.time_step, self.rank_cutoff
            )));
        }
        self.state = State::default();
        self.searcher.init(ctx)
    }

    fn suggest(&mut self, trial_id: TrialId) -> Suggestion {
        start_or_done(self.searcher.as_mut(), trial_id)
    }

    searcher_events!();
}

impl WithSearcher for MedianStopping {
    fn searcher(&mut self) -> &mut dyn Searcher {
        self.searcher.as_mut()
    }

    fn decide(&mut self, report: &Report<'_>) -> Option<Decision> {
        Some(self.rule(report))
    }
}
