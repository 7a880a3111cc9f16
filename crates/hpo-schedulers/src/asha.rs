use std::cmp::Reverse;
use std::collections::BinaryHeap;

use hpo_core::{
    Config, Context, Decision, HpoRng, Report, Scheduler, Searcher, SetupError, Suggestion, TotalF64, TrialId,
    derive_rng,
};
use rand::RngExt;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::fifo::default_searcher;
use crate::forward::{WithSearcher, searcher_events, with_defaults};
use crate::quantile::RunningQuantile;
use crate::rungs::{ParetoRung, at_max_resource, check_eta, geometric_levels, max_resource, with_level};

/// What ASHA does with a trial at a rung level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Let the trial go on if it is in the top 1/eta of its rung, else stop it.
    #[default]
    Stopping,
    /// Pause the trial; resume it later if it turns out to be in the top 1/eta.
    Promotion,
}

/// Asynchronous successive halving (ASHA), and asynchronous Hyperband with `brackets > 1`.
///
/// Rung levels are round(grace_period * eta^k) below `max_t` (or `rung_levels`). The cut-off
/// of rung j is the q-quantile of every value recorded there, q = r_j / r_(j+1) (the level
/// after the last is `max_t`); a rung with fewer than 2 values never cuts. All values are
/// to-minimize (the tuner flips them for `mode = "max"`, which makes this the 1-q quantile).
///
/// With several objectives or outcome constraints (multi-objective ASHA), a rung ranks its
/// trials by constrained non-dominated sorting with crowding distance breaking ties within a
/// front ([`hpo_core::pareto::rank_order`]); a trial is in the top q when its position
/// (0 for the best) is at most q (n - 1). Both variants work so: `stopping` is Syne Tune's
/// MOASHA; `promotion` pauses every trial at a rung and resumes the best-ranked waiting one
/// that is in the top q.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asha {
    /// Stop trials below a rung's cut-off, or pause them until promoted.
    #[serde(default)]
    pub variant: Variant,
    /// The resource of the lowest rung (the d2l r_min).
    #[serde(default = "crate::defaults::one")]
    pub grace_period: f64,
    /// eta: rung levels grow by this factor, and 1/eta of a rung goes on.
    #[serde(default = "crate::defaults::three")]
    pub reduction_factor: f64,
    /// The maximum resource; by default the largest value of `max_resource_attr` in the space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_t: Option<f64>,
    /// Explicit rung levels (ascending, below `max_t`) instead of the geometric ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rung_levels: Option<Vec<f64>>,
    /// How many brackets; more than 1 is asynchronous Hyperband.
    #[serde(default = "crate::defaults::one_count")]
    pub brackets: usize,
    /// Where new configs come from.
    #[serde(default = "default_searcher")]
    pub searcher: Box<dyn Searcher>,
    #[serde(skip)]
    state: Option<State>,
}

struct Rung {
    level: f64,
    /// The value at the rung's q-quantile, q = level / next level: the share that goes on.
    cutoff: RunningQuantile,
    /// Promotion variant: trials recorded here and not yet promoted, best on top.
    waiting: BinaryHeap<Reverse<(TotalF64, TrialId)>>,
    /// With several objectives or constraints: the rung's ranking, and (promotion variant)
    /// the entries not yet promoted.
    pareto: ParetoRung,
    pareto_waiting: Vec<usize>,
}

struct TrialInfo {
    bracket: usize,
    /// Index (within its bracket) of the next rung the trial has not been recorded at.
    next_rung: usize,
    config: Config,
    /// The highest resource recorded for the trial: reports at or below it after a restart
    /// from scratch are not recorded again.
    recorded_up_to: f64,
    failed: bool,
    /// The current run has ended (paused, stopped, completed or failed).
    ended: bool,
}

struct State {
    max_t: f64,
    max_resource_attr: Option<String>,
    /// Rungs of each bracket; bracket b starts at the b-th level.
    brackets: Vec<Vec<Rung>>,
    /// Cumulative bracket weights (synchronous Hyperband's trial counts).
    weights: Vec<f64>,
    trials: FxHashMap<TrialId, TrialInfo>,
    /// Rungs rank by several objectives or constraints ([`ParetoRung`]).
    pareto: bool,
    /// Trials started or resumed and not yet paused, stopped or ended: while any runs, an
    /// exhausted searcher means "wait for promotions", not "done".
    active: usize,
    rng: HpoRng,
}

impl Asha {
    /// ASHA with the given settings, the rest at their defaults.
    pub fn new(variant: Variant, grace_period: f64, reduction_factor: f64, max_t: Option<f64>) -> Self {
        Asha { variant, grace_period, reduction_factor, max_t, ..with_defaults(serde_json::json!({})) }
    }

