#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Experiment files: defaults, resolution, and errors that say where and what.

use hpo_core::pareto::Constraint;
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

/// Several objectives and constraints: the spec lists them, the journal's header carries
/// them, and the resolved file (as `hpo resume` reads it back) says the same.
#[test]
fn several_objectives_and_constraints_are_read_and_written_back() {
    let spec = parse(&MINIMAL.replace(
        "metric = \"loss\"",
        "metric = [\"loss\", \"latency_ms\"]\nmode = [\"min\", \"max\"]\nconstraints = [\"latency_ms <= 20\"]",
    ))
    .unwrap();
    assert_eq!((spec.metric.as_str(), spec.mode), ("loss", Mode::Min));
    let objectives: Vec<(&str, Mode)> = spec.objectives.iter().map(|o| (o.metric.as_str(), o.mode)).collect();
    assert_eq!(objectives, [("loss", Mode::Min), ("latency_ms", Mode::Max)]);
    assert_eq!(spec.constraints, [Constraint::parse("latency_ms <= 20").unwrap()]);
    let json = spec.to_json();
    assert_eq!(json["objectives"][1], serde_json::json!({ "metric": "latency_ms", "mode": "max" }));
    let again = parse(&spec.to_toml().unwrap()).unwrap();
    assert_eq!(again.to_json(), json);
    // One objective: the header is as it always was.
    assert!(parse(MINIMAL).unwrap().to_json().get("objectives").is_none());
}

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
        ("metric = \"loss\"\nworkerz = 2\n[space]\nx = 1", "exp.toml:2: `workerz`: unknown field `workerz`"),
        ("[space]\nx = 1", "missing field `metric`"),
        ("metric = \"loss\"\n[space]\nx = { uniform = [2, 1] }", "exp.toml:3: `space.x`: `uniform` needs low < high"),
        (
            "metric = \"loss\"\n[space]\nx = 1\n[scheduler]\ntype = \"nope\"",
            "exp.toml:4: `scheduler`: unknown variant `nope`, expected one of `asha`, `fifo`, `hyperband`, `median_stopping`, `pbt`, `successive_halving`",
        ),
        (
            "metric = \"loss\"\n[space]\nx = 1\n[scheduler]\ntype = \"fifo\"\ngrace = 3",
            "exp.toml:4: `scheduler.grace`: unknown field `grace`",
        ),
        (
            "metric = \"loss\"\n[space]\nx = 1\n[searcher]\ntype = \"random\"\npoints = 3",
            "exp.toml:4: `searcher.points`: unknown field `points`",
        ),
        (
            "metric = \"loss\"\n[space]\nx = 1\n[stop]\nmax_wallclock = \"soon\"",
            "exp.toml:4: `stop.max_wallclock`: `soon` is not a duration",
        ),
        ("metric = \"loss\"\n[space]\nx = 1\n[stop]\nmax_trialz = 3", "`stop.max_trialz`: unknown field `max_trialz`"),
        ("metric = \"loss\"\nworkers = 0\n[space]\nx = 1", "`workers`: must be at least 1"),
        ("metric = 3\n[space]\nx = 1", "exp.toml:1: `metric`: expected a metric name or a list of them, got 3"),
        ("metric = [\"a\", \"a\"]\n[space]\nx = 1", "exp.toml:1: `metric`: `a` is listed twice"),
        (
            "metric = [\"a\", \"b\"]\nmode = [\"min\"]\n[space]\nx = 1",
            "exp.toml:2: `mode`: 1 modes for 2 metrics: give one per metric, or one for all",
        ),
        (
            "metric = [\"a\", \"b\"]\nconstraints = [\"c < 3\"]\n[space]\nx = 1",
            "exp.toml:2: `constraints`: `c < 3`: expected a metric, <= or >=, and a number, as `latency_ms <= 20`",
        ),
        (
            "metric = \"loss\"\nmode = \"maximize\"\n[space]\nx = 1",
            "exp.toml:2: `mode`: expected \"min\" or \"max\", got \"maximize\"",
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

/// A valid experiment file whose lines a property test then damages.
const FULL: &str = r#"name = "prop"
metric = "loss"
mode = "max"
resource_attr = "epoch"
max_resource_attr = "epochs"
workers = 3
seed = 7
[space]
epochs = 9
x = { uniform = [0.0, 1.0] }
lr = { loguniform = [1e-4, 1e-1] }
n = { randint = [1, 100] }
w = { lograndint = [1, 4096] }
act = { choice = ["relu", "tanh"] }
r = { finrange = [0.0, 1.0, 5] }
[searcher]
type = "tpe"
n_startup = 3
[scheduler]
type = "asha"
reduction_factor = 3
[backend]
type = "process"
command = ["python3", "train.py"]
timeout = "1h"
[stop]
max_trials = 10
max_wallclock = "5m"
"#;

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Values that stress the parser: huge, tiny, non-finite, wrong types, odd text.
    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("nan".to_owned()),
            Just("-inf".to_owned()),
            Just("9223372036854775807".to_owned()),
            Just("-9223372036854775808".to_owned()),
            Just("1e308".to_owned()),
            Just("\"18446744073709551615s\"".to_owned()),
            Just("[]".to_owned()),
            Just("{}".to_owned()),
            Just("{ randint = [5, 1] }".to_owned()),
            Just("{ finrange = [0, 1, 100000000000] }".to_owned()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<f64>().prop_map(|x| format!("{x:?}")),
            "[a-z_\\[\\]{}=\". ,0-9-]{0,24}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Any text: an error that names the file, never a panic.
        #[test]
        fn any_text_parses_or_names_the_file(text in "\\PC{0,400}") {
            if let Err(e) = parse(&text) {
                prop_assert!(e.starts_with("exp.toml"), "{e}");
            }
        }

        /// A valid file with one line's value replaced: accepted, or an error naming the
        /// file and the line (or the key) that was changed.
        #[test]
        fn a_damaged_value_is_named(line in 0usize..28, value in token()) {
            let lines: Vec<&str> = FULL.lines().collect();
            let Some((key, _)) = lines[line].split_once(" = ") else { return Ok(()) };
            let mut damaged: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            damaged[line] = format!("{key} = {value}");
            if let Err(e) = parse(&damaged.join("\n")) {
                prop_assert!(e.starts_with("exp.toml"), "{e}");
                prop_assert!(!e.contains("panicked"), "{e}");
            }
        }

        /// Any bytes on a trial's stdout: a report, a malformed line, or not a metrics line,
        /// never a panic.
        #[test]
        fn any_output_line_is_classified(bytes in proptest::collection::vec(any::<u8>(), 0..200), metric in any::<bool>()) {
            let mut line = if metric { hpo_backends::METRIC_PREFIX.as_bytes().to_vec() } else { Vec::new() };
            line.extend(bytes);
            let _ = hpo_backends::metrics_line(&line);
        }

        /// Reports written as JSON come back bit for bit, with NaN as `null`.
        #[test]
        fn metrics_round_trip(values in proptest::collection::btree_map("[a-z_]{1,12}", any::<f64>(), 1..8)) {
            let json: serde_json::Map<String, serde_json::Value> =
                values.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect();
            let line = format!("{}{}\n", hpo_backends::METRIC_PREFIX, serde_json::Value::Object(json));
            let parsed = hpo_backends::metrics_line(line.as_bytes()).unwrap().unwrap();
            for (k, v) in &values {
                let got = parsed.get(k).unwrap();
                prop_assert!(if v.is_finite() { got.to_bits() == v.to_bits() } else { got.is_nan() }, "{k}: {v} -> {got}");
            }
        }
    }
}

/// Class: a bad value at the top level or in a table the spec reads names its key (the
/// `[backend]` table is read by the CLI, tested there).
#[test]
fn every_bad_value_names_its_key() {
    let cases = [
        ("workers = \"two\"\n", "`workers`"),
        ("journal_sync = \"tape\"\n", "`journal_sync`"),
        ("[scheduler]\ntype = \"asha\"\ngrace_period = \"x\"\n", "`scheduler.grace_period`"),
        (
            "[scheduler]\ntype = \"hyperband\"\nreduction_factr = 3\n",
            "`scheduler.reduction_factr`: unknown field `reduction_factr`",
        ),
        ("[searcher]\ntype = \"tpe\"\nn_startup = -1\n", "`searcher.n_startup`"),
        ("[stop]\nmax_trials = \"x\"\n", "`stop.max_trials`"),
        ("[stop]\nmax_wallclock = \"soon\"\n", "`stop.max_wallclock`"),
    ];
    for (extra, key) in cases {
        let text = format!("metric = \"loss\"\n{extra}[space]\nx = {{ uniform = [0, 1] }}\n");
        let message = parse(&text).err().unwrap_or_default();
        assert!(message.starts_with("exp.toml:") && message.contains(key), "{extra:?}: {message}");
    }
}
