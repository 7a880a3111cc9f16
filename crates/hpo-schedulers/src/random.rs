use std::collections::{HashMap, HashSet};

use hpo_core::{Config, Context, Domain, Grid, HpoRng, Searcher, SetupError, Space, TrialId, derive_rng};
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// Random search: every config drawn independently from the search space.
///
/// `points_to_evaluate` are suggested first, in order (the d2l `initial_config`); a point may
/// leave out parameters, which then take the middle of their domain. On a finite space no
/// config is suggested twice, and the searcher is exhausted once every config was drawn.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSearcher {
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

/// Draws without replacement from a finite space.
enum Finite {
    /// Every domain draws its values uniformly: a lazy Fisher-Yates shuffle of the grid,
    /// O(1) per draw however full the space gets.
    Shuffle { grid: Grid, drawn: usize, swapped: HashMap<usize, usize>, given: HashSet<Vec<u64>> },
    /// Some domain is not uniform over its values (`lograndint`): sample it as usual and
    /// reject configs seen before.
    Reject { size: usize, seen: HashSet<Vec<u64>> },
}

/// A config's identity without formatting it: the bits of its [0,1] encoding.
pub(crate) fn key(space: &Space, config: &Config) -> Vec<u64> {
    space.encode(config).into_iter().map(f64::to_bits).collect()
}

impl RandomSearcher {
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

/// Fills the parameters a point leaves out with the middle of their domain, then checks it.
pub(crate) fn complete_point(space: &Space, point: &Config, index: usize) -> Result<Config, SetupError> {
    let mut config = point.clone();
    for (name, domain) in space.params() {
        if config.get(name).is_none() {
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
            Finite::Shuffle { grid, drawn, swapped, given } => loop {
                if *drawn >= grid.len() {
                    return None;
                }
                let j = self.rng.random_range(*drawn..grid.len());
                let at_j = swapped.get(&j).copied().unwrap_or(j);
                let at_drawn = swapped.get(drawn).copied().unwrap_or(*drawn);
                swapped.insert(j, at_drawn);
                *drawn += 1;
                let config = grid.get(at_j)?;
                if given.is_empty() || !given.contains(&key(&self.space, &config)) {
                    return Some(config);
                }
            },
            Finite::Reject { size, seen } => {
                if seen.len() >= *size {
                    return None;
                }
                let space = &self.space;
                let rng = &mut self.rng;
                let config = (0..1000)
                    .map(|_| space.sample(rng))
                    .find(|c| !seen.contains(&key(space, c)))
                    .or_else(|| space.grid(usize::MAX).iter().find(|c| !seen.contains(&key(space, c))))?;
                seen.insert(key(space, &config));
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
        let size = ctx.space.params().try_fold(1usize, |acc, (_, d)| d.cardinality().and_then(|n| acc.checked_mul(n)));
        let given: HashSet<Vec<u64>> = self.points_to_evaluate.iter().map(|p| key(&ctx.space, p)).collect();
        let uniform = ctx.space.params().all(|(_, d)| !matches!(d, Domain::LogRandInt { .. }));
        let finite = size.map(|size| {
            if uniform {
                Finite::Shuffle { grid: ctx.space.grid(usize::MAX), drawn: 0, swapped: HashMap::new(), given }
            } else {
                Finite::Reject { size, seen: given }
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
