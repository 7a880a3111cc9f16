//! What a model-based searcher remembers: each trial's config and encoding, its results per
//! resource level, which trials still run, and on finite spaces every config suggested.

use std::collections::{BTreeMap, BTreeSet};

use hpo_core::{Config, Context, HpoRng, Report, Space, TrialId};
use rand::RngExt;

use crate::random::Suggested;

/// A level's results with several objectives or constraints: by trial, its objectives and
/// violation.
type Scored = BTreeMap<TrialId, (Vec<f64>, f64)>;

pub(crate) struct History {
    space: Space,
    /// By id (ids count up from 0: a vector is the fastest map).
    trials: Vec<Option<Trial>>,
    /// The trials not ended, by id: few, however many trials there were.
    running: BTreeSet<TrialId>,
    /// Per resource level (its bits; resources are non-negative, so the bits sort like the
    /// numbers): each trial's to-minimize value there.
    levels: BTreeMap<u64, BTreeMap<TrialId, f64>>,
    /// On a finite space: its grid of every config, and every config suggested so far, so
    /// none repeats.
    seen: Option<Suggested>,
    /// With several objectives or constraints: per level, each trial's objectives and
    /// violation, from which [`History::scalarize`] rewrites `levels`.
    scored: Option<BTreeMap<u64, Scored>>,
    /// Results a level needs before a model uses it: dims + 2 (as BOHB).
    min_points: usize,
    /// Who is warned: non-finite values are ignored, with one warning per searcher.
    name: &'static str,
    warned: bool,
}

pub(crate) struct Trial {
    pub id: TrialId,
    pub encoded: Vec<f64>,
    /// Completed, failed, stopped or paused (until it reports again): no result is on its way.
    pub ended: bool,
    /// The highest level (bits, as `levels`) it has a result at.
    highest: Option<u64>,
}

/// The results at one resource level, best first.
pub(crate) struct Level<'a> {
    pub resource: u64,
    pub results: Vec<(f64, &'a Trial)>,
}

impl History {
    pub fn new(ctx: &Context, name: &'static str) -> Self {
        let space = &ctx.space;
        let dims = space.params().filter(|(_, d)| d.encoded_dim() > 0).count();
        History {
            space: space.clone(),
            trials: Vec::new(),
            running: BTreeSet::new(),
            levels: BTreeMap::new(),
            seen: Suggested::of(space),
            scored: ctx.ranks_by_pareto().then(BTreeMap::new),
            min_points: dims + 2,
            name,
            warned: false,
        }
    }

    /// Whether `config` may be suggested: always on a continuous space; on a finite one only
    /// the first time (it is then remembered as suggested).
    pub fn is_new(&mut self, config: &Config) -> bool {
        self.seen.as_mut().is_none_or(|seen| seen.is_new(&self.space, config))
    }

    /// Whether `config` was never suggested (always, on a continuous space).
    pub fn is_unseen(&self, config: &Config) -> bool {
        self.seen.as_ref().is_none_or(|seen| !seen.contains(&self.space, config))
    }

    /// On a finite space, a config never suggested (the first at or after a random grid
    /// index), once drawing at random keeps finding repeats; `None` when every config was
    /// suggested or the space is continuous.
    pub fn unseen(&self, rng: &mut HpoRng) -> Option<Config> {
        let seen = self.seen.as_ref().filter(|seen| seen.size() > 0)?;
        seen.first_unseen(&self.space, rng.random_range(0..seen.size()))
    }

    /// Whether `encoded` was suggested before, on a finite space.
    pub fn was_suggested(&self, encoded: &[f64]) -> bool {
        self.seen.as_ref().is_some_and(|seen| seen.contains_encoded(encoded))
    }

    fn trial(&self, id: TrialId) -> Option<&Trial> {
        self.trials.get(usize::try_from(id).ok()?)?.as_ref()
    }

    fn trial_mut(&mut self, id: TrialId) -> Option<&mut Trial> {
        self.trials.get_mut(usize::try_from(id).ok()?)?.as_mut()
    }

    /// `trial_id` starts with `config`.
    pub fn started(&mut self, trial_id: TrialId, config: &Config) {
        let encoded = self.space.encode(config);
        let index = trial_id as usize;
        if self.trials.len() <= index {
            self.trials.resize_with(index + 1, || None);
        }
        self.trials[index] = Some(Trial { id: trial_id, encoded, ended: false, highest: None });
        self.running.insert(trial_id);
    }

