//! The process backend: every trial is a child process running the user's command, in a
//! process group of its own, compatible with Syne Tune training scripts.
//!
//! - Launch: `<command...> --<name> <value> ...` for every config entry (each its own argv
//!   entry, never through a shell), `--st_checkpoint_dir <dir>` with checkpointing on; in the
//!   environment `HPO_TRIAL_ID`, `HPO_CONFIG` (JSON), `HPO_CHECKPOINT_DIR` and, with GPUs,
//!   `CUDA_VISIBLE_DEVICES`.
//! - Reports: stdout lines `[tune-metric]: {json}`, read as they are written. Every other
//!   stdout line goes to `trials/<id>/stdout.log`, all of stderr to `stderr.log`.
//! - Stop and pause: SIGTERM to the whole group, a grace period, then SIGKILL. When a trial
//!   ends for any reason its group is killed, so no forked grandchild outlives it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use hpo_core::{Backend, BackendError, Config, Decision, Event, EventKind, Metrics, TrialId, TrialStart, async_trait};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::checkpoint::prepare_checkpoint_dir;

/// The prefix of a metrics line on a trial's stdout (Syne Tune's).
pub const METRIC_PREFIX: &str = "[tune-metric]: ";
/// How many lines of stderr a failed trial's error keeps.
const STDERR_TAIL: usize = 20;

/// `[backend] type = "process"` in an experiment file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// The program and its fixed arguments, e.g. `["python3", "train.py"]`.
    pub command: Vec<String>,
    /// The trials' working directory; in an experiment file, relative to the file, which is
    /// also the default.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// Extra environment variables for every trial.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Pass `--st_checkpoint_dir <dir>` (the folder is always there and in `HPO_CHECKPOINT_DIR`).
    #[serde(default = "yes")]
    pub checkpointing: bool,
    /// Pass the config as one argument `--config <json>` instead of one flag per entry.
    #[serde(default)]
    pub config_as_json: bool,
    /// Time between SIGTERM and SIGKILL when a trial is stopped or paused.
    #[serde(default = "default_grace", deserialize_with = "duration")]
    pub grace_period: Duration,
    /// Kill and fail a trial that runs longer than this.
    #[serde(default, deserialize_with = "optional_duration")]
    pub timeout: Option<Duration>,
    /// GPUs each trial gets (via `CUDA_VISIBLE_DEVICES`); trials never share one.
    #[serde(default)]
    pub gpus_per_trial: usize,
    /// The GPU ids to hand out (default with `gpus_per_trial > 0`: as many as `nvidia-smi -L` lists).
    #[serde(default)]
    pub gpus: Option<Vec<u32>>,
}

fn yes() -> bool {
    true
}
fn default_grace() -> Duration {
    Duration::from_secs(5)
}
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration like \"5s\" or \"10m\": {e}")))
}
fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

impl ProcessSpec {
    /// Checks the command can be run at all, so a typo fails the experiment before any
    /// trial starts. Returns the GPU ids to hand out.
    pub fn check(&self, workers: usize) -> Result<Vec<u32>, String> {
        let program = self.command.first().ok_or("`command` is empty")?;
        let workdir = self.workdir.clone().unwrap_or_else(|| PathBuf::from("."));
        if !workdir.is_dir() {
            return Err(format!("workdir `{}` is not a folder", workdir.display()));
        }
        if find_program(program, &workdir).is_none() {
            return Err(if program.contains('/') {
                format!(
                    "the command `{program}` does not exist or is not executable (relative to {})",
                    workdir.display()
                )
            } else {
                format!("the command `{program}` was not found on PATH")
            });
        }
        if self.gpus_per_trial == 0 {
            return Ok(Vec::new());
        }
        let gpus = match &self.gpus {
            Some(ids) => ids.clone(),
            None => detect_gpus()
                .ok_or("`gpus_per_trial` is set but no GPU was found (`nvidia-smi -L`); list ids in `gpus`")?,
        };
        let needed = workers * self.gpus_per_trial;
        if gpus.len() < needed {
            return Err(format!(
                "{workers} workers x {} GPUs per trial need {needed} GPUs, but only {} are available ({gpus:?})",
                self.gpus_per_trial,
                gpus.len()
            ));
        }
        Ok(gpus)
    }
}

