#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Every multi-fidelity scheduler end to end through `hpo run` on the real digits MLP, and
//! the scheduler protocol through `hpo scheduler serve`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn experiment(scheduler: &str, epochs: u32, max_trials: u32) -> String {
    format!(
        r#"
name = "exp"
metric = "val_error"
resource_attr = "epoch"
max_resource_attr = "epochs"
workers = 2
seed = 1

[space]
epochs = {epochs}
hidden_width = {{ lograndint = [8, 32] }}
learning_rate = {{ loguniform = [1e-3, 1e-1] }}
batch_size = {{ choice = [64, 128] }}

[scheduler]
{scheduler}

[backend]
type = "threads"
objective = "digits-mlp"

[stop]
max_trials = {max_trials}
"#
    )
}

/// Runs `hpo run` on an experiment and returns the journal's entries.
fn run(text: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hpo"))
        .args(["run", "exp.toml", "--quiet"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    journal(&dir.path().join("runs/exp/journal.jsonl"))
}

fn journal(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn events<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["event"] == kind).collect()
}

/// Epochs each trial reported, in order.
fn epochs_by_trial(entries: &[Value]) -> HashMap<u64, Vec<u64>> {
    let mut out: HashMap<u64, Vec<u64>> = HashMap::new();
    for e in events(entries, "report") {
        out.entry(e["trial"].as_u64().unwrap()).or_default().push(e["metrics"]["epoch"].as_f64().unwrap() as u64);
    }
    out
}

#[test]
fn asha_promotion_pauses_and_resumes_from_checkpoints() {
    let entries =
        run(&experiment("type = \"asha\"\nvariant = \"promotion\"\ngrace_period = 1\nreduction_factor = 3", 9, 16));
    let resumes = events(&entries, "resume");
    assert!(!resumes.is_empty(), "some trial was promoted");
    assert!(!events(&entries, "paused").is_empty());
    for r in &resumes {
        let epochs = r["config"]["epochs"].as_u64().unwrap();
        assert!(epochs == 3 || epochs == 9, "promoted to the next rung level, got {epochs}");
    }
    // A resumed trial continues from its checkpoint: its epochs never repeat or skip.
    for (trial, epochs) in epochs_by_trial(&entries) {
        let expected: Vec<u64> = (1..=epochs.len() as u64).collect();
        assert_eq!(epochs, expected, "trial {trial}");
    }
    // decisions: pause at rung levels 1 and 3 only
    for e in events(&entries, "report") {
        if e["decision"] == "pause" {
            let epoch = e["metrics"]["epoch"].as_f64().unwrap() as u64;
            assert!(epoch == 1 || epoch == 3, "paused at {epoch}");
        }
    }
    assert!(events(&entries, "complete").iter().all(|c| {
        let id = c["trial"].as_u64().unwrap();
        epochs_by_trial(&entries)[&id].last() == Some(&9)
    }));
}

#[test]
fn asha_stopping_stops_at_rungs() {
    let entries = run(&experiment("type = \"asha\"\ngrace_period = 1\nreduction_factor = 3", 9, 16));
    let stops: Vec<u64> = events(&entries, "report")
        .iter()
        .filter(|e| e["decision"] == "stop")
        .map(|e| e["metrics"]["epoch"].as_f64().unwrap() as u64)
        .collect();
    assert!(!stops.is_empty());
    assert!(stops.iter().all(|&e| e == 1 || e == 3), "stopped only at rung levels: {stops:?}");
    assert_eq!(events(&entries, "start").len(), 16);
}

#[test]
fn synchronous_successive_halving_and_hyperband_run_end_to_end() {
    let entries = run(&experiment("type = \"successive_halving\"\nr_min = 1\neta = 3", 9, 20));
    assert!(!events(&entries, "resume").is_empty());
    let entries = run(&experiment("type = \"hyperband\"\ngrace_period = 1\nreduction_factor = 3", 9, 20));
    let starts = events(&entries, "start");
    let first_levels: Vec<u64> = starts.iter().map(|s| s["config"]["epochs"].as_u64().unwrap()).collect();
    assert!(first_levels.iter().all(|&l| [1, 3, 9].contains(&l)));
    assert_eq!(&first_levels[..9], &[1; 9], "bracket 0 starts 9 trials at level 1");
}

#[test]
fn median_stopping_runs_end_to_end() {
    let entries = run(&experiment("type = \"median_stopping\"\ngrace_period = 2", 6, 12));
    let stops = events(&entries, "report").iter().filter(|e| e["decision"] == "stop").count();
    assert!(stops > 0, "some trial is worse than the median");
}

#[test]
fn pbt_starts_replacements_from_copied_checkpoints() {
    let entries = run(&experiment(
        "type = \"pbt\"\npopulation_size = 4\nperturbation_interval = 2\nmutate = [\"learning_rate\"]",
        8,
        10,
    ));
    let replacements: Vec<&Value> =
        events(&entries, "start").into_iter().filter(|s| s.get("checkpoint_from").is_some()).collect();
    assert!(!replacements.is_empty(), "the bottom of the population was replaced");
    let epochs = epochs_by_trial(&entries);
    // Each replacement that trained goes on from its donor's checkpoint: past the donor's last
    // journaled epoch when it was planned (the copy is made when a worker takes it up, and
    // the donor may have trained on meanwhile; if it finished, the replacement trains no more).
    for r in replacements {
        let (id, donor) = (r["trial"].as_u64().unwrap(), r["checkpoint_from"].as_u64().unwrap());
        let start = entries.iter().position(|e| std::ptr::eq(e, r)).unwrap();
        let donor_epoch = entries[..start]
            .iter()
            .filter(|e| e["event"] == "report" && e["trial"] == donor)
            .map(|e| e["metrics"]["epoch"].as_f64().unwrap() as u64)
            .next_back()
            .unwrap_or(0);
        if let Some(first) = epochs.get(&id).and_then(|e| e.first()) {
            assert!(
                donor_epoch >= 1 && *first > donor_epoch,
                "trial {id} continues from trial {donor}'s checkpoint at {donor_epoch}, first epoch {first}"
            );
        }
    }
}

#[test]
fn scheduler_server_speaks_the_protocol() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hpo"))
        .args(["scheduler", "serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let requests = [
        r#"{"op":"suggest","trial_id":0}"#,
        r#"{"op":"init","protocol":1,"space":{"x":{"uniform":[0,1]},"epochs":27},"metric":"loss","mode":"min","resource_attr":"epoch","max_resource_attr":"epochs","seed":1,"scheduler":{"type":"asha","variant":"stopping","grace_period":1,"reduction_factor":3}}"#,
        r#"{"op":"suggest","trial_id":0}"#,
        r#"{"op":"report","trial_id":0,"metrics":{"epoch":1,"loss":0.9}}"#,
        r#"this is not json"#,
        r#"{"op":"dance"}"#,
        r#"{"op":"report","trial_id":5,"metrics":{"epoch":1,"loss":0.9}}"#,
        r#"{"op":"suggest","trial_id":1}"#,
        r#"{"op":"report","trial_id":1,"metrics":{"epoch":1,"loss":0.5}}"#,
        r#"{"op":"suggest","trial_id":2}"#,
        r#"{"op":"report","trial_id":2,"metrics":{"epoch":1,"loss":0.95}}"#,
        r#"{"op":"report","trial_id":1,"metrics":{"epoch":2,"loss":null}}"#,
        r#"{"op":"complete","trial_id":0,"metrics":{"epoch":1,"loss":0.9}}"#,
        r#"{"op":"fail","trial_id":2}"#,
        r#"{"op":"close"}"#,
    ];
    let mut stdin = child.stdin.take().unwrap();
    for r in requests {
        writeln!(stdin, "{r}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let answers: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), requests.len(), "one answer per request");
    assert!(answers[0]["error"].as_str().unwrap().contains("send `init` first"));
    assert_eq!(answers[1], serde_json::json!({"ok": true, "name": "asha"}));
    assert_eq!(answers[2]["op"], "start");
    assert_eq!(answers[2]["config"]["epochs"], 27);
    assert_eq!(answers[3], serde_json::json!({"decision": "continue"}));
    assert!(answers[4]["error"].as_str().unwrap().contains("bad request"));
    assert!(answers[5]["error"].as_str().unwrap().contains("unknown variant `dance`"));
    assert!(answers[6]["error"].as_str().unwrap().contains("unknown trial 5"));
    assert_eq!(answers[8], serde_json::json!({"decision": "continue"}));
    // [0.9, 0.5, 0.95] at q = 1/3: cut-off 0.7667, so 0.95 is stopped
    assert_eq!(answers[10], serde_json::json!({"decision": "stop"}));
    assert_eq!(answers[11], serde_json::json!({"decision": "stop"}), "a non-finite metric fails the trial");
    assert_eq!(answers[12], serde_json::json!({"ok": true}));
    assert_eq!(answers[13], serde_json::json!({"ok": true}));
    assert_eq!(answers[14], serde_json::json!({"ok": true}));
}