    /// The rung levels of bracket 0, after `init`.
    pub fn levels(&self) -> Vec<f64> {
        self.state.as_ref().map(|s| s.brackets[0].iter().map(|r| r.level).collect()).unwrap_or_default()
    }
}

/// Synchronous Hyperband's number of trials for each bracket when there are `levels` rung
/// levels below max_t: n_b = ceil((s+1) / (s-b+1) * eta^(s-b)), s = levels.
pub(crate) fn hyperband_counts(levels: usize, eta: f64) -> Vec<usize> {
    let s = levels as i32;
    (0..=s).map(|b| ((f64::from(s + 1) / f64::from(s - b + 1)) * eta.powi(s - b) - 1e-9).ceil() as usize).collect()
}

#[typetag::serde(name = "asha")]
impl Scheduler for Asha {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        check_eta("asha", self.reduction_factor)?;
        let max_t = max_resource("asha", self.max_t, ctx)?;
        let levels = match &self.rung_levels {
            Some(levels) => {
                if levels.windows(2).any(|w| w[0] >= w[1]) || levels.iter().any(|&l| l <= 0.0 || l >= max_t) {
                    return Err(SetupError(format!(
                        "asha: rung_levels must be ascending, positive and below max_t = {max_t}, got {levels:?}"
                    )));
                }
                levels.clone()
            }
            None => {
                if self.grace_period <= 0.0 || self.grace_period >= max_t {
                    return Err(SetupError(format!(
                        "asha: grace_period must be in (0, max_t = {max_t}), got {}",
                        self.grace_period
                    )));
                }
                geometric_levels(self.grace_period, self.reduction_factor, max_t)
            }
        };
        if self.brackets == 0 || self.brackets > levels.len() {
            return Err(SetupError(format!(
                "asha: brackets must be between 1 and the number of rung levels ({}), got {}",
                levels.len(),
                self.brackets
            )));
        }
        let bracket_rungs = |b: usize| -> Vec<Rung> {
            (b..levels.len())
                .map(|j| {
                    let next = levels.get(j + 1).copied().unwrap_or(max_t);
                    Rung {
                        level: levels[j],
                        cutoff: RunningQuantile::new(levels[j] / next),
                        waiting: BinaryHeap::new(),
                        pareto: ParetoRung::default(),
                        pareto_waiting: Vec::new(),
                    }
                })
                .collect()
        };
        let counts = hyperband_counts(levels.len(), self.reduction_factor);
        let weights = counts[..self.brackets]
            .iter()
            .scan(0.0, |acc, &n| {
                *acc += n as f64;
                Some(*acc)
            })
            .collect();
        self.state = Some(State {
            max_t,
            max_resource_attr: ctx.max_resource_attr.clone(),
            brackets: (0..self.brackets).map(bracket_rungs).collect(),
            weights,
            trials: FxHashMap::default(),
            pareto: ctx.ranks_by_pareto(),
            active: 0,
            rng: derive_rng(ctx.seed, "scheduler"),
        });
        self.searcher.init(ctx)
    }

    fn suggest(&mut self, trial_id: TrialId) -> Suggestion {
        let Some(state) = self.state.as_mut() else {
            return Suggestion::Done;
        };
        if self.variant == Variant::Promotion
            && let Some((id, level)) = state.promotable()
        {
            let attr = state.max_resource_attr.clone();
            let Some(info) = state.trials.get_mut(&id) else { return Suggestion::Wait };
            info.ended = false;
            info.config = with_level(info.config.clone(), attr.as_deref(), level);
            state.active += 1;
            return Suggestion::Resume { trial_id: id, config: info.config.clone() };
        }
        let Some(config) = self.searcher.suggest(trial_id) else {
            return Suggestion::Done;
        };
        let bracket = state.draw_bracket();
        let config = match self.variant {
            Variant::Promotion => {
                with_level(config, state.max_resource_attr.as_deref(), state.brackets[bracket][0].level)
            }
            Variant::Stopping => config,
        };
        state.trials.insert(
            trial_id,
            TrialInfo {
                bracket,
                next_rung: 0,
                config: config.clone(),
                recorded_up_to: 0.0,
                failed: false,
                ended: false,
            },
        );
        Suggestion::start(config)
    }

    searcher_events!();
}

impl WithSearcher for Asha {
    fn searcher(&mut self) -> &mut dyn Searcher {
        self.searcher.as_mut()
    }

