//! The Slurm backend: trials as Slurm jobs (`sbatch`), or, inside an allocation, as job
//! steps (`srun`), with the same training scripts and trial protocol as the process backend.
//!
//! Jobs: each launch writes `trials/<id>/job-<n>.sh`, which runs the command with the config
//! as argv read from a NUL-separated file (no value is ever seen by a shell), and submits it.
//! New lines of each job's output file are read as they appear (metrics lines become reports)
//! and an exit-status marker tells when a job ended; every poll interval one `squeue` call
//! reads the states of all jobs. Stop and pause send SIGTERM
//! (`scancel --full --signal=TERM`), then cancel after the grace period. A job that Slurm
//! preempts or requeues, or warns of its time limit (USR1 to the job script, which passes
//! SIGTERM on to the command), is a preempted trial (hpo launches it again, from its
//! checkpoint, as a new job; a requeued job is cancelled rather than left to rerun from the
//! start); one that ends any other way than completing (cancelled by hand, node failure, a
//! time limit reached all the same) is a failed trial with Slurm's state and reason. Each launch's job id is kept in
//! `trials/<id>/job-<launch>.id`, so that `hpo resume` reattaches to the jobs a killed
//! driver left running instead of submitting them again.
//!
//! Steps: the process backend with `srun` before the command. A step that fails while Slurm
//! takes the allocation back is held back, not recorded as failed (see
//! `process::hold_while_taken_back`): hpo's own SIGTERM follows and leaves the trial to `--resume`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hpo_core::{Backend, BackendError, Decision, Event, EventKind, TrialId, TrialStart, async_trait};
use serde::Deserialize;

use crate::checkpoint::prepare_checkpoint_dir;
use crate::process::{MAX_LINE, ProcessBackend, ProcessSpec, metrics_line, trial_args};

/// `[backend] type = "slurm"` in an experiment file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSpec {
    /// The program and its fixed arguments, run in each job or step.
    pub command: Vec<String>,
    /// The Slurm partition (default: the cluster's).
    #[serde(default)]
    pub partition: Option<String>,
    /// Slurm's time limit per trial job, e.g. "2:00:00".
    #[serde(default)]
    pub time_limit: Option<String>,
    /// How long before its `time_limit` a trial job is warned (`--signal=B:USR1@...`; Slurm
    /// may warn up to a minute earlier): the command gets SIGTERM to save a checkpoint, and
    /// the trial counts as preempted and goes on as a new job.
    #[serde(default = "default_warning", with = "hpo_core::duration_text")]
    pub time_limit_warning: Duration,
    /// CPUs per trial (`--cpus-per-task`).
    #[serde(default)]
    pub cpus_per_trial: Option<u32>,
    /// GPUs per trial (`--gpus`).
    #[serde(default)]
    pub gpus_per_trial: u32,
    /// More `sbatch`/`srun` options, e.g. `["--account=myproj"]`.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// `"auto"` (steps inside an allocation, jobs otherwise), `"jobs"` or `"steps"`.
    #[serde(default = "auto")]
    pub mode: String,
    /// How often `squeue` is asked about running jobs.
    #[serde(default = "default_poll", with = "hpo_core::duration_text")]
    pub poll_interval: Duration,
    /// Time between SIGTERM and the final `scancel` of a stopped trial.
    #[serde(default = "default_grace", with = "hpo_core::duration_text")]
    pub grace_period: Duration,
    /// Extra environment variables for every trial.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The trials' working directory (relative to the experiment file).
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// Pass `--st_checkpoint_dir <dir>` to the command.
    #[serde(default = "yes")]
    pub checkpointing: bool,
    /// Pass the config as one `--config <json>` argument.
    #[serde(default)]
    pub config_as_json: bool,
}

fn auto() -> String {
    "auto".into()
}
fn yes() -> bool {
    true
}
fn default_poll() -> Duration {
    Duration::from_secs(1)
}
fn default_grace() -> Duration {
    Duration::from_secs(5)
}
fn default_warning() -> Duration {
    Duration::from_secs(120)
}

