#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! The model-based searchers (TPE, GP-BO) through the public API: reproducibility, finite spaces,
//! degenerate results and pending trials.

use crate::common;

use std::sync::{Arc, Mutex};

use common::{context, max_trials, tune};
use hpo_core::{Config, EndReason, Metrics, Mode, Report, Searcher, Space, Summary, TrialId};
use hpo_schedulers::{BayesOpt, Fifo, Tpe};

fn space() -> Space {
    Space::builder()
        .uniform("x", -2.0, 2.0)
        .loguniform("lr", 1e-4, 1e-1)
        .randint("n", 1, 8)
        .choice("act", ["relu", "tanh"])
        .build()
        .unwrap()
}

fn loss(config: &Config) -> f64 {
    let act = if config.str("act").unwrap() == "tanh" { 0.0 } else { 0.5 };
    (config.f64("x").unwrap() - 0.7).powi(2) + (config.f64("lr").unwrap().log10() + 2.0).powi(2) + act
}

fn tell(searcher: &mut dyn Searcher, trial_id: TrialId, config: &Config, objective: f64) {
    let metrics = Metrics::new();
    let objectives = std::slice::from_ref(&objective);
    searcher.on_report(&Report {
        trial_id,
        config,
        metrics: &metrics,
        resource: 1.0,
        objective,
        objectives,
        violation: 0.0,
    });
    searcher.on_complete(trial_id);
}

/// A `bo` searcher on `space`, initialized with `seed`.
fn bo(space: &Space, seed: u64, settings: serde_json::Value) -> Box<dyn Searcher> {
    let mut settings = settings;
    settings["type"] = "bo".into();
    let mut searcher: Box<dyn Searcher> = serde_json::from_value(settings).unwrap();
    searcher.init(&context(space.clone(), "loss", Mode::Min, seed)).unwrap();
    searcher
}

/// Runs GP-BO through the tuner with one worker; the configs in trial order.
fn bo_run(seed: u64) -> Vec<String> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tune(
        context(space(), "loss", Mode::Min, seed),
        Box::new(Fifo::new(Box::new(BayesOpt::default()))),
        1,
        max_trials(20),
        move |t, r| {
            record.lock().unwrap().push(t.config.to_string());
            r.report([("loss", loss(&t.config))])?;
            Ok(())
        },
    );
    seen.lock().unwrap().clone()
}

#[test]
fn bo_same_seed_same_suggestions() {
    let first = bo_run(3);
    assert_eq!(first.len(), 20);
    assert_eq!(bo_run(3), first, "same seed, same suggestions");
    assert_ne!(bo_run(4), first, "another seed, other suggestions");
}

/// Runs a searcher under FIFO with one worker on a 4 x 3 space whose best config is n = 3,
/// c = b (loss 0); the summary and every config in trial order.
fn finite_space_run(searcher: Box<dyn Searcher>, seed: u64) -> (Summary, Vec<String>) {
    let space = Space::builder().randint("n", 1, 4).choice("c", ["a", "b", "c"]).build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let summary = tune(
        context(space, "loss", Mode::Min, seed),
        Box::new(Fifo::new(searcher)),
        1,
        max_trials(100),
        move |t, r| {
            record.lock().unwrap().push(t.config.to_string());
            let penalty = if t.config.str("c")? == "b" { 0.0 } else { 1.0 };
            r.report([("loss", (t.config.f64("n")? - 3.0).abs() + penalty)])?;
            Ok(())
        },
    );
    let seen = seen.lock().unwrap().clone();
    (summary, seen)
}

#[test]
fn tpe_is_reproducible_and_never_repeats_on_a_finite_space() {
    let run = |seed| finite_space_run(Box::new(Tpe::default()), seed);
    let (summary, seen) = run(5);
    assert_eq!(summary.reason, EndReason::SchedulerDone);
    assert_eq!(seen.len(), 12, "every config of the 4 x 3 space once");
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 12);
    assert_eq!(run(5).1, seen, "same seed, same suggestions");
    assert_eq!(summary.best.unwrap().value, 0.0);
}

#[test]
fn bo_is_reproducible_and_never_repeats_on_a_finite_space() {
    let run = |seed| finite_space_run(Box::new(BayesOpt::default()), seed);
    let (summary, seen) = run(5);
    assert_eq!(summary.reason, EndReason::SchedulerDone);
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!((seen.len(), distinct.len()), (12, 12), "every config of the 4 x 3 space once");
    assert_eq!(run(5).1, seen, "same seed, same suggestions");
}

#[test]
fn bo_survives_degenerate_results() {
    let space = Space::builder().uniform("x", 0.0, 1.0).uniform("y", 0.0, 1.0).build().unwrap();
    let point = Config::from_iter([("x", 0.25), ("y", 0.75)]);
    type Results = fn(TrialId) -> f64;
    let cases: [(&str, Results); 4] = [
        ("a single observation", |_| 1.0),
        ("constant results", |_| 3.0),
        ("the same config with different results", |t| t as f64),
        ("non-finite results", |t| if t % 2 == 0 { f64::NAN } else { f64::INFINITY }),
    ];
    for (case, value) in cases {
        let mut searcher = bo(&space, 1, serde_json::json!({ "n_startup": 1, "n_candidates": 50 }));
        let observations = if case == "a single observation" { 1 } else { 6 };
        for trial_id in 0..observations {
            tell(searcher.as_mut(), trial_id, &point, value(trial_id));
        }
        for trial_id in observations..observations + 3 {
            let config = searcher.suggest(trial_id).unwrap_or_else(|| panic!("{case}: no suggestion"));
            space.validate(&config).unwrap_or_else(|e| panic!("{case}: {e}"));
            tell(searcher.as_mut(), trial_id, &config, value(trial_id));
        }
    }
}

