//! An example scheduler, usable three ways: as a named type in your own binary
//! (`{"type": "top_k"}`, see `examples/custom-scheduler`), as a plugin library loaded by
//! `hpo` (`[scheduler] type = "plugin"`), and served over stdin/stdout
//! (`hpo scheduler serve --plugin`).
//!
//! **Top-k halving**: rung levels grace_period * eta^i below max_t; at each rung a trial goes
//! on only if its value is among the `k` best recorded at that rung so far. Unlike ASHA's
//! quantile cut-off, the bar gets harder as more trials arrive but never admits more than k.

use std::collections::HashMap;

use hpo_core::{Context, Decision, Domain, Report, Scheduler, Searcher, SetupError, Suggestion, TrialId};
use hpo_schedulers::{RandomSearcher, geometric_levels};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopK {
    #[serde(default = "one")]
    pub grace_period: f64,
    #[serde(default = "three")]
    pub reduction_factor: f64,
    /// How many trials each rung lets through.
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(skip)]
    state: Option<State>,
}

fn one() -> f64 {
    1.0
}
fn three() -> f64 {
    3.0
}
fn default_k() -> usize {
    3
}

struct State {
    searcher: RandomSearcher,
    max_t: f64,
    /// Per rung: its level and the k best values recorded there, ascending.
    rungs: Vec<(f64, Vec<f64>)>,
    /// Per trial: the next rung it has not reached.
    next_rung: HashMap<TrialId, usize>,
}

#[typetag::serde(name = "top_k")]
impl Scheduler for TopK {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        let attr =
            ctx.max_resource_attr.as_deref().ok_or_else(|| SetupError("top_k needs max_resource_attr".into()))?;
        let max_t = match ctx.space.get(attr) {
            Some(Domain::Constant(v)) => v.as_f64(),
            _ => None,
        }
        .ok_or_else(|| SetupError(format!("top_k: `{attr}` must be a constant of the space")))?;
        if self.k == 0 || self.reduction_factor <= 1.0 {
            return Err(SetupError("top_k: need k >= 1 and reduction_factor > 1".into()));
        }
        let levels = geometric_levels(self.grace_period, self.reduction_factor, max_t);
        let mut searcher = RandomSearcher::default();
        searcher.init(ctx)?;
        self.state = Some(State {
            searcher,
            max_t,
            rungs: levels.into_iter().map(|l| (l, Vec::new())).collect(),
            next_rung: HashMap::new(),
        });
        Ok(())
    }

    fn suggest(&mut self, trial_id: TrialId) -> Suggestion {
        let Some(state) = self.state.as_mut() else { return Suggestion::Done };
        match state.searcher.suggest(trial_id) {
            Some(config) => {
                state.next_rung.insert(trial_id, 0);
                Suggestion::start(config)
            }
            None => Suggestion::Done,
        }
    }

    fn on_report(&mut self, report: &Report<'_>) -> Decision {
        let k = self.k;
        let Some(state) = self.state.as_mut() else { return Decision::Continue };
        if report.resource >= state.max_t {
            return Decision::Continue; // the trial ends by itself at max_t
        }
        let Some(next) = state.next_rung.get_mut(&report.trial_id) else { return Decision::Continue };
        let Some((level, best)) = state.rungs.get_mut(*next) else { return Decision::Continue };
        if report.resource < *level {
            return Decision::Continue;
        }
        *next += 1;
        let rank = best.partition_point(|&v| v <= report.objective);
        if rank >= k {
            return Decision::Stop;
        }
        best.insert(rank, report.objective);
        best.truncate(k);
        Decision::Continue
    }

    fn on_complete(&mut self, _trial_id: TrialId) {}

    fn on_fail(&mut self, _trial_id: TrialId) {}
}

hpo_plugin::export_scheduler!(TopK);
