#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! The `hpo` binary, run as a user runs it.

use crate::common::{hpo, repo, streams};

const HEIGHT: &str = r#"
name = "height"
metric = "mean_loss"
mode = "min"
resource_attr = "epoch"
max_resource_attr = "steps"
workers = 2
seed = 3

[space]
steps = 5
width = { randint = [0, 20] }
height = { randint = [-100, 100] }
activation = { choice = ["relu", "tanh"] }

[searcher]
type = "random"

[scheduler]
type = "fifo"

[backend]
type = "threads"
objective = "height"

[stop]
max_trials = 12
"#;

#[test]
fn run_writes_the_experiment_folder_and_results_read_it_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), HEIGHT).unwrap();
    let out = hpo(&["run", "exp.toml", "--quiet"], dir.path());
    let (stdout, stderr) = streams(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Finished (max trials)"), "{stdout}");
    assert!(stdout.contains("Best mean_loss = "), "{stdout}");
    assert!(stdout.contains("runs/height"), "{stdout}");

    let exp = dir.path().join("runs/height");
    for file in ["experiment.toml", "journal.jsonl", "results.csv", "trials"] {
        assert!(exp.join(file).exists(), "missing {file}");
    }
    // results.csv: Syne Tune's columns, one row per report
    let mut reader = csv::Reader::from_path(exp.join("results.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "trial_id",
            "st_tuner_time",
            "st_decision",
            "st_status",
            "config_activation",
            "config_height",
            "config_steps",
            "config_width",
            "epoch",
            "mean_loss"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 12 * 5);
    let last_of_trial_0 = rows.iter().rfind(|r| &r[0] == "0").unwrap();
    assert_eq!(&last_of_trial_0[3], "Completed");
    assert_eq!(&last_of_trial_0[8], "5");

    // the resolved spec is a valid experiment file with the defaults filled in
    let resolved = std::fs::read_to_string(exp.join("experiment.toml")).unwrap();
    assert!(resolved.contains("journal = true") && resolved.contains("max_trials = 12"), "{resolved}");

    // hpo best prints the best config as JSON; hpo results agrees
    let best = hpo(&["best", "runs/height"], dir.path());
    assert!(best.status.success());
    let best: serde_json::Value = serde_json::from_slice(&best.stdout).unwrap();
    assert_eq!(best["steps"], 5);
    let results = hpo(&["results", "runs/height", "--json"], dir.path());
    let ranked: serde_json::Value = serde_json::from_slice(&results.stdout).unwrap();
    assert_eq!(ranked[0]["config"], best);
    assert_eq!(ranked.as_array().unwrap().len(), 12);
    let values: Vec<f64> = ranked.as_array().unwrap().iter().map(|t| t["mean_loss"].as_f64().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "ranked best first");
    let table = streams(&hpo(&["results", "runs/height", "--top", "3"], dir.path())).0;
    assert!(table.contains("Best 3 of 12 trials") && table.lines().count() == 6, "{table}");
    let csv_out = streams(&hpo(&["results", "runs/height", "--csv"], dir.path())).0;
    assert_eq!(csv_out, std::fs::read_to_string(exp.join("results.csv")).unwrap());

    // a second run never touches the first one's folder
    let again = hpo(&["run", "exp.toml", "--quiet", "--max-trials", "2", "--seed", "9"], dir.path());
    assert!(again.status.success());
    assert!(dir.path().join("runs/height-2/journal.jsonl").exists());
}

#[test]
fn overrides_take_precedence() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), HEIGHT).unwrap();
    let out = hpo(
        &[
            "run",
            "exp.toml",
            "-q",
            "--workers",
            "1",
            "--max-trials",
            "3",
            "--name",
            "other",
            "--output",
            "elsewhere",
            "--seed",
            "5",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{:?}", streams(&out));
    let resolved = std::fs::read_to_string(dir.path().join("elsewhere/other/experiment.toml")).unwrap();
    for expected in ["workers = 1", "max_trials = 3", "name = \"other\"", "seed = 5"] {
        assert!(resolved.contains(expected), "{expected} not in\n{resolved}");
    }
    let table = streams(&hpo(&["results", "elsewhere/other"], dir.path())).0;
    assert!(table.contains("3 trials"), "{table}");
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let bad_space = HEIGHT.replace("width = { randint = [0, 20] }", "width = { randint = [20, 0] }");
    std::fs::write(dir.path().join("bad.toml"), bad_space).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "bad.toml"], "bad.toml:12: `space.width`: `randint` needs low < high, got [20, 0]"),
        (vec!["run", "missing.toml"], "missing.toml: cannot read the experiment file"),
        (vec!["results", "."], "has no journal.jsonl"),
        (vec!["best", "nowhere"], "has no journal.jsonl"),
        (vec!["run", "bad.toml", "--workers", "0"], "bad.toml:12"),
    ];
    for (args, expected) in cases {
        let out = hpo(&args, dir.path());
        let (_, stderr) = streams(&out);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // a scheduler that cannot work with the experiment: a clear error, no experiment folder
    let no_max = HEIGHT.replace("max_resource_attr = \"steps\"\n", "").replace("type = \"fifo\"", "type = \"asha\"");
    std::fs::write(dir.path().join("asha.toml"), no_max).unwrap();
    let out = hpo(&["run", "asha.toml", "--name", "no-max"], dir.path());
    let (_, stderr) = streams(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("error: asha.toml:18: `scheduler`: asha needs `max_t`"), "{stderr}");
    assert!(!stderr.contains("experiment `"), "no word of a folder that is then removed: {stderr}");
    assert!(!dir.path().join("runs/no-max").exists());
    std::fs::write(dir.path().join("ok.toml"), HEIGHT).unwrap();
    let out = hpo(&["run", "ok.toml", "--name", "a/b"], dir.path());
    assert!(streams(&out).1.contains("--name `a/b` cannot be used"), "{:?}", streams(&out));
    // a corrupt journal names its line
    std::fs::create_dir_all(dir.path().join("broken")).unwrap();
    std::fs::write(
        dir.path().join("broken/journal.jsonl"),
        "{\"event\":\"experiment\",\"v\":1,\"name\":\"x\",\"spec\":{\"metric\":\"m\"}}\nnot json\n{}\n",
    )
    .unwrap();
    let out = hpo(&["results", "broken"], dir.path());
    assert!(streams(&out).1.contains("journal.jsonl:2:"), "{:?}", streams(&out));
}