/// A Slurm time (`--time`): minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS; `None`
/// for no limit ("INFINITE", "UNLIMITED").
fn slurm_time(text: &str) -> Result<Option<Duration>, String> {
    let bad = || {
        format!("`time_limit` = {text:?} is not a Slurm time (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)")
    };
    if matches!(text.trim(), "INFINITE" | "UNLIMITED" | "infinite" | "unlimited") {
        return Ok(None);
    }
    let (days, clock) = match text.trim().split_once('-') {
        Some((d, rest)) => (Some(d.parse::<u64>().map_err(|_| bad())?), rest),
        None => (None, text.trim()),
    };
    let parts: Vec<u64> = clock.split(':').map(|p| p.parse::<u64>().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let seconds = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => (h * 60 + m) * 60 + s,
        (Some(d), [h]) => (d * 24 + h) * 3600,
        (Some(d), [h, m]) => ((d * 24 + h) * 60 + m) * 60,
        (Some(d), [h, m, s]) => ((d * 24 + h) * 60 + m) * 60 + s,
        _ => return Err(bad()),
    };
    Ok(Some(Duration::from_secs(seconds)))
}

impl SlurmSpec {
    /// The options both `sbatch` and `srun` take.
    fn resource_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(p) = &self.partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(t) = &self.time_limit {
            args.push(format!("--time={t}"));
        }
        if let Some(c) = self.cpus_per_trial {
            args.push(format!("--cpus-per-task={c}"));
        }
        if self.gpus_per_trial > 0 {
            args.push(format!("--gpus={}", self.gpus_per_trial));
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// The same trials as a process spec (for job steps and argv).
    fn process_spec(&self, command: Vec<String>) -> ProcessSpec {
        ProcessSpec {
            command,
            workdir: self.workdir.clone(),
            env: self.env.clone(),
            checkpointing: self.checkpointing,
            config_as_json: self.config_as_json,
            grace_period: self.grace_period,
            timeout: None,
            gpus_per_trial: 0,
            gpus: None,
        }
    }
}

/// The backend for a `[backend] type = "slurm"` table: job steps inside an allocation,
/// jobs otherwise (or as `mode` says).
pub fn slurm_backend(spec: SlurmSpec, workers: usize, trials_dir: PathBuf) -> Result<Box<dyn Backend>, crate::Error> {
    let in_allocation = std::env::var_os("SLURM_JOB_ID").is_some();
    let steps = match spec.mode.as_str() {
        "auto" => in_allocation,
        "steps" if in_allocation => true,
        "steps" => {
            return Err(crate::Error::Setting(
                "mode = \"steps\" needs an allocation (run hpo inside salloc or sbatch)".into(),
            ));
        }
        "jobs" => false,
        other => {
            return Err(crate::Error::Setting(format!("mode must be \"auto\", \"jobs\" or \"steps\", got {other:?}")));
        }
    };
    let tool = if steps { "srun" } else { "sbatch" };
    if Command::new(tool).arg("--version").output().is_err() {
        return Err(crate::Error::Setting(format!("`{tool}` was not found: is this a Slurm login node?")));
    }
    if steps {
        // A job step per trial: srun forwards SIGTERM to the step; the rest is the process backend.
        let mut command: Vec<String> =
            vec!["srun".into(), "--ntasks=1".into(), "--nodes=1".into(), "--exclusive".into(), "--quiet".into()];
        command.extend(spec.resource_args());
        command.extend(spec.command.iter().cloned());
        let backend = ProcessBackend::new(spec.process_spec(command), workers, trials_dir)?;
        return Ok(Box::new(match std::env::var("SLURM_JOB_ID") {
            Ok(job) => backend.steps_of(job),
            Err(_) => backend,
        }));
    }
    let program = spec.command.first().ok_or_else(|| crate::Error::Setting("`command` is empty".into()))?;
    let workdir = spec.workdir.clone().unwrap_or_else(|| PathBuf::from("."));
    let workdir = std::path::absolute(&workdir).unwrap_or(workdir);
    if !program.contains('/') && which(program).is_none() {
        return Err(crate::Error::Setting(format!("the command `{program}` was not found on PATH")));
    }
    let trials_dir = std::path::absolute(&trials_dir).unwrap_or(trials_dir);
    let warning = spec.time_limit.as_deref().map(slurm_time).transpose().map_err(crate::Error::Setting)?.flatten();
    let warning = match warning {
        Some(limit) if limit <= spec.time_limit_warning => {
            return Err(crate::Error::Setting(format!(
                "`time_limit` ({} s) must be longer than `time_limit_warning` ({} s), the time a trial job \
                 is given to save a checkpoint before its limit",
                limit.as_secs(),
                spec.time_limit_warning.as_secs()
            )));
        }
        Some(_) => Some(spec.time_limit_warning),
        None => None,
    };
    Ok(Box::new(SlurmJobs {
        spec,
        warning,
        workdir,
        trials_dir,
        jobs: HashMap::new(),
        pending: VecDeque::new(),
        clock: Instant::now(),
        last_queue_poll: Instant::now(),
    }))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(program)).find(|p| p.is_file())
}

