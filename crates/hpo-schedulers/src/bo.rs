//! Bayesian optimization with a Gaussian process and expected improvement.

use hpo_core::{
    Config, Context, HpoRng, Report, Searcher, SetupError, Space, TotalF64, TrialId, derive_rng, derive_seed,
};
use rand::RngExt;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::gp::{Data, Posterior, Theta, default_theta, expected_improvement, fit};
use crate::history::{History, Level};
use crate::random::{RandomSearcher, normals};

/// GP-BO: after `points_to_evaluate`, random configs until `n_startup` results are in; then fit a Gaussian process
/// (Matern-5/2 ARD, constant mean, noise; hyperparameters by marginal likelihood with
/// L-BFGS from the previous fit, or on every tenth fit from the best of it and `restarts`
/// random starts, screened by their likelihood; fitted again only when the data changed) to
/// the standardized results in the \[0,1\] encoding, and suggest the config of highest expected improvement among
/// `n_candidates` random configs (each distinct config scored once) and a local search around
/// the best of them.
///
/// Running trials are fantasized at the model's predicted mean, so asynchronous workers do
/// not all get the same config. Results are kept per resource level and the model is fitted
/// on the highest level with at least `dims + 2` results (or the fullest level): inside
/// `asha` or `hyperband` this is MOBSTER-style multi-fidelity BO. Fitting uses at most
/// `max_fit_points` results (the best quarter and a random rest); prediction uses all.
///
/// In a conditional space every coordinate of an inactive parameter is -0.5
/// ([`hpo_core::Space::INACTIVE`]), half a domain below its values: two configs where it is
/// inactive are alike in it and unlike every config where it is active, and each lengthscale
/// still measures one parameter. The local search moves every coordinate and snaps the point
/// to the config it decodes to (inactive ones back to -0.5); a step into a forbidden
/// combination is not taken.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BayesOpt {
    /// Configs to evaluate first, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points_to_evaluate: Vec<Config>,
    /// Random configs until this many results are in.
    #[serde(default = "default_startup")]
    pub n_startup: usize,
    /// Random candidates scored by expected improvement per suggestion.
    #[serde(default = "default_candidates")]
    pub n_candidates: usize,
    /// Random starts screened with the last fit's hyperparameters on every tenth fit.
    #[serde(default = "default_restarts")]
    pub restarts: usize,
    /// At most this many results are used to fit the model.
    #[serde(default = "default_max_fit_points")]
    pub max_fit_points: usize,
    #[serde(skip)]
    state: Option<State>,
}

fn default_startup() -> usize {
    5
}
fn default_candidates() -> usize {
    500
}
fn default_restarts() -> usize {
    2
}
fn default_max_fit_points() -> usize {
    300
}

impl Default for BayesOpt {
    fn default() -> Self {
        BayesOpt {
            points_to_evaluate: Vec::new(),
            n_startup: default_startup(),
            n_candidates: default_candidates(),
            restarts: default_restarts(),
            max_fit_points: default_max_fit_points(),
            state: None,
        }
    }
}

/// Candidates refined by local search, its rounds, and neighbours per candidate and round.
const LOCAL_STARTS: usize = 5;
const LOCAL_ROUNDS: usize = 4;
const NEIGHBOURS: usize = 16;
/// L-BFGS iterations per fit. Each fit starts where the last one stopped, so a cold fit
/// (the first, or the first after a resume) that stops short is carried on by the next ones:
/// 20 iterations gave the same median regrets on Branin and Hartmann-6 as 40, at half the
/// slowest suggestion's time.
const FIT_ITERS: u64 = 20;
/// Fits between two fits with random restarts.
const RESTART_PERIOD: usize = 10;