#[test]
fn quickstart_runs_as_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = repo().join("examples/quickstart.toml");
    let out = hpo(&["run", quickstart.to_str().unwrap(), "--max-trials", "3", "--quiet"], dir.path());
    let (stdout, stderr) = streams(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let best = hpo(&["best", "runs/quickstart"], dir.path());
    let best: serde_json::Value = serde_json::from_slice(&best.stdout).unwrap();
    assert_eq!(best["epochs"], 30);
    let table = streams(&hpo(&["results", "runs/quickstart", "--json"], dir.path())).0;
    let ranked: serde_json::Value = serde_json::from_str(&table).unwrap();
    // a real model learns: the best of 3 random configs beats guessing (0.9 error) by far
    assert!(ranked[0]["val_error"].as_f64().unwrap() < 0.5, "{table}");
    assert_eq!(ranked[0]["reports"], 30);
}

#[test]
fn bench_overhead_prints_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = hpo(&["bench", "overhead", "--trials", "2000", "--workers", "2", "--repeats", "1", "--json"], dir.path());
    assert!(out.status.success(), "{:?}", streams(&out));
    let stdout = streams(&out).0;
    assert_eq!(stdout.lines().count(), 1);
    let line: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in ["us_per_trial", "us_per_trial_tuner_only", "us_per_trial_journal"] {
        assert!(line[key].as_f64().is_some_and(|us| us > 0.0), "{key}: {stdout}");
    }
    assert_eq!(line["trials"], 2000);
}

#[test]
fn a_run_whose_trials_all_failed_says_why_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    // Every trial reports, but never the metric: the summary names what was reported.
    let wrong_metric = HEIGHT.replace("metric = \"mean_loss\"", "metric = \"val_error\"");
    std::fs::write(dir.path().join("wrong.toml"), wrong_metric).unwrap();
    let out = hpo(&["run", "wrong.toml", "--quiet", "--max-trials", "3"], dir.path());
    let (stdout, stderr) = streams(&out);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("error: all 3 trials failed"), "{stderr}");
    assert!(stderr.contains("report has no metric `val_error` (it has: epoch, mean_loss)"), "{stderr}");
    // One trial is "1 trial".
    std::fs::write(dir.path().join("ok.toml"), HEIGHT).unwrap();
    let out = hpo(&["run", "ok.toml", "--quiet", "--max-trials", "1", "--name", "one"], dir.path());
    assert!(streams(&out).0.contains(": 1 trial, 1 completed"), "{:?}", streams(&out));
}