    pub fn record(&mut self, report: &Report<'_>) {
        // A report means the trial runs, also when it was paused before and is resumed now.
        match self.trial_mut(report.trial_id) {
            Some(trial) => {
                trial.ended = false;
                self.running.insert(report.trial_id);
            }
            None => self.started(report.trial_id, report.config),
        }
        if !report.objective.is_finite() {
            if !std::mem::replace(&mut self.warned, true) {
                log::warn!(
                    "{}: trial {} reported a non-finite value; the model ignores such results",
                    self.name,
                    report.trial_id
                );
            }
            return;
        }
        let level = report.resource.max(0.0).to_bits();
        self.levels.entry(level).or_default().insert(report.trial_id, report.objective);
        if let Some(scored) = &mut self.scored {
            let score = (report.objectives.to_vec(), report.violation);
            scored.entry(level).or_default().insert(report.trial_id, score);
        }
        if let Some(trial) = self.trial_mut(report.trial_id) {
            trial.highest = trial.highest.max(Some(level));
        }
    }

    /// With several objectives or constraints, turns every result into one value to minimize
    /// by a fresh random augmented Chebyshev scalarization (ParEGO, Knowles 2006): weights
    /// drawn uniformly from the simplex, each objective scaled to [0, 1] over the level's
    /// feasible results, value max_i w_i f_i + 0.05 sum_i w_i f_i. An infeasible result gets
    /// 1.05 + v / (1 + v) for violation v: worse than any feasible one, better the less it
    /// violates. TPE and GP-BO call this before each proposal, so that successive
    /// suggestions aim at different parts of the Pareto front. Nothing happens (and no random
    /// number is drawn) with one objective and no constraints.
    pub fn scalarize(&mut self, rng: &mut HpoRng) {
        const RHO: f64 = 0.05;
        let Some(scored) = &self.scored else { return };
        let m = scored.values().flat_map(BTreeMap::values).map(|(o, _)| o.len()).max().unwrap_or(0);
        let mut weights: Vec<f64> = (0..m).map(|_| -(1.0 - rng.random::<f64>()).ln()).collect();
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        for (level, results) in scored {
            let feasible = || results.values().filter(|(_, v)| *v <= 0.0).map(|(o, _)| o);
            let lows: Vec<f64> = (0..m).map(|i| feasible().map(|o| o[i]).fold(f64::INFINITY, f64::min)).collect();
            let highs: Vec<f64> = (0..m).map(|i| feasible().map(|o| o[i]).fold(f64::NEG_INFINITY, f64::max)).collect();
            let Some(values) = self.levels.get_mut(level) else { continue };
            for (id, (objectives, violation)) in results {
                let value = if *violation > 0.0 {
                    1.0 + RHO + violation / (1.0 + violation)
                } else {
                    let scaled = objectives.iter().enumerate().map(|(i, &f)| {
                        let range = highs[i] - lows[i];
                        weights[i] * if range > 0.0 { (f - lows[i]) / range } else { 0.0 }
                    });
                    let (max, sum) = scaled.fold((0.0f64, 0.0), |(max, sum), x| (max.max(x), sum + x));
                    max + RHO * sum
                };
                values.insert(*id, value);
            }
        }
    }

    pub fn ended(&mut self, trial_id: TrialId) {
        if let Some(trial) = self.trial_mut(trial_id) {
            trial.ended = true;
        }
        self.running.remove(&trial_id);
    }

