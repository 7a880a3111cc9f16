//! The error of this crate: a backend that cannot be set up, data it cannot read, or trial
//! output it cannot understand. Each kind carries the message a user reads.

/// A backend that cannot be set up, or input it cannot read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A setting that cannot work: a missing program or folder, too few GPUs, an unknown
    /// blackbox or metric, a Slurm mode without an allocation.
    #[error("{0}")]
    Setting(String),
    /// More workers than this process can start threads for.
    #[error("{0}")]
    Workers(String),
    /// A benchmark table or data file that cannot be read.
    #[error("{0}")]
    Data(String),
    /// A config a blackbox has no learning curve for.
    #[error("{0}")]
    Config(String),
    /// A trial's `[tune-metric]: ...` line that is not a table of numbers.
    #[error("{0}")]
    MetricsLine(String),
}