#[test]
fn top_applies_to_every_format() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), HEIGHT).unwrap();
    assert!(hpo(&["run", "exp.toml", "--quiet"], dir.path()).status.success());
    let json = hpo(&["results", "runs/height", "--json", "--top", "3"], dir.path());
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows.len(), 3);
    let all: Vec<serde_json::Value> =
        serde_json::from_slice(&hpo(&["results", "runs/height", "--json"], dir.path()).stdout).unwrap();
    assert_eq!(all.len(), 12);
    assert_eq!(rows[..], all[..3], "the best three, best first");
    let csv = String::from_utf8(hpo(&["results", "runs/height", "--csv", "--top", "2"], dir.path()).stdout).unwrap();
    let trials: std::collections::BTreeSet<&str> = csv.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    let best: std::collections::BTreeSet<String> = all[..2].iter().map(|r| r["trial_id"].to_string()).collect();
    assert_eq!(trials, best.iter().map(String::as_str).collect());
}

/// A training script computing f(x, y, z) = 10 x + y (z unused) from its arguments, which come
/// sorted by name: `--x X --y Y --z Z --st_checkpoint_dir DIR`.
const LINEAR: &str = r#"awk -v x="$2" -v y="$4" 'BEGIN { printf "[tune-metric]: {\"loss\": %.17g}\n", 10 * x + y }'"#;

#[test]
fn importance_ranks_the_parameters_of_a_function_whose_importances_are_known() {
    let experiment = "name = \"linear\"\nmetric = \"loss\"\nworkers = 2\nseed = 1\n\n[space]\nx = { uniform = [0.0, 1.0] }\ny = { uniform = [0.0, 1.0] }\nz = { uniform = [0.0, 1.0] }\n\n[backend]\ntype = \"process\"\ncommand = [\"sh\", \"f.sh\"]\n\n[stop]\nmax_trials = 300\n";
    let dir = crate::common::setup(experiment, &[("f.sh", LINEAR)]);
    assert!(hpo(&["run", "exp.toml", "--quiet"], dir.path()).status.success());
    let out = hpo(&["importance", "runs/linear", "--json"], dir.path());
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let names: Vec<&str> = found["params"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["x", "y", "z"], "{found}");
    assert_eq!(
        (found["method"].as_str(), found["trials"].as_u64(), found["top_trials"].as_u64()),
        (Some("ped-anova"), Some(300), Some(30))
    );
    let x = found["params"][0]["importance"].as_f64().unwrap();
    assert!(x > 0.5, "x dominates: {found}");

    let table = streams(&hpo(&["importance", "runs/linear"], dir.path())).0;
    assert!(table.lines().nth(1).is_some_and(|l| l.trim_start().starts_with("x ")), "{table}");
    let (stdout, stderr) = streams(&hpo(&["importance", "runs/linear", "--quantile", "1"], dir.path()));
    assert!(stdout.is_empty() && stderr.contains("--quantile") && stderr.contains("between 0 and 1"), "{stderr}");
}

#[test]
fn a_plugin_scheduler_with_a_searcher_is_one_clear_error_on_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let process = HEIGHT.replace(
        "[scheduler]\ntype = \"fifo\"",
        "[scheduler]\ntype = \"process\"\ncommand = [\"python3\", \"mine.py\"]",
    );
    std::fs::write(dir.path().join("process.toml"), process).unwrap();
    std::fs::write(dir.path().join("plain.toml"), HEIGHT).unwrap();
    for args in [vec!["run", "process.toml"], vec!["run", "plain.toml", "--plugin", "libmine.so"]] {
        let out = hpo(&args, dir.path());
        let (_, stderr) = streams(&out);
        assert!(!out.status.success());
        let file = args[1];
        assert!(stderr.contains(&format!("{file}:16: `searcher`: a plugin scheduler")), "{args:?}: {stderr}");
        assert!(stderr.contains("remove the [searcher] table"), "{stderr}");
    }
}

#[test]
fn one_version_and_every_flag_described() {
    let dir = tempfile::tempdir().unwrap();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let changelog = readme.split("## Changelog").nth(1).unwrap();
    let newest = changelog.split("- ").nth(1).unwrap().split(' ').next().unwrap();
    let version = streams(&hpo(&["--version"], dir.path())).0;
    assert_eq!(version.trim(), format!("hpo {newest}"), "`hpo --version` and the README's changelog");
    assert!(readme.contains("cargo install --path crates/hpo-cli"), "the README says how to get `hpo` on the PATH");
    let commands: [&[&str]; 18] = [
        &["run"],
        &["results"],
        &["list"],
        &["best"],
        &["importance"],
        &["plot"],
        &["dashboard"],
        &["report"],
        &["bench", "overhead"],
        &["bench", "scheduler"],
        &["bench", "searcher"],
        &["bench", "process"],
        &["bench", "run"],
        &["bench", "slurm"],
        &["bench", "simulator"],
        &["bench", "plot"],
        &["scheduler", "serve"],
        &["plugin", "check"],
    ];
    for command in commands {
        let help = streams(&hpo(&[command, &["-h"]].concat(), dir.path())).0;
        for line in help
            .lines()
            .filter(|l| l.trim_start().starts_with('-') && !l.contains("--help") && !l.contains("Print help"))
        {
            let words: Vec<&str> =
                line.split_whitespace().filter(|w| !w.starts_with('-') && !w.starts_with('<')).collect();
            let described = words.iter().any(|w| !w.starts_with("[default"));
            assert!(described, "`hpo {}`: `{}` has no description", command.join(" "), line.trim());
        }
    }
}

