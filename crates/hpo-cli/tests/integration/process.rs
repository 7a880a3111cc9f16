#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! The process backend as a user runs it: training scripts in Python and shell, Syne Tune
//! style and with the repo's helper, stopped, paused, resumed, crashing, hanging, forking,
//! and `hpo run` interrupted.

use crate::common;

use common::{events, hpo, journal, processes_left, repo, setup, text};

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

fn experiment(space: &str, scheduler: &str, backend: &str, stop: &str) -> String {
    format!(
        "name = \"exp\"\nmetric = \"loss\"\nresource_attr = \"epoch\"\nmax_resource_attr = \"epochs\"\nworkers = 2\nseed = 3\n\n[space]\n{space}\n\n[scheduler]\n{scheduler}\n\n[backend]\ntype = \"process\"\n{backend}\n\n[stop]\n{stop}\n"
    )
}

/// A Python training script using the repo's helper: loss = x + 1/epoch, checkpointing the
/// epoch it reached; `sleep` seconds per epoch.
fn helper_script(sleep: f64) -> String {
    format!(
        r#"import os, sys, time
sys.path.insert(0, {helper:?})
from hpo_report import config, checkpoint_dir, report, trial_id
cfg = config()
ckpt = os.path.join(checkpoint_dir(), "epoch.txt")
start = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
for epoch in range(start + 1, int(cfg["epochs"]) + 1):
    time.sleep({sleep})
    with open(ckpt, "w") as f:
        f.write(str(epoch))
    report(epoch=epoch, loss=cfg["x"] + 1.0 / epoch)
"#,
        helper = repo().join("python").display().to_string()
    )
}

#[test]
fn arguments_arrive_verbatim_and_the_environment_is_set() {
    let script = r#"import json, os, sys
args = sys.argv[1:]
with open("argv-" + os.environ["HPO_TRIAL_ID"] + ".json", "w") as f:
    json.dump({"argv": args, "config": json.loads(os.environ["HPO_CONFIG"]),
               "ckpt": os.environ["HPO_CHECKPOINT_DIR"], "extra": os.environ.get("EXTRA")}, f)
print("some log line")
print("[tune-metric]: " + json.dumps({"epoch": 1, "loss": 0.5}), flush=True)
print("to stderr", file=sys.stderr)
"#;
    let exp = experiment(
        "epochs = 1\nname = { choice = [\"$(rm -rf ~)\", \"a b\"] }\nn = { randint = [1, 3] }",
        "type = \"fifo\"",
        "command = [\"python3\", \"train.py\"]\nenv = { EXTRA = \"yes\" }",
        "max_trials = 4",
    );
    let dir = setup(&exp, &[("train.py", script)]);
    let out = hpo(&["run", "exp.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/exp"));
    assert_eq!(events(&entries, "complete").len(), 4, "{entries:?}");
    for id in 0..4 {
        let seen: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(format!("argv-{id}.json"))).unwrap())
                .unwrap();
        let argv: Vec<&str> = seen["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let name = seen["config"]["name"].as_str().unwrap();
        assert!(name == "$(rm -rf ~)" || name == "a b");
        let ckpt = seen["ckpt"].as_str().unwrap();
        let n = seen["config"]["n"].to_string();
        assert_eq!(argv, ["--epochs", "1", "--n", n.as_str(), "--name", name, "--st_checkpoint_dir", ckpt]);
        assert!(ckpt.ends_with(&format!("runs/exp/trials/{id}/checkpoints")) && Path::new(ckpt).is_absolute());
        assert_eq!(seen["extra"], "yes");
        let trial = dir.path().join(format!("runs/exp/trials/{id}"));
        assert_eq!(std::fs::read_to_string(trial.join("stdout.log")).unwrap(), "some log line\n");
        assert_eq!(std::fs::read_to_string(trial.join("stderr.log")).unwrap(), "to stderr\n");
    }
    assert!(dir.path().join("argv-0.json").exists(), "the script ran in the experiment file's folder");
}