    /// The level a model learns from: the highest with at least dims + 2 results, best
    /// first.
    pub fn training_level(&self) -> Option<Level<'_>> {
        Some(self.level(self.training_level_resource()?))
    }

    fn training_level_resource(&self) -> Option<u64> {
        self.highest_level_with(self.min_points)
    }

    /// The highest resource level with at least `min_points` results.
    fn highest_level_with(&self, min_points: usize) -> Option<u64> {
        let (&resource, _) = self.levels.iter().rev().find(|(_, l)| l.len() >= min_points.max(1))?;
        Some(resource)
    }

    /// The level with the most results (the higher one on a tie).
    pub fn fullest_level(&self) -> Option<Level<'_>> {
        let (&resource, _) = self.levels.iter().max_by_key(|(_, l)| l.len())?;
        Some(self.level(resource))
    }

    /// How many results the fullest level holds.
    pub fn most_results(&self) -> usize {
        self.levels.values().map(BTreeMap::len).max().unwrap_or(0)
    }

    fn level(&self, resource: u64) -> Level<'_> {
        let mut level = self.level_in_trial_order(resource);
        level.results.sort_by(|a, b| a.0.total_cmp(&b.0));
        level
    }

    /// The training level (see [`History::training_level`]) with its results in the order
    /// of their trials' ids, oldest first.
    pub fn training_level_in_trial_order(&self) -> Option<Level<'_>> {
        let resource = self.training_level_resource()?;
        Some(self.level_in_trial_order(resource))
    }

    fn level_in_trial_order(&self, resource: u64) -> Level<'_> {
        let results = self.levels[&resource].iter().filter_map(|(id, v)| self.trial(*id).map(|t| (*v, t))).collect();
        Level { resource, results }
    }

    /// Trials still running that have no result at `resource` or above yet.
    pub fn pending(&self, resource: u64) -> impl Iterator<Item = &Trial> {
        self.running.iter().filter_map(move |id| self.trial(*id).filter(|t| t.highest.is_none_or(|h| h < resource)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpo_core::{Metrics, Mode, Objective, derive_rng};

    #[test]
    fn pending_means_running_without_a_result_at_the_level() {
        let space = Space::builder().uniform("x", 0.0, 1.0).build().expect("space");
        let mut history = History::new(&Context::new(space, Objective::new("loss", Mode::Min), 0), "test");
        let metrics = Metrics::new();
        let config = Config::from_iter([("x", 0.5)]);
        for id in 0..4 {
            history.started(id, &config);
        }
        let report = |history: &mut History, trial_id, resource, objective: f64| {
            let objectives = std::slice::from_ref(&objective);
            let metrics = &metrics;
            history.record(&Report {
                trial_id,
                config: &config,
                metrics,
                resource,
                objective,
                objectives,
                violation: 0.0,
            });
        };
        report(&mut history, 0, 1.0, 0.3);
        report(&mut history, 1, 3.0, 0.2);
        report(&mut history, 2, 1.0, f64::NAN); // ignored
        history.ended(3);
        let level = history.highest_level_with(1).expect("a level");
        assert_eq!(f64::from_bits(level), 3.0);
        assert_eq!(history.fullest_level().map(|l| f64::from_bits(l.resource)), Some(3.0), "a tie goes up");
        let pending_at = |r: f64| history.pending(r.to_bits()).map(|t| t.id).collect::<Vec<TrialId>>();
        assert_eq!(pending_at(1.0), vec![2], "trial 0 reported at 1, trial 1 above it, trial 3 ended");
        assert_eq!(pending_at(3.0), vec![0, 2]);
        assert_eq!(history.most_results(), 1);
        report(&mut history, 3, 1.0, 0.4); // paused, then resumed
        assert!(history.pending(3f64.to_bits()).any(|t| t.id == 3));
    }

    #[test]
    fn several_objectives_become_one_by_a_random_chebyshev_scalarization() {
        let space = Space::builder().uniform("x", 0.0, 1.0).build().expect("space");
        let objectives = vec![Objective::new("a", Mode::Min), Objective::new("b", Mode::Min)];
        let ctx = Context { objectives, ..Context::new(space, Objective::new("a", Mode::Min), 0) };
        let mut history = History::new(&ctx, "test");
        let (config, metrics) = (Config::from_iter([("x", 0.5)]), Metrics::new());
        // a in [0, 2], b in [10, 20]; trial 3 violates a constraint by 1.
        let results: [(TrialId, [f64; 2], f64); 4] =
            [(0, [0.0, 20.0], 0.0), (1, [2.0, 10.0], 0.0), (2, [1.0, 15.0], 0.0), (3, [0.0, 0.0], 1.0)];
        for (id, objectives, violation) in results {
            let objective = objectives[0];
            let objectives = objectives.as_slice();
            let metrics = &metrics;
            history.record(&Report {
                trial_id: id,
                config: &config,
                metrics,
                resource: 1.0,
                objective,
                objectives,
                violation,
            });
        }
        let mut rng = derive_rng(7, "test");
        history.scalarize(&mut rng);
        let values: Vec<f64> = history
            .level(1f64.to_bits())
            .results
            .iter()
            .map(|(v, t)| (t.id, *v))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_values()
            .collect();
        // Scaled: trial 0 = (0, 1), 1 = (1, 0), 2 = (0.5, 0.5). With weights (w, 1 - w):
        // 0 -> (1 - w) * 1.05, 1 -> w * 1.05, 2 -> 0.5 max(w, 1 - w) + 0.025.
        let w = (values[1] / 1.05).clamp(0.0, 1.0);
        assert!((values[0] - (1.0 - w) * 1.05).abs() < 1e-12, "{values:?}");
        assert!((values[2] - (0.5 * w.max(1.0 - w) + 0.025)).abs() < 1e-12, "{values:?}");
        assert!((values[3] - (1.05 + 0.5)).abs() < 1e-12, "infeasible: 1.05 + 1 / 2, {values:?}");
        // Fresh weights each time.
        history.scalarize(&mut rng);
        let again = history.level(1f64.to_bits()).results.iter().find(|(_, t)| t.id == 1).map(|(v, _)| *v);
        assert_ne!(again, Some(values[1]));
    }
}
