//! Backends that run hpo trials.
//!
//! - [`ThreadBackend`]: a Rust function per trial on worker threads of this process, with
//!   built-in [`objectives`] (a real MLP on the digits data, and cheap test functions) for
//!   experiment files (`[backend] type = "threads", objective = "digits-mlp"`).

pub mod objectives;
mod spec;
mod threads;

pub use spec::build_backend;
pub use threads::{Interrupted, Reporter, ThreadBackend, TrialContext, TrialError, TrialFn};
