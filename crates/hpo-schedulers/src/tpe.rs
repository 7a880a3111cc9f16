//! The tree-structured Parzen estimator (Bergstra et al., 2011), as Optuna's default sampler.

use hpo_core::{Config, Context, Domain, HpoRng, Report, Searcher, SetupError, Space, TrialId, derive_rng};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::history::History;
use crate::random::normal;

/// TPE: once `n_startup` results are in (random configs until then), split the results into the best `gamma` fraction
/// ("good") and the rest, model each hyperparameter's density under both with Parzen
/// estimators (truncated Gaussians in the \[0,1\] encoding, so log domains are modelled on
/// their log scale; category frequencies for `choice`), and suggest the best of
/// `n_candidates` samples from the good density by the ratio good/bad.
///
/// Results are kept per resource level; the model is fitted on the highest level with at
/// least `dims + 2` results, as BOHB does: inside Hyperband or ASHA it learns from the
/// highest rung with enough data, with `fifo` from the longest curves available.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tpe {
    /// Random configs until this many results are in.
    #[serde(default = "default_startup")]
    pub n_startup: usize,
    /// Samples from the good density scored per suggestion.
    #[serde(default = "default_candidates")]
    pub n_candidates: usize,
    /// The fraction of results that counts as good.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    #[serde(skip)]
    state: Option<State>,
}

fn default_startup() -> usize {
    10
}
fn default_candidates() -> usize {
    24
}
fn default_gamma() -> f64 {
    0.25
}

impl Default for Tpe {
    fn default() -> Self {
        Tpe { n_startup: default_startup(), n_candidates: default_candidates(), gamma: default_gamma(), state: None }
    }
}

struct State {
    space: Space,
    rng: HpoRng,
    history: History,
}

/// A Parzen estimator over \[0,1\]: a uniform prior plus a truncated Gaussian per point.
struct Parzen {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
}

impl Parzen {
    fn new(points: &[f64]) -> Self {
        let mut mus: Vec<f64> = points.to_vec();
        mus.sort_by(f64::total_cmp);
        let n = mus.len();
        let low = 1.0 / (n as f64 + 1.0).min(100.0);
        let sigmas = (0..n)
            .map(|i| {
                let left = if i == 0 { mus[0] } else { mus[i] - mus[i - 1] };
                let right = if i + 1 == n { 1.0 - mus[i] } else { mus[i + 1] - mus[i] };
                left.max(right).clamp(low, 1.0)
            })
            .collect();
        Parzen { mus, sigmas }
    }

    fn weight(&self) -> f64 {
        1.0 / (self.mus.len() as f64 + 1.0)
    }

    fn sample(&self, rng: &mut HpoRng) -> f64 {
        let k = rng.random_range(0..=self.mus.len());
        if k == self.mus.len() {
            return rng.random::<f64>();
        }
        for _ in 0..20 {
            let x = self.mus[k] + self.sigmas[k] * normal(rng);
            if (0.0..=1.0).contains(&x) {
                return x;
            }
        }
        self.mus[k]
    }

    fn density(&self, x: f64) -> f64 {
        let w = self.weight();
        let mixture: f64 = self
            .mus
            .iter()
            .zip(&self.sigmas)
            .map(|(&mu, &s)| {
                let mass = phi((1.0 - mu) / s) - phi((0.0 - mu) / s);
                (-0.5 * ((x - mu) / s).powi(2)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt() * mass.max(1e-12))
            })
            .sum();
        w * (1.0 + mixture)
    }
}

fn phi(z: f64) -> f64 {
    0.5 * (1.0 + libm::erf(z / std::f64::consts::SQRT_2))
}

/// Category frequencies with a uniform prior count of one each.
fn category_weights(values: &[usize], k: usize) -> Vec<f64> {
    let mut w = vec![1.0; k];
    for &v in values {
        w[v.min(k - 1)] += 1.0;
    }
    let total: f64 = w.iter().sum();
    w.into_iter().map(|x| x / total).collect()
}