    #[inline] // the hot path of every report: one call, as before the forwarding was shared
    fn decide(&mut self, report: &Report<'_>) -> Option<Decision> {
        let variant = self.variant;
        let state = self.state.as_mut()?;
        let info = state.trials.get_mut(&report.trial_id)?;
        if report.resource <= info.recorded_up_to {
            return None; // a restart from scratch repeating what was recorded
        }
        if report.resource >= state.max_t {
            let decision = at_max_resource(report.resource, state.max_t, state.max_resource_attr.is_some());
            if decision == Decision::Stop {
                info.ended = true;
                state.active = state.active.saturating_sub(1);
            }
            return Some(decision);
        }
        let rungs = &mut state.brackets[info.bracket];
        let mut decision = Decision::Continue;
        while let Some(rung) = rungs.get_mut(info.next_rung) {
            if report.resource < rung.level {
                break;
            }
            info.next_rung += 1;
            info.recorded_up_to = report.resource;
            if state.pareto {
                let entry = rung.pareto.insert(report.trial_id, report.objectives, report.violation);
                match variant {
                    Variant::Stopping if !rung.pareto.in_top(entry, rung.cutoff.q()) => decision = Decision::Stop,
                    Variant::Stopping => continue,
                    Variant::Promotion => {
                        rung.pareto_waiting.push(entry);
                        decision = Decision::Pause;
                    }
                }
                break;
            }
            rung.cutoff.insert(report.objective);
            match variant {
                Variant::Stopping => {
                    if rung.cutoff.value(2).is_some_and(|cutoff| report.objective > cutoff) {
                        decision = Decision::Stop;
                        break;
                    }
                }
                Variant::Promotion => {
                    rung.waiting.push(Reverse((TotalF64(report.objective), report.trial_id)));
                    decision = Decision::Pause;
                    break;
                }
            }
        }
        if decision != Decision::Continue {
            info.ended = true;
            state.active = state.active.saturating_sub(1);
        }
        Some(decision)
    }

    fn ended(&mut self, trial_id: TrialId, failed: bool) {
        self.end_run(trial_id);
        if failed && let Some(info) = self.state.as_mut().and_then(|s| s.trials.get_mut(&trial_id)) {
            info.failed = true;
        }
    }
}

impl Asha {
    /// A trial's run ended by itself: it no longer counts as active.
    fn end_run(&mut self, trial_id: TrialId) {
        if let Some(state) = self.state.as_mut()
            && let Some(info) = state.trials.get_mut(&trial_id)
            && !info.ended
        {
            info.ended = true;
            state.active = state.active.saturating_sub(1);
        }
    }
}

impl State {
    /// Draws a new trial's bracket with probability proportional to its weight.
    fn draw_bracket(&mut self) -> usize {
        let total = self.weights.last().copied().unwrap_or(1.0);
        if self.weights.len() <= 1 {
            return 0;
        }
        let u = self.rng.random::<f64>() * total;
        self.weights.iter().position(|&w| u < w).unwrap_or(self.weights.len() - 1)
    }

