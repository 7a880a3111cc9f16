#![warn(missing_docs)]
//! Backends that run hpo trials.
//!
//! - [`ThreadBackend`]: a Rust function per trial on worker threads of this process, with
//!   built-in [`objectives`] (a real MLP on the digits data, and cheap test functions) for
//!   experiment files (`[backend] type = "threads", objective = "digits-mlp"`).
//! - [`ProcessBackend`]: any training script as a child process per trial
//!   (`[backend] type = "process", command = ["python3", "train.py"]`), Syne Tune compatible.
//! - Slurm ([`slurm_backend`]): trials as Slurm jobs, or job steps inside an allocation.
//! - [`SimulatorBackend`]: replays a [`blackbox`]'s learning curves on a simulated clock.

pub mod blackbox;
mod checkpoint;
mod error;
pub mod guard;
pub mod objectives;
mod process;
mod simulator;
mod slurm;
mod spec;
mod threads;

pub use error::Error;
pub use process::{
    METRIC_PREFIX, ProcessBackend, ProcessSpec, metrics_line, parse_metrics, trial_args, use_trial_guard,
};
pub use simulator::{SimStats, SimulatorBackend};
pub use slurm::{SlurmSpec, slurm_backend};
pub use spec::{BACKENDS, BackendContext, BackendSpec, SimulatorSpec, ThreadsSpec};
pub use threads::{Interrupted, Reporter, ThreadBackend, TrialContext, TrialError, TrialFn};
