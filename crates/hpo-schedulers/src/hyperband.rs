//! Synchronous successive halving and Hyperband.
//!
//! A bracket is a sequence of rungs, each with a number of slots and a resource level. Rung 0
//! is filled with new configs; when every slot of a rung has its result, the best
//! slots/eta... (exactly the next rung's slot count) are promoted and resumed at the next
//! level. Hyperband opens a new bracket when every open one waits on running trials instead
//! of leaving a worker idle (successive halving waits at the barrier, as in d2l); a failed trial fills its slot with the worst value, so no bracket
//! blocks forever.

use hpo_core::pareto::rank_order;
use hpo_core::{Config, Context, Decision, Report, Scheduler, Searcher, SetupError, Suggestion, TrialId};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::asha::hyperband_counts;
use crate::fifo::default_searcher;
use crate::forward::{WithSearcher, searcher_events, with_defaults};
use crate::rungs::{at_max_resource, check_eta, halving_levels, max_resource, with_level};

/// One bracket's shape: (slots, level) per rung.
pub type BracketShape = Vec<(usize, f64)>;

/// Hyperband's brackets for `levels` (the last is the maximum resource): bracket b starts at
/// level b with ceil((s+1)/(s-b+1) * eta^(s-b)) trials (s = levels - 1), and each rung keeps
/// ceil(previous/eta) of them.
pub fn hyperband_brackets(levels: &[f64], eta: f64) -> Vec<BracketShape> {
    let counts = hyperband_counts(levels.len() - 1, eta);
    (0..levels.len())
        .map(|b| {
            let mut n = counts[b];
            let mut shape = Vec::new();
            for &level in &levels[b..] {
                shape.push((n, level));
                n = ((n as f64 / eta) - 1e-9).ceil() as usize;
            }
            shape
        })
        .collect()
}

/// Successive halving's single bracket (d2l): prefact * eta^K configs at the first level,
/// 1/eta of them at each next one.
pub fn halving_bracket(levels: &[f64], eta: f64, prefact: usize) -> BracketShape {
    let k = levels.len() as i32 - 1;
    levels
        .iter()
        .enumerate()
        .map(|(i, &level)| (((prefact as f64) * eta.powi(k - i as i32)).round().max(1.0) as usize, level))
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    /// Rung 0: waiting for a new config.
    Free,
    /// A later rung: a promoted trial waiting to be resumed.
    ToResume(TrialId),
    Running(TrialId),
    Done(TrialId, f64),
}

struct BracketRun {
    shape: usize,
    rung: usize,
    slots: Vec<Slot>,
}

/// The machinery shared by [`SuccessiveHalving`] and [`Hyperband`].
#[derive(Default)]
struct Brackets {
    shapes: Vec<BracketShape>,
    next_shape: usize,
    runs: Vec<Option<BracketRun>>,
    /// Where each running trial sits: (run, slot).
    position: FxHashMap<TrialId, (usize, usize)>,
    configs: FxHashMap<TrialId, Config>,
    max_resource_attr: Option<String>,
    searcher_done: bool,
    /// Open another bracket when every open one waits on running trials (Hyperband), or
    /// leave workers idle at the barrier (successive halving, as in d2l).
    open_when_waiting: bool,
    /// Rank by several objectives or constraints: each trial's latest rung result.
    pareto: Option<FxHashMap<TrialId, (Vec<f64>, f64)>>,
}

impl Brackets {
    fn new(shapes: Vec<BracketShape>, ctx: &Context, open_when_waiting: bool) -> Self {
        Brackets {
            shapes,
            max_resource_attr: ctx.max_resource_attr.clone(),
            open_when_waiting,
            pareto: ctx.ranks_by_pareto().then(FxHashMap::default),
            ..Brackets::default()
        }
    }

    fn open(&mut self) -> usize {
        let shape = self.next_shape;
        self.next_shape = (self.next_shape + 1) % self.shapes.len();
        self.runs.push(Some(BracketRun { shape, rung: 0, slots: vec![Slot::Free; self.shapes[shape][0].0] }));
        self.runs.len() - 1
    }

    fn suggest(&mut self, trial_id: TrialId, searcher: &mut dyn Searcher) -> Suggestion {
        let attr = self.max_resource_attr.clone();
        // The oldest open bracket with something to run goes first.
        for r in 0..self.runs.len() {
            let Some(run) = &mut self.runs[r] else {
                continue;
            };
            let level = self.shapes[run.shape][run.rung].1;
            if let Some(s) = run.slots.iter().position(|s| matches!(s, Slot::ToResume(_))) {
                let Slot::ToResume(id) = run.slots[s] else { unreachable!() };
                run.slots[s] = Slot::Running(id);
                self.position.insert(id, (r, s));
                let config = with_level(self.configs[&id].clone(), attr.as_deref(), level);
                self.configs.insert(id, config.clone());
                return Suggestion::Resume { trial_id: id, config };
            }
            if !self.searcher_done
                && let Some(s) = run.slots.iter().position(|s| *s == Slot::Free)
            {
                let Some(config) = searcher.suggest(trial_id) else {
                    self.searcher_done = true;
                    break;
                };
                let config = with_level(config, attr.as_deref(), level);
                run.slots[s] = Slot::Running(trial_id);
                self.position.insert(trial_id, (r, s));
                self.configs.insert(trial_id, config.clone());
                return Suggestion::start(config);
            }
        }
        let any_open = self.runs.iter().any(Option::is_some);
        if self.searcher_done {
            return if any_open { Suggestion::Wait } else { Suggestion::Done };
        }
        if any_open && !self.open_when_waiting {
            return Suggestion::Wait; // synchronous: idle until the rung is complete
        }
        // Everything open waits on running trials: open the next bracket.
        self.open();
        self.suggest(trial_id, searcher)
    }

