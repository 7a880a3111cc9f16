//! Benchmark objectives with known answers that the simulator replays: tabulated learning
//! curves (digits-mlp ships in the repo) and synthetic multi-fidelity functions.

mod synthetic;
mod tabular;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use hpo_core::{Config, Mode, Space};

pub use synthetic::{Synthetic, SyntheticFn};
pub use tabular::{Tabular, TabularSpec};

/// What a blackbox offers.
#[derive(Clone, Debug)]
pub struct BlackboxInfo {
    /// The name `blackbox =` takes (`digits-mlp`, ...).
    pub name: String,
    /// The hyperparameters (for tables: the finite grid).
    pub space: Space,
    /// The reported key counting epochs (always `epoch`).
    pub resource_attr: String,
    /// Epochs of a full learning curve.
    pub max_resource: u32,
    /// Every reported metric and its direction, in a fixed order.
    pub metrics: Vec<(String, Mode)>,
    /// The metric optimized unless another is asked for.
    pub default_metric: String,
}

impl BlackboxInfo {
    /// The position of a metric in [`BlackboxInfo::metrics`].
    pub fn metric_index(&self, name: &str) -> Option<usize> {
        self.metrics.iter().position(|(m, _)| m == name)
    }

    /// Whether a metric is minimized or maximized (`None`: no such metric).
    pub fn mode(&self, metric: &str) -> Option<Mode> {
        self.metrics.iter().find(|(m, _)| m == metric).map(|(_, mode)| *mode)
    }
}

/// One learning curve: metrics and cumulative cost after each epoch.
pub trait Curve: Send {
    /// Writes the metrics after `epoch` (1-based, in [`BlackboxInfo::metrics`] order) into
    /// `out` and returns the cumulative elapsed time, or `None` past the curve's end.
    fn at(&self, epoch: u32, out: &mut [f64]) -> Option<f64>;
}

/// A benchmark objective with known answers.
pub trait Blackbox: Send + Sync {
    /// Its space, metrics and resource.
    fn info(&self) -> &BlackboxInfo;

    /// The learning curve of `config`; `seed` picks one of several recorded seeds.
    fn curve(&self, config: &Config, seed: u64) -> Result<Box<dyn Curve>, crate::Error>;

    /// The best value of `metric` anywhere (over all configs and epochs), for regret.
    fn optimum(&self, metric: &str) -> Option<f64>;
}

/// The built-in blackboxes: name and description.
pub const BUILTIN_BLACKBOXES: [(&str, &str); 6] = [
    (
        "digits-mlp",
        "real learning curves of 1,575 MLP configurations on the digits data, 50 epochs; also `train_time`, each config's full training time",
    ),
    ("branin", "Branin-Hoo with a fidelity term (Kandasamy et al. 2017), 27 epochs of 1 s"),
    ("hartmann3", "Hartmann-3 with a fidelity term (Kandasamy et al. 2017), 27 epochs of 1 s"),
    ("hartmann6", "Hartmann-6 with a fidelity term (Kandasamy et al. 2017), 27 epochs of 1 s"),
    (
        "branin-or-hartmann3",
        "a conditional space: `function` picks Branin or Hartmann-3, each with its own parameters; the optimum is Hartmann-3's",
    ),
    ("zdt1", "two objectives, `f1` and `f2`: ZDT1 in 6 dimensions with a fidelity term, 27 epochs of 1 s"),
];

/// A blackbox by name (`digits-mlp`, `branin`, `hartmann3`, `hartmann6`,
/// `branin-or-hartmann3`, `zdt1`) or the path of a tabular spec
/// file (`.toml`). Built-in tables are loaded once per process.
pub fn blackbox(name: &str) -> Result<Arc<dyn Blackbox>, crate::Error> {
    static DIGITS: OnceLock<Result<Arc<Tabular>, crate::Error>> = OnceLock::new();
    match name {
        "digits-mlp" => {
            let table = DIGITS.get_or_init(|| Tabular::digits_mlp().map(Arc::new)).clone()?;
            Ok(table)
        }
        "branin" => Ok(Arc::new(Synthetic::new(SyntheticFn::Branin))),
        "hartmann3" => Ok(Arc::new(Synthetic::new(SyntheticFn::Hartmann3))),
        "hartmann6" => Ok(Arc::new(Synthetic::new(SyntheticFn::Hartmann6))),
        "branin-or-hartmann3" => Ok(Arc::new(Synthetic::branin_or_hartmann3())),
        "zdt1" => Ok(Arc::new(Synthetic::zdt1())),
        path if path.ends_with(".toml") => Ok(Arc::new(Tabular::from_spec_file(Path::new(path))?)),
        other => {
            let names: Vec<&str> = BUILTIN_BLACKBOXES.iter().map(|(n, _)| *n).collect();
            Err(crate::Error::Setting(format!(
                "no blackbox `{other}`; expected one of {} or a tabular spec file (.toml)",
                names.join(", ")
            )))
        }
    }
}