struct Job {
    trial_id: TrialId,
    output: PathBuf,
    stderr: PathBuf,
    /// Written by the job script with the command's exit status when it ends.
    exit: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// Stop or pause, when hpo asked for it.
    intent: Option<Decision>,
    /// A malformed metrics line: the job is cancelled and the trial fails.
    malformed: Option<String>,
    /// Seen running (so back to pending means requeued).
    ran: bool,
}

/// Trials as Slurm batch jobs.
struct SlurmJobs {
    spec: SlurmSpec,
    /// Before the time limit, if there is one: the job's warning (`--signal`).
    warning: Option<Duration>,
    workdir: PathBuf,
    trials_dir: PathBuf,
    /// Running jobs by Slurm job id.
    jobs: HashMap<String, Job>,
    pending: VecDeque<Event>,
    clock: Instant,
    last_queue_poll: Instant,
}

/// How often job output and exit markers are looked at (cheap: files on the shared file
/// system); `squeue` is asked only every `poll_interval`.
const FILE_POLL: Duration = Duration::from_millis(20);

/// Runs the command of a job script and sets `status`. The command runs in the background
/// so that the shell takes the time limit's warning (USR1) at once: the command gets
/// SIGTERM, and a command that then exits other than successfully was preempted.
const JOB_BODY: &str = r#"trap 'warned=1; kill -TERM "$child" 2>/dev/null' USR1
"${args[@]}" &
child=$!
while ! wait "$child" && kill -0 "$child" 2>/dev/null; do :; done
wait "$child"
status=$?
if [ -n "${warned:-}" ] && [ "$status" != 0 ]; then status=preempted; fi
"#;

