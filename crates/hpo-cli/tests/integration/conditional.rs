#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Conditional search spaces as a user meets them: `when` and `forbid` in an experiment file,
//! a training script that never sees an inactive parameter, results with empty cells, and
//! errors that name the file, line and key.

use serde_json::Value;

use crate::common::{hpo, repo, setup, text};

/// Records each trial's arguments and `HPO_CONFIG`, and reports a loss.
const RECORD: &str =
    "echo \"$@\" >> args.log\necho \"$HPO_CONFIG\" >> configs.log\necho '[tune-metric]: {\"loss\": 1.5}'\n";

const EXPERIMENT: &str = r#"name = "branches"
metric = "loss"
workers = 2
seed = 3

[space]
optimizer = { choice = ["sgd", "adam"] }
momentum = { uniform = [0.0, 0.99], when = "optimizer == 'sgd'" }
beta1 = { uniform = [0.5, 0.99], when = "optimizer == 'adam'" }
learning_rate = { loguniform = [1e-4, 1.0] }
forbid = ["optimizer == 'sgd' and learning_rate > 0.1"]

[backend]
type = "process"
command = ["sh", "record.sh"]

[stop]
max_trials = 40
"#;

#[test]
fn a_training_script_never_sees_an_inactive_parameter() {
    let dir = setup(EXPERIMENT, &[("record.sh", RECORD)]);
    let out = hpo(&["run", "exp.toml", "--quiet"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let args = std::fs::read_to_string(dir.path().join("args.log")).unwrap();
    let configs = std::fs::read_to_string(dir.path().join("configs.log")).unwrap();
    assert_eq!(args.lines().count(), 40);
    let mut branches = [0, 0];
    for (line, json) in args.lines().zip(configs.lines()) {
        let config: Value = serde_json::from_str(json).unwrap();
        let sgd = config["optimizer"] == "sgd";
        branches[usize::from(sgd)] += 1;
        assert_eq!(line.contains("--momentum"), sgd, "{line}");
        assert_eq!(line.contains("--beta1"), !sgd, "{line}");
        assert_eq!(config.get("momentum").is_some(), sgd, "{json}");
        assert_eq!(config.get("beta1").is_some(), !sgd, "{json}");
        assert!(!(sgd && config["learning_rate"].as_f64().unwrap() > 0.1), "forbidden: {json}");
    }
    assert!(branches[0] > 5 && branches[1] > 5, "both branches tried: {branches:?}");

    // results.csv: an inactive parameter is an empty cell.
    let csv = std::fs::read_to_string(dir.path().join("runs/branches/results.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (optimizer, momentum, beta1) = (column("config_optimizer"), column("config_momentum"), column("config_beta1"));
    for row in csv.lines().skip(1) {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[momentum].is_empty(), cells[optimizer] == "adam", "{row}");
        assert_eq!(cells[beta1].is_empty(), cells[optimizer] == "sgd", "{row}");
    }
    // `hpo best` prints the active parameters only.
    let best = hpo(&["best", "runs/branches"], dir.path());
    let best: Value = serde_json::from_slice(&best.stdout).unwrap();
    assert_eq!(best.get("momentum").is_some(), best["optimizer"] == "sgd", "{best}");
    assert_eq!(best.get("beta1").is_some(), best["optimizer"] == "adam", "{best}");
}

#[test]
fn a_bad_condition_names_the_file_line_and_key_before_anything_runs() {
    for (bad, expected) in [
        ("momentum = { uniform = [0.0, 0.99], when = \"optimizer == 'sgd'\" }", "<fine>"),
        (
            "momentum = { uniform = [0.0, 0.99], when = \"optimiser == 'sgd'\" }",
            "`optimiser` is not a parameter of the space",
        ),
        (
            "momentum = { uniform = [0.0, 0.99], when = \"optimizer == 'rmsprop'\" }",
            "'rmsprop' is not a value of `optimizer`",
        ),
        ("momentum = { uniform = [0.0, 0.99], when = \"optimizer > 1\" }", "compare it with == or in, not >"),
        (
            "momentum = { uniform = [0.0, 0.99], when = \"optimizer == 'sgd' and optimizer == 'adam'\" }",
            "can never hold",
        ),
    ] {
        let file = EXPERIMENT.replace("momentum = { uniform = [0.0, 0.99], when = \"optimizer == 'sgd'\" }", bad);
        let dir = setup(&file, &[("record.sh", RECORD)]);
        let out = hpo(&["run", "exp.toml", "--quiet", "--max-trials", "2"], dir.path());
        if expected == "<fine>" {
            assert!(out.status.success(), "{}", text(&out));
            continue;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}");
        assert!(stderr.contains("exp.toml:8:") && stderr.contains("`space.momentum`"), "{bad}: {stderr}");
        assert!(stderr.contains(expected), "{bad}: {stderr}");
        assert!(!dir.path().join("args.log").exists(), "{bad}: a trial ran");
    }
    let file = EXPERIMENT
        .replace("forbid = [\"optimizer == 'sgd' and learning_rate > 0.1\"]", "forbid = [\"learning_rate > 0\"]");
    let dir = setup(&file, &[("record.sh", RECORD)]);
    let stderr = String::from_utf8_lossy(&hpo(&["run", "exp.toml"], dir.path()).stderr).to_string();
    assert!(
        stderr.contains("exp.toml:11:") && stderr.contains("`space.forbid`: the clauses forbid 10000 of 10000"),
        "{stderr}"
    );
}

/// `examples/conditional.toml`, whose space the README shows as it is, cut to a few trials.
#[test]
fn the_conditional_example_runs() {
    let dir = tempfile::tempdir().unwrap();
    let example = repo().join("examples/conditional.toml");
    let file = std::fs::read_to_string(&example).unwrap();
    let space = &file[file.find("[space]").unwrap()..file.find("\n\n[searcher]").unwrap()];
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(readme.contains(&format!("```toml\n{space}\n```")), "the README shows the example's space as it is");
    let out = hpo(&["run", example.to_str().unwrap(), "--quiet", "--max-trials", "8"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let best = hpo(&["best", "runs/conditional"], dir.path());
    let best: Value = serde_json::from_slice(&best.stdout).unwrap();
    let layers = best["num_layers"].as_i64().unwrap();
    assert_eq!(best.get("width_3").is_some(), layers == 3, "{best}");
    assert_eq!(best.get("momentum").is_some(), best["optimizer"] == "sgd", "{best}");
}