struct State {
    space: Space,
    rng: HpoRng,
    history: History,
    /// The first configs: `points_to_evaluate`, then random ones.
    initial: RandomSearcher,
    suggested: usize,
    /// The last fitted hyperparameters: the next fit starts from them.
    theta: Option<Theta>,
    /// The data they were fitted on (level, values, points): a proposal on the same data
    /// keeps them. Results reach the highest level seldom, so most proposals do.
    fitted_on: Option<(u64, Vec<f64>, Vec<Vec<f64>>)>,
    fits: usize,
}

impl State {
    /// The config of highest expected improvement, or `None` without data to model.
    fn propose(&mut self, n_candidates: usize, restarts: usize, max_fit_points: usize) -> Option<Config> {
        self.history.scalarize(&mut self.rng);
        let level = self.history.training_level().or_else(|| self.history.fullest_level())?;
        let Level { resource, results } = level;
        let values: Vec<f64> = results.iter().map(|(v, _)| *v).collect();
        let (center, scale) = standardization(&values);
        let y: Vec<f64> = values.iter().map(|v| (v - center) / scale).collect();
        let x: Vec<Vec<f64>> = results.iter().map(|(_, t)| t.encoded.clone()).collect();
        let pending: Vec<Vec<f64>> = self.history.pending(resource).map(|t| t.encoded.clone()).collect();

        // Hyperparameters: fitted again only when the data changed.
        let unchanged = self.fitted_on.as_ref().is_some_and(|(r, v, p)| *r == resource && *v == values && *p == x);
        let theta = match &self.theta {
            Some(theta) if unchanged => theta.clone(),
            _ => {
                let theta = self.fit(&x, &y, restarts, max_fit_points);
                self.fitted_on = Some((resource, values, x.clone()));
                theta
            }
        };

        let mut best = y.iter().copied().fold(f64::INFINITY, f64::min);
        let mut posterior = Posterior::new(x.clone(), &y, &theta)?;
        if !pending.is_empty() {
            // Fantasize running trials at the predicted mean, as if they had reported it:
            // their variance collapses and a fantasy below the best becomes the best, so the
            // acquisition looks elsewhere.
            let fantasies: Vec<f64> = posterior.predict(&pending).into_iter().map(|(m, _)| m).collect();
            best = fantasies.iter().copied().fold(best, f64::min);
            let (mut all_x, mut all_y) = (x, y);
            all_x.extend(pending);
            all_y.extend(fantasies);
            posterior = Posterior::new(all_x, &all_y, &theta)?;
        }
        let score = |points: &[Vec<f64>]| -> Vec<f64> {
            posterior.predict(points).into_iter().map(|(m, v)| expected_improvement(m, v, best)).collect()
        };

        // Global: random configs. Local: perturb the best ones with shrinking steps.
        let mut candidates: Vec<Vec<f64>> = (0..n_candidates)
            .map(|_| self.space.sample_encoded(&mut self.rng))
            .filter(|c| !self.history.was_suggested(c))
            .collect();
        // On a finite space draws repeat (late in a run, most do): score each config once.
        candidates.sort_unstable_by(|a, b| a.iter().copied().map(TotalF64).cmp(b.iter().copied().map(TotalF64)));
        candidates.dedup();
        let scores = score(&candidates);
        let mut ranked: Vec<(f64, Vec<f64>)> = scores.into_iter().zip(candidates).collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.truncate(LOCAL_STARTS);
        let mut step = 0.1;
        for _ in 0..LOCAL_ROUNDS {
            let neighbours: Vec<(usize, Vec<f64>)> = ranked
                .iter()
                .enumerate()
                .flat_map(|(slot, (_, c))| std::iter::repeat_n((slot, c), NEIGHBOURS))
                .map(|(slot, c)| {
                    let noise = normals(&mut self.rng, c.len());
                    let moved: Vec<f64> = c.iter().zip(noise).map(|(&x, z)| (x + step * z).clamp(0.0, 1.0)).collect();
                    (slot, self.space.snap(&moved))
                })
                .collect();
            // Only a new, allowed config can take a slot, and a repeat of its start or of an
            // earlier neighbour scores the same and cannot either: on a finite space most
            // steps snap back to such, and scoring them was most of a run's time.
            let mut fresh: Vec<(usize, Vec<f64>)> = Vec::with_capacity(neighbours.len());
            for (slot, n) in neighbours {
                let repeat = n == ranked[slot].1 || fresh.iter().any(|(s, m)| *s == slot && *m == n);
                if !repeat && !self.history.was_suggested(&n) && !self.forbidden(&n) {
                    fresh.push((slot, n));
                }
            }
            let points: Vec<Vec<f64>> = fresh.iter().map(|(_, n)| n.clone()).collect();
            for (s, (slot, n)) in score(&points).into_iter().zip(fresh) {
                if s > ranked[slot].0 {
                    ranked[slot] = (s, n);
                }
            }
            step /= 2.0;
        }
        let (_, winner) = ranked.into_iter().max_by(|a, b| a.0.total_cmp(&b.0))?;
        Some(self.space.decode(&winner))
    }

