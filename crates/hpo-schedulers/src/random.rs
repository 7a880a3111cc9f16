use std::collections::HashSet;

use hpo_core::{Config, Context, HpoRng, Searcher, SetupError, Space, TrialId, derive_rng};
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
    /// Configs drawn so far, kept only when the space is finite (`Some(size)`).
    seen: Option<(usize, HashSet<String>)>,
}

impl RandomSearcher {
    pub fn new(points_to_evaluate: Vec<Config>) -> Self {
        RandomSearcher { points_to_evaluate, state: None }
    }
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
        self.state = Some(State {
            space: ctx.space.clone(),
            rng: derive_rng(ctx.seed, "searcher"),
            next_point: 0,
            seen: size.map(|n| (n, HashSet::new())),
        });
        Ok(())
    }

    fn suggest(&mut self, _trial_id: TrialId) -> Option<Config> {
        let state = self.state.as_mut()?;
        let config = if let Some(point) = self.points_to_evaluate.get(state.next_point) {
            state.next_point += 1;
            point.clone()
        } else {
            let Some((size, seen)) = &state.seen else {
                return Some(state.space.sample(&mut state.rng));
            };
            if seen.len() >= *size {
                return None;
            }
            // Rejection sampling; a nearly exhausted space falls back to the first unseen config.
            (0..100)
                .map(|_| state.space.sample(&mut state.rng))
                .find(|c| !seen.contains(&c.to_string()))
                .or_else(|| state.space.grid(1).iter().find(|c| !seen.contains(&c.to_string())))?
        };
        if let Some((_, seen)) = &mut state.seen {
            seen.insert(config.to_string());
        }
        Some(config)
    }
}