fn find_program(program: &str, workdir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let path = workdir.join(program);
        return executable(&path).then_some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(program)).find(|p| executable(p))
}

fn detect_gpus() -> Option<Vec<u32>> {
    let out = std::process::Command::new("nvidia-smi").arg("-L").output().ok()?;
    let count = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("GPU ")).count();
    (out.status.success() && count > 0).then(|| (0..count as u32).collect())
}

/// The argv for a trial: the command, then the config.
pub fn trial_args(spec: &ProcessSpec, config: &Config, checkpoint_dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = spec.command[1..].to_vec();
    if spec.config_as_json {
        args.push("--config".into());
        args.push(config.to_string());
    } else {
        for (name, value) in config.iter() {
            args.push(format!("--{name}"));
            args.push(value.to_string());
        }
    }
    if spec.checkpointing {
        args.push("--st_checkpoint_dir".into());
        args.push(checkpoint_dir.display().to_string());
    }
    args
}

/// Parses a `[tune-metric]:` payload: a JSON object of numbers (`null` for non-finite values;
/// other types are ignored).
pub fn parse_metrics(payload: &str) -> Result<Metrics, String> {
    let value: serde_json::Value =
        serde_json::from_str(payload.trim()).map_err(|e| format!("malformed metrics line `{payload}`: {e}"))?;
    let object = value.as_object().ok_or_else(|| format!("malformed metrics line `{payload}`: not a JSON object"))?;
    Ok(object
        .iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Number(n) => n.as_f64().map(|x| (k.clone(), x)),
            serde_json::Value::Null => Some((k.clone(), f64::NAN)),
            _ => None,
        })
        .collect())
}

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const PAUSING: u8 = 2;

struct Running {
    pgid: Pid,
    intent: Arc<AtomicU8>,
    gpus: Vec<u32>,
}

/// Runs trials as child processes.
pub struct ProcessBackend {
    spec: ProcessSpec,
    trials_dir: PathBuf,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    running: HashMap<TrialId, Running>,
    /// GPU id -> (in use, trials it has served), for least-used assignment.
    gpus: BTreeMap<u32, (bool, u64)>,
    clock: Instant,
}

impl ProcessBackend {
    /// A backend for `workers` concurrent trials; `trials_dir` holds `<id>/` per trial.
    pub fn new(spec: ProcessSpec, workers: usize, trials_dir: impl Into<PathBuf>) -> Result<ProcessBackend, String> {
        let gpus = spec.check(workers)?;
        // Trials run in another folder: give them absolute paths.
        let trials_dir = trials_dir.into();
        let trials_dir = std::path::absolute(&trials_dir).unwrap_or(trials_dir);
        let (events_tx, events) = mpsc::unbounded_channel();
        Ok(ProcessBackend {
            spec,
            trials_dir,
            events_tx,
            events,
            running: HashMap::new(),
            gpus: gpus.into_iter().map(|id| (id, (false, 0))).collect(),
            clock: Instant::now(),
        })
    }

    /// The least-used free GPUs, ties to the lowest id.
    fn assign_gpus(&mut self) -> Vec<u32> {
        let mut free: Vec<(u64, u32)> = self.gpus.iter().filter(|(_, s)| !s.0).map(|(id, s)| (s.1, *id)).collect();
        free.sort_unstable();
        let chosen: Vec<u32> = free.into_iter().take(self.spec.gpus_per_trial).map(|(_, id)| id).collect();
        for id in &chosen {
            if let Some(state) = self.gpus.get_mut(id) {
                *state = (true, state.1 + 1);
            }
        }
        chosen
    }

    fn ended(&mut self, trial_id: TrialId) {
        if let Some(run) = self.running.remove(&trial_id) {
            for id in run.gpus {
                if let Some(state) = self.gpus.get_mut(&id) {
                    state.0 = false;
                }
            }
        }
    }

    fn take(&mut self, event: Event, out: &mut Vec<Event>) {
        if !matches!(event.kind, EventKind::Report(_)) {
            self.ended(event.trial_id);
        }
        out.push(event);
    }
}

