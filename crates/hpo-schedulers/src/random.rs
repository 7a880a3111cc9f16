use hpo_core::{Config, Context, Domain, Grid, HpoRng, Searcher, SetupError, Space, TrialId, derive_rng};
use rand::RngExt;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

/// Random search: every config drawn independently from the search space.
///
/// `points_to_evaluate` are suggested first, in order (the d2l `initial_config`); a point may
/// leave out parameters, which then take the middle of their domain. On a finite space no
/// config is suggested twice, and the searcher is exhausted once every config was drawn.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSearcher {
    /// Configs to suggest first, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points_to_evaluate: Vec<Config>,
    #[serde(skip)]
    state: Option<State>,
}

struct State {
    space: Space,
    rng: HpoRng,
    next_point: usize,
    finite: Option<Finite>,
}

/// Draws without replacement from a finite space, in memory proportional to the draws
/// (never to the space's size).
enum Finite {
    /// Every domain draws its values uniformly: a lazy shuffle of the grid, O(1) per draw
    /// however full the space gets.
    Shuffle { grid: Grid, order: LazyShuffle, given: FxHashSet<Vec<u64>> },
    /// Some domain is not uniform over its values (`lograndint`): sample it as usual and
    /// reject configs seen before.
    Reject(Suggested),
}

/// A random permutation of `0..len` drawn one element at a time (Fisher-Yates from the
/// front), storing only the swapped positions: memory grows with the draws, not with `len`.
pub(crate) struct LazyShuffle {
    len: usize,
    drawn: usize,
    swapped: FxHashMap<usize, usize>,
}

impl LazyShuffle {
    /// A shuffle of `0..len` with nothing drawn yet.
    pub fn new(len: usize) -> Self {
        LazyShuffle { len, drawn: 0, swapped: FxHashMap::default() }
    }

    /// The next element, or `None` once all `len` were drawn.
    pub fn next(&mut self, rng: &mut HpoRng) -> Option<usize> {
        if self.drawn >= self.len {
            return None;
        }
        let j = rng.random_range(self.drawn..self.len);
        let at_j = self.swapped.get(&j).copied().unwrap_or(j);
        let at_drawn = self.swapped.remove(&self.drawn).unwrap_or(self.drawn);
        if j != self.drawn {
            self.swapped.insert(j, at_drawn);
        }
        self.drawn += 1;
        Some(at_j)
    }
}

/// On a finite space: its grid and every config suggested so far (by [`key`]), so that none
/// repeats, in memory proportional to the suggestions, never to the space's size.
#[derive(Clone, Debug)]
pub(crate) struct Suggested {
    grid: Grid,
    seen: FxHashSet<Vec<u64>>,
}

impl Suggested {
    /// `None` on a space too large to count or continuous.
    pub fn of(space: &Space) -> Option<Suggested> {
        Some(Suggested { grid: space.every_config()?, seen: FxHashSet::default() })
    }

    /// Whether `config` was never suggested; it is remembered as suggested now.
    pub fn is_new(&mut self, space: &Space, config: &Config) -> bool {
        self.seen.insert(key(space, config))
    }

    /// Whether `config` was suggested before.
    pub fn contains(&self, space: &Space, config: &Config) -> bool {
        self.seen.contains(&key(space, config))
    }

    /// Whether the config of this \[0,1\] encoding was suggested before.
    pub fn contains_encoded(&self, encoded: &[f64]) -> bool {
        self.seen.contains(bytemuck::cast_slice::<f64, u64>(encoded))
    }

    /// Whether every config of the space was suggested.
    pub fn all(&self) -> bool {
        self.seen.len() >= self.grid.len()
    }

    /// How many configs the space has.
    pub fn size(&self) -> usize {
        self.grid.len()
    }

    /// The first config at or after grid index `start` (wrapping around) never suggested:
    /// at most `seen.len() + 1` configs are looked at, so this is cheap however large the
    /// grid is. It is not remembered.
    pub fn first_unseen(&self, space: &Space, start: usize) -> Option<Config> {
        let len = self.grid.len();
        let start = start.checked_rem(len)?;
        // Indices start, start+1, ..., len-1, 0, 1, ... without overflowing near usize::MAX.
        let index = |k: usize| if k < len - start { start + k } else { k - (len - start) };
        (0..len.min(self.seen.len().saturating_add(1)))
            .filter_map(|k| self.grid.get(index(k)))
            .find(|c| !self.contains(space, c))
    }
}

