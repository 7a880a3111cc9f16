//! The vocabulary shared by searchers, schedulers, backends and the tuner.

use std::fmt;

use hpo_space::Config;
use serde::{Deserialize, Serialize};

/// Trials are numbered 0, 1, 2, ... in the order they are started.
pub type TrialId = u64;

pub use crate::metrics::Metrics;

/// An `f64` ordered by `total_cmp`, for heaps and ordered maps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TotalF64(pub f64);

impl Eq for TotalF64 {}

impl PartialOrd for TotalF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TotalF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The message of a caught panic (`catch_unwind`'s payload), or "(no message)".
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Whether the metric is minimized or maximized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Smaller is better.
    #[default]
    Min,
    /// Larger is better.
    Max,
}

/// The metric being optimized and its direction.
///
/// This is the one place where `mode` is handled: every component below the tuner sees the
/// *objective*, the metric turned into a value to minimize.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// The reported key optimized.
    pub metric: String,
    /// Its direction.
    pub mode: Mode,
}

impl Objective {
    /// The objective of `metric` in `mode`.
    pub fn new(metric: impl Into<String>, mode: Mode) -> Self {
        Objective { metric: metric.into(), mode }
    }

    /// The metric's value turned into a value to minimize.
    pub fn to_minimize(&self, value: f64) -> f64 {
        match self.mode {
            Mode::Min => value,
            Mode::Max => -value,
        }
    }

    /// The inverse of [`Objective::to_minimize`]: back to the user's units.
    pub fn to_metric(&self, objective: f64) -> f64 {
        self.to_minimize(objective)
    }

    /// The objective of a report: `Err` says why there is none (missing or not finite).
    pub fn of(&self, metrics: &Metrics) -> Result<f64, MetricError> {
        match metrics.get(&self.metric) {
            None => Err(MetricError::Missing {
                metric: self.metric.clone(),
                reported: metrics.names().map(str::to_owned).collect(),
            }),
            Some(v) if !v.is_finite() => Err(MetricError::NotFinite { metric: self.metric.clone(), value: v }),
            Some(v) => Ok(self.to_minimize(v)),
        }
    }
}

/// Why a report has no objective (the trial then fails).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// The report lacks the metric.
    #[error("report has no metric `{metric}` (it has: {})", reported.join(", "))]
    Missing {
        /// The metric optimized.
        metric: String,
        /// The metrics the report has.
        reported: Vec<String>,
    },
    /// The metric is NaN or infinite.
    #[error("metric `{metric}` is not finite ({value})")]
    NotFinite {
        /// The metric optimized.
        metric: String,
        /// Its value (NaN or infinite).
        value: f64,
    },
}

/// One report of a trial as the scheduler sees it.
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    /// The reporting trial.
    pub trial_id: TrialId,
    /// Its current config.
    pub config: &'a Config,
    /// Everything it reported.
    pub metrics: &'a Metrics,
    /// How far training has gone: the `resource_attr` metric, or else the number of
    /// reports the trial has made so far (1 for the first).
    pub resource: f64,
    /// The optimized metric as a value to minimize (see [`Objective`]); with several
    /// objectives, the first.
    pub objective: f64,
    /// Every objective as a value to minimize, in the experiment's order (just `objective`
    /// when there is one).
    pub objectives: &'a [f64],
    /// By how much the report breaks the outcome constraints (0 when all hold, infinite when
    /// a constrained metric is missing): infeasible reports rank below feasible ones.
    pub violation: f64,
}

/// What the scheduler wants done with a trial after a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Run on.
    Continue,
    /// Stop now, maybe resume later (the checkpoint is kept).
    Pause,
    /// Stop for good.
    Stop,
}

impl Decision {
    /// Syne Tune's spelling, as used in `results.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Continue => "CONTINUE",
            Decision::Pause => "PAUSE",
            Decision::Stop => "STOP",
        }
    }
}

/// What the scheduler wants a free worker to do. In the scheduler protocol it is the answer
/// to `suggest`: `{"op": "start", "config": {...}}`, `{"op": "wait"}`, ...
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Suggestion {
    /// Start a new trial with this config, optionally from another trial's checkpoint.
    Start {
        /// The config.
        config: Config,
        /// Start from a copy of this trial's checkpoint (PBT).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint_from: Option<TrialId>,
    },
    /// Resume a paused trial with this (possibly changed) config.
    Resume {
        /// The paused trial.
        trial_id: TrialId,
        /// Its config from now on.
        config: Config,
    },
    /// Nothing to start now; ask again after the next event.
    Wait,
    /// Nothing to start ever again.
    Done,
}

impl Suggestion {
    /// A fresh start with `config`.
    pub fn start(config: Config) -> Self {
        Suggestion::Start { config, checkpoint_from: None }
    }
}

/// Where a trial is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Running (or about to stop or pause).
    InProgress,
    /// Paused; may be resumed.
    Paused,
    /// Ended normally.
    Completed,
    /// Failed.
    Failed,
    /// Stopped early by the scheduler or the end of the experiment.
    Stopped,
}

impl Status {
    /// Syne Tune's spelling, as used in `results.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "InProgress",
            Status::Paused => "Paused",
            Status::Completed => "Completed",
            Status::Failed => "Failed",
            Status::Stopped => "Stopped",
        }
    }

    /// Whether it will never run again (completed, failed or stopped).
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Stopped)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
