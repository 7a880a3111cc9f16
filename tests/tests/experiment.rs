#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Experiment files: defaults, resolution, and errors that say where and what.

use hpo_core::{ExperimentSpec, Mode};

fn parse(text: &str) -> Result<ExperimentSpec, String> {
    hpo_schedulers::register();
    ExperimentSpec::from_toml_str(text, "exp.toml").map_err(|e| e.to_string())
}

const MINIMAL: &str = r#"
metric = "loss"
[space]
x = { uniform = [0, 1] }
"#;

#[test]
fn defaults_are_filled_in() {
    let spec = parse(MINIMAL).unwrap();
    assert_eq!(spec.name, "experiment");
    assert_eq!(spec.mode, Mode::Min);
    assert_eq!(spec.workers, 1);
    assert_eq!(spec.seed, 0);
    assert!(spec.journal);
    assert_eq!(spec.scheduler, serde_json::json!({"type": "fifo", "searcher": {"type": "random"}}));
    assert_eq!(spec.backend, serde_json::json!({"type": "threads"}));
    // the resolved spec reads back to the same thing, the space written as users write it
    let resolved = spec.to_toml().unwrap();
    assert!(resolved.ends_with("[space]\nx = { uniform = [0.0, 1.0] }\n"), "{resolved}");
    let again = parse(&resolved).unwrap();
    assert_eq!(again.to_json(), spec.to_json());
}

#[test]
fn the_design_example_parses() {
    let spec = parse(
        r#"
name = "height"
metric = "mean_loss"
mode = "min"
resource_attr = "epoch"
max_resource_attr = "steps"
workers = 2
seed = 0

[space]
steps = 9
width = { randint = [0, 20] }
height = { randint = [-100, 100] }
learning_rate = { loguniform = [1e-4, 1e-1] }
activation = { choice = ["relu", "tanh"] }

[searcher]
type = "grid"
points_per_numeric = 3

[scheduler]
type = "fifo"

[backend]
type = "threads"
objective = "height"

[stop]
max_trials = 20
max_wallclock = "10m"
"#,
    )
    .unwrap();
    assert_eq!(
        spec.scheduler["searcher"],
        serde_json::json!({"type": "grid", "points_per_numeric": 3, "shuffle": false})
    );
    assert_eq!(spec.stop.max_wallclock, Some(std::time::Duration::from_secs(600)));
    assert_eq!(spec.stop.max_trials, Some(20));
    spec.build_scheduler().unwrap();
}

#[test]
fn errors_name_file_line_and_key() {
    let cases = [
        ("metric = \"loss\"\nworkerz = 2\n[space]\nx = 1", "exp.toml:2: unknown field `workerz`"),
        ("[space]\nx = 1", "missing field `metric`"),
        ("metric = \"loss\"\n[space]\nx = { uniform = [2, 1] }", "exp.toml:3: `space.x`: `uniform` needs low < high"),
        (
            "metric = \"loss\"\n[space]\nx = 1\n[scheduler]\ntype = \"nope\"",
            "exp.toml:4: `scheduler`: unknown variant `nope`, expected one of `asha`, `fifo`, `hyperband`, `median_stopping`, `pbt`, `successive_halving`",
        ),
        (
            "metric = \"loss\"\n[space]\nx = 1\n[scheduler]\ntype = \"fifo\"\ngrace = 3",
            "exp.toml:4: `scheduler`: unknown field `grace`",
        ),
        (
            "metric = \"loss\"\n[space]\nx = 1\n[searcher]\ntype = \"random\"\npoints = 3",
            "`scheduler`: unknown field `points`",
        ),
        (
            "metric = \"loss\"\n[space]\nx = 1\n[stop]\nmax_wallclock = \"soon\"",
            "exp.toml:4: `stop`: `soon` is not a duration",
        ),
        ("metric = \"loss\"\n[space]\nx = 1\n[stop]\nmax_trialz = 3", "`stop`: unknown field `max_trialz`"),
        ("metric = \"loss\"\nworkers = 0\n[space]\nx = 1", "`workers`: must be at least 1"),
        (
            "metric = \"loss\"\nmode = \"maximize\"\n[space]\nx = 1",
            "exp.toml:2: unknown variant `maximize`, expected `min` or `max`",
        ),
        (
            "metric = \"loss\"\nmax_resource_attr = \"epochs\"\n[space]\nx = 1",
            "`max_resource_attr`: `epochs` is not a parameter",
        ),
        ("metric = \"loss\"\n[space]\n", "`space`: the search space is empty"),
        ("metric = \"loss\"\n[space\nx = 1", "exp.toml:2"),
    ];
    for (text, expected) in cases {
        let err = parse(text).unwrap_err();
        assert!(err.contains(expected), "for {text:?}:\n  got      {err}\n  expected {expected}");
    }
}

#[test]
fn unknown_backend_and_objective_are_clear_errors() {
    let spec = parse(&format!("{MINIMAL}[backend]\ntype = \"threads\"\nobjective = \"mnist\"\n")).unwrap();
    let err = hpo_backends::build_backend(&spec, None).err().unwrap().to_string();
    assert!(
        err.contains(
            "exp.toml:5: `backend.objective`: no built-in objective `mnist`; expected one of digits-mlp, height"
        ),
        "{err}"
    );
    let spec = parse(&format!("{MINIMAL}[backend]\ntype = \"cloud\"\n")).unwrap();
    let err = hpo_backends::build_backend(&spec, None).err().unwrap().to_string();
    assert!(err.contains("unknown backend `cloud`"), "{err}");
}
