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
//! - With a trial guard ([`use_trial_guard`], which the `hpo` binary sets), each trial runs
//!   under a guard process (see [`crate::guard`]): descendants that left the group are killed
//!   too, and everything goes within milliseconds when hpo dies, even by `kill -9`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use hpo_core::{Backend, BackendError, Config, Decision, Event, EventKind, Metrics, TrialId, TrialStart, async_trait};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::checkpoint::{prepare_checkpoint_dir, tidy_trial_dir};
use crate::guard::{KILL_NOW, guard_args};

/// The executable that acts as a trial guard (see [`crate::guard`]), if one was set.
static TRIAL_GUARD: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Runs every later process-backend trial under a guard: `program` must call
/// [`crate::guard::run_if_guard`] first thing in its `main` (the `hpo` binary does). Without
/// a guard, a trial's process group is still killed when it ends, but descendants that left
/// the group, and trials of a driver killed with `kill -9`, are not.
pub fn use_trial_guard(program: PathBuf) {
    let _ = TRIAL_GUARD.set(program);
}

/// How a trial's processes are ended at once: the guard kills everything below it; without
/// one, the group is killed. Either way the group gets SIGKILL `backstop` later.
fn kill_trial(pgid: Pid, guarded: bool) {
    if guarded {
        let _ = kill(pgid, KILL_NOW); // the guard leads the group
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = killpg(pgid, Signal::SIGKILL);
        });
    } else {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

/// Kills what a driver that died left of its trials (its trial guards killed too, or none
/// used): every process whose environment puts its checkpoint folder in `trials_dir`. Only
/// one driver goes on with an experiment at a time (the journal's lock), so none of these
/// is a live trial's.
fn kill_leftovers(trials_dir: &Path) {
    let prefix = format!("HPO_CHECKPOINT_DIR={}/", trials_dir.display());
    let Ok(processes) = std::fs::read_dir("/proc") else { return };
    for process in processes.flatten() {
        let Some(pid) = process.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(environ) = std::fs::read(process.path().join("environ")) else { continue };
        if let Some(var) = environ.split(|&b| b == 0).find(|var| var.starts_with(prefix.as_bytes())) {
            let dir = String::from_utf8_lossy(&var["HPO_CHECKPOINT_DIR=".len()..]);
            log::warn!("killing process {pid}, left over from a driver that died ({dir})");
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The prefix of a metrics line on a trial's stdout (Syne Tune's).
pub const METRIC_PREFIX: &str = "[tune-metric]: ";
/// How many lines of stderr a failed trial's error keeps.
const STDERR_TAIL: usize = 20;
/// How much of each of those lines it keeps.
const STDERR_TAIL_LINE: usize = 500;
/// The longest line of a trial's output held in memory; a longer one is taken in pieces.
pub const MAX_LINE: usize = 1 << 20;

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
    #[serde(default = "default_grace", with = "hpo_core::duration_text")]
    pub grace_period: Duration,
    /// Kill and fail a trial that runs longer than this.
    #[serde(default, with = "hpo_core::optional_duration_text")]
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

impl ProcessSpec {
    /// Checks the command can be run at all, so a typo fails the experiment before any
    /// trial starts. Returns the GPU ids to hand out.
    pub fn check(&self, workers: usize) -> Result<Vec<u32>, crate::Error> {
        let program = self.command.first().ok_or_else(|| crate::Error::Setting("`command` is empty".into()))?;
        let workdir = self.workdir.clone().unwrap_or_else(|| PathBuf::from("."));
        if !workdir.is_dir() {
            return Err(crate::Error::Setting(format!("workdir `{}` is not a folder", workdir.display())));
        }
        if find_program(program, &workdir).is_none() {
            return Err(crate::Error::Setting(if program.contains('/') {
                format!(
                    "the command `{program}` does not exist or is not executable (relative to {})",
                    workdir.display()
                )
            } else {
                format!("the command `{program}` was not found on PATH")
            }));
        }
        if self.gpus_per_trial == 0 {
            return Ok(Vec::new());
        }
        let gpus = match &self.gpus {
            Some(ids) => ids.clone(),
            None => detect_gpus().ok_or_else(|| {
                crate::Error::Setting(
                    "`gpus_per_trial` is set but no GPU was found (`nvidia-smi -L`); list ids in `gpus`".into(),
                )
            })?,
        };
        let needed = workers * self.gpus_per_trial;
        if gpus.len() < needed {
            return Err(crate::Error::Setting(format!(
                "{workers} workers x {} GPUs per trial need {needed} GPUs, but only {} are available ({gpus:?})",
                self.gpus_per_trial,
                gpus.len()
            )));
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

/// Parses a `[tune-metric]:` payload: a JSON object whose values are numbers, or `null` for
/// a value that is not finite. Anything else (a string, a list, `NaN` written bare) makes the
/// line malformed, and the error says which key and what it got.
pub fn parse_metrics(payload: &str) -> Result<Metrics, crate::Error> {
    let malformed =
        |why: String| crate::Error::MetricsLine(format!("malformed metrics line `{}`: {why}", payload.trim()));
    let value: serde_json::Value = serde_json::from_str(payload.trim()).map_err(|e| malformed(e.to_string()))?;
    let object = value.as_object().ok_or_else(|| malformed("not a JSON object".into()))?;
    object
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::Number(n) => Ok((k.clone(), n.as_f64().unwrap_or(f64::NAN))),
            serde_json::Value::Null => Ok((k.clone(), f64::NAN)),
            other => Err(malformed(format!("`{k}` is {}, expected a number", json_kind(other)))),
        })
        .collect()
}

fn json_kind(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => format!("a string ({s:?})"),
        serde_json::Value::Array(_) => "a list".into(),
        serde_json::Value::Object(_) => "a table".into(),
        serde_json::Value::Bool(b) => format!("a boolean ({b})"),
        serde_json::Value::Null | serde_json::Value::Number(_) => "a number".into(),
    }
}

/// What one line of a trial's stdout (raw bytes, newline included or not) means: `None` for
/// a line that is not a metrics line, else the parsed report or why it is malformed. Bytes
/// that are not UTF-8 make a metrics line malformed and are harmless anywhere else.
pub fn metrics_line(line: &[u8]) -> Option<Result<Metrics, crate::Error>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let payload = line.strip_prefix(METRIC_PREFIX.as_bytes())?;
    Some(match std::str::from_utf8(payload) {
        Ok(payload) => parse_metrics(payload),
        Err(_) => Err(crate::Error::MetricsLine(format!(
            "malformed metrics line `{}`: not UTF-8",
            String::from_utf8_lossy(payload)
        ))),
    })
}

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const PAUSING: u8 = 2;

struct Running {
    pgid: Pid,
    guarded: bool,
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
    /// The Slurm job whose steps the trials are (`srun` in the command), if they are.
    allocation: Option<Arc<str>>,
}

impl ProcessBackend {
    /// A backend for `workers` concurrent trials; `trials_dir` holds `<id>/` per trial.
    pub fn new(
        spec: ProcessSpec,
        workers: usize,
        trials_dir: impl Into<PathBuf>,
    ) -> Result<ProcessBackend, crate::Error> {
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
            allocation: None,
        })
    }

    /// Trials are steps of Slurm job `job`: a step that fails while Slurm takes the job back
    /// was cancelled with it (see [`hold_while_taken_back`]).
    pub(crate) fn steps_of(mut self, job: String) -> ProcessBackend {
        self.allocation = Some(job.into());
        self
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
        let args = trial_args(&self.spec, &trial.config, &checkpoint_dir);
        let guard = TRIAL_GUARD.get();
        let mut command = match guard {
            Some(guard) => {
                let mut argv = vec![self.spec.command[0].clone()];
                argv.extend(args);
                let mut command = tokio::process::Command::new(guard);
                command.args(guard_args(std::process::id(), self.spec.grace_period, &argv));
                command
            }
            None => {
                let mut command = tokio::process::Command::new(&self.spec.command[0]);
                command.args(args);
                command
            }
        };
        command
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
                let pgid = Pid::from_raw(0);
                self.running.insert(trial.trial_id, Running { pgid, guarded: false, intent: Arc::default(), gpus });
                return Ok(());
            }
        };
        let pgid = Pid::from_raw(child.id().and_then(|id| i32::try_from(id).ok()).unwrap_or(0));
        let intent = Arc::new(AtomicU8::new(RUNNING));
        let guarded = guard.is_some();
        self.running.insert(trial.trial_id, Running { pgid, guarded, intent: Arc::clone(&intent), gpus });
        let supervisor = tokio::spawn(supervise(Supervised {
            child,
            trial_id: trial.trial_id,
            pgid,
            guarded,
            intent,
            dir,
            timeout: self.spec.timeout,
            events: self.events_tx.clone(),
            clock: self.clock,
            allocation: self.allocation.clone(),
        }));
        // Should the supervisor itself fail, the trial still ends (and its group is killed):
        // the tuner never waits on a trial nobody follows.
        let events = self.events_tx.clone();
        let trial_id = trial.trial_id;
        tokio::spawn(async move {
            if let Err(e) = supervisor.await {
                kill_trial(pgid, guarded);
                let kind = EventKind::Failed(format!("hpo lost track of the trial: {e}"));
                let _ = events.send(Event { time: clock.elapsed().as_secs_f64(), trial_id, kind });
            }
        });
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
        // A guard kills the trial's descendants itself after the grace period: give it time.
        let grace = self.spec.grace_period + if run.guarded { Duration::from_secs(1) } else { Duration::ZERO };
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

    fn take_over(&mut self) {
        kill_leftovers(&self.trials_dir);
    }
}

