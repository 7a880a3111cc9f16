use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hpo_backends::{BACKENDS, BackendContext, BackendSpec};
use hpo_core::{Backend, ExperimentError, ExperimentSpec};

/// `println!` that never panics: once stdout is gone (a closed pipe, as in `hpo results |
/// head -1`, or a closed terminal) the output is dropped and the command ends as it would.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that never panics (stderr can be a closed terminal after SIGHUP).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// Shows the library crates' warnings (they log, never print) on stderr as `hpo: ...` lines.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            errln!("hpo: {}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs [`StderrLog`] (once per process).
pub fn show_library_warnings() {
    if log::set_logger(&StderrLog).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

/// Makes the backend's paths that are relative to the experiment file (`workdir`, a
/// simulator table's file) absolute, so that the spec recorded in the experiment's folder,
/// which `hpo resume` reads, means the same from there.
pub fn anchor_paths(spec: &mut ExperimentSpec) -> anyhow::Result<()> {
    let file = Path::new(&spec.origin.file);
    let base = std::path::absolute(file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))?;
    let Some(table) = spec.backend.as_object_mut() else { return Ok(()) };
    let anchored = |path: &str| serde_json::Value::from(base.join(path).display().to_string());
    match table.get("type").and_then(serde_json::Value::as_str) {
        Some("process" | "slurm") => {
            let workdir = table.get("workdir").and_then(serde_json::Value::as_str).unwrap_or("");
            let workdir = anchored(workdir);
            table.insert("workdir".into(), workdir);
        }
        Some("simulator") => {
            if let Some(name) =
                table.get("blackbox").and_then(serde_json::Value::as_str).filter(|n| n.ends_with(".toml"))
            {
                let name = anchored(name);
                table.insert("blackbox".into(), name);
            }
        }
        _ => {}
    }
    Ok(())
}

/// The backend an experiment asks for; `trials_dir` is where per-trial folders go. Errors
/// name the file, line and key.
pub fn build_backend(spec: &ExperimentSpec, trials_dir: Option<&Path>) -> Result<Box<dyn Backend>, ExperimentError> {
    let mut table = spec.backend.clone();
    let kind = table.as_object_mut().and_then(|t| t.remove("type"));
    let kind = kind.as_ref().map_or(Some("threads"), serde_json::Value::as_str).unwrap_or_default();
    // Each variant's table is read on its own, so that an error names its nested key.
    let origin = &spec.origin;
    let backend = match kind {
        "threads" => BackendSpec::Threads(origin.parse("backend", table)?),
        "process" => BackendSpec::Process(origin.parse("backend", table)?),
        "simulator" => BackendSpec::Simulator(origin.parse("backend", table)?),
        "slurm" => BackendSpec::Slurm(origin.parse("backend", table)?),
        other => {
            let names: Vec<String> = BACKENDS.iter().map(|(name, _)| format!("\"{name}\"")).collect();
            let message = format!("unknown backend `{other}`; expected one of {}", names.join(", "));
            return Err(origin.error("backend.type", message));
        }
    };
    let metrics = spec.metrics_read();
    let ctx = BackendContext {
        workers: spec.workers,
        seed: spec.seed,
        metrics: &metrics,
        max_resource_attr: spec.max_resource_attr.as_deref(),
        base_dir: Path::new(&spec.origin.file).parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")),
        trials_dir,
    };
    backend.clone().build(&ctx).map_err(|e| spec.origin.error(backend.error_key(&e), e))
}

/// Whether an experiment's `[backend]` table runs it on the simulator's clock.
pub fn simulated(backend: &serde_json::Value) -> bool {
    backend["type"] == "simulator"
}

/// "1 trial", "2 trials".
pub fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// A duration as people say it: "90 s", "45 min", "100 h" (not "4days 4h").
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    let trim = |x: f64| format!("{:.1}", x).trim_end_matches(".0").to_owned();
    match s {
        s if s < 120.0 => format!("{} s", trim(s)),
        s if s < 7200.0 => format!("{} min", trim(s / 60.0)),
        s => format!("{} h", trim(s / 3600.0)),
    }
}

/// The `n`-th folder of experiment `name`: `output/name`, then `output/name-2`, ...
pub fn experiment_folder(output: &Path, name: &str, n: usize) -> PathBuf {
    if n == 1 { output.join(name) } else { output.join(format!("{name}-{n}")) }
}

/// `<output>/<name>`, or `<name>-2`, `<name>-3`, ... if that exists: never touch an earlier run.
pub fn new_folder(output: &Path, name: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    for n in 1.. {
        let dir = experiment_folder(output, name, n);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    unreachable!("the loop above returns")
}

pub mod bench;
pub mod dashboard;
pub mod list;
pub mod plot;
pub mod plugin;
pub mod results;
pub mod run;
pub mod serve;
pub mod simulate;

/// A current-thread tokio runtime: the tuner is one task; trials run on their own threads.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}