#[test]
fn bo_spreads_suggestions_over_pending_trials() {
    // After ten results near a clear minimum, four workers ask at once: the running trials
    // are fantasized, so the four suggestions are not all the same point.
    let space = Space::builder().uniform("x", 0.0, 1.0).uniform("y", 0.0, 1.0).build().unwrap();
    let mut searcher = bo(&space, 2, serde_json::json!({}));
    let f = |c: &Config| (c.f64("x").unwrap() - 0.3).powi(2) + (c.f64("y").unwrap() - 0.6).powi(2);
    for trial_id in 0..10 {
        let config = searcher.suggest(trial_id).unwrap();
        tell(searcher.as_mut(), trial_id, &config, f(&config));
    }
    let pending: Vec<Vec<f64>> = (10..14).map(|t| space.encode(&searcher.suggest(t).unwrap())).collect();
    let mut closest = f64::INFINITY;
    for (i, a) in pending.iter().enumerate() {
        for b in &pending[i + 1..] {
            closest = closest.min(a.iter().zip(b).map(|(u, v)| (u - v).powi(2)).sum::<f64>().sqrt());
        }
    }
    assert!(closest > 0.02, "closest pair of pending suggestions: {closest}");
}

#[test]
fn bo_tries_points_to_evaluate_first_and_rejects_bad_ones() {
    let space = space();
    let mut searcher = bo(&space, 0, serde_json::json!({ "points_to_evaluate": [{ "x": 0.5, "act": "tanh" }] }));
    let first = searcher.suggest(0).unwrap();
    assert_eq!((first.f64("x").unwrap(), first.str("act").unwrap()), (0.5, "tanh"));
    assert_eq!(first.i64("n").unwrap(), 5, "left-out keys take the middle of their domain (4.5 of 1..=8)");

    let mut bad: Box<dyn Searcher> =
        serde_json::from_value(serde_json::json!({ "type": "bo", "points_to_evaluate": [{ "x": 9.0 }] })).unwrap();
    let err = bad.init(&context(space.clone(), "loss", Mode::Min, 0)).unwrap_err();
    assert!(err.to_string().contains("points_to_evaluate[0]"), "{err}");
}

/// A conditional space with a forbidden combination, finite: 8 valid configs.
pub fn conditional_space() -> Space {
    // sgd: 3 momenta x (1 layer + 2 layers x 2 widths) = 9, less the forbidden momentum 0.9
    // with 2 layers (2 configs) = 7; adam: 1 (no momentum, no layers, no width).
    Space::from_toml_str(
        r#"
epochs = 100
optimizer = { choice = ["sgd", "adam"] }
momentum = { finrange = [0.0, 0.9, 3], when = "optimizer == 'sgd'" }
layers = { randint = [1, 2], when = "optimizer == 'sgd'" }
width_2 = { ordinal = [32, 64], when = "layers == 2" }
forbid = ["momentum > 0.5 and layers == 2"]
"#,
        "space.toml",
    )
    .unwrap()
}

/// Every searcher through the tuner on [`conditional_space`]: each config holds exactly its
/// active parameters and none is forbidden; grid search tries each of the 8 once.
#[test]
fn every_searcher_keeps_to_a_conditional_space() {
    use hpo_schedulers::{GridSearcher, RandomSearcher};
    let space = conditional_space();
    assert_eq!(space.size(), Some(8));
    let schedulers: Vec<(&str, Box<dyn hpo_core::Scheduler>)> = vec![
        ("random", Box::new(Fifo::new(Box::new(RandomSearcher::new(Vec::new()))))),
        ("grid", Box::new(Fifo::new(Box::new(GridSearcher::new(3, true))))),
        (
            "tpe",
            Box::new(Fifo::new(serde_json::from_value(serde_json::json!({ "type": "tpe", "n_startup": 4 })).unwrap())),
        ),
        ("bo", Box::new(Fifo::new(Box::new(BayesOpt::default())))),
    ];
    for (name, scheduler) in schedulers {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let mut ctx = context(space.clone(), "loss", Mode::Min, 7);
        ctx.max_resource_attr = Some("epochs".into());
        let summary = tune(ctx, scheduler, 2, max_trials(30), move |t, r| {
            record.lock().unwrap().push(t.config.to_string());
            let base = if t.config.str("optimizer")? == "sgd" { 0.5 } else { 1.0 };
            let momentum = t.config.get("momentum").and_then(|m| m.as_f64()).unwrap_or(0.0);
            for epoch in 1..=4 {
                r.report([("epoch", f64::from(epoch)), ("loss", base - momentum / 2.0 + 1.0 / f64::from(epoch))])?;
            }
            Ok(())
        });
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 8, "{name}: {} trials ({:?})", seen.len(), summary.reason);
        for text in &seen {
            let config: Config = serde_json::from_str(text).unwrap();
            space.validate_except(&config, Some("epochs")).unwrap_or_else(|e| panic!("{name}: {config}: {e}"));
        }
        if name == "grid" {
            let mut distinct = seen.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!((seen.len(), distinct.len()), (8, 8), "grid: each valid config once");
        }
    }
}