#[test]
fn syne_tune_style_and_shell_scripts_and_json_config() {
    // What Syne Tune's Reporter prints, from an argparse script.
    let syne = r#"import argparse, json, time
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
p.add_argument("--epochs", type=int)
p.add_argument("--st_checkpoint_dir", type=str)
a = p.parse_args()
for epoch in range(1, a.epochs + 1):
    print(f"[tune-metric]: {json.dumps({'epoch': epoch, 'loss': a.x / epoch, 'st_worker_time': 0.1})}", flush=True)
"#;
    let exp = experiment(
        "epochs = 3\nx = { uniform = [0, 1] }",
        "type = \"fifo\"",
        "command = [\"python3\", \"syne.py\"]",
        "max_trials = 3",
    );
    let dir = setup(&exp, &[("syne.py", syne)]);
    let out = hpo(&["run", "exp.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/exp"));
    assert_eq!(events(&entries, "report").len(), 9);
    assert_eq!(events(&entries, "complete").len(), 3);

    let shell = "#!/bin/sh\n# config arrives as one JSON argument: --config '{...}'\necho \"[tune-metric]: {\\\"epoch\\\": 1, \\\"loss\\\": 0.25}\"\necho \"args: $*\" >&2\n";
    let exp = experiment(
        "epochs = 1\nx = { uniform = [0, 1] }",
        "type = \"fifo\"",
        "command = [\"./train.sh\"]\nconfig_as_json = true\ncheckpointing = false",
        "max_trials = 2",
    );
    let dir = setup(&exp, &[("train.sh", shell)]);
    let out = hpo(&["run", "exp.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/exp"));
    assert_eq!(events(&entries, "complete").len(), 2);
    let stderr = std::fs::read_to_string(dir.path().join("runs/exp/trials/0/stderr.log")).unwrap();
    assert!(stderr.starts_with("args: --config {\"epochs\":1,\"x\":"), "{stderr}");
}

#[test]
fn asha_stopping_and_promotion_through_real_processes() {
    let dir = setup(
        &experiment(
            "epochs = 9\nx = { uniform = [0, 1] }",
            "type = \"asha\"\ngrace_period = 1\nreduction_factor = 3",
            "command = [\"python3\", \"train.py\"]\ngrace_period = \"2s\"",
            "max_trials = 12",
        ),
        &[("train.py", &helper_script(0.02))],
    );
    let out = hpo(&["run", "exp.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/exp"));
    assert!(!events(&entries, "stopped").is_empty(), "ASHA stopped some trial");

    let dir = setup(
        &experiment(
            "epochs = 9\nx = { uniform = [0, 1] }",
            "type = \"asha\"\nvariant = \"promotion\"\ngrace_period = 1\nreduction_factor = 3",
            "command = [\"python3\", \"train.py\"]",
            "max_trials = 12",
        ),
        &[("train.py", &helper_script(0.0))],
    );
    let out = hpo(&["run", "exp.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/exp"));
    assert!(!events(&entries, "resume").is_empty(), "some trial was promoted");
    // Resumed processes continue from their checkpoint: no epoch is reported twice.
    let mut epochs: HashMap<u64, Vec<u64>> = HashMap::new();
    for r in events(&entries, "report") {
        epochs.entry(r["trial"].as_u64().unwrap()).or_default().push(r["metrics"]["epoch"].as_f64().unwrap() as u64);
    }
    for (trial, e) in epochs {
        assert_eq!(e, (1..=e.len() as u64).collect::<Vec<_>>(), "trial {trial}");
    }
}