    fn on_report(&mut self, report: &Report<'_>) -> Decision {
        let Some(&(r, s)) = self.position.get(&report.trial_id) else {
            return Decision::Continue;
        };
        let Some(run) = &self.runs[r] else {
            return Decision::Continue;
        };
        let shape = &self.shapes[run.shape];
        if report.resource < shape[run.rung].1 {
            return Decision::Continue;
        }
        let level = shape[run.rung].1;
        let last = run.rung + 1 == shape.len();
        if let Some(scores) = &mut self.pareto {
            scores.insert(report.trial_id, (report.objectives.to_vec(), report.violation));
        }
        self.record(report.trial_id, r, s, report.objective);
        if last { at_max_resource(report.resource, level, self.max_resource_attr.is_some()) } else { Decision::Pause }
    }

    fn on_fail(&mut self, trial_id: TrialId) {
        if let Some(&(r, s)) = self.position.get(&trial_id) {
            if let Some(scores) = &mut self.pareto {
                scores.insert(trial_id, (Vec::new(), f64::INFINITY)); // infeasible, ranked last
            }
            self.record(trial_id, r, s, f64::INFINITY);
        }
    }

    /// Records a result; when the rung is complete, promotes the best to the next rung or
    /// closes the bracket.
    fn record(&mut self, trial_id: TrialId, r: usize, s: usize, value: f64) {
        self.position.remove(&trial_id);
        let Some(run) = &mut self.runs[r] else { return };
        run.slots[s] = Slot::Done(trial_id, value);
        if !run.slots.iter().all(|s| matches!(s, Slot::Done(..))) {
            return;
        }
        let shape = &self.shapes[run.shape];
        if run.rung + 1 == shape.len() {
            self.runs[r] = None;
            return;
        }
        let mut done: Vec<(f64, TrialId)> =
            run.slots.iter().filter_map(|s| if let Slot::Done(id, v) = *s { Some((v, id)) } else { None }).collect();
        match &self.pareto {
            Some(scores) => {
                done.sort_by_key(|d| d.1);
                let score = |id: &TrialId| scores.get(id).cloned().unwrap_or((Vec::new(), f64::INFINITY));
                let (points, violations): (Vec<Vec<f64>>, Vec<f64>) = done.iter().map(|(_, id)| score(id)).unzip();
                done = rank_order(&points, &violations).into_iter().map(|i| done[i]).collect();
            }
            None => done.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))),
        }
        run.rung += 1;
        let keep = shape[run.rung].0;
        run.slots = done.iter().take(keep).map(|&(_, id)| Slot::ToResume(id)).collect();
    }

    /// Trials running in open brackets (for tests: must equal what the tuner has running).
    fn running(&self) -> usize {
        self.position.len()
    }
}

/// Synchronous successive halving (d2l): levels r_min * eta^k up to r_max (appended when the
/// last falls short); a round starts prefact * eta^K configs, and when a rung's results are
/// all in, its top 1/eta go on to the next level. Workers wait at each rung's barrier; the
/// next round starts when this one is done.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessiveHalving {
    /// The lowest resource level.
    pub r_min: f64,
    /// The maximum resource; by default the largest value of `max_resource_attr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r_max: Option<f64>,
    /// Levels grow by this factor, and the top 1/eta of a rung goes on.
    #[serde(default = "crate::defaults::two")]
    pub eta: f64,
    /// A round starts prefact * eta^K configs.
    #[serde(default = "crate::defaults::one_count")]
    pub prefact: usize,
    /// Where new configs come from.
    #[serde(default = "default_searcher")]
    pub searcher: Box<dyn Searcher>,
    #[serde(skip)]
    brackets: Brackets,
}

impl SuccessiveHalving {
    /// Successive halving with these settings, the searcher at its default.
    pub fn new(r_min: f64, r_max: Option<f64>, eta: f64, prefact: usize) -> Self {
        SuccessiveHalving { r_min, r_max, eta, prefact, ..with_defaults(serde_json::json!({ "r_min": r_min })) }
    }

    /// (slots, level) per rung, after `init`.
    pub fn shape(&self) -> BracketShape {
        self.brackets.shapes.first().cloned().unwrap_or_default()
    }

    /// Trials currently running according to the scheduler.
    pub fn running(&self) -> usize {
        self.brackets.running()
    }
}

