#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Several objectives and constraints as a user meets them: `metric = [...]` and
//! `constraints` in the experiment file, the Pareto front from `hpo best`, trials by front
//! from `hpo results`.

use serde_json::Value;

use crate::common::{hpo, repo, setup, text};

/// error = x, cost = (1 - x)^2 + y: a trade-off along x, and y only adds cost.
pub(crate) const TRADE_OFF: &str = r#"awk -v x="$2" -v y="$4" 'BEGIN { printf "[tune-metric]: {\"error\": %.17g, \"cost\": %.17g}\n", x, (1 - x) * (1 - x) + y }'"#;

pub(crate) const EXPERIMENT: &str = r#"name = "two"
metric = ["error", "cost"]
mode = "min"
constraints = ["cost <= 0.8"]
workers = 2
seed = 5

[space]
x = { uniform = [0.0, 1.0] }
y = { uniform = [0.0, 1.0] }

[backend]
type = "process"
command = ["sh", "f.sh"]

[stop]
max_trials = 40
"#;

#[test]
fn hpo_best_prints_the_pareto_front_of_the_feasible_trials() {
    let dir = setup(EXPERIMENT, &[("f.sh", TRADE_OFF)]);
    let out = hpo(&["run", "exp.toml", "--quiet"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 objectives (error, cost): the Pareto front with `hpo best"), "{}", text(&out));

    let all = hpo(&["results", "runs/two", "--json"], dir.path());
    let all: Vec<Value> = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(all.len(), 40, "every trial ranked");
    let point = |r: &Value| (r["error"].as_f64().unwrap(), r["cost"].as_f64().unwrap());
    let feasible: Vec<(f64, f64)> = all.iter().filter(|r| r["violation"] == 0.0).map(point).collect();
    let infeasible: Vec<&Value> = all.iter().filter(|r| r["front"].is_null()).collect();
    assert!(!infeasible.is_empty() && feasible.len() > 5, "{} infeasible", infeasible.len());
    for r in &infeasible {
        let (_, cost) = point(r);
        assert!((r["violation"].as_f64().unwrap() - (cost - 0.8)).abs() < 1e-12, "{r}");
    }

    let best = hpo(&["best", "runs/two"], dir.path());
    assert!(best.status.success(), "{}", text(&best));
    let front: Vec<Value> =
        String::from_utf8(best.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!front.is_empty());
    let dominated = |(e, c): (f64, f64)| feasible.iter().any(|&(e2, c2)| e2 <= e && c2 <= c && (e2 < e || c2 < c));
    for member in &front {
        let (e, c) = point(member);
        assert!(c <= 0.8, "an infeasible trial on the front: {member}");
        assert!(!dominated((e, c)), "a dominated trial on the front: {member}");
        assert!(member["config"]["x"].as_f64().is_some(), "{member}");
    }
    // Every feasible trial no other dominates is on it, by the first objective.
    let on_front = feasible.iter().filter(|&&p| !dominated(p)).count();
    assert_eq!(front.len(), on_front);
    let errors: Vec<f64> = front.iter().map(|m| point(m).0).collect();
    assert!(errors.windows(2).all(|w| w[0] <= w[1]), "{errors:?}");
    // The table: the front first.
    let table = text(&hpo(&["results", "runs/two"], dir.path()));
    assert!(table.contains(&format!("Pareto front of {} trials over error (min), cost (min)", front.len())), "{table}");
    // `hpo plot`: the front and the hypervolume against time, besides the usual figures.
    let plots = text(&hpo(&["plot", "runs/two"], dir.path()));
    for figure in ["front.svg", "hypervolume.svg"] {
        assert!(plots.contains(figure), "{plots}");
        let svg = std::fs::read_to_string(dir.path().join("runs/two/plots").join(figure)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{figure}");
    }
    let csv = std::fs::read_to_string(dir.path().join("runs/two/results.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains("cost") && csv.lines().next().unwrap().contains("error"));
}

/// ZDT1 in the simulator with a constraint; `SCHEDULER` and `SEARCHER` are filled in.
const SIMULATED: &str = r#"name = "zdt1"
metric = ["f1", "f2"]
constraints = ["f1 >= 0.2"]
resource_attr = "epoch"
max_resource_attr = "epochs"
workers = 4
seed = 3

[space]
epochs = 27
x1 = { uniform = [0.0, 1.0] }
x2 = { uniform = [0.0, 1.0] }
x3 = { uniform = [0.0, 1.0] }
x4 = { uniform = [0.0, 1.0] }
x5 = { uniform = [0.0, 1.0] }
x6 = { uniform = [0.0, 1.0] }

[searcher]
SEARCHER

[scheduler]
SCHEDULER

[backend]
type = "simulator"
blackbox = "zdt1"

[stop]
max_trials = 150
"#;

fn simulated(scheduler: &str, searcher: &str) -> String {
    SIMULATED.replace("SCHEDULER", scheduler).replace("SEARCHER", searcher)
}

#[test]
fn multi_objective_asha_and_nsga2_run_from_an_experiment_file() {
    for (scheduler, searcher) in [
        ("type = \"asha\"\nvariant = \"promotion\"", "type = \"nsga2\""),
        ("type = \"hyperband\"", "type = \"bo\"\nn_candidates = 50"),
        ("type = \"asha\"", "type = \"tpe\""),
    ] {
        let dir = setup(&simulated(scheduler, searcher), &[]);
        let out = hpo(&["run", "exp.toml", "--quiet"], dir.path());
        assert!(out.status.success(), "{scheduler}: {}", text(&out));
        let all: Vec<Value> =
            serde_json::from_slice(&hpo(&["results", "runs/zdt1", "--json"], dir.path()).stdout).unwrap();
        assert_eq!(all.len(), 150, "{scheduler}");
        let stopped_or_paused = all.iter().filter(|r| r["status"] != "Completed").count();
        assert!(stopped_or_paused > 50, "{scheduler}: the rungs cut trials short ({stopped_or_paused})");
        let best = hpo(&["best", "runs/zdt1"], dir.path());
        let front: Vec<Value> =
            String::from_utf8(best.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(front.len() >= 3, "{scheduler}: {front:?}");
        for member in &front {
            assert!(member["f1"].as_f64().unwrap() >= 0.2, "{scheduler}: infeasible on the front: {member}");
        }
    }
}

#[test]
fn schedulers_that_compare_one_number_refuse_several_objectives() {
    for scheduler in ["median_stopping", "pbt"] {
        let dir = setup(&simulated(&format!("type = \"{scheduler}\""), "type = \"random\""), &[]);
        let out = hpo(&["run", "exp.toml", "--quiet"], dir.path());
        assert!(!out.status.success());
        let message = text(&out);
        assert!(
            message.contains(&format!("{scheduler} compares trials by one objective")) && message.contains("asha"),
            "{message}"
        );
    }
}

/// `examples/several-objectives.toml`, cut to 30 trials: the built-in MLP's error against its
/// size, under its constraint.
#[test]
fn the_several_objectives_example_runs() {
    let dir = tempfile::tempdir().unwrap();
    let example = repo().join("examples/several-objectives.toml");
    let out = hpo(&["run", example.to_str().unwrap(), "--quiet", "--max-trials", "30"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let best = hpo(&["best", "runs/several-objectives"], dir.path());
    let front: Vec<Value> =
        String::from_utf8(best.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!front.is_empty());
    for member in &front {
        let parameters = member["parameters"].as_f64().unwrap();
        assert!(parameters <= 10_000.0 && member["val_error"].as_f64().unwrap() < 1.0, "{member}");
        // (64 + 1) w + (w + 1) 10 for one hidden layer of w units, and so on.
        let (w, layers) =
            (member["config"]["hidden_width"].as_f64().unwrap(), member["config"]["num_layers"].as_f64().unwrap());
        assert_eq!(parameters, 65.0 * w + (layers - 1.0) * (w + 1.0) * w + (w + 1.0) * 10.0, "{member}");
    }
}
