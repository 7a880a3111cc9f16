#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Going on with an experiment (`hpo resume`, `hpo run --resume`): a simulated run killed at
//! any journal entry and resumed writes the journal the uninterrupted run writes, entry for
//! entry, for every built-in scheduler with the random, TPE and BO searchers.

use std::path::Path;
use std::process::Command;

use crate::common::{hpo, journal, setup, text};

const SCHEDULERS: [&str; 6] = [
    r#"{ type = "fifo" }"#,
    r#"{ type = "asha", variant = "stopping", grace_period = 1, reduction_factor = 3 }"#,
    r#"{ type = "asha", variant = "promotion", grace_period = 1, reduction_factor = 3 }"#,
    r#"{ type = "hyperband", grace_period = 1, reduction_factor = 3 }"#,
    r#"{ type = "successive_halving", r_min = 1, eta = 3 }"#,
    r#"{ type = "pbt", population_size = 4 }"#,
];

/// digits-mlp in simulated time, 3 workers, 40 trials of up to 27 epochs.
fn experiment(scheduler: &str, searcher: &str) -> String {
    format!(
        r#"name = "r"
metric = "val_error"
resource_attr = "epoch"
max_resource_attr = "epochs"
workers = 3
seed = 11
scheduler = {scheduler}
searcher = {{ type = "{searcher}" }}
[space]
epochs = 27
hidden_width = {{ ordinal = [16, 32, 64, 128, 256] }}
num_layers = {{ ordinal = [1, 2, 3] }}
learning_rate = {{ ordinal = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1] }}
weight_decay = {{ ordinal = [1e-5, 1e-3, 1e-1] }}
batch_size = {{ ordinal = [16, 32, 64, 128, 256] }}
[backend]
type = "simulator"
blackbox = "digits-mlp"
[stop]
max_trials = 40
"#
    )
}

/// `hpo run exp.toml` aborted right after journal line `abort_after` (no abort if `None`).
fn run_until(dir: &Path, abort_after: Option<usize>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hpo"));
    command.args(["run", "exp.toml", "-q", "--resume"]).current_dir(dir);
    if let Some(n) = abort_after {
        command.env(hpo_core::ABORT_AFTER_ENTRIES, n.to_string());
    }
    command.output().unwrap()
}

fn journal_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("runs/r/journal.jsonl")).unwrap()
}

/// Runs the experiment uninterrupted; then killed after journal line n, for each list of
/// crash points (every run after the first goes on with the one before), goes on with it
/// and compares the journals. The crash points are fractions of the uninterrupted journal:
/// the header alone, the first entry, a third, two lines in a row, the last entry before
/// the end, and after the end.
fn crash_and_compare(experiment: &str) {
    let whole = setup(experiment, &[]);
    let out = run_until(whole.path(), None);
    assert!(out.status.success(), "{}", text(&out));
    let expected = journal_text(whole.path());
    let lines = expected.lines().count();
    assert!(lines > 80, "a run long enough to be killed in many places: {lines} lines");
    let crash_points = [
        vec![1],
        vec![2],
        vec![lines / 3],
        vec![lines / 2, lines / 2 + 1, lines * 3 / 4],
        vec![lines - 1],
        vec![lines],
    ];
    for crashes in crash_points {
        let dir = setup(experiment, &[]);
        for &n in &crashes {
            let out = run_until(dir.path(), Some(n));
            assert!(!out.status.success(), "the run was to abort after line {n} of {lines}");
            assert_eq!(journal_text(dir.path()).lines().count(), n, "aborted right after line {n}");
        }
        // `hpo resume`, as a run killed after its `end` entry ended (`run --resume` would start anew).
        let out = hpo(&["resume", "runs/r", "-q"], dir.path());
        assert!(out.status.success(), "{crashes:?}: {}", text(&out));
        let resumed = journal_text(dir.path());
        if resumed != expected {
            let at = expected.lines().zip(resumed.lines()).position(|(a, b)| a != b);
            panic!("{experiment}\ncrashed after {crashes:?}: the journals differ first at line {at:?} (of {lines})");
        }
        assert!(!dir.path().join("runs/r-2").exists(), "went on in the same folder");
    }
}

