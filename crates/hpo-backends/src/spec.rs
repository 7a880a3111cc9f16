//! The `[backend]` table of an experiment file, as one tagged enum, and building the backend
//! it asks for.

use std::path::{Path, PathBuf};

use hpo_core::Backend;
use serde::Deserialize;

use crate::blackbox::blackbox;
use crate::objectives::{BUILTIN, builtin};
use crate::process::{ProcessBackend, ProcessSpec};
use crate::{Error, SimulatorBackend, SlurmSpec, ThreadBackend, slurm_backend};

/// What `[backend] type = "..."` asks for. Each variant's table also reads on its own (an
/// experiment file's reader does so, to name the nested key of an error).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BackendSpec {
    /// A built-in objective on threads of this process.
    Threads(ThreadsSpec),
    /// Any training script, a child process per trial.
    Process(ProcessSpec),
    /// A blackbox replayed on a simulated clock.
    Simulator(SimulatorSpec),
    /// Trials as Slurm jobs or job steps.
    Slurm(SlurmSpec),
}

/// `[backend] type = "threads"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadsSpec {
    /// A built-in objective (`hpo list` shows them).
    pub objective: String,
}

/// `[backend] type = "simulator"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSpec {
    /// `digits-mlp`, `branin`, `hartmann6`, or a tabular spec file.
    pub blackbox: String,
    /// Add the tuner's own decision time to the simulated clock.
    #[serde(default)]
    pub charge_decision_time: bool,
}

/// The backend types, with what each does (for `hpo list` and error messages).
pub const BACKENDS: [(&str, &str); 4] = [
    ("threads", "a built-in objective on threads of this process"),
    ("process", "any training script as a child process per trial (Syne Tune compatible)"),
    ("simulator", "a benchmark's learning curves replayed on a simulated clock"),
    ("slurm", "trials as Slurm jobs, or job steps inside an allocation"),
];

/// What a backend needs to know about the experiment besides its own table.
#[derive(Clone, Debug)]
pub struct BackendContext<'a> {
    /// Trials at once.
    pub workers: usize,
    /// The master seed.
    pub seed: u64,
    /// The metrics the experiment reads: its objectives, then those its constraints bound
    /// (the simulator reports these).
    pub metrics: &'a [&'a str],
    /// The config key that tells a trial how far to train.
    pub max_resource_attr: Option<&'a str>,
    /// Relative paths in the table are relative to this folder (the experiment file's).
    pub base_dir: &'a Path,
    /// Where per-trial folders go (default: `hpo-trials` in the temporary folder).
    pub trials_dir: Option<&'a Path>,
}

impl BackendSpec {
    /// The key of the table an error of this backend is about.
    pub fn error_key(&self, error: &Error) -> &'static str {
        match (self, error) {
            (_, Error::Workers(_)) => "workers",
            (BackendSpec::Threads(_), _) => "backend.objective",
            (BackendSpec::Process(_), _) => "backend.command",
            (BackendSpec::Simulator(_), _) => "backend.blackbox",
            (BackendSpec::Slurm(_), _) => "backend",
        }
    }

    /// Builds the backend.
    pub fn build(self, ctx: &BackendContext<'_>) -> Result<Box<dyn Backend>, Error> {
        let trials_dir = || ctx.trials_dir.map_or_else(|| std::env::temp_dir().join("hpo-trials"), Path::to_path_buf);
        let relative =
            |dir: Option<PathBuf>| Some(dir.map_or_else(|| ctx.base_dir.to_path_buf(), |d| ctx.base_dir.join(d)));
        match self {
            BackendSpec::Threads(ThreadsSpec { objective }) => {
                let trial_fn = builtin(&objective, ctx.max_resource_attr).ok_or_else(|| {
                    let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
                    Error::Setting(format!("no built-in objective `{objective}`; expected one of {}", names.join(", ")))
                })?;
                let mut backend = ThreadBackend::new(ctx.workers, move |t, reporter| trial_fn(t, reporter))
                    .map_err(|e| Error::Workers(e.0))?
                    .seed(ctx.seed);
                if let Some(dir) = ctx.trials_dir {
                    backend = backend.trials_dir(dir);
                }
                Ok(Box::new(backend))
            }
            BackendSpec::Process(mut process) => {
                process.workdir = relative(process.workdir.take());
                Ok(Box::new(ProcessBackend::new(process, ctx.workers, trials_dir())?))
            }
            BackendSpec::Simulator(SimulatorSpec { blackbox: name, charge_decision_time }) => {
                // A table's spec file is found relative to the experiment file.
                let name = if name.ends_with(".toml") { ctx.base_dir.join(&name).display().to_string() } else { name };
                let backend = SimulatorBackend::new(blackbox(&name)?, ctx.metrics, ctx.max_resource_attr, ctx.seed)?
                    .charge_decision_time(charge_decision_time);
                Ok(Box::new(backend))
            }
            BackendSpec::Slurm(mut slurm) => {
                slurm.workdir = relative(slurm.workdir.take());
                slurm_backend(slurm, ctx.workers, trials_dir())
            }
        }
    }
}