/// Quotes a string for a `#SBATCH` line or the script (single quotes, no interpolation).
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl SlurmJobs {
    fn event(&self, trial_id: TrialId, kind: EventKind) -> Event {
        Event { time: self.clock.elapsed().as_secs_f64(), trial_id, kind }
    }

    async fn submit(&mut self, trial: &TrialStart) -> Result<String, String> {
        let dir = self.trials_dir.join(trial.trial_id.to_string());
        let checkpoints = dir.join("checkpoints");
        let donor = trial.checkpoint_from.map(|from| self.trials_dir.join(from.to_string()).join("checkpoints"));
        prepare_checkpoint_dir(&checkpoints, donor.as_deref())?;
        // A resumed trial is a new job in the same folder, numbered by its launch.
        let n = trial.launch;
        let spec = self.spec.process_spec(self.spec.command.clone());
        let mut argv = vec![self.spec.command[0].clone()];
        argv.extend(trial_args(&spec, &trial.config, &checkpoints));
        // The argv travels as NUL-separated bytes: no shell ever interprets a value.
        let argv_file = self.launch_file(trial.trial_id, n, "argv");
        let config_file = self.launch_file(trial.trial_id, n, "config.json");
        let write =
            |path: &Path, bytes: &[u8]| std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()));
        let mut bytes = Vec::new();
        for a in &argv {
            bytes.extend_from_slice(a.as_bytes());
            bytes.push(0);
        }
        write(&argv_file, &bytes)?;
        write(&config_file, trial.config.to_string().as_bytes())?;
        let output = self.launch_file(trial.trial_id, n, "out");
        let stderr = dir.join("stderr.log");
        let mut script = String::from("#!/bin/bash\n");
        script.push_str(&format!("#SBATCH --job-name=hpo-trial-{}\n", trial.trial_id));
        script.push_str(&format!("#SBATCH --output={}\n", output.display()));
        script.push_str(&format!("#SBATCH --error={}\n#SBATCH --open-mode=append\n", stderr.display()));
        if let Some(warning) = self.warning {
            script.push_str(&format!("#SBATCH --signal=B:USR1@{}\n", warning.as_secs().max(1)));
        }
        script.push_str(&format!("cd {}\n", quote(&self.workdir.display().to_string())));
        script.push_str(&format!("export HPO_TRIAL_ID={}\n", trial.trial_id));
        script.push_str(&format!("export HPO_CHECKPOINT_DIR={}\n", quote(&checkpoints.display().to_string())));
        script.push_str(&format!("export HPO_CONFIG=\"$(cat {})\"\n", quote(&config_file.display().to_string())));
        for (k, v) in &self.spec.env {
            script.push_str(&format!("export {k}={}\n", quote(v)));
        }
        script.push_str(&format!("mapfile -d '' -t args < {}\n", quote(&argv_file.display().to_string())));
        // The exit status lands in a marker file, which hpo sees sooner than squeue tells;
        // `preempted` if the time limit's warning (USR1) made the command save and quit.
        let exit_file = self.launch_file(trial.trial_id, n, "exit");
        script.push_str(JOB_BODY);
        script.push_str(&format!("echo \"$status\" > {}\n", quote(&exit_file.display().to_string())));
        let script_file = self.launch_file(trial.trial_id, n, "sh");
        write(&script_file, script.as_bytes())?;
        let out = tokio::process::Command::new("sbatch")
            .arg("--parsable")
            .args(self.spec.resource_args())
            .arg(&script_file)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("sbatch: {e}"))?;
        if !out.status.success() {
            return Err(format!("sbatch failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let job_id = String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap_or_default().to_owned();
        // Where a later `hpo resume` finds the job again.
        write(&self.launch_file(trial.trial_id, n, "id"), job_id.as_bytes())?;
        self.follow(job_id.clone(), trial.trial_id, n);
        Ok(job_id)
    }

    /// A file of launch `n` of a trial: `trials/<id>/job-<n>.<ext>`.
    fn launch_file(&self, trial_id: TrialId, n: u32, ext: &str) -> PathBuf {
        self.trials_dir.join(trial_id.to_string()).join(format!("job-{n}.{ext}"))
    }

    /// Follows the job of launch `n` of a trial: its output, its exit marker, its state.
    fn follow(&mut self, job_id: String, trial_id: TrialId, n: u32) {
        let dir = self.trials_dir.join(trial_id.to_string());
        let job = Job {
            trial_id,
            output: self.launch_file(trial_id, n, "out"),
            stderr: dir.join("stderr.log"),
            exit: self.launch_file(trial_id, n, "exit"),
            offset: 0,
            partial: Vec::new(),
            intent: None,
            malformed: None,
            ran: false,
        };
        self.jobs.insert(job_id, job);
    }

    /// The job a run of hpo that died submitted for this launch, if it did: the trial is
    /// followed again from it (still queued or running, or ended meanwhile: its output and
    /// exit marker tell, and a job gone without a marker is a failure with Slurm's state),
    /// never submitted twice (a job submitted just before the driver died, its id not yet
    /// kept, is found in `squeue` by its script). Its output is read from the start: reports
    /// the journal holds already are not counted again by the tuner.
    fn reattach(&mut self, trial: &TrialStart) -> bool {
        let n = trial.launch;
        let id_file = self.launch_file(trial.trial_id, n, "id");
        let recorded = std::fs::read_to_string(&id_file).map(|id| id.trim().to_owned());
        let job_id = match recorded.ok().filter(|id| !id.is_empty()) {
            Some(id) => id,
            None => match submitted(&self.launch_file(trial.trial_id, n, "sh")) {
                Some(id) => {
                    let _ = std::fs::write(&id_file, &id);
                    id
                }
                None => return false,
            },
        };
        self.follow(job_id, trial.trial_id, n);
        true
    }

    /// Reads what a job wrote since the last poll; metrics lines become reports.
    fn read_output(&mut self, job_id: &str) {
        let Some(job) = self.jobs.get_mut(job_id) else { return };
        let Ok(mut file) = std::fs::File::open(&job.output) else { return };
        if file.seek(SeekFrom::Start(job.offset)).is_err() {
            return;
        }
        // Bytes, not text: a line that is not UTF-8 must not stop the reading.
        if let Ok(n) = file.read_to_end(&mut job.partial) {
            job.offset += n as u64;
        }
        let trial_id = job.trial_id;
        let mut reports = Vec::new();
        // A line longer than MAX_LINE is taken as it is, so memory stays bounded.
        while let Some(end) =
            job.partial.iter().position(|&b| b == b'\n').or((job.partial.len() >= MAX_LINE).then_some(MAX_LINE - 1))
            && job.malformed.is_none()
        {
            let line: Vec<u8> = job.partial.drain(..=end).collect();
            match metrics_line(&line) {
                Some(Ok(metrics)) => reports.push(metrics),
                Some(Err(e)) => {
                    // The trial fails here: its job goes, and the next poll ends it.
                    let _ = tokio::process::Command::new("scancel").arg(job_id).spawn();
                    job.malformed = Some(e.to_string());
                }
                None => {}
            }
        }
        for metrics in reports {
            let event = self.event(trial_id, EventKind::Report(metrics));
            self.pending.push_back(event);
        }
    }

    /// A quick look at the shared file system: new output of every job, and the jobs whose
    /// exit marker appeared.
    async fn poll_files(&mut self) {
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        for id in ids {
            self.read_output(&id);
            if let Some(problem) = self.jobs.get_mut(&id).and_then(|job| job.malformed.take()) {
                self.finish(&id, EventKind::Failed(problem));
                continue;
            }
            let Some(job) = self.jobs.get(&id) else { continue };
            let Ok(status) = std::fs::read_to_string(&job.exit) else { continue };
            if status.trim() == "preempted" {
                self.finish(&id, EventKind::Preempted);
                continue;
            }
            let Ok(code) = status.trim().parse::<i32>() else { continue }; // still being written
            let kind = if code == 0 {
                EventKind::Completed
            } else {
                // Slurm may have ended the job (scancel, time limit, preemption), and the
                // command's exit status may reach us before squeue's state does: say both,
                // so the outcome reads the same whichever comes first.
                match job_state(&id).await {
                    Some((state, _)) if preempted(&state) => EventKind::Preempted,
                    Some((state, why)) if !matches!(state.as_str(), "RUNNING" | "COMPLETING" | "COMPLETED") => {
                        EventKind::Failed(format!(
                            "the trial exited with status {code}; Slurm job {id} ended {state}{why}"
                        ))
                    }
                    _ => EventKind::Failed(format!("the trial exited with status {code}")),
                }
            };
            self.finish(&id, kind);
        }
    }

    /// One `squeue` for all running jobs: jobs that ended without an exit marker (cancelled,
    /// node failure, time limit, preemption) are failed trials with Slurm's state and reason.
    async fn poll_queue(&mut self) -> Result<(), BackendError> {
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let out = tokio::process::Command::new("squeue")
            .args(["-h", "-t", "all", "-o", "%i|%T|%r", "-j", &ids.join(",")])
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| BackendError(format!("squeue: {e}")))?;
        let states: HashMap<String, (String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut parts = l.split('|');
                Some((parts.next()?.to_owned(), (parts.next()?.to_owned(), parts.next().unwrap_or("").to_owned())))
            })
            .collect();
        self.poll_files().await; // an exit marker written meanwhile wins over the queue's view
        for id in ids {
            if !self.jobs.contains_key(&id) {
                continue;
            }
            let (state, reason) =
                states.get(&id).cloned().unwrap_or_else(|| ("VANISHED".into(), "no longer in squeue".into()));
            let ran = self.jobs.get_mut(&id).map(|job| {
                job.ran |= matches!(state.as_str(), "RUNNING" | "COMPLETING") || job.offset > 0;
                job.ran
            });
            if preempted(&state) || (state == "PENDING" && ran == Some(true)) {
                // Requeued by Slurm (it would run again from the start, after a delay): the
                // trial is launched anew by hpo instead, from its checkpoint, as a new job.
                let _ = tokio::process::Command::new("scancel").arg(&id).output().await;
                self.finish(&id, EventKind::Preempted);
                continue;
            }
            if matches!(state.as_str(), "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "RESIZING")
            {
                continue;
            }
            let why = reason_text(&reason);
            let kind = if state == "COMPLETED" {
                EventKind::Completed
            } else {
                EventKind::Failed(format!("Slurm job {id} ended {state}{why}; the command wrote no exit status"))
            };
            self.finish(&id, kind);
        }
        Ok(())
    }

    /// Ends a job's trial: what hpo asked for wins; a failure gets the tail of stderr.
    fn finish(&mut self, id: &str, kind: EventKind) {
        self.read_output(id);
        let Some(job) = self.jobs.remove(id) else { return };
        let kind = match (job.intent, kind) {
            (Some(Decision::Pause), _) => EventKind::Paused,
            (Some(_), _) => EventKind::Stopped,
            (None, EventKind::Failed(mut message)) => {
                let text = std::fs::read_to_string(&job.stderr).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
                if !tail.is_empty() {
                    message.push_str(&format!("; last lines of stderr:\n{}", tail.join("\n")));
                }
                EventKind::Failed(message)
            }
            (None, kind) => kind,
        };
        let event = self.event(job.trial_id, kind);
        self.pending.push_back(event);
    }

    fn job_of(&self, trial_id: TrialId) -> Option<String> {
        self.jobs.iter().find(|(_, j)| j.trial_id == trial_id).map(|(id, _)| id.clone())
    }
}