impl Drop for ProcessBackend {
    /// Never leaves a trial behind: whatever still runs is killed.
    fn drop(&mut self) {
        for run in self.running.values() {
            if run.pgid.as_raw() > 0 {
                match run.guarded {
                    true => drop(kill(run.pgid, KILL_NOW)),
                    false => drop(killpg(run.pgid, Signal::SIGKILL)),
                }
            }
        }
    }
}

struct Supervised {
    child: tokio::process::Child,
    trial_id: TrialId,
    pgid: Pid,
    guarded: bool,
    intent: Arc<AtomicU8>,
    dir: PathBuf,
    timeout: Option<Duration>,
    events: mpsc::UnboundedSender<Event>,
    clock: Instant,
    allocation: Option<Arc<str>>,
}

/// Follows one trial: turns its metrics lines into reports, logs everything else, and sends
/// the event that ends it. Every stdout line, read before or after the process exits, goes
/// through [`Supervisor::line`], so the outcome never depends on which comes first.
async fn supervise(mut s: Supervised) {
    let stdout = s.child.stdout.take();
    let stderr = s.child.stderr.take();
    let stderr_task = tokio::spawn(copy_stderr(stderr, s.dir.join("stderr.log")));
    let mut out = Supervisor {
        log: open_log(&s.dir.join("stdout.log")).await,
        problem: None,
        pgid: s.pgid,
        guarded: s.guarded,
        trial_id: s.trial_id,
        events: s.events.clone(),
        clock: s.clock,
    };
    let mut lines = stdout.map(BufReader::new);
    let mut buf = Vec::new();
    let deadline = s.timeout.and_then(|t| tokio::time::Instant::now().checked_add(t));
    let status: Option<ExitStatus> = loop {
        tokio::select! {
            read = next_line(&mut lines, &mut buf) => match read {
                true => {
                    out.line(&buf).await;
                    buf.clear();
                }
                false => lines = None,
            },
            status = s.child.wait() => break status.ok(),
            () = sleep_until(deadline), if out.problem.is_none() => {
                let limit = s.timeout.unwrap_or_default();
                out.fail(format!("timed out after {}", humantime::format_duration(limit)));
            }
        }
    };
    // The leader is gone; take down anything it left in its group, then read what is left
    // (a descendant that escaped the group may hold stdout open: wait for it only briefly).
    let _ = killpg(s.pgid, Signal::SIGKILL);
    while lines.is_some()
        && let Ok(true) = tokio::time::timeout(Duration::from_secs(1), next_line(&mut lines, &mut buf)).await
    {
        out.line(&buf).await;
        buf.clear();
    }
    if !buf.is_empty() {
        out.line(&buf).await; // the part of a line read before the wait ran out
    }
    if let Some(log) = &mut out.log {
        let _ = log.flush().await;
    }
    let tail = stderr_task.await.unwrap_or_default();
    drop(out.log.take());
    tidy_trial_dir(&s.dir);
    let failed = out.problem.is_none() && !status.is_some_and(|status| status.success());
    let taken_back = match &s.allocation {
        Some(job) if failed && s.intent.load(Ordering::Acquire) == RUNNING => {
            hold_while_taken_back(job, &s.intent).await
        }
        _ => None,
    };
    let kind = match s.intent.load(Ordering::Acquire) {
        STOPPING => EventKind::Stopped,
        PAUSING => EventKind::Paused,
        _ => match (out.problem.take(), status) {
            (Some(problem), _) => EventKind::Failed(problem),
            (None, Some(status)) if status.success() => EventKind::Completed,
            (None, status) => {
                let failure = describe_failure(status, &tail);
                EventKind::Failed(match taken_back {
                    Some(why) => format!("{failure}; {why}"),
                    None => failure,
                })
            }
        },
    };
    out.send(kind);
}