#[test]
fn unknown_backend_and_objective_are_clear_errors() {
    const MINIMAL: &str = "\nmetric = \"loss\"\n[space]\nx = { uniform = [0, 1] }\n";
    let dir = tempfile::tempdir().unwrap();
    let run = |backend: &str| {
        std::fs::write(dir.path().join("exp.toml"), format!("{MINIMAL}[backend]\n{backend}")).unwrap();
        let out = hpo(&["run", "exp.toml", "-q"], dir.path());
        assert!(!out.status.success());
        streams(&out).1
    };
    let err = run("type = \"threads\"\nobjective = \"mnist\"\n");
    assert!(
        err.contains(
            "exp.toml:5: `backend.objective`: no built-in objective `mnist`; expected one of digits-mlp, height"
        ),
        "{err}"
    );
    let err = run("type = \"cloud\"\n");
    assert!(err.contains("unknown backend `cloud`"), "{err}");
}

/// One test for every method in the registry: each runs a short simulated experiment and
/// finds something.
#[test]
fn every_listed_method_runs() {
    let dir = tempfile::tempdir().unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&hpo(&["list", "--json"], dir.path()).stdout).unwrap();
    let names: Vec<&str> = listed["methods"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.len() >= 11, "{names:?}");
    let methods = names.join(",");
    let out = hpo(
        &[
            "bench",
            "run",
            "--blackbox",
            "branin",
            "--methods",
            &methods,
            "--seeds",
            "0..1",
            "--max-time",
            "60s",
            "--json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{:?}", streams(&out));
    let lines: Vec<serde_json::Value> =
        streams(&out).0.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), names.len());
    for (line, name) in lines.iter().zip(&names) {
        assert_eq!(line["method"], *name);
        let last = line["at"].as_array().unwrap().last().unwrap();
        assert!(last["best"][1].as_f64().unwrap().is_finite(), "{name} found nothing: {line}");
    }
}

/// Every listed backend type is read by `hpo run` (an unknown setting is named as such, not
/// as an unknown backend).
#[test]
fn every_listed_backend_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&hpo(&["list", "--json"], dir.path()).stdout).unwrap();
    let backends = listed["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 4);
    for backend in backends {
        let kind = backend["name"].as_str().unwrap();
        let experiment = format!(
            "metric = \"loss\"\n[space]\nx = {{ uniform = [0, 1] }}\n[backend]\ntype = \"{kind}\"\nbogus = 1\n"
        );
        std::fs::write(dir.path().join("exp.toml"), experiment).unwrap();
        let stderr = streams(&hpo(&["run", "exp.toml", "-q"], dir.path())).1;
        assert!(stderr.contains("exp.toml:4: `backend.bogus`: unknown field `bogus`"), "{kind}: {stderr}");
    }
}

#[test]
fn every_count_of_every_benchmark_refuses_zero_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let counts: [(&str, &[&str]); 9] = [
        ("overhead", &["--trials", "--workers", "--repeats"]),
        ("scale", &["--trials", "--workers"]),
        ("scheduler", &["--trials", "--max-t"]),
        ("searcher", &["--dims", "--suggestions"]),
        ("process", &["--trials", "--workers"]),
        ("run", &["--workers"]),
        ("slurm", &["--trials", "--workers"]),
        ("simulator", &["--runs"]),
        ("resume", &["--trials"]),
    ];
    for (bench, flags) in counts {
        for flag in flags {
            let out = hpo(&["bench", bench, flag, "0", "--json"], dir.path());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "hpo bench {bench} {flag} 0: {stderr}");
            assert!(
                stderr.contains(&format!("invalid value '0' for '{flag} ")),
                "hpo bench {bench} {flag} 0: {stderr}"
            );
            assert!(out.stdout.is_empty(), "hpo bench {bench} {flag} 0 measured nothing");
        }
    }
}
