//! Built-in searchers and schedulers. Each is a named, serializable type: the name after
//! `type =` in an experiment file's `[searcher]` or `[scheduler]` table, and in the
//! scheduler protocol's `init`.
//!
//! | name | kind | what it does |
//! | --- | --- | --- |
//! | `random` | searcher | independent samples; `points_to_evaluate` first |
//! | `grid` | searcher | every grid point once, then done |
//! | `tpe` | searcher | tree-structured Parzen estimator (model-based) |
//! | `bo` | searcher | Gaussian-process Bayesian optimization with expected improvement |
//! | `fifo` | scheduler | runs every trial to its end; configs from its searcher |
//! | `successive_halving` | scheduler | synchronous successive halving (d2l) |
//! | `hyperband` | scheduler | synchronous Hyperband |
//! | `asha` | scheduler | asynchronous successive halving, stopping or promotion; asynchronous Hyperband with `brackets > 1` |
//! | `median_stopping` | scheduler | the median stopping rule |
//! | `pbt` | scheduler | population based training |
//!
//! Every scheduler takes any searcher (`searcher = { type = "..." }`, or the experiment
//! file's `[searcher]` table) and tells it about every report, completion and failure.

mod asha;
mod bo;
mod defaults;
mod fifo;
mod forward;
mod gp;
mod grid;
mod history;
mod hyperband;
mod median;
mod pbt;
pub mod quantile;
mod random;
mod rungs;
mod tpe;

pub use asha::{Asha, Variant};
pub use bo::BayesOpt;
pub use fifo::Fifo;
pub use grid::GridSearcher;
pub use hyperband::{BracketShape, Hyperband, SuccessiveHalving, halving_bracket, hyperband_brackets};
pub use median::MedianStopping;
pub use pbt::Pbt;
pub use random::RandomSearcher;
pub use rungs::{geometric_levels, halving_levels};
pub use tpe::Tpe;

/// Makes sure the registrations of this crate are linked into a binary that only names
/// them in experiment files (the linker may otherwise drop an unreferenced crate).
pub fn register() {}
