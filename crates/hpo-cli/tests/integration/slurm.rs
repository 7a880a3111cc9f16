#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! The Slurm backend on a real (single-node) Slurm cluster, brought up by
//! `scripts/slurm-cluster.sh up`. Without Slurm these tests say "skipped: no Slurm"; with
//! `HPO_REQUIRE_SLURM=1` (as CI sets it) a missing cluster fails them instead.

use crate::common;

use common::{journal, repo, text};

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The cluster has 2 CPUs: one test at a time.
static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster, to oneself, if it is up (see [`slurm_available`]).
fn cluster() -> Option<std::sync::MutexGuard<'static, ()>> {
    let guard = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    slurm_available().then_some(guard)
}

fn slurm_available() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).lines().any(|l| !l.contains("down")));
    common::available("a Slurm cluster (scripts/slurm-cluster.sh up)", up, "HPO_REQUIRE_SLURM")
}

fn count(entries: &[Value], event: &str) -> usize {
    entries.iter().filter(|e| e["event"] == event).count()
}

/// `squeue` now: one line per job, `id name STATE`.
fn squeue() -> String {
    String::from_utf8(Command::new("squeue").args(["-h", "-o", "%i %j %T"]).output().unwrap().stdout).unwrap()
}

/// Jobs still pending or running, once Slurm has had time to clear the ones that ended: a
/// job whose command has written its exit marker still shows as RUNNING, then COMPLETING,
/// until slurmd reports it (seconds on a loaded machine). A job left behind stays for good.
fn queue() -> String {
    let start = Instant::now();
    loop {
        let q = squeue();
        if q.is_empty() || start.elapsed() > Duration::from_secs(20) {
            return q;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The checkpointing script, `seconds` an epoch, writing which Slurm job and step ran it.
fn script(seconds: f64, extra: &str) -> String {
    let env = "with open(\"env-\" + os.environ[\"HPO_TRIAL_ID\"], \"w\") as f:\n    \
               f.write(os.environ.get(\"SLURM_JOB_ID\", \"\") + \" \" + os.environ.get(\"SLURM_STEP_ID\", \"\"))";
    common::checkpointing_script(seconds, &format!("{env}\n{extra}"))
}

fn setup(script: &str, scheduler: &str, stop: &str, workers: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.py"), script).unwrap();
    let experiment = format!(
        "name = \"s\"\nmetric = \"loss\"\nresource_attr = \"epoch\"\nmax_resource_attr = \"epochs\"\nworkers = {workers}\n[space]\nepochs = 9\nx = {{ uniform = [0, 1] }}\n[scheduler]\n{scheduler}\n[backend]\ntype = \"slurm\"\ncommand = [\"python3\", \"train.py\"]\ncpus_per_trial = 1\npoll_interval = \"200ms\"\ngrace_period = \"1s\"\n[stop]\n{stop}\n"
    );
    std::fs::write(dir.path().join("e.toml"), experiment).unwrap();
    dir
}

/// FIFO over trials that take 0.25 s an epoch (time to act while they run), with more
/// lines for the `[backend]` table.
fn slow_fifo(max_trials: u32, workers: u32, backend: &str) -> tempfile::TempDir {
    let slow = script(0.25, "");
    let dir = setup(&slow, "type = \"fifo\"", &format!("max_trials = {max_trials}"), workers);
    let experiment = std::fs::read_to_string(dir.path().join("e.toml")).unwrap();
    let experiment = experiment.replace("cpus_per_trial = 1", &format!("cpus_per_trial = 1\n{backend}"));
    std::fs::write(dir.path().join("e.toml"), experiment).unwrap();
    dir
}

/// `hpo run e.toml` in `dir`, running on.
fn spawn_run(dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_hpo"))
        .args(["run", "e.toml", "-q"])
        .current_dir(dir)
        .env_remove("SLURM_JOB_ID")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn hpo(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hpo")).args(args).current_dir(cwd).env_remove("SLURM_JOB_ID").output().unwrap()
}

#[test]
fn asha_runs_end_to_end_through_slurm_jobs() {
    let Some(_cluster) = cluster() else { return };
    let dir = setup(&script(0.05, ""), "type = \"asha\"\nvariant = \"promotion\"", "max_trials = 6", 2);
    let out = hpo(&["run", "e.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/s"));
    assert_eq!(count(&entries, "start"), 6);
    assert!(count(&entries, "resume") > 0, "promoted trials are resumed as new jobs");
    let env = std::fs::read_to_string(dir.path().join("env-0")).unwrap();
    assert!(!env.split(' ').next().unwrap().is_empty(), "trial 0 ran as a Slurm job: {env:?}");
    assert!(dir.path().join("runs/s/trials/0/job-1.sh").exists());
    assert_eq!(queue(), "", "no job is left in the queue");
}

#[test]
fn inside_an_allocation_trials_are_job_steps() {
    let Some(_cluster) = cluster() else { return };
    let dir = setup(&script(0.05, ""), "type = \"asha\"", "max_trials = 6", 2);
    let out = Command::new("salloc")
        .args(["-n", "2", "--quiet", env!("CARGO_BIN_EXE_hpo"), "run", "e.toml", "-q"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/s"));
    assert_eq!(count(&entries, "start"), 6);
    let env = std::fs::read_to_string(dir.path().join("env-0")).unwrap();
    let step = env.split(' ').nth(1).unwrap_or_default();
    assert!(!step.is_empty(), "trial 0 ran as a job step: {env:?}");
    assert_eq!(queue(), "");
}

#[test]
fn a_stopped_trial_is_gone_from_the_queue_and_the_machine() {
    let Some(_cluster) = cluster() else { return };
    let forever = "import subprocess\nsubprocess.Popen(['sleep', '4141.5'])\nwhile True:\n    report(epoch=1, loss=1.0)\n    time.sleep(0.1)";
    let dir = setup(&script(0.05, forever), "type = \"fifo\"", "max_wallclock = \"4s\"", 1);
    let out = hpo(&["run", "e.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/s"));
    assert_eq!(count(&entries, "stopped"), 1, "{entries:?}");
    assert_eq!(queue(), "", "the stopped job is gone from squeue");
    // Slurm kills what is left of a job's processes as it clears the job: allow it seconds.
    let start = Instant::now();
    let left = loop {
        let left = Command::new("pgrep").args(["-f", "sleep 4141.5"]).output().unwrap().stdout;
        if left.is_empty() || start.elapsed() > Duration::from_secs(10) {
            break left;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(left.is_empty(), "the trial's processes are gone");
}

#[test]
fn a_job_cancelled_by_hand_is_a_failed_trial_and_the_experiment_goes_on() {
    let Some(_cluster) = cluster() else { return };
    let slow_first = "if os.environ['HPO_TRIAL_ID'] == '0':\n    time.sleep(60)";
    let dir = setup(&script(0.05, slow_first), "type = \"fifo\"", "max_trials = 3", 1);
    let child = spawn_run(dir.path());
    let start = Instant::now();
    let job = loop {
        let q = squeue();
        if let Some(line) = q.lines().find(|l| l.contains("hpo-trial-0") && l.contains("RUNNING")) {
            break line.split(' ').next().unwrap().to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "trial 0 never ran: {q}");
        std::thread::sleep(Duration::from_millis(100));
    };
    Command::new("scancel").arg(&job).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/s"));
    let fail = entries.iter().find(|e| e["event"] == "fail").unwrap();
    assert_eq!(fail["trial"], 0);
    assert!(fail["error"].as_str().unwrap().contains(&format!("Slurm job {job} ended CANCELLED")), "{fail}");
    assert_eq!(count(&entries, "complete"), 2, "the experiment went on");
    assert_eq!(queue(), "");
}

/// The driver killed (`kill -9`) while its jobs run, then resumed: it follows the same jobs
/// again (their output from where the journal left off, their exit markers), submits only
/// the trials never submitted, and every trial is accounted for once.
#[test]
fn a_resumed_driver_reattaches_to_the_jobs_it_submitted() {
    let Some(_cluster) = cluster() else { return };
    let dir = slow_fifo(4, 2, "");
    let mut child = spawn_run(dir.path());
    let folder = dir.path().join("runs/s");
    common::wait_for_reports(&folder, Some(0), 1);
    common::wait_for_reports(&folder, Some(1), 1);
    child.kill().unwrap(); // SIGKILL: no cleanup, the jobs run on
    child.wait().unwrap();
    let job_of = |trial: u64| std::fs::read_to_string(folder.join(format!("trials/{trial}/job-1.id"))).unwrap();
    let before = [job_of(0), job_of(1)];
    assert!(squeue().contains(&format!("{} hpo-trial-0 RUNNING", before[0])), "the job runs on: {}", squeue());
    // As if the driver had died between submitting trial 1's job and keeping its id.
    std::fs::remove_file(folder.join("trials/1/job-1.id")).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let out = hpo(&["resume", "runs/s", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    crate::resume::assert_accounted(&folder, 4, "reattached");
    assert_eq!([job_of(0), job_of(1)], before, "the same jobs, followed again");
    let entries = journal(&folder);
    assert_eq!(count(&entries, "complete"), 4, "{entries:?}");
    for trial in 0..4 {
        let reports = entries.iter().filter(|e| e["event"] == "report" && e["trial"] == trial).count();
        assert_eq!(reports, 9, "trial {trial}: every epoch once");
    }
    // Slurm keeps ended jobs in view for 10 minutes: one job per trial from this folder.
    let all = Command::new("squeue").args(["-h", "-t", "all", "-o", "%i %j %Z"]).output().unwrap().stdout;
    let ours: Vec<String> = String::from_utf8(all)
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(&format!(" {}", dir.path().display())))
        .map(str::to_owned)
        .collect();
    assert_eq!(ours.len(), 4, "one job per trial, none submitted twice: {ours:?}");
    assert_eq!(queue(), "");
}

/// A trial job requeued by Slurm mid-run (as preemption does) is recorded as `preempted`,
/// not failed, and launched again from its checkpoint as a new job; the experiment finishes
/// with every trial accounted for.
#[test]
fn a_requeued_trial_job_is_preempted_and_goes_on_from_its_checkpoint() {
    let Some(_cluster) = cluster() else { return };
    let dir = slow_fifo(2, 1, "");
    let mut child = spawn_run(dir.path());
    let folder = dir.path().join("runs/s");
    common::wait_for_reports(&folder, Some(0), 2);
    let job = std::fs::read_to_string(folder.join("trials/0/job-1.id")).unwrap();
    assert!(Command::new("scontrol").args(["requeue", job.trim()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success());
    let entries = journal(&folder);
    crate::resume::assert_accounted(&folder, 2, "preempted");
    assert_eq!(count(&entries, "preempted"), 1, "{entries:?}");
    assert_eq!(count(&entries, "fail"), 0, "a preemption is no failure: {entries:?}");
    assert_eq!(count(&entries, "complete"), 2);
    let epochs: Vec<f64> = entries
        .iter()
        .filter(|e| e["event"] == "report" && e["trial"] == 0)
        .map(|e| e["metrics"]["epoch"].as_f64().unwrap())
        .collect();
    assert!(
        epochs[0] == 1.0 && epochs.last() == Some(&9.0) && epochs.len() < 10,
        "went on from its checkpoint: {epochs:?}"
    );
    assert!(folder.join("trials/0/job-2.id").exists(), "launched again as a second job");
    assert_eq!(queue(), "");
}

/// Slurm's warning before a trial job's time limit (`--signal=B:USR1@...`, sent here by
/// hand as Slurm would send it): the command gets SIGTERM, and the trial counts as
/// preempted and goes on from its checkpoint as a new job.
#[test]
fn a_trial_job_warned_of_its_time_limit_goes_on_as_a_new_job() {
    let Some(_cluster) = cluster() else { return };
    let dir = slow_fifo(1, 1, "time_limit = \"10\"");
    let mut child = spawn_run(dir.path());
    let folder = dir.path().join("runs/s");
    common::wait_for_reports(&folder, Some(0), 2);
    let script = std::fs::read_to_string(folder.join("trials/0/job-1.sh")).unwrap();
    assert!(script.contains("#SBATCH --signal=B:USR1@120"), "warned 2 minutes before its limit: {script}");
    let job = std::fs::read_to_string(folder.join("trials/0/job-1.id")).unwrap();
    let warn = Command::new("scancel").args(["--batch", "--signal=USR1", job.trim()]).status().unwrap();
    assert!(warn.success());
    assert!(child.wait().unwrap().success());
    crate::resume::assert_accounted(&folder, 1, "warned");
    let entries = journal(&folder);
    assert_eq!((count(&entries, "preempted"), count(&entries, "fail")), (1, 0), "{entries:?}");
    let epochs = count(&entries, "report");
    assert!(epochs < 10 && folder.join("trials/0/job-2.id").exists(), "went on from its checkpoint as job 2");
    assert_eq!(queue(), "");
}

/// `hpo run FILE --resume` as a requeueable batch job, with the README's job script: the
/// time limit's warning (sent by hand) requeues the job, Slurm's SIGTERM makes hpo quit
/// with the experiment open, and the job, started again, goes on with it to the end. In
/// `steps` mode (the default inside a job) the trials die with the job and are launched
/// again from their checkpoints; in `jobs` mode their jobs run on and are reattached.
fn driver_job_requeued(mode: &str) {
    let Some(_cluster) = cluster() else { return };
    let dir = slow_fifo(4, 2, &format!("mode = \"{mode}\"\nextra_args = [\"--oversubscribe\"]"));
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let job_script = readme.split("```").find(|block| block.contains("#SBATCH --requeue")).unwrap();
    let job_script = job_script.trim_start_matches("sh\n").replace("experiment.toml", "e.toml");
    std::fs::write(dir.path().join("driver.sh"), job_script).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_hpo")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new("sbatch")
        .args(["--parsable", "-n", "2", "--oversubscribe", "--open-mode=append", "-o", "driver.out", "driver.sh"])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("SLURM_JOB_ID")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let driver = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let folder = dir.path().join("runs/s");
    common::wait_for_reports(&folder, Some(0), 2);
    common::wait_for_reports(&folder, Some(1), 2);
    let jobs_before = squeue();
    let warn = Command::new("scancel").args(["--batch", "--signal=USR1", &driver]).status().unwrap();
    assert!(warn.success());
    // Requeued, the job waits (Slurm holds it back two minutes): let it start again now.
    let state = || {
        let out = Command::new("squeue").args(["-h", "-t", "all", "-o", "%T", "-j", &driver]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let start = Instant::now();
    while state() != "PENDING" {
        assert!(start.elapsed() < Duration::from_secs(30), "the driver's job was not requeued: {}", state());
        std::thread::sleep(Duration::from_millis(100));
    }
    let driver_out = std::fs::read_to_string(dir.path().join("driver.out")).unwrap_or_default();
    assert!(driver_out.contains("SIGTERM in Slurm job"), "hpo left the experiment open: {driver_out}");
    assert!(!folder.join("journal.jsonl").exists() || !journal(&folder).iter().any(|e| e["event"] == "end"));
    let go = Command::new("scontrol").args(["update", &format!("JobId={driver}"), "StartTime=now"]).status();
    assert!(go.unwrap().success());
    while !matches!(state().as_str(), "COMPLETED" | "FAILED" | "CANCELLED" | "") {
        assert!(start.elapsed() < Duration::from_secs(120), "the experiment never finished: {}", state());
        std::thread::sleep(Duration::from_millis(200));
    }
    let driver_out = std::fs::read_to_string(dir.path().join("driver.out")).unwrap_or_default();
    assert_eq!(state(), "COMPLETED", "{driver_out}");
    crate::resume::assert_accounted(&folder, 4, mode);
    let entries = journal(&folder);
    assert_eq!((count(&entries, "continued"), count(&entries, "complete")), (1, 4), "{entries:?}");
    assert_eq!(entries.last().unwrap()["reason"], "max_trials");
    let job_2 = |trial: u64| folder.join(format!("trials/{trial}/job-2.id")).exists();
    if mode == "jobs" {
        assert!(jobs_before.contains("hpo-trial-0") && !job_2(0) && !job_2(1), "reattached: {jobs_before}");
    }
    assert_eq!(queue(), "");
}

#[test]
fn a_requeued_driver_job_goes_on_with_trials_as_steps() {
    driver_job_requeued("steps");
}

#[test]
fn a_requeued_driver_job_goes_on_reattaching_its_trial_jobs() {
    driver_job_requeued("jobs");
}

/// Slurm takes back the allocation whose steps the trials are, by each way it can be asked
/// to: the steps die first, and hpo must not record them as failed trials, whichever of its
/// trials' deaths and its own SIGTERM comes first. Here the driver runs outside the job (its
/// `SLURM_JOB_ID` names the job), so its SIGTERM comes only when the test sends it: the steps
/// are seen dead, held back, and the SIGTERM then leaves the experiment open.
#[test]
fn steps_that_die_with_their_allocation_are_not_failed_trials() {
    let Some(_cluster) = cluster() else { return };
    for take_back in [&["scontrol", "requeue"][..], &["scancel"], &["scancel", "--signal=KILL"]] {
        let dir = slow_fifo(4, 2, "mode = \"steps\"\nextra_args = [\"--oversubscribe\"]");
        let out = Command::new("sbatch")
            .args(["--parsable", "--requeue", "-n", "2", "--oversubscribe", "-o", "/dev/null", "--wrap", "sleep 300"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let job = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let allocation = Cancel(job.clone());
        let start = Instant::now();
        while !squeue().contains(&format!("{job} wrap RUNNING")) {
            assert!(start.elapsed() < Duration::from_secs(30), "the allocation never ran: {}", squeue());
            std::thread::sleep(Duration::from_millis(100));
        }
        let stderr = dir.path().join("hpo.err");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hpo"))
            .args(["run", "e.toml", "-q"])
            .current_dir(dir.path())
            .env("SLURM_JOB_ID", &job)
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let folder = dir.path().join("runs/s");
        common::wait_for_reports(&folder, Some(0), 2);
        common::wait_for_reports(&folder, Some(1), 2);
        let mut command = Command::new(take_back[0]);
        assert!(command.args(&take_back[1..]).arg(&job).status().unwrap().success(), "{take_back:?}");
        let held = || std::fs::read_to_string(&stderr).unwrap().matches("waiting for hpo's own SIGTERM").count();
        while held() < 2 {
            let errors = std::fs::read_to_string(&stderr).unwrap();
            assert!(start.elapsed() < Duration::from_secs(60), "{take_back:?}: steps not held back: {errors}");
            assert!(child.try_wait().unwrap().is_none(), "{take_back:?}: hpo quit: {errors}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let entries = journal(&folder);
        assert_eq!(count(&entries, "fail"), 0, "{take_back:?}: {entries:?}");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(143));
        let entries = journal(&folder);
        assert_eq!((count(&entries, "fail"), count(&entries, "end")), (0, 0), "{take_back:?}: {entries:?}");
        drop(allocation);
        assert_eq!(queue(), "");
    }
}

/// Cancels a Slurm job when dropped, so a failing test leaves none behind.
struct Cancel(String);

impl Drop for Cancel {
    fn drop(&mut self) {
        let _ = Command::new("scancel").arg(&self.0).status();
    }
}

#[test]
fn bench_slurm_prints_the_overhead_in_both_modes() {
    let Some(_cluster) = cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = hpo(&["bench", "slurm", "--trials", "4", "--json"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    for mode in ["jobs", "steps"] {
        assert!(line[mode]["ms_per_trial"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line[mode]["ms_overhead_per_trial"].is_number(), "{line}");
    }
    assert_eq!(queue(), "");
}