/// A config's identity without formatting it: the bits of its [0,1] encoding.
pub(crate) fn key(space: &Space, config: &Config) -> Vec<u64> {
    space.encode(config).into_iter().map(f64::to_bits).collect()
}

impl RandomSearcher {
    /// Random search after `points_to_evaluate`.
    pub fn new(points_to_evaluate: Vec<Config>) -> Self {
        RandomSearcher { points_to_evaluate, state: None }
    }
}

/// A standard normal draw (Box-Muller).
pub(crate) fn normal(rng: &mut HpoRng) -> f64 {
    let u: f64 = rng.random::<f64>().max(1e-300);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// `n` standard normal draws (Ziggurat: no logarithm or sine per draw, unlike Box–Muller,
/// which was a fifth of a GP-BO run's time).
pub(crate) fn normals(rng: &mut HpoRng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.sample(rand_distr::StandardNormal)).collect()
}

/// Fills the active parameters a point leaves out with the middle of their domain, then
/// checks it.
pub(crate) fn complete_point(space: &Space, point: &Config, index: usize) -> Result<Config, SetupError> {
    let mut config = point.clone();
    for (name, domain) in space.params_in_order() {
        if config.get(name).is_none() && space.is_active(name, &config) {
            config.insert(name, domain.decode(&vec![0.5; domain.encoded_dim()]));
        }
    }
    space.validate(&config).map_err(|e| SetupError(format!("points_to_evaluate[{index}]: {e}")))?;
    Ok(config)
}

impl State {
    fn draw(&mut self) -> Option<Config> {
        let Some(finite) = &mut self.finite else { return Some(self.space.sample(&mut self.rng)) };
        match finite {
            Finite::Shuffle { grid, order, given } => loop {
                let config = grid.get(order.next(&mut self.rng)?)?;
                if given.is_empty() || !given.contains(&key(&self.space, &config)) {
                    return Some(config);
                }
            },
            Finite::Reject(suggested) => {
                if suggested.all() {
                    return None;
                }
                let space = &self.space;
                let rng = &mut self.rng;
                let config = (0..1000).map(|_| space.sample(rng)).find(|c| !suggested.contains(space, c));
                let config = match config {
                    Some(config) => config,
                    None => suggested.first_unseen(space, rng.random_range(0..suggested.size()))?,
                };
                suggested.is_new(space, &config);
                Some(config)
            }
        }
    }
}

#[typetag::serde(name = "random")]
impl Searcher for RandomSearcher {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        self.points_to_evaluate = self
            .points_to_evaluate
            .iter()
            .enumerate()
            .map(|(i, p)| complete_point(&ctx.space, p, i))
            .collect::<Result<_, _>>()?;
        let given: FxHashSet<Vec<u64>> = self.points_to_evaluate.iter().map(|p| key(&ctx.space, p)).collect();
        let uniform = ctx.space.params().all(|(_, d)| !matches!(d, Domain::LogRandInt { .. }));
        // A space too large to count (beyond usize) is drawn with replacement: a repeat is
        // as likely as not at all.
        let finite = Suggested::of(&ctx.space).map(|Suggested { grid, .. }| {
            if uniform {
                Finite::Shuffle { order: LazyShuffle::new(grid.len()), grid, given }
            } else {
                Finite::Reject(Suggested { grid, seen: given })
            }
        });
        self.state =
            Some(State { space: ctx.space.clone(), rng: derive_rng(ctx.seed, "searcher"), next_point: 0, finite });
        Ok(())
    }

    fn suggest(&mut self, _trial_id: TrialId) -> Option<Config> {
        let state = self.state.as_mut()?;
        if let Some(point) = self.points_to_evaluate.get(state.next_point) {
            state.next_point += 1;
            return Some(point.clone());
        }
        state.draw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn normals_come_in_the_count_asked_with_unit_moments() {
        let mut rng = HpoRng::seed_from_u64(7);
        assert_eq!(normals(&mut rng, 3).len(), 3);
        let z = normals(&mut rng, 200_000);
        let mean = z.iter().sum::<f64>() / z.len() as f64;
        let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / z.len() as f64;
        let beyond_2sd = z.iter().filter(|x| x.abs() > 2.0).count() as f64 / z.len() as f64;
        // Standard errors: 0.0022 for the mean, 0.0032 for the variance, 0.0005 for the tail
        // (4.55% of a standard normal lies beyond 2).
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.015, "mean {mean}, variance {var}");
        assert!((beyond_2sd - 0.0455).abs() < 0.002, "{beyond_2sd}");
    }
}