#[async_trait]
impl Backend for SlurmJobs {
    async fn start(&mut self, trial: TrialStart) -> Result<(), BackendError> {
        if trial.relaunch && self.reattach(&trial) {
            return Ok(());
        }
        if let Err(e) = self.submit(&trial).await {
            let event = self.event(trial.trial_id, EventKind::Failed(e));
            self.pending.push_back(event);
        }
        Ok(())
    }

    async fn decide(&mut self, trial_id: TrialId, decision: Decision) -> Result<(), BackendError> {
        if decision == Decision::Continue {
            return Ok(());
        }
        let Some(id) = self.job_of(trial_id) else { return Ok(()) };
        if let Some(job) = self.jobs.get_mut(&id) {
            if job.intent.is_some() {
                return Ok(());
            }
            job.intent = Some(decision);
        }
        let _ = tokio::process::Command::new("scancel").args(["--full", "--signal=TERM", &id]).output().await;
        let grace = self.spec.grace_period;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = tokio::process::Command::new("scancel").arg(&id).output().await;
        });
        Ok(())
    }

    async fn next_events(&mut self, out: &mut Vec<Event>) -> Result<(), BackendError> {
        loop {
            if !self.pending.is_empty() {
                out.extend(self.pending.drain(..));
                return Ok(());
            }
            if self.jobs.is_empty() {
                return Err(BackendError("no Slurm job is running".into()));
            }
            tokio::time::sleep(FILE_POLL).await;
            if self.last_queue_poll.elapsed() >= self.spec.poll_interval {
                self.last_queue_poll = Instant::now();
                self.poll_queue().await?;
            } else {
                self.poll_files().await;
            }
        }
    }

    fn now(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    fn checkpoint_dir(&self, trial_id: TrialId) -> Option<PathBuf> {
        Some(self.trials_dir.join(trial_id.to_string()).join("checkpoints"))
    }
}