fn every_scheduler_with(searcher: &str) {
    for scheduler in SCHEDULERS {
        crash_and_compare(&experiment(scheduler, searcher));
    }
}

#[test]
fn a_run_killed_anywhere_goes_on_exactly_with_random_search() {
    every_scheduler_with("random");
}

#[test]
fn a_run_killed_anywhere_goes_on_exactly_with_tpe() {
    every_scheduler_with("tpe");
}

#[test]
fn a_run_killed_anywhere_goes_on_exactly_with_bo() {
    every_scheduler_with("bo");
}

/// Budgets may change on resume, and a finished experiment can be extended; the space may
/// not change, and refusing leaves the journal as it was.
#[test]
fn budgets_may_change_the_space_may_not() {
    let dir = setup(&experiment(SCHEDULERS[1], "random"), &[]);
    let out = run_until(dir.path(), Some(60));
    assert!(!out.status.success());
    let folder = dir.path().join("runs/r");
    let out = hpo(&["resume", "runs/r", "-q", "--max-trials", "20", "--workers", "4"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&folder);
    let starts = entries.iter().filter(|e| e["event"] == "start").count();
    assert_eq!(starts, 20, "{}", text(&out));
    assert_eq!(entries.iter().filter(|e| e["event"] == "end").count(), 1);
    assert_eq!(entries.last().unwrap()["event"], "end");

    // Extending the finished experiment.
    let out = hpo(&["resume", "runs/r", "-q", "--max-trials", "25"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&folder);
    assert_eq!(entries.iter().filter(|e| e["event"] == "start").count(), 25);
    assert_eq!(entries.iter().filter(|e| e["event"] == "end").count(), 1, "one end, the last");
    let results = hpo(&["results", "runs/r", "--json"], dir.path());
    let trials: serde_json::Value = serde_json::from_slice(&results.stdout).unwrap();
    assert_eq!(trials.as_array().map(Vec::len), Some(25), "results show one experiment of 25 trials");
    let best = hpo(&["best", "runs/r"], dir.path());
    assert!(best.status.success(), "{}", text(&best));
    let plot = hpo(&["plot", "runs/r"], dir.path());
    assert!(plot.status.success(), "{}", text(&plot));
    let csv = std::fs::read_to_string(folder.join("results.csv")).unwrap();
    let reports = entries.iter().filter(|e| e["event"] == "report").count();
    assert_eq!(csv.lines().count(), reports + 1, "results.csv: every report of every segment, once");

    // A changed space is refused, naming it, and nothing recorded is touched.
    let before = std::fs::read_to_string(folder.join("journal.jsonl")).unwrap();
    let toml = std::fs::read_to_string(folder.join("experiment.toml")).unwrap();
    std::fs::write(folder.join("experiment.toml"), toml.replace("[16, 32, 64, 128, 256]", "[16, 32]")).unwrap();
    let out = hpo(&["resume", "runs/r", "--max-trials", "30"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("`space` differ"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(folder.join("journal.jsonl")).unwrap(), before);
}

/// `hpo run FILE --resume` goes on with the newest unfinished experiment of its name, and
/// starts a new one when every one ended.
#[test]
fn run_resume_starts_anew_once_the_experiment_ended() {
    let dir = setup(&experiment(SCHEDULERS[0], "random"), &[]);
    assert!(run_until(dir.path(), None).status.success());
    let out = run_until(dir.path(), None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.path().join("runs/r-2/journal.jsonl").exists(), "a new experiment next to the ended one");
}

/// Every trial of a finished experiment is accounted for once: trials `0..max_trials`, each
/// started once; a running trial launched (resumed) again only after the run it ran in
/// died (a `continued` entry in between), every launch ended by at most one entry and the
/// last one by exactly one; no report made twice (each trial's epochs rise); and it ended.
pub fn assert_accounted(folder: &Path, max_trials: usize, what: &str) {
    let entries = journal(folder);
    let starts: Vec<u64> =
        entries.iter().filter(|e| e["event"] == "start").map(|e| e["trial"].as_u64().unwrap()).collect();
    assert_eq!(starts, (0..max_trials as u64).collect::<Vec<_>>(), "{what}: each trial started once");
    // The segment (count of `continued` entries before) each running trial was launched in.
    let mut running = std::collections::HashMap::new();
    let mut segment = 0;
    let mut epochs: std::collections::HashMap<u64, f64> = std::collections::HashMap::new();
    for (line, e) in entries.iter().enumerate() {
        let trial = e["trial"].as_u64();
        match e["event"].as_str().unwrap() {
            "continued" => segment += 1,
            "start" | "resume" => {
                let before = running.insert(trial.unwrap(), segment);
                assert!(before.is_none_or(|s| s < segment), "{what}: line {line}: launched while it runs: {e}");
            }
            "complete" | "fail" | "stopped" | "paused" | "preempted" => {
                assert!(running.remove(&trial.unwrap()).is_some(), "{what}: line {line}: ended twice: {e}");
            }
            "report" => {
                let epoch = e["metrics"]["epoch"].as_f64().unwrap();
                let last = epochs.insert(trial.unwrap(), epoch);
                assert!(last.is_none_or(|l| l < epoch), "{what}: line {line}: an epoch reported twice: {e}");
            }
            _ => {}
        }
    }
    assert!(running.is_empty(), "{what}: trials never ended: {running:?}");
    assert_eq!(entries.last().unwrap()["event"], "end", "{what}");
}

/// A threads experiment killed at many journal entries and resumed finishes with every trial
/// accounted for once; its trials are launched again where the record ends (`height` starts
/// over, and the reports it makes again are not counted twice).
#[test]
fn a_threads_experiment_goes_on_with_every_trial_accounted_for() {
    let experiment = "name = \"t\"\nmetric = \"mean_loss\"\nresource_attr = \"epoch\"\nmax_resource_attr = \"steps\"\n\
                      workers = 2\n[space]\nsteps = 5\nwidth = { randint = [0, 20] }\nheight = { randint = [-100, 100] }\n\
                      [backend]\ntype = \"threads\"\nobjective = \"height\"\n[stop]\nmax_trials = 6\n";
    // Killed once, or twice: the second time while going on (line numbers count from the
    // header of the one journal).
    for (first, second) in [
        (2, None),
        (3, None),
        (6, None),
        (11, None),
        (17, None),
        (26, None),
        (35, None),
        (5, Some(9)),
        (12, Some(20)),
        (17, Some(30)),
    ] {
        let what = format!("crashes at {first} and {second:?}");
        let dir = setup(experiment, &[]);
        let crash = |args: &[&str], at: usize| {
            let out = Command::new(env!("CARGO_BIN_EXE_hpo"))
                .args(args)
                .env(hpo_core::ABORT_AFTER_ENTRIES, at.to_string())
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(!out.status.success(), "{what}: {}", text(&out));
        };
        crash(&["run", "exp.toml", "-q"], first);
        if let Some(at) = second {
            crash(&["resume", "runs/t", "-q"], at);
        }
        let out = hpo(&["resume", "runs/t", "-q"], dir.path());
        assert!(out.status.success(), "{what}: {}", text(&out));
        assert_accounted(&dir.path().join("runs/t"), 6, &what);
    }
    // A finished experiment is extended.
    let dir = setup(experiment, &[]);
    assert!(hpo(&["run", "exp.toml", "-q"], dir.path()).status.success());
    let out = hpo(&["resume", "runs/t", "-q", "--max-trials", "9"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    assert_accounted(&dir.path().join("runs/t"), 9, "extended");
}

/// ASHA with pause and resume over a Python script that keeps a checkpoint per epoch, on the
/// process backend: 10 trials of up to 9 epochs, 2 workers, 2-3 s in all.
fn process_experiment() -> tempfile::TempDir {
    let script = crate::common::checkpointing_script(0.08, "");
    let experiment = "name = \"p\"\nmetric = \"loss\"\nresource_attr = \"epoch\"\nmax_resource_attr = \"epochs\"\nworkers = 2\n\
         [space]\nepochs = 9\nx = { uniform = [0, 1] }\n\
         [scheduler]\ntype = \"asha\"\nvariant = \"promotion\"\ngrace_period = 1\nreduction_factor = 3\n\
         [backend]\ntype = \"process\"\ncommand = [\"python3\", \"train_4343.py\"]\n\
         [stop]\nmax_trials = 10\n";
    setup(experiment, &[("train_4343.py", &script)])
}

/// [`process_experiment`] running in the background, once its journal holds `reports`
/// reports; and its folder.
fn running_process_experiment(reports: usize) -> (tempfile::TempDir, std::process::Child, std::path::PathBuf) {
    let dir = process_experiment();
    let child = crate::common::spawn_run(Path::new(env!("CARGO_BIN_EXE_hpo")), dir.path());
    let folder = dir.path().join("runs/p");
    crate::common::wait_for_reports(&folder, None, reports);
    (dir, child, folder)
}

/// A process-backend run killed with `kill -9` at a random moment, then resumed: exactly
/// `max_trials` trials, none lost or duplicated, trials that were running go on from their
/// checkpoints, and no process is left.
#[test]
fn a_process_experiment_killed_at_a_random_moment_goes_on() {
    // A random moment, different each run, inside the run.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let wait = std::time::Duration::from_millis(300 + u64::from(nanos % 1800));
    let dir = process_experiment();
    let mut child = crate::common::spawn_run(Path::new(env!("CARGO_BIN_EXE_hpo")), dir.path());
    std::thread::sleep(wait);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(crate::common::processes_left("train_4343"), 0, "the trials went with the driver");
    let out = hpo(&["resume", "runs/p", "-q"], dir.path());
    assert!(out.status.success(), "killed after {wait:?}: {}", text(&out));
    assert_accounted(&dir.path().join("runs/p"), 10, &format!("killed after {wait:?}"));
    assert_eq!(crate::common::processes_left("train_4343"), 0, "no process is left");
    let results = hpo(&["results", "runs/p", "--json"], dir.path());
    let trials: serde_json::Value = serde_json::from_slice(&results.stdout).unwrap();
    assert_eq!(trials.as_array().map(Vec::len), Some(10), "one experiment of 10 trials, each with a result");
}

/// A driver killed together with its trial guards leaves its trials' processes behind (as
/// one using the process backend without a guard would): going on kills them before the
/// trials are launched again, so that two launches never share a checkpoint folder.
#[test]
fn leftovers_of_a_driver_killed_with_its_guards_are_killed_before_relaunch() {
    let script = r#"import os, subprocess, sys, time
sys.path.insert(0, os.environ["HELPER"])
from hpo_report import config, report
subprocess.Popen(["sleep", "2961"])
for epoch in range(1, 6):
    time.sleep(0.2)
    report(epoch=epoch, loss=config()["x"])
"#;
    let helper = crate::common::repo().join("python").display().to_string();
    let experiment = format!(
        "name = \"p\"\nmetric = \"loss\"\nresource_attr = \"epoch\"\nworkers = 2\n[space]\nx = {{ uniform = [0, 1] }}\n\
         [backend]\ntype = \"process\"\ncommand = [\"python3\", \"train.py\"]\nenv = {{ HELPER = {helper:?} }}\n\
         [stop]\nmax_trials = 2\n"
    );
    let dir = setup(&experiment, &[("train.py", script)]);
    let mut child = crate::common::spawn_run(Path::new(env!("CARGO_BIN_EXE_hpo")), dir.path());
    let folder = dir.path().join("runs/p");
    crate::common::wait_for_reports(&folder, Some(0), 1);
    crate::common::wait_for_reports(&folder, Some(1), 1);
    let pgrep = Command::new("pgrep").args(["-P", &child.id().to_string()]).output().unwrap();
    let guards: Vec<String> = String::from_utf8(pgrep.stdout).unwrap().split_whitespace().map(str::to_owned).collect();
    assert_eq!(guards.len(), 2, "a guard per trial");
    // hpo held still first (it would end a trial whose guard it sees die), then the guards
    // (a guard that outlives hpo by a moment ends its trial), then hpo.
    let pid = child.id().to_string();
    for (signal, pids) in [("-STOP", vec![pid.clone()]), ("-KILL", guards), ("-KILL", vec![pid])] {
        Command::new("kill").arg(signal).args(pids).status().unwrap();
    }
    child.wait().unwrap();
    assert_eq!(crate::common::processes_matching("sleep 2961"), 2, "the trials' processes were left behind");
    let out = hpo(&["resume", "runs/p", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("left over from a driver that died"), "{}", text(&out));
    assert_accounted(&folder, 2, "guards killed too");
    assert_eq!(crate::common::processes_left("sleep 2961"), 0, "no process is left");
}

/// One writer per experiment: going on with an experiment that another hpo is running is
/// refused with a clear error, and the running one is not disturbed.
#[test]
fn a_running_experiment_cannot_be_resumed_twice() {
    let (dir, child, folder) = running_process_experiment(1);
    for args in [&["resume", "runs/p", "-q"][..], &["run", "exp.toml", "--resume", "-q"]] {
        let out = hpo(args, dir.path());
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out).contains("another hpo is running this experiment"), "{args:?}: {}", text(&out));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_accounted(&folder, 10, "undisturbed");
}

/// A run ended by SIGTERM (as a batch job preempted or requeued is) is not done: the same
/// `hpo run FILE --resume` a job script runs after every restart goes on with it.
#[test]
fn run_resume_goes_on_with_an_interrupted_experiment() {
    let (dir, child, folder) = running_process_experiment(3);
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "an interrupted run exits non-zero: {}", text(&out));
    assert_eq!(journal(&folder).last().unwrap()["reason"], "interrupted");
    let out = run_until(dir.path(), None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!dir.path().join("runs/p-2").exists(), "the same experiment went on");
    assert_accounted(&folder, 10, "interrupted, then run --resume");
    let entries = journal(&folder);
    let ending: Vec<&serde_json::Value> = entries.iter().filter(|e| e["event"] == "ending").collect();
    assert_eq!(ending[0]["reason"], "interrupted", "{ending:?}");
    assert_eq!(entries.iter().filter(|e| e["event"] == "end").count(), 1, "one end, the last");
}

/// `journal_sync = "disk"` runs and is recorded; another value is an error naming the key.
#[test]
fn journal_sync_is_os_or_disk() {
    let synced = experiment(SCHEDULERS[0], "random").replace("workers = 3", "workers = 3\njournal_sync = \"disk\"");
    let dir = setup(&synced, &[]);
    let out = hpo(&["run", "exp.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(journal(&dir.path().join("runs/r"))[0]["spec"]["journal_sync"], "disk");
    let dir = setup(&synced.replace("\"disk\"", "\"tape\""), &[]);
    let out = hpo(&["run", "exp.toml", "-q"], dir.path());
    assert!(!out.status.success());
    let message = text(&out);
    assert!(message.contains("exp.toml") && message.contains("journal_sync") && message.contains("disk"), "{message}");
}

/// A scheduler in another process is rebuilt by replaying the protocol messages: the
/// example Python plugin, killed with the driver and resumed, decides as if never killed.
#[test]
fn a_process_plugin_goes_on_exactly() {
    let plugin = crate::common::repo().join("examples/plugins/random_search.py");
    let scheduler =
        format!(r#"{{ type = "process", command = ["python3", "{}"], config = {{ grace = 2 }} }}"#, plugin.display());
    let experiment = experiment(&scheduler, "random").replace("searcher = { type = \"random\" }\n", "");
    crash_and_compare(&experiment);
}