    /// Fits the GP's hyperparameters on a bounded subset: from the last fit, and on the first
    /// fit and every `RESTART_PERIOD`th from the best of it and a few random starts (the data
    /// change by a result or so between fits, so the last optimum is nearly always the place
    /// to start).
    fn fit(&mut self, x: &[Vec<f64>], y: &[f64], restarts: usize, max_fit_points: usize) -> Theta {
        let dims = self.space.encoded_dim();
        let mut starts = vec![self.theta.clone().unwrap_or_else(|| default_theta(dims))];
        let restarts = if self.fits.is_multiple_of(RESTART_PERIOD) { restarts } else { 0 };
        self.fits += 1;
        for _ in 0..restarts {
            let mut theta = default_theta(dims);
            for t in theta.iter_mut().take(dims) {
                *t = self.rng.random_range(0.05f64.ln()..2f64.ln());
            }
            starts.push(theta);
        }
        let subset = fit_subset(y.len(), max_fit_points, &mut self.rng);
        let (fit_x, fit_y): (Vec<Vec<f64>>, Vec<f64>) = subset.iter().map(|&i| (x[i].clone(), y[i])).unzip();
        let theta = fit(&Data::new(&fit_x, &fit_y), &starts, FIT_ITERS);
        self.theta = Some(theta.clone());
        theta
    }

    /// Whether the config an encoding decodes to is forbidden (random candidates never are;
    /// a step from one may be).
    fn forbidden(&self, encoded: &[f64]) -> bool {
        !self.space.forbidden().is_empty() && self.space.is_forbidden(&self.space.decode(encoded))
    }
}

/// Center and scale that standardize `values` (scale 1 when they are all equal).
fn standardization(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let sd = var.sqrt();
    (mean, if sd > 1e-12 * mean.abs().max(1.0) { sd } else { 1.0 })
}

/// Which results (indices into best-first results) the hyperparameters are fitted on: all
/// of them up to `max`, else the best quarter of `max` and a random draw from the rest.
fn fit_subset(n: usize, max: usize, rng: &mut HpoRng) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let top = max / 4;
    let mut rest: Vec<usize> = (top..n).collect();
    rest.shuffle(rng);
    (0..top).chain(rest.into_iter().take(max - top)).collect()
}