impl State {
    fn propose(&mut self, gamma: f64, n_candidates: usize) -> Option<Config> {
        let results = self.history.training_level()?.results;
        let n_good = ((results.len() as f64 * gamma).ceil() as usize).clamp(1, results.len() - 1);
        let (good, bad) = results.split_at(n_good);
        let good: Vec<&Config> = good.iter().map(|(_, t)| &t.config).collect();
        let bad: Vec<&Config> = bad.iter().map(|(_, t)| &t.config).collect();
        let mut config = Config::new();
        for (name, domain) in self.space.params() {
            let value = match domain {
                Domain::Constant(v) => v.clone(),
                Domain::Choice(values) => {
                    let index = |c: &&Config| {
                        let mut coords = Vec::new();
                        domain.encode(c.get(name).unwrap_or(&values[0]), &mut coords);
                        coords.iter().position(|&x| x > 0.5).unwrap_or(0)
                    };
                    let l = category_weights(&good.iter().map(index).collect::<Vec<_>>(), values.len());
                    let g = category_weights(&bad.iter().map(index).collect::<Vec<_>>(), values.len());
                    let best = (0..n_candidates)
                        .map(|_| {
                            let mut u = self.rng.random::<f64>();
                            l.iter()
                                .position(|&p| {
                                    u -= p;
                                    u < 0.0
                                })
                                .unwrap_or(values.len() - 1)
                        })
                        .max_by(|&a, &b| (l[a] / g[a]).total_cmp(&(l[b] / g[b])))
                        .unwrap_or(0);
                    values[best].clone()
                }
                _ => {
                    let coord = |c: &&Config| {
                        let mut coords = Vec::new();
                        if let Some(v) = c.get(name) {
                            domain.encode(v, &mut coords);
                        }
                        coords.first().copied().unwrap_or(0.5)
                    };
                    let l = Parzen::new(&good.iter().map(coord).collect::<Vec<_>>());
                    let g = Parzen::new(&bad.iter().map(coord).collect::<Vec<_>>());
                    let best = (0..n_candidates)
                        .map(|_| l.sample(&mut self.rng))
                        .max_by(|&a, &b| {
                            (l.density(a).ln() - g.density(a).ln()).total_cmp(&(l.density(b).ln() - g.density(b).ln()))
                        })
                        .unwrap_or(0.5);
                    domain.decode(&[best])
                }
            };
            config.insert(name, value);
        }
        Some(config)
    }
}

#[typetag::serde(name = "tpe")]
impl Searcher for Tpe {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        if !(0.0 < self.gamma && self.gamma < 1.0) || self.n_candidates == 0 {
            return Err(SetupError(format!(
                "tpe: need 0 < gamma < 1 and n_candidates >= 1, got {} and {}",
                self.gamma, self.n_candidates
            )));
        }
        self.state = Some(State {
            space: ctx.space.clone(),
            rng: derive_rng(ctx.seed, "searcher"),
            history: History::new(&ctx.space, "tpe"),
        });
        Ok(())
    }

    fn suggest(&mut self, trial_id: TrialId) -> Option<Config> {
        let state = self.state.as_mut()?;
        let model = state.history.most_results() >= self.n_startup;
        // On a finite space a repeat is wasted: draw again (model first, then at random).
        for attempt in 0..200 {
            let proposal = if model && attempt < 20 { state.propose(self.gamma, self.n_candidates) } else { None };
            let config = proposal.unwrap_or_else(|| state.space.sample(&mut state.rng));
            if state.history.is_new(&config) {
                state.history.started(trial_id, &config);
                return Some(config);
            }
        }
        // Random draws keep repeating: the finite space is nearly used up.
        let config = state.history.unseen(&mut state.rng)?;
        state.history.is_new(&config);
        state.history.started(trial_id, &config);
        Some(config)
    }

    fn on_report(&mut self, report: &Report<'_>) {
        if let Some(state) = self.state.as_mut() {
            state.history.record(report);
        }
    }
}