    /// The best waiting trial that ties or beats its rung's cut-off, scanning rungs from the
    /// highest level down; returns it with the level to resume it to.
    fn promotable(&mut self) -> Option<(TrialId, f64)> {
        let max_t = self.max_t;
        let mut candidates: Vec<(f64, usize, usize)> = self
            .brackets
            .iter()
            .enumerate()
            .flat_map(|(b, rungs)| rungs.iter().enumerate().map(move |(j, r)| (r.level, b, j)))
            .collect();
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, b, j) in candidates {
            let next_level = self.brackets[b].get(j + 1).map_or(max_t, |r| r.level);
            let rung = &mut self.brackets[b][j];
            if self.pareto {
                let trials = &self.trials;
                let Rung { pareto, pareto_waiting: waiting, cutoff, .. } = rung;
                waiting.retain(|&e| trials.get(&pareto.id(e)).is_some_and(|t| !t.failed));
                let best = waiting.iter().enumerate().min_by_key(|&(_, &e)| pareto.position(e)).map(|(k, &e)| (k, e));
                // As with one objective, a rung needs two results before it promotes.
                if let Some((k, entry)) = best
                    && pareto.len() >= 2
                    && pareto.in_top(entry, cutoff.q())
                {
                    waiting.swap_remove(k);
                    return Some((pareto.id(entry), next_level));
                }
                continue;
            }
            while let Some(Reverse((_, id))) = rung.waiting.peek() {
                if self.trials.get(id).is_none_or(|t| t.failed) {
                    rung.waiting.pop(); // failed since: never promote it
                    continue;
                }
                break;
            }
            let Some(cutoff) = rung.cutoff.value(2) else {
                continue;
            };
            if let Some(&Reverse((TotalF64(value), id))) = rung.waiting.peek()
                && value <= cutoff
            {
                rung.waiting.pop();
                return Some((id, next_level));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpo_core::pareto::Constraint;
    use hpo_core::{Metrics, Mode, Objective, Space};

    /// Two objectives (or one with a constraint), rungs at 1 and 3 below max_t = 9.
    fn asha(variant: Variant, objectives: usize) -> Asha {
        let space = Space::builder().uniform("x", 0.0, 1.0).build().expect("space");
        let first = Objective::new("a", Mode::Min);
        let mut ctx = Context::new(space, first.clone(), 0);
        if objectives == 2 {
            ctx.objectives = vec![first, Objective::new("b", Mode::Min)];
        } else {
            ctx.constraints = vec![Constraint::parse("latency <= 1").expect("constraint")];
        }
        let mut asha = Asha::new(variant, 1.0, 3.0, Some(9.0));
        asha.init(&ctx).expect("init");
        assert_eq!(asha.levels(), [1.0, 3.0]);
        asha
    }

    fn report(asha: &mut Asha, trial_id: TrialId, objectives: &[f64], violation: f64) -> Decision {
        let config = Config::from_iter([("x", 0.5)]);
        let metrics = Metrics::new();
        let objective = objectives[0];
        let report =
            Report { trial_id, config: &config, metrics: &metrics, resource: 1.0, objective, objectives, violation };
        asha.on_report(&report)
    }

    fn start(asha: &mut Asha, trial_id: TrialId) {
        let suggestion = asha.suggest(trial_id);
        assert!(matches!(suggestion, Suggestion::Start { .. }), "{suggestion:?}");
    }

    #[test]
    fn stopping_ranks_a_rung_by_non_dominated_sorting_and_crowding() {
        let mut asha = asha(Variant::Stopping, 2);
        for id in 0..4 {
            start(&mut asha, id);
        }
        // Rung 1 keeps positions <= (n - 1) / 3.
        assert_eq!(report(&mut asha, 0, &[0.5, 0.5], 0.0), Decision::Continue, "alone");
        assert_eq!(report(&mut asha, 1, &[0.6, 0.6], 0.0), Decision::Stop, "dominated: position 1 of 2");
        // (0.1, 0.9) joins the front with (0.5, 0.5); both are ends, infinitely apart, and
        // the older leads: position 1 of 3 > 2/3.
        assert_eq!(report(&mut asha, 2, &[0.1, 0.9], 0.0), Decision::Stop);
        // (0.9, 0.1) makes (0.5, 0.5) the middle of the front: ends 2 and 3 lead, position 1
        // of 4 <= 1.
        assert_eq!(report(&mut asha, 3, &[0.9, 0.1], 0.0), Decision::Continue);
    }

    #[test]
    fn promotion_resumes_the_best_ranked_waiting_trial_in_the_top_third() {
        let mut asha = asha(Variant::Promotion, 2);
        let scores = [[0.5, 0.5], [0.6, 0.6], [0.1, 0.9], [0.9, 0.1]];
        for (id, objectives) in scores.iter().enumerate() {
            let id = id as TrialId;
            start(&mut asha, id);
            assert_eq!(report(&mut asha, id, objectives, 0.0), Decision::Pause, "every trial waits at a rung");
            if id == 1 {
                // Of (0.5, 0.5) and (0.6, 0.6), the first is in the top third: promoted.
                assert!(matches!(asha.suggest(9), Suggestion::Resume { trial_id: 0, .. }));
            }
        }
        // Ranking now (0.1, 0.9), (0.9, 0.1), (0.5, 0.5), (0.6, 0.6): positions 0 and 1 are
        // in the top (n - 1) / 3 = 1; trial 2 first.
        assert!(matches!(asha.suggest(10), Suggestion::Resume { trial_id: 2, .. }));
        assert!(matches!(asha.suggest(10), Suggestion::Resume { trial_id: 3, .. }));
        assert!(matches!(asha.suggest(10), Suggestion::Start { .. }), "trial 1 is not in the top");
    }

    #[test]
    fn an_infeasible_trial_ranks_below_every_feasible_one() {
        let mut asha = asha(Variant::Stopping, 1);
        for id in 0..3 {
            start(&mut asha, id);
        }
        assert_eq!(report(&mut asha, 0, &[0.5], 0.0), Decision::Continue);
        // Better by its objective, but it breaks `latency <= 1`.
        assert_eq!(report(&mut asha, 1, &[0.1], 2.0), Decision::Stop);
        assert_eq!(report(&mut asha, 2, &[0.9], 0.0), Decision::Stop, "position 1 of 3 > 2/3");
    }
}