#[typetag::serde(name = "bo")]
impl Searcher for BayesOpt {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        if self.n_candidates == 0 || self.max_fit_points < 2 {
            return Err(SetupError(format!(
                "bo: need n_candidates >= 1 and max_fit_points >= 2, got {} and {}",
                self.n_candidates, self.max_fit_points
            )));
        }
        let mut initial = RandomSearcher::new(self.points_to_evaluate.clone());
        initial.init(&Context { seed: derive_seed(ctx.seed, "initial"), ..ctx.clone() })?;
        self.state = Some(State {
            space: ctx.space.clone(),
            rng: derive_rng(ctx.seed, "searcher"),
            history: History::new(ctx, "bo"),
            initial,
            suggested: 0,
            theta: None,
            fitted_on: None,
            fits: 0,
        });
        Ok(())
    }

    fn suggest(&mut self, trial_id: TrialId) -> Option<Config> {
        let state = self.state.as_mut()?;
        state.suggested += 1;
        let model = state.suggested > self.points_to_evaluate.len() && state.history.most_results() >= self.n_startup;
        if model
            && let Some(config) = state.propose(self.n_candidates, self.restarts, self.max_fit_points)
            && state.history.is_new(&config)
        {
            state.history.started(trial_id, &config);
            return Some(config);
        }
        // Before the model, or when it has nothing new to offer: the initial searcher, which
        // never repeats itself; skip what the model already suggested.
        while let Some(config) = state.initial.suggest(trial_id) {
            if state.history.is_new(&config) {
                state.history.started(trial_id, &config);
                return Some(config);
            }
        }
        None
    }

    fn on_report(&mut self, report: &Report<'_>) {
        if let Some(state) = self.state.as_mut() {
            state.history.record(report);
        }
    }

    fn on_complete(&mut self, trial_id: TrialId) {
        self.on_stop(trial_id);
    }

    fn on_fail(&mut self, trial_id: TrialId) {
        self.on_stop(trial_id);
    }

    fn on_stop(&mut self, trial_id: TrialId) {
        if let Some(state) = self.state.as_mut() {
            state.history.ended(trial_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardization_by_hand() {
        let (center, scale) = standardization(&[1.0, 2.0, 3.0]);
        assert_eq!(center, 2.0);
        assert!((scale - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(standardization(&[5.0, 5.0]), (5.0, 1.0), "constant results keep scale 1");
    }

    #[test]
    fn hyperparameters_are_fitted_again_only_when_the_data_changed() {
        use hpo_core::{Metrics, Mode, Objective};
        let space = Space::builder().uniform("x", 0.0, 1.0).build().expect("space");
        let mut bo = BayesOpt { n_startup: 3, ..BayesOpt::default() };
        bo.init(&Context::new(space, Objective::new("loss", Mode::Min), 0)).expect("init");
        let finish = |bo: &mut BayesOpt, trial_id: TrialId, config: &Config| {
            let objectives = [(config.f64("x").expect("x") - 0.3).powi(2)];
            let (metrics, objective) = (Metrics::new(), objectives[0]);
            let report = Report {
                trial_id,
                config,
                metrics: &metrics,
                resource: 1.0,
                objective,
                objectives: &objectives,
                violation: 0.0,
            };
            bo.on_report(&report);
            bo.on_complete(trial_id);
        };
        for trial_id in 0..3 {
            let config = bo.suggest(trial_id).expect("a random config");
            finish(&mut bo, trial_id, &config);
        }
        let fits = |bo: &BayesOpt| bo.state.as_ref().map(|s| s.fits);
        let running = bo.suggest(3).expect("a proposal");
        assert_eq!(fits(&bo), Some(1));
        bo.suggest(4).expect("a proposal, trial 3 pending");
        assert_eq!(fits(&bo), Some(1), "the same three results: the same hyperparameters");
        finish(&mut bo, 3, &running);
        bo.suggest(5).expect("a proposal");
        assert_eq!(fits(&bo), Some(2), "a fourth result: fitted again");
    }

    #[test]
    fn fit_subset_keeps_the_best_quarter_and_draws_the_rest() {
        let mut rng = derive_rng(0, "test");
        assert_eq!(fit_subset(5, 8, &mut rng), vec![0, 1, 2, 3, 4]);
        let subset = fit_subset(100, 40, &mut rng);
        assert_eq!(subset.len(), 40);
        assert_eq!(subset[..10], (0..10).collect::<Vec<_>>()[..]);
        let mut distinct = subset.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 40);
    }
}
