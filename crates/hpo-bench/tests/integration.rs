#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! The harness through its public API, as a scheduler author uses it: built-in methods and a
//! scheduler value side by side on a real table.

use std::time::Duration;

use hpo_bench::{BenchError, Setup, method};
use hpo_schedulers::{Asha, Variant};

#[test]
fn asha_beats_random_search_on_digits_mlp_and_a_scheduler_value_runs_beside_them() {
    let mut setup = Setup::new("digits-mlp", Some("val_loss"), 4).unwrap();
    setup.max_time = Some(Duration::from_secs(40));
    let methods = vec![("random".to_owned(), method("random").unwrap()), ("asha".to_owned(), method("asha").unwrap())];
    let seeds: Vec<u64> = (0..10).collect();
    let mut runs = setup.compare(&methods, &seeds).unwrap();
    assert_eq!(runs.len(), 20);
    assert!(runs[..10].iter().all(|r| r.method == "random") && runs[10..].iter().all(|r| r.method == "asha"));
    for seed in 0..3 {
        let mine = Box::new(Asha::new(Variant::Stopping, 1.0, 3.0, None));
        runs.push(setup.run_scheduler("mine", mine, seed).unwrap());
    }
    let summary = setup.summarize(&runs, 40.0, None);
    let median_regret = |i: usize| summary.methods[i].at.last().unwrap().regret.unwrap().1;
    assert_eq!(summary.methods.iter().map(|m| m.method.as_str()).collect::<Vec<_>>(), ["random", "asha", "mine"]);
    assert!(median_regret(1) < median_regret(0), "asha {} against random {}", median_regret(1), median_regret(0));
    // The same scheduler by value and by name, same seed: the same run.
    assert_eq!(runs[10].trajectory, runs[20].trajectory);
}

#[test]
fn bad_names_are_typed_errors() {
    assert!(matches!(Setup::new("mnist", None, 1), Err(BenchError::Blackbox(_))));
    assert!(matches!(Setup::new("branin", Some("accuracy"), 1), Err(BenchError::UnknownMetric { .. })));
    assert!(matches!(method("asha2"), Err(BenchError::UnknownMethod { .. })));
    let setup = Setup::new("branin", None, 1).unwrap();
    let err = setup.run("typo", &serde_json::json!({"type": "ashaa"}), 0).unwrap_err();
    assert!(matches!(err, BenchError::Scheduler { .. }) && err.to_string().contains("method `typo`"), "{err}");
}
