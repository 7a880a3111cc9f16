//! Building a backend from an experiment file's `[backend]` table.

use std::path::Path;

use hpo_core::{Backend, ExperimentError, ExperimentSpec};
use serde::Deserialize;

use crate::blackbox::blackbox;
use crate::objectives::{BUILTIN, builtin};
use crate::process::{ProcessBackend, ProcessSpec};
use crate::{SimulatorBackend, SlurmSpec, ThreadBackend, slurm_backend};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreadsSpec {
    #[serde(rename = "type")]
    _type: String,
    objective: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatorSpec {
    #[serde(rename = "type")]
    _type: String,
    /// `digits-mlp`, `branin`, `hartmann6`, or a tabular spec file.
    blackbox: String,
    /// Add the tuner's own decision time to the simulated clock.
    #[serde(default)]
    charge_decision_time: bool,
}

/// The backend an experiment asks for. `trials_dir` is where per-trial folders go.
pub fn build_backend(spec: &ExperimentSpec, trials_dir: Option<&Path>) -> Result<Box<dyn Backend>, ExperimentError> {
    let kind = spec.backend.get("type").and_then(|t| t.as_str()).unwrap_or("threads");
    match kind {
        "threads" => {
            let threads: ThreadsSpec = spec.origin.parse("backend", spec.backend.clone())?;
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            let trial_fn = builtin(&threads.objective, spec.max_resource_attr.as_deref()).ok_or_else(|| {
                spec.origin.error(
                    "backend.objective",
                    format!("no built-in objective `{}`; expected one of {}", threads.objective, names.join(", ")),
                )
            })?;
            let mut backend = ThreadBackend::new(spec.workers, move |ctx, reporter| trial_fn(ctx, reporter))
                .map_err(|e| spec.origin.error("workers", e.0))?
                .seed(spec.seed);
            if let Some(dir) = trials_dir {
                backend = backend.trials_dir(dir);
            }
            Ok(Box::new(backend))
        }
        "process" => {
            let mut table = spec.backend.clone();
            if let Some(t) = table.as_object_mut() {
                t.remove("type");
            }
            let mut process: ProcessSpec = spec.origin.parse("backend", table)?;
            // Relative paths are relative to the experiment file, so it runs from anywhere.
            let base =
                Path::new(&spec.origin.file).parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            process.workdir = Some(match process.workdir.take() {
                Some(dir) => base.join(dir),
                None => base.to_path_buf(),
            });
            let trials_dir = trials_dir.map_or_else(|| std::env::temp_dir().join("hpo-trials"), Path::to_path_buf);
            let backend = ProcessBackend::new(process, spec.workers, trials_dir)
                .map_err(|e| spec.origin.error("backend.command", e))?;
            Ok(Box::new(backend))
        }
        "simulator" => {
            let sim: SimulatorSpec = spec.origin.parse("backend", spec.backend.clone())?;
            // A table's spec file is found relative to the experiment file.
            let name = if sim.blackbox.ends_with(".toml") {
                experiment_dir(spec).join(&sim.blackbox).display().to_string()
            } else {
                sim.blackbox.clone()
            };
            let bb = blackbox(&name).map_err(|e| spec.origin.error("backend.blackbox", e))?;
            let backend =
                SimulatorBackend::new(bb, &[spec.metric.as_str()], spec.max_resource_attr.as_deref(), spec.seed)
                    .map_err(|e| spec.origin.error("backend.blackbox", e))?
                    .charge_decision_time(sim.charge_decision_time);
            Ok(Box::new(backend))
        }
        "slurm" => {
            let mut slurm: SlurmSpec = spec.origin.parse("backend", spec.backend.clone())?;
            let base = experiment_dir(spec);
            slurm.workdir = Some(match slurm.workdir.take() {
                Some(dir) => base.join(dir),
                None => base.to_path_buf(),
            });
            let trials_dir = trials_dir.map_or_else(|| std::env::temp_dir().join("hpo-trials"), Path::to_path_buf);
            slurm_backend(slurm, spec.workers, trials_dir).map_err(|e| spec.origin.error("backend", e))
        }
        other => Err(spec.origin.error(
            "backend.type",
            format!("unknown backend `{other}`; expected \"threads\", \"process\", \"simulator\" or \"slurm\""),
        )),
    }
}

/// The folder of the experiment file, against which its relative paths are resolved.
fn experiment_dir(spec: &ExperimentSpec) -> &Path {
    Path::new(&spec.origin.file).parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}