#[test]
fn stopped_trials_leave_no_grandchildren() {
    // Each trial forks a grandchild that ignores SIGTERM, then reports forever.
    let script = r#"import json, signal, subprocess, sys, time
subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 3131.5"])
epoch = 0
while True:
    epoch += 1
    print("[tune-metric]: " + json.dumps({"epoch": epoch, "loss": 1.0}), flush=True)
    time.sleep(0.05)
"#;
    let dir = setup(
        &experiment(
            "epochs = 1000\nx = { uniform = [0, 1] }",
            "type = \"fifo\"",
            "command = [\"python3\", \"fork.py\"]\ngrace_period = \"300ms\"",
            "max_wallclock = \"1500ms\"",
        ),
        &[("fork.py", script)],
    );
    let out = hpo(&["run", "exp.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/exp"));
    assert_eq!(events(&entries, "stopped").len(), 2);
    assert_eq!(processes_left("sleep 3131.5"), 0, "a grandchild survived its trial");
}

#[test]
fn crashes_timeouts_and_bad_metrics_fail_the_trial_not_the_experiment() {
    let script = r#"import json, os, sys, time
t = int(os.environ["HPO_TRIAL_ID"])
if t == 0:
    print("Traceback: something broke", file=sys.stderr)
    sys.exit(3)
if t == 1:
    time.sleep(60)
if t == 2:
    print("[tune-metric]: {not json", flush=True)
    time.sleep(60)
if t == 3:
    print("[tune-metric]: " + json.dumps({"epoch": 1, "loss": None}), flush=True)
    time.sleep(60)
print("[tune-metric]: " + json.dumps({"epoch": 1, "loss": 0.5}), flush=True)
"#;
    let dir = setup(
        &experiment(
            "epochs = 1\nx = { uniform = [0, 1] }",
            "type = \"fifo\"",
            "command = [\"python3\", \"t.py\"]\ntimeout = \"1s\"\ngrace_period = \"200ms\"",
            "max_trials = 5",
        ),
        &[("t.py", script)],
    );
    let start = std::time::Instant::now();
    let out = hpo(&["run", "exp.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(start.elapsed() < Duration::from_secs(20));
    let entries = journal(&dir.path().join("runs/exp"));
    let fails: HashMap<u64, String> = events(&entries, "fail")
        .iter()
        .map(|f| (f["trial"].as_u64().unwrap(), f["error"].as_str().unwrap().to_owned()))
        .collect();
    assert!(
        fails[&0].contains("exited with status 3") && fails[&0].contains("Traceback: something broke"),
        "{}",
        fails[&0]
    );
    assert!(fails[&1].contains("timed out after 1s"), "{}", fails[&1]);
    assert!(fails[&2].contains("malformed metrics line `{not json`"), "{}", fails[&2]);
    assert!(fails[&3].contains("metric `loss` is not finite"), "{}", fails[&3]);
    assert_eq!(events(&entries, "complete").len(), 1);
    let table = text(&hpo(&["results", "runs/exp"], dir.path()));
    assert!(table.contains("4 failed trials"), "{table}");
}

#[test]
fn a_missing_command_fails_before_any_trial_starts() {
    let dir = setup(
        &experiment(
            "epochs = 1\nx = { uniform = [0, 1] }",
            "type = \"fifo\"",
            "command = [\"no-such-trainer\", \"x.py\"]",
            "max_trials = 2",
        ),
        &[],
    );
    let out = hpo(&["run", "exp.toml"], dir.path());
    assert!(!out.status.success());
    assert!(
        text(&out).contains("exp.toml:15: `backend.command`: the command `no-such-trainer` was not found on PATH"),
        "{}",
        text(&out)
    );
    assert!(!dir.path().join("runs/exp").exists(), "no experiment folder, no trial recorded");
}

#[test]
fn gpus_are_never_shared_and_least_used_first() {
    let script = r#"import json, os, time
time.sleep(0.2)
print("[tune-metric]: " + json.dumps({"epoch": 1, "loss": 1.0, "gpu": int(os.environ["CUDA_VISIBLE_DEVICES"])}), flush=True)
"#;
    let dir = setup(
        &experiment(
            "epochs = 1\nx = { uniform = [0, 1] }",
            "type = \"fifo\"",
            "command = [\"python3\", \"g.py\"]\ngpus_per_trial = 1\ngpus = [0, 1, 2]",
            "max_trials = 6",
        ),
        &[("g.py", script)],
    );
    let out = hpo(&["run", "exp.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/exp"));
    let mut spans: Vec<(f64, f64, u64)> = Vec::new();
    let starts: HashMap<u64, f64> =
        events(&entries, "start").iter().map(|s| (s["trial"].as_u64().unwrap(), s["t"].as_f64().unwrap())).collect();
    for r in events(&entries, "report") {
        let id = r["trial"].as_u64().unwrap();
        let end = events(&entries, "complete").iter().find(|c| c["trial"] == id).unwrap()["t"].as_f64().unwrap();
        spans.push((starts[&id], end, r["metrics"]["gpu"].as_f64().unwrap() as u64));
    }
    assert_eq!(spans.len(), 6);
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let overlap = a.0 < b.1 && b.0 < a.1;
            assert!(!overlap || a.2 != b.2, "two running trials shared GPU {}", a.2);
        }
    }
    let mut uses = [0; 3];
    spans.iter().for_each(|s| uses[s.2 as usize] += 1);
    assert_eq!(uses, [2, 2, 2], "least-used GPUs first");
}