#[typetag::serde(name = "successive_halving")]
impl Scheduler for SuccessiveHalving {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        check_eta("successive_halving", self.eta)?;
        let r_max = max_resource("successive_halving", self.r_max, ctx)?;
        if self.r_min <= 0.0 || self.r_min >= r_max || self.prefact == 0 {
            return Err(SetupError(format!(
                "successive_halving: need 0 < r_min < r_max and prefact >= 1, got r_min = {}, r_max = {r_max}, prefact = {}",
                self.r_min, self.prefact
            )));
        }
        let levels = halving_levels(self.r_min, r_max, self.eta);
        self.brackets = Brackets::new(vec![halving_bracket(&levels, self.eta, self.prefact)], ctx, false);
        self.searcher.init(ctx)
    }

    fn suggest(&mut self, trial_id: TrialId) -> Suggestion {
        self.brackets.suggest(trial_id, self.searcher.as_mut())
    }

    searcher_events!();
}

impl WithSearcher for SuccessiveHalving {
    fn searcher(&mut self) -> &mut dyn Searcher {
        self.searcher.as_mut()
    }

    fn decide(&mut self, report: &Report<'_>) -> Option<Decision> {
        Some(self.brackets.on_report(report))
    }

    fn ended(&mut self, trial_id: TrialId, failed: bool) {
        if failed {
            self.brackets.on_fail(trial_id);
        }
    }
}

/// Synchronous Hyperband: brackets of successive halving starting at ever higher levels,
/// cycled through in order (`brackets` limits how many bracket shapes are used).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hyperband {
    /// The lowest resource level.
    #[serde(default = "crate::defaults::one")]
    pub grace_period: f64,
    /// eta: levels grow by this factor, and the top 1/eta of a rung goes on.
    #[serde(default = "crate::defaults::three")]
    pub reduction_factor: f64,
    /// The maximum resource; by default the largest value of `max_resource_attr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_t: Option<f64>,
    /// Use only the first this many bracket shapes (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brackets: Option<usize>,
    /// Where new configs come from.
    #[serde(default = "default_searcher")]
    pub searcher: Box<dyn Searcher>,
    #[serde(skip)]
    state: Brackets,
}

impl Hyperband {
    /// Hyperband with these settings, the rest at their defaults.
    pub fn new(grace_period: f64, reduction_factor: f64, max_t: Option<f64>) -> Self {
        Hyperband { grace_period, reduction_factor, max_t, ..with_defaults(serde_json::json!({})) }
    }

    /// The bracket shapes in use, after `init`.
    pub fn shapes(&self) -> &[BracketShape] {
        &self.state.shapes
    }

    /// Trials currently running according to the scheduler.
    pub fn running(&self) -> usize {
        self.state.running()
    }

    /// Brackets opened so far that have not finished.
    pub fn open_brackets(&self) -> usize {
        self.state.runs.iter().filter(|r| r.is_some()).count()
    }
}

#[typetag::serde(name = "hyperband")]
impl Scheduler for Hyperband {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        check_eta("hyperband", self.reduction_factor)?;
        let max_t = max_resource("hyperband", self.max_t, ctx)?;
        if self.grace_period <= 0.0 || self.grace_period >= max_t {
            return Err(SetupError(format!(
                "hyperband: grace_period must be in (0, max_t = {max_t}), got {}",
                self.grace_period
            )));
        }
        let levels = halving_levels(self.grace_period, max_t, self.reduction_factor);
        let mut shapes = hyperband_brackets(&levels, self.reduction_factor);
        if let Some(n) = self.brackets {
            if n == 0 || n > shapes.len() {
                return Err(SetupError(format!("hyperband: brackets must be between 1 and {}, got {n}", shapes.len())));
            }
            shapes.truncate(n);
        }
        self.state = Brackets::new(shapes, ctx, true);
        self.searcher.init(ctx)
    }

    fn suggest(&mut self, trial_id: TrialId) -> Suggestion {
        self.state.suggest(trial_id, self.searcher.as_mut())
    }

    searcher_events!();
}

impl WithSearcher for Hyperband {
    fn searcher(&mut self) -> &mut dyn Searcher {
        self.searcher.as_mut()
    }

    fn decide(&mut self, report: &Report<'_>) -> Option<Decision> {
        Some(self.state.on_report(report))
    }

    fn ended(&mut self, trial_id: TrialId, failed: bool) {
        if failed {
            self.state.on_fail(trial_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_hyperband_brackets() {
        let shapes = hyperband_brackets(&[1.0, 3.0, 9.0, 27.0], 3.0);
        assert_eq!(
            shapes,
            vec![
                vec![(27, 1.0), (9, 3.0), (3, 9.0), (1, 27.0)],
                vec![(12, 3.0), (4, 9.0), (2, 27.0)],
                vec![(6, 9.0), (2, 27.0)],
                vec![(4, 27.0)],
            ]
        );
    }

    #[test]
    fn d2l_halving_round() {
        assert_eq!(halving_bracket(&[2.0, 4.0, 8.0, 10.0], 2.0, 1), vec![(8, 2.0), (4, 4.0), (2, 8.0), (1, 10.0)]);
    }
}