/// How long a step that died with its allocation waits for hpo's own SIGTERM: longer than
/// Slurm's default KillWait (30 s), the time between SIGTERM and SIGKILL.
const ALLOCATION_ENDING_WAIT: Duration = Duration::from_secs(60);

/// Holds back the end of a Slurm job step that exited unsuccessfully while Slurm takes its
/// allocation back (requeue, preemption, time limit, scancel: the job is no longer RUNNING).
/// The step was cancelled with the job, and hpo is about to get SIGTERM and quit with the
/// experiment open, for `--resume` to launch the trial again from its checkpoint; which of
/// the two Slurm signals first is a race. Waits until a stop or pause is asked (the trial
/// ends as asked) or, should hpo live on, [`ALLOCATION_ENDING_WAIT`] has passed: then the
/// job's state, for the failure. `None` while the job runs on (see
/// [`crate::slurm::allocation_ending`]: up to 3 s later, as `squeue` may lag).
async fn hold_while_taken_back(job: &str, intent: &AtomicU8) -> Option<String> {
    let state = crate::slurm::allocation_ending(job).await?;
    log::warn!("a trial's step ended while Slurm job {job} is {state}: waiting for hpo's own SIGTERM");
    let until = Instant::now() + ALLOCATION_ENDING_WAIT;
    while Instant::now() < until && intent.load(Ordering::Acquire) == RUNNING {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(format!("Slurm job {job}, the allocation, is {state}"))
}

/// The state of one trial's stdout: its log, and the first problem found in it.
struct Supervisor {
    log: Option<tokio::io::BufWriter<tokio::fs::File>>,
    problem: Option<String>,
    pgid: Pid,
    guarded: bool,
    trial_id: TrialId,
    events: mpsc::UnboundedSender<Event>,
    clock: Instant,
}

impl Supervisor {
    fn send(&self, kind: EventKind) {
        let _ = self.events.send(Event { time: self.clock.elapsed().as_secs_f64(), trial_id: self.trial_id, kind });
    }

    /// The trial fails (the first reason wins) and its group is killed.
    fn fail(&mut self, reason: String) {
        if self.problem.is_none() {
            self.problem = Some(reason);
            kill_trial(self.pgid, self.guarded);
        }
    }

    /// One stdout line: a report, a malformed metrics line (the trial fails), or a line for
    /// the log (bytes that are not UTF-8 are logged lossily).
    async fn line(&mut self, raw: &[u8]) {
        match metrics_line(raw) {
            Some(Ok(metrics)) if self.problem.is_none() => self.send(EventKind::Report(metrics)),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                log_line(&mut self.log, format!("hpo: {e}").as_bytes()).await;
                self.fail(e.to_string());
            }
            None => log_line(&mut self.log, raw).await,
        }
    }
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

/// Reads the rest of the next line of `reader` into `buf` (bytes, newline included; at most
/// [`MAX_LINE`] of them); `false` at the end. Cancel-safe: a read cut short by `select!`
/// leaves its bytes in `buf` and the next call goes on, so the caller clears `buf` only after
/// handling a line. Pending forever once the stream is gone (so `select!` waits for exit).
async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut Option<R>, buf: &mut Vec<u8>) -> bool {
    match reader {
        Some(r) => {
            let room = MAX_LINE.saturating_sub(buf.len()).max(1) as u64;
            match (&mut *r).take(room).read_until(b'\n', buf).await {
                Ok(0) | Err(_) => !buf.is_empty(), // the end: a last line without a newline
                Ok(_) => true,
            }
        }
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

/// Appends one line to a log, adding the newline if it has none.
async fn log_line(log: &mut Option<tokio::io::BufWriter<tokio::fs::File>>, line: &[u8]) {
    if let Some(log) = log {
        let _ = log.write_all(line).await;
        if !line.ends_with(b"\n") {
            let _ = log.write_all(b"\n").await;
        }
    }
}

/// Copies stderr to its log and returns its last lines.
async fn copy_stderr(stderr: Option<tokio::process::ChildStderr>, path: PathBuf) -> VecDeque<String> {
    let mut tail = VecDeque::new();
    let Some(stderr) = stderr else { return tail };
    let mut log = open_log(&path).await;
    let mut reader = Some(BufReader::new(stderr));
    let mut buf = Vec::new();
    while next_line(&mut reader, &mut buf).await {
        log_line(&mut log, &buf).await;
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        let line = String::from_utf8_lossy(&buf);
        tail.push_back(line.trim_end().chars().take(STDERR_TAIL_LINE).collect());
        buf.clear();
    }
    if let Some(log) = &mut log {
        let _ = log.flush().await;
    }
    tail
}