#[test]
fn interrupting_hpo_run_stops_every_trial_and_exits_non_zero() {
    // Ctrl-C, SIGTERM and SIGHUP (a closed terminal) all end the run cleanly.
    for signal in ["INT", "TERM", "HUP"] {
        let marker = format!("sleep 2727.{}", signal.len());
        let script = format!(
            r#"import json, subprocess, time
subprocess.Popen(["sh", "-c", "{marker}"])
for epoch in range(1, 100000):
    print("[tune-metric]: " + json.dumps({{"epoch": epoch, "loss": 1.0}}), flush=True)
    time.sleep(0.05)
"#
        );
        let dir = setup(
            &experiment(
                "epochs = 100000\nx = { uniform = [0, 1] }",
                "type = \"fifo\"",
                "command = [\"python3\", \"long.py\"]\ngrace_period = \"500ms\"",
                "max_trials = 10",
            ),
            &[("long.py", &script)],
        );
        let child = common::spawn_run(Path::new(env!("CARGO_BIN_EXE_hpo")), dir.path());
        std::thread::sleep(Duration::from_millis(1500));
        Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "SIG{signal}: an interrupted run exits non-zero");
        let all = text(&out);
        assert!(all.contains("Finished (interrupted)") && all.contains("2 stopped"), "SIG{signal}: {all}");
        let exp = dir.path().join("runs/exp");
        let entries = journal(&exp);
        assert_eq!(events(&entries, "stopped").len(), 2, "SIG{signal}");
        assert_eq!(events(&entries, "end")[0]["reason"], "interrupted", "SIG{signal}");
        assert!(exp.join("results.csv").exists(), "SIG{signal}");
        assert_eq!(processes_left(&marker), 0, "SIG{signal}: no trial process survived");
    }
}

#[test]
fn the_python_example_runs_as_documented() {
    let numpy = Command::new("python3").args(["-c", "import numpy"]).status().is_ok_and(|s| s.success());
    if !common::available("numpy for the Python example (pip install numpy)", numpy, "HPO_REQUIRE_NUMPY") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let experiment = repo().join("examples/python/experiment.toml");
    let out = hpo(&["run", experiment.to_str().unwrap(), "-q", "--max-trials", "6"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let best = hpo(&["results", "runs/python-digits", "--json"], dir.path());
    let ranked: Value = serde_json::from_slice(&best.stdout).unwrap();
    assert!(ranked[0]["val_error"].as_f64().unwrap() < 0.5, "{ranked}");
}
