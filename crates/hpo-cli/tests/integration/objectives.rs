#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Several objectives and constraints as a user meets them: `metric = [...]` and
//! `constraints` in the experiment file, the Pareto front from `hpo best`, trials by front
//! from `hpo results`.

use serde_json::Value;

use crate::common::{hpo, setup, text};

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
