#![warn(missing_docs)]
//! Built-in searchers and schedulers. Each is a named, serializable type: the name after
//! `type =` in an experiment file's `[searcher]` or `[scheduler]` table, and in the
//! scheduler protocol's `init`.
//!
//! The list of them, and of the named methods that combine them, is [`registry`].
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
mod nsga2;
mod pbt;
pub mod quantile;
mod random;
pub mod registry;
mod rungs;
mod tpe;

pub use asha::{Asha, Variant};
pub use bo::BayesOpt;
pub use fifo::Fifo;
pub use grid::GridSearcher;
pub use hyperband::{BracketShape, Hyperband, SuccessiveHalving, halving_bracket, hyperband_brackets};
pub use median::MedianStopping;
pub use nsga2::Nsga2;
pub use pbt::Pbt;
pub use random::RandomSearcher;
pub use registry::{BuiltinType, Kind, METHODS, Method, TYPES};
pub use rungs::{geometric_levels, halving_levels};
pub use tpe::Tpe;

/// Makes sure the registrations of this crate are linked into a binary that only names
/// them in experiment files (the linker may otherwise drop an unreferenced crate).
pub fn register() {}