#[async_trait]
impl Backend for ProcessBackend {
    async fn start(&mut self, trial: TrialStart) -> Result<(), BackendError> {
        let dir = self.trials_dir.join(trial.trial_id.to_string());
        let checkpoint_dir = dir.join("checkpoints");
        let donor = trial.checkpoint_from.map(|from| self.trials_dir.join(from.to_string()).join("checkpoints"));
        let clock = self.clock;
        let now = move || clock.elapsed().as_secs_f64();
        if let Err(e) = prepare_checkpoint_dir(&checkpoint_dir, donor.as_deref()) {
            let _ = self.events_tx.send(Event { time: now(), trial_id: trial.trial_id, kind: EventKind::Failed(e) });
            return Ok(());
        }
        let gpus = self.assign_gpus();
        let mut command = tokio::process::Command::new(&self.spec.command[0]);
        command
            .args(trial_args(&self.spec, &trial.config, &checkpoint_dir))
            .env("HPO_TRIAL_ID", trial.trial_id.to_string())
            .env("HPO_CONFIG", trial.config.to_string())
            .env("HPO_CHECKPOINT_DIR", &checkpoint_dir)
            .envs(&self.spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if !gpus.is_empty() {
            let ids: Vec<String> = gpus.iter().map(u32::to_string).collect();
            command.env("CUDA_VISIBLE_DEVICES", ids.join(","));
        }
        if let Some(workdir) = &self.spec.workdir {
            command.current_dir(workdir);
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let message = format!("cannot start `{}`: {e}", self.spec.command.join(" "));
                let _ = self.events_tx.send(Event {
                    time: now(),
                    trial_id: trial.trial_id,
                    kind: EventKind::Failed(message),
                });
                self.running.insert(trial.trial_id, Running { pgid: Pid::from_raw(0), intent: Arc::default(), gpus });
                return Ok(());
            }
        };
        let pgid = Pid::from_raw(child.id().and_then(|id| i32::try_from(id).ok()).unwrap_or(0));
        let intent = Arc::new(AtomicU8::new(RUNNING));
        self.running.insert(trial.trial_id, Running { pgid, intent: Arc::clone(&intent), gpus });
        tokio::spawn(supervise(Supervised {
            child,
            trial_id: trial.trial_id,
            pgid,
            intent,
            dir,
            timeout: self.spec.timeout,
            events: self.events_tx.clone(),
            clock: self.clock,
        }));
        Ok(())
    }

    async fn decide(&mut self, trial_id: TrialId, decision: Decision) -> Result<(), BackendError> {
        let intent = match decision {
            Decision::Continue => return Ok(()),
            Decision::Stop => STOPPING,
            Decision::Pause => PAUSING,
        };
        let Some(run) = self.running.get(&trial_id) else { return Ok(()) };
        if run.intent.compare_exchange(RUNNING, intent, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Ok(()); // already on its way out
        }
        let pgid = run.pgid;
        let _ = killpg(pgid, Signal::SIGTERM);
        let grace = self.spec.grace_period;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = killpg(pgid, Signal::SIGKILL);
        });
        Ok(())
    }

    async fn next_events(&mut self, out: &mut Vec<Event>) -> Result<(), BackendError> {
        let first = self.events.recv().await.ok_or_else(|| BackendError("the process backend closed".into()))?;
        self.take(first, out);
        while let Ok(event) = self.events.try_recv() {
            self.take(event, out);
        }
        Ok(())
    }

    fn now(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    fn checkpoint_dir(&self, trial_id: TrialId) -> Option<PathBuf> {
        Some(self.trials_dir.join(trial_id.to_string()).join("checkpoints"))
    }
}

impl Drop for ProcessBackend {
    /// Never leaves a trial behind: whatever still runs is killed.
    fn drop(&mut self) {
        for run in self.running.values() {
            if run.pgid.as_raw() > 0 {
                let _ = killpg(run.pgid, Signal::SIGKILL);
            }
        }
    }
}

struct Supervised {
    child: tokio::process::Child,
    trial_id: TrialId,
    pgid: Pid,
    intent: Arc<AtomicU8>,
    dir: PathBuf,
    timeout: Option<Duration>,
    events: mpsc::UnboundedSender<Event>,
    clock: Instant,
}

