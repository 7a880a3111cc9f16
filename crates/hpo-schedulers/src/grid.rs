use hpo_core::{Config, Context, Grid, HpoRng, Searcher, SetupError, TrialId, derive_rng};

use crate::random::LazyShuffle;
use serde::{Deserialize, Serialize};

/// Grid search: every combination of grid values once, then done.
///
/// Numeric parameters get `points_per_numeric` evenly spaced values (log-spaced on log
/// domains; all values of an integer range that has no more); categorical and finite ones
/// all their values. With `shuffle`, the order is a seeded random permutation, drawn lazily
/// (memory grows with the trials, not with the grid).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSearcher {
    /// Values per numeric parameter (finite domains with fewer values list them all).
    #[serde(default = "default_points")]
    pub points_per_numeric: usize,
    /// Walk the grid in a seeded random order instead of in order.
    #[serde(default)]
    pub shuffle: bool,
    #[serde(skip)]
    state: Option<State>,
}

fn default_points() -> usize {
    5
}

struct State {
    grid: Grid,
    /// With `shuffle`: the permutation and its RNG; else the grid is walked in order.
    shuffled: Option<(LazyShuffle, HpoRng)>,
    next: usize,
}

impl GridSearcher {
    /// A grid searcher with these settings.
    pub fn new(points_per_numeric: usize, shuffle: bool) -> Self {
        GridSearcher { points_per_numeric, shuffle, state: None }
    }
}

impl Default for GridSearcher {
    fn default() -> Self {
        GridSearcher::new(default_points(), false)
    }
}

#[typetag::serde(name = "grid")]
impl Searcher for GridSearcher {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        if self.points_per_numeric == 0 {
            return Err(SetupError("grid: points_per_numeric must be at least 1".into()));
        }
        let grid = ctx.space.grid(self.points_per_numeric).map_err(|e| SetupError(format!("grid: {e}")))?;
        let shuffled = self.shuffle.then(|| (LazyShuffle::new(grid.len()), derive_rng(ctx.seed, "searcher")));
        self.state = Some(State { grid, shuffled, next: 0 });
        Ok(())
    }

    fn suggest(&mut self, _trial_id: TrialId) -> Option<Config> {
        let state = self.state.as_mut()?;
        let index = match &mut state.shuffled {
            Some((order, rng)) => order.next(rng)?,
            None => state.next,
        };
        let config = state.grid.get(index)?;
        state.next += 1;
        Some(config)
    }
}
