#![warn(missing_docs)]
//! The core of hpo: the vocabulary (configs, trials, reports, decisions, suggestions), the
//! [`Searcher`], [`Scheduler`] and [`Backend`] traits, the [`Tuner`] loop with its stopping
//! criteria and incumbent bookkeeping, the experiment file, and the journal from which
//! results are computed.
//!
//! Metrics are minimized internally: [`Objective`] converts `mode = "max"` in one place.

mod duration;
mod experiment;
pub mod importance;
pub mod interrupt;
mod journal;
mod metrics;
pub mod pareto;
mod protocol;
mod results;
mod rng;
mod traits;
mod tuner;
mod types;

pub use duration::{DurationError, MAX_DURATION, duration_text, optional_duration_text, parse_duration};
pub use experiment::{ExperimentError, ExperimentSpec, Origin, PLUGIN_SEARCHER};
pub use hpo_space::{Condition, Config, ConfigError, Domain, Grid, Space, SpaceError, Symbol, Value};
pub use journal::{
    ABORT_AFTER_ENTRIES, Entry, JOURNAL_VERSION, Journal, JournalError, JournalSync, Recorded, read_journal,
};
pub use metrics::Metrics;
pub use protocol::{Answer, PROTOCOL_VERSION, Request, SchedulerFactory, SchedulerServer};
pub use results::{ExperimentResults, Leaderboard, Pareto, ParetoPoint, ResultsError, Row, TrialSummary};
pub use rng::{HpoRng, derive_rng, derive_seed};
pub use traits::{
    Backend, BackendError, Context, Event, EventKind, Scheduler, Score, Searcher, SetupError, TrialStart,
};
pub use tuner::{EndReason, Incumbent, Observer, Progress, StopCriteria, Summary, Tuner, TunerError};
pub use types::{Decision, MetricError, Mode, Objective, Report, Status, Suggestion, TotalF64, TrialId, panic_message};

/// Re-exported so that crates registering searchers and schedulers use the same version.
pub use async_trait::async_trait;
pub use typetag;