/// Follows one trial: turns its metrics lines into reports, logs everything else, and sends
/// the event that ends it.
async fn supervise(mut s: Supervised) {
    let send = |kind| {
        let _ = s.events.send(Event { time: s.clock.elapsed().as_secs_f64(), trial_id: s.trial_id, kind });
    };
    let stdout = s.child.stdout.take();
    let stderr = s.child.stderr.take();
    let stderr_task = tokio::spawn(copy_stderr(stderr, s.dir.join("stderr.log")));
    let mut stdout_log = open_log(&s.dir.join("stdout.log")).await;
    let mut lines = stdout.map(|out| BufReader::new(out).lines());
    let deadline = s.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut problem: Option<String> = None;
    let status: Option<ExitStatus> = loop {
        tokio::select! {
            line = next_line(&mut lines) => match line {
                Some(line) => {
                    if let Some(payload) = line.strip_prefix(METRIC_PREFIX) {
                        match parse_metrics(payload) {
                            Ok(metrics) => send(EventKind::Report(metrics)),
                            Err(e) if problem.is_none() => {
                                log_line(&mut stdout_log, &format!("hpo: {e}")).await;
                                problem = Some(e);
                                let _ = killpg(s.pgid, Signal::SIGKILL);
                            }
                            Err(_) => {}
                        }
                    } else {
                        log_line(&mut stdout_log, &line).await;
                    }
                }
                None => lines = None,
            },
            status = s.child.wait() => break status.ok(),
            () = sleep_until(deadline), if problem.is_none() => {
                let limit = s.timeout.unwrap_or_default();
                problem = Some(format!("timed out after {}", humantime::format_duration(limit)));
                let _ = killpg(s.pgid, Signal::SIGKILL);
            }
        }
    };
    // The leader is gone; take down anything it left in its group, then read what is left.
    let _ = killpg(s.pgid, Signal::SIGKILL);
    while lines.is_some()
        && let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(1), next_line(&mut lines)).await
    {
        match line.strip_prefix(METRIC_PREFIX).map(parse_metrics) {
            Some(Ok(metrics)) => send(EventKind::Report(metrics)),
            Some(Err(_)) | None => log_line(&mut stdout_log, &line).await,
        }
    }
    if let Some(log) = &mut stdout_log {
        let _ = log.flush().await;
    }
    let tail = stderr_task.await.unwrap_or_default();
    let kind = match s.intent.load(Ordering::Acquire) {
        STOPPING => EventKind::Stopped,
        PAUSING => EventKind::Paused,
        _ => match (problem, status) {
            (Some(problem), _) => EventKind::Failed(problem),
            (None, Some(status)) if status.success() => EventKind::Completed,
            (None, status) => EventKind::Failed(describe_failure(status, &tail)),
        },
    };
    send(kind);
}

fn describe_failure(status: Option<ExitStatus>, tail: &VecDeque<String>) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match status {
        Some(s) if s.code().is_some() => format!("exited with status {}", s.code().unwrap_or_default()),
        Some(s) => format!("was killed by signal {}", s.signal().unwrap_or_default()),
        None => "could not be waited for".into(),
    };
    if tail.is_empty() {
        format!("the trial {how}")
    } else {
        let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
        format!("the trial {how}; last lines of stderr:\n{}", lines.join("\n"))
    }
}

type Lines = Option<tokio::io::Lines<BufReader<tokio::process::ChildStdout>>>;

/// The next stdout line; pending forever once stdout is closed (so `select!` waits for exit).
async fn next_line(lines: &mut Lines) -> Option<String> {
    match lines {
        Some(l) => l.next_line().await.ok().flatten(),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn open_log(path: &Path) -> Option<tokio::io::BufWriter<tokio::fs::File>> {
    let file = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await.ok()?;
    Some(tokio::io::BufWriter::new(file))
}

async fn log_line(log: &mut Option<tokio::io::BufWriter<tokio::fs::File>>, line: &str) {
    if let Some(log) = log {
        let _ = log.write_all(line.as_bytes()).await;
        let _ = log.write_all(b"\n").await;
    }
}

/// Copies stderr to its log and returns its last lines.
async fn copy_stderr(stderr: Option<tokio::process::ChildStderr>, path: PathBuf) -> VecDeque<String> {
    let mut tail = VecDeque::new();
    let Some(stderr) = stderr else { return tail };
    let mut log = open_log(&path).await;
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log_line(&mut log, &line).await;
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    if let Some(log) = &mut log {
        let _ = log.flush().await;
    }
    tail
}
