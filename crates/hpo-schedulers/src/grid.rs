use hpo_core::{Config, Context, Grid, HpoRng, Searcher, SetupError, TrialId, derive_rng};
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// Grid search: every combination of grid values once, then done.
///
/// Numeric parameters get `points_per_numeric` evenly spaced values (log-spaced on log
/// domains; all values of an integer range that has no more); categorical and finite ones
/// all their values. With `shuffle`, the order is a seeded random permutation.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSearcher {
    #[serde(default = "default_points")]
    pub points_per_numeric: usize,
    #[serde(default)]
    pub shuffle: bool,
    #[serde(skip)]
    state: Option<(Grid, Vec<usize>, usize)>,
}

fn default_points() -> usize {
    5
}

/// Shuffling materializes a permutation; beyond this many points, refuse.
const MAX_SHUFFLED: usize = 10_000_000;

impl GridSearcher {
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
        let grid = ctx.space.grid(self.points_per_numeric);
        let order = if self.shuffle {
            if grid.len() > MAX_SHUFFLED {
                return Err(SetupError(format!(
                    "grid: {} points are too many to shuffle (at most {MAX_SHUFFLED})",
                    grid.len()
                )));
            }
            let mut rng: HpoRng = derive_rng(ctx.seed, "searcher");
            let mut order: Vec<usize> = (0..grid.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            order
        } else {
            Vec::new()
        };
        self.state = Some((grid, order, 0));
        Ok(())
    }

    fn suggest(&mut self, _trial_id: TrialId) -> Option<Config> {
        let (grid, order, next) = self.state.as_mut()?;
        let index = if order.is_empty() { *next } else { *order.get(*next)? };
        let config = grid.get(index)?;
        *next += 1;
        Some(config)
    }
}
