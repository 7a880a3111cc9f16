#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! The simulator backend and the blackboxes, through the public API.

use std::sync::Arc;

use hpo_backends::SimulatorBackend;
use hpo_backends::blackbox::{Blackbox, Tabular, blackbox};
use hpo_core::{Backend, Config, Decision, Event, EventKind, TrialStart, Value};

/// A tiny table: config a=1 takes 10 s per epoch, a=2 takes 5 s; loss = a / epoch.
fn tiny() -> Arc<dyn Blackbox> {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("a,epoch,loss,elapsed\n");
    for a in [1, 2] {
        for epoch in 1..=3 {
            let per_epoch = if a == 1 { 10 } else { 5 };
            csv.push_str(&format!("{a},{epoch},{},{}\n", f64::from(a) / f64::from(epoch), per_epoch * epoch));
        }
    }
    std::fs::write(dir.path().join("t.csv"), csv).unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        "name = \"tiny\"\ntable = \"t.csv\"\nresource_column = \"epoch\"\nmax_resource = 3\nelapsed_time_column = \"elapsed\"\nmetrics = { loss = \"min\" }\ndefault_metric = \"loss\"\n[space]\na = { ordinal = [1, 2] }\n",
    )
    .unwrap();
    let path = dir.path().join("spec.toml");
    let table = blackbox(path.to_str().unwrap()).unwrap();
    assert_eq!(table.info().space.get("a").unwrap().cardinality(), Some(2), "the space is the table's grid");
    assert_eq!(table.optimum("loss"), Some(1.0 / 3.0));
    table
}

fn config(a: i64, epochs: i64) -> Config {
    [("a", Value::Int(a)), ("epochs", Value::Int(epochs))].into_iter().collect()
}

fn start(id: u64, config: Config, resume: bool) -> TrialStart {
    TrialStart {
        trial_id: id,
        config: config.into(),
        resume,
        checkpoint_from: None,
        resource_done: None,
        launch: 1,
        relaunch: false,
        await_decisions: true,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

/// Pops one event, answering every report with `decide(trial, epoch)`.
fn next(sim: &mut SimulatorBackend) -> Event {
    let mut out = Vec::new();
    rt().block_on(sim.next_events(&mut out)).unwrap();
    assert_eq!(out.len(), 1);
    out.pop().unwrap()
}

fn decide(sim: &mut SimulatorBackend, id: u64, d: Decision) {
    rt().block_on(sim.decide(id, d)).unwrap();
}

fn summary(e: &Event) -> (f64, u64, String) {
    let what = match &e.kind {
        EventKind::Report(m) => format!("epoch {}", m.get("epoch").unwrap()),
        other => format!("{other:?}"),
    };
    (e.time, e.trial_id, what)
}

#[test]
fn reports_come_at_start_plus_elapsed_time_in_order() {
    let mut sim = SimulatorBackend::new(tiny(), &["loss"], Some("epochs"), 0).unwrap();
    rt().block_on(sim.start(start(0, config(1, 3), false))).unwrap();
    rt().block_on(sim.start(start(1, config(2, 3), false))).unwrap();
    let mut seen = Vec::new();
    for _ in 0..8 {
        let e = next(&mut sim);
        if let EventKind::Report(m) = &e.kind {
            assert_eq!(m.get("loss").unwrap(), if e.trial_id == 0 { 1.0 } else { 2.0 } / m.get("epoch").unwrap());
            decide(&mut sim, e.trial_id, Decision::Continue);
        }
        seen.push(summary(&e));
    }
    let expected = [
        (5.0, 1, "epoch 1"),
        (10.0, 0, "epoch 1"),
        (10.0, 1, "epoch 2"), // equal times: in the order they were scheduled
        (15.0, 1, "epoch 3"),
        (15.0, 1, "Completed"),
        (20.0, 0, "epoch 2"),
        (30.0, 0, "epoch 3"),
        (30.0, 0, "Completed"),
    ];
    let expected: Vec<(f64, u64, String)> = expected.iter().map(|(t, id, w)| (*t, *id, (*w).to_owned())).collect();
    assert_eq!(seen, expected);
    assert_eq!(sim.now(), 30.0);
}

#[test]
fn stop_drops_future_events_and_pause_resumes_from_the_next_epoch() {
    let mut sim = SimulatorBackend::new(tiny(), &["loss"], Some("epochs"), 0).unwrap();
    let stats = sim.stats();
    rt().block_on(sim.start(start(0, config(1, 1), false))).unwrap();
    rt().block_on(sim.start(start(1, config(2, 3), false))).unwrap();
    assert_eq!(summary(&next(&mut sim)), (5.0, 1, "epoch 1".into()));
    decide(&mut sim, 1, Decision::Stop);
    assert_eq!(summary(&next(&mut sim)), (5.0, 1, "Stopped".into()));
    assert_eq!(summary(&next(&mut sim)), (10.0, 0, "epoch 1".into()));
    decide(&mut sim, 0, Decision::Pause);
    assert_eq!(summary(&next(&mut sim)), (10.0, 0, "Paused".into()));
    // Nothing else is queued: trial 1's later epochs are gone.
    let mut out = Vec::new();
    assert!(rt().block_on(sim.next_events(&mut out)).is_err());
    // Resumed at t = 10 with a raised limit: epoch 2 comes 10 s after the resume.
    rt().block_on(sim.start(start(0, config(1, 3), true))).unwrap();
    assert_eq!(summary(&next(&mut sim)), (20.0, 0, "epoch 2".into()));
    decide(&mut sim, 0, Decision::Continue);
    assert_eq!(summary(&next(&mut sim)), (30.0, 0, "epoch 3".into()));
    decide(&mut sim, 0, Decision::Continue);
    assert_eq!(summary(&next(&mut sim)), (30.0, 0, "Completed".into()));
    // busy: trial 1 ran 5 s, trial 0 ran 10 s then 20 s
    assert_eq!(stats.lock().unwrap().busy_time, 35.0);
    // reports: trial 1's epoch 1; trial 0's epoch 1, then 2 and 3
    assert_eq!(stats.lock().unwrap().reports, 4);
}

#[test]
fn digits_mlp_ships_with_its_grid_and_curves() {
    let table = blackbox("digits-mlp").unwrap();
    let info = table.info();
    assert_eq!(info.max_resource, 50);
    assert_eq!(info.default_metric, "val_error");
    let size: usize = info.space.params().map(|(_, d)| d.cardinality().unwrap()).product();
    assert_eq!(size, 1575);
    let config: Config = [
        ("hidden_width", Value::Int(16)),
        ("num_layers", Value::Int(1)),
        ("learning_rate", Value::Float(1e-4)),
        ("weight_decay", Value::Float(1e-5)),
        ("batch_size", Value::Int(16)),
    ]
    .into_iter()
    .collect();
    let curve = table.curve(&config, 0).unwrap();
    let mut out = vec![0.0; info.metrics.len()];
    // the table's first row: config 0, epoch 1: val_error 0.786667, elapsed 0.080372
    let elapsed = curve.at(1, &mut out).unwrap();
    assert!((elapsed - 0.080372).abs() < 1e-9);
    assert!((out[info.metric_index("val_error").unwrap()] - 0.786667).abs() < 1e-9);
    assert!(curve.at(51, &mut out).is_none());
    let optimum = table.optimum("val_error").unwrap();
    assert!(optimum > 0.0 && optimum < 0.02, "{optimum}");
    assert!(Tabular::digits_mlp().is_ok());
}