impl Drop for SlurmJobs {
    /// Cancels every job this backend started and that still runs.
    fn drop(&mut self) {
        let ids: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
        if !ids.is_empty() {
            let _ = Command::new("scancel").args(&ids).output();
        }
    }
}

/// The job Slurm knows for this job script, if a driver that died submitted it but did not
/// live to keep its id (the script is a launch's own: `trials/<id>/job-<n>.sh`).
fn submitted(script: &Path) -> Option<String> {
    if !script.exists() {
        return None;
    }
    let out = Command::new("squeue").args(["-h", "-t", "all", "-o", "%i|%o"]).output().ok()?;
    let script = script.display().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.split_once('|').filter(|(_, command)| *command == script).map(|(id, _)| id.to_owned()))
}

/// Slurm's state of one job and its reason as text (`" (reason)"` or nothing).
async fn job_state(id: &str) -> Option<(String, String)> {
    let squeue = tokio::process::Command::new("squeue").args(["-h", "-t", "all", "-o", "%T|%r", "-j", id]).output();
    let out = squeue.await.ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (state, reason) = text.lines().next()?.split_once('|')?;
    Some((state.to_owned(), reason_text(reason)))
}

/// Slurm's state of job `job` if Slurm is taking it back (anything but RUNNING: COMPLETING
/// after a requeue, CANCELLED, TIMEOUT, PREEMPTED, ...); `None` while it runs on, or when
/// `squeue` cannot say. A job that shows RUNNING is looked at again for up to
/// [`ALLOCATION_STATE_LAG`]: Slurm cancels a job's steps before `squeue` shows the job leave
/// RUNNING (a step cancelled "due to job requeue" found the job RUNNING and was recorded as
/// a failed trial).
pub(crate) async fn allocation_ending(job: &str) -> Option<String> {
    let until = Instant::now() + ALLOCATION_STATE_LAG;
    loop {
        let (state, _) = job_state(job).await?;
        if state != "RUNNING" {
            return Some(state);
        }
        if Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long a job may still show RUNNING after Slurm began to take it back: a genuine
/// failure of a step is recorded this much later.
const ALLOCATION_STATE_LAG: Duration = Duration::from_secs(3);

/// Whether a Slurm job state means the cluster took the job's resources back.
fn preempted(state: &str) -> bool {
    matches!(state, "PREEMPTED" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED")
}

fn reason_text(reason: &str) -> String {
    if reason.is_empty() || reason == "None" { String::new() } else { format!(" ({reason})") }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slurm_times_read_as_slurm_reads_them() {
        let secs = |t| slurm_time(t).unwrap().map(|d| d.as_secs());
        assert_eq!(secs("90"), Some(5400)); // minutes
        assert_eq!(secs("5:30"), Some(330));
        assert_eq!(secs("2:00:00"), Some(7200));
        assert_eq!(secs("1-12"), Some(129_600));
        assert_eq!(secs("1-00:30"), Some(88_200));
        assert_eq!(secs("1-00:00:05"), Some(86_405));
        assert_eq!(secs("UNLIMITED"), None);
        for bad in ["", "1h", "1:2:3:4", "-5", "1-2-3"] {
            assert!(slurm_time(bad).is_err(), "{bad:?}");
        }
    }

    /// The job script's body in bash with `args` (a command that touches `$READY` once it
    /// takes SIGTERM), sent a USR1 once ready if `warn`: the status it writes.
    fn job_status(args: &str, warn: bool) -> String {
        let ready = std::env::temp_dir().join(format!("hpo-job-body-{}-{warn}", std::process::id()));
        let _ = std::fs::remove_file(&ready);
        let script = format!("args=({args})\n{JOB_BODY}echo \"$status\"\n");
        let child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("READY", &ready)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if warn {
            while !ready.exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
            Command::new("kill").args(["-USR1", &child.id().to_string()]).status().unwrap();
        }
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn the_job_script_writes_the_status_or_preempted_after_the_warning() {
        assert_eq!(job_status("bash -c 'exit 7'", false), "7");
        assert_eq!(job_status("true", false), "0");
        let saving = |status| format!("bash -c 'sleep 30 & trap \"kill $!; exit {status}\" TERM; touch $READY; wait'");
        // Saves on SIGTERM and quits: preempted, whatever its status.
        assert_eq!(job_status(&saving(143), true), "preempted");
        // Finishes its work successfully even so: completed.
        assert_eq!(job_status(&saving(0), true), "0");
    }
}
