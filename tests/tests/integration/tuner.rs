#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! The tuner loop through the public API: random and grid search on the thread backend,
//! failures, stopping criteria, bookkeeping and reproducibility.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{context, max_trials, tune};
use hpo_core::{Config, EndReason, ExperimentResults, Journal, Mode, Space, Status, StopCriteria, Tuner, read_journal};
use hpo_schedulers::{Asha, Fifo, GridSearcher, RandomSearcher, Variant};

fn space() -> Space {
    Space::builder()
        .uniform("x", -2.0, 2.0)
        .loguniform("lr", 1e-4, 1e-1)
        .randint("n", 1, 8)
        .choice("act", ["relu", "tanh"])
        .constant("epochs", 3)
        .build()
        .unwrap()
}

/// Runs random search and returns the configs by trial id.
fn configs_of_run(seed: u64, workers: usize) -> Vec<Config> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tune(context(space(), "loss", Mode::Min, seed), Box::new(Fifo::default()), workers, max_trials(30), move |t, r| {
        record.lock().unwrap().push((t.trial_id, (*t.config).clone()));
        for epoch in 1..=3 {
            r.report([("epoch", f64::from(epoch)), ("loss", t.config.f64("x")?.powi(2))])?;
        }
        Ok(())
    });
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|(id, _)| *id);
    seen.into_iter().map(|(_, c)| c).collect()
}

#[test]
fn same_seed_same_configs() {
    let a = configs_of_run(42, 2);
    let b = configs_of_run(42, 2);
    let c = configs_of_run(43, 2);
    assert_eq!(a.len(), 30);
    assert_eq!(a, b, "same seed must give the same sequence of configs");
    assert_ne!(a, c, "another seed gives other configs");
    for config in &a {
        space().validate(config).unwrap();
    }
}

/// The thread backend hands events over by polling while they come fast and by waking a
/// sleeping tuner otherwise: trials of every length around the switch (a microsecond to a
/// millisecond: polled, yielded, slept), some waiting for decisions (ASHA) and some not
/// (FIFO), on several workers, are all taken in. A wake-up lost would leave the tuner asleep
/// until the deadline, short of trials.
#[test]
fn every_event_is_taken_in_whether_the_tuner_polls_or_sleeps() {
    let space = Space::builder().uniform("x", 0.0, 1.0).build().unwrap();
    for asha in [false, true] {
        let scheduler: Box<dyn hpo_core::Scheduler> = match asha {
            true => Box::new(Asha::new(Variant::Stopping, 1.0, 3.0, Some(3.0))),
            false => Box::new(Fifo::default()),
        };
        let stop =
            StopCriteria { max_trials: Some(600), max_wallclock: Some(Duration::from_secs(60)), ..max_trials(600) };
        let summary = tune(context(space.clone(), "loss", Mode::Min, 5), scheduler, 3, stop, |t, r| {
            let x = t.config.f64("x")?;
            for epoch in 1..=3 {
                // 0 to 1,000 us, most of them within the first few microseconds' poll.
                std::thread::sleep(Duration::from_nanos((x.powi(4) * 1e6) as u64));
                r.report([("epoch", f64::from(epoch)), ("loss", x)])?;
            }
            Ok(())
        });
        assert_eq!(summary.reason, EndReason::MaxTrials, "asha: {asha}");
        assert_eq!((summary.trials, summary.failed), (600, 0), "asha: {asha}");
        assert_eq!(summary.completed + summary.stopped, 600, "asha: {asha}");
    }
}

/// Each worker of the thread backend has a ring of its own for its events: the tuner still
/// gets them in time order, and none is lost when a trial reports faster than the tuner
/// takes them in (more than its ring holds: the worker waits for room). One, two and four
/// trials report side by side while the tuner takes nothing for a while, then everything.
#[test]
fn the_thread_backend_hands_over_every_event_in_time_order() {
    use hpo_core::{Backend, Event, EventKind};
    use std::sync::atomic::{AtomicU32, Ordering};
    const REPORTS: u32 = 600;
    for workers in [1, 2, 4] {
        let sent: Arc<Vec<AtomicU32>> = Arc::new((0..workers).map(|_| AtomicU32::new(0)).collect());
        let count = Arc::clone(&sent);
        let mut backend = hpo_backends::ThreadBackend::new(workers, move |t, r| {
            for step in 0..REPORTS {
                if step % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                r.report([("step", f64::from(step))])?;
                count[t.trial_id as usize].fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
        let events: Vec<Vec<Event>> = common::runtime().block_on(async {
            for trial_id in 0..workers as u64 {
                backend.start(fresh_start(trial_id)).await.unwrap();
            }
            // Every trial reports until its ring is full (the tuner takes nothing meanwhile).
            let until = std::time::Instant::now() + Duration::from_secs(30);
            while sent.iter().any(|n| n.load(Ordering::Relaxed) < 200) && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
            let (mut batches, mut ended) = (Vec::new(), 0);
            while ended < workers {
                let mut batch = Vec::new();
                backend.next_events(&mut batch).await.unwrap();
                ended += batch.iter().filter(|e| e.kind == EventKind::Completed).count();
                batches.push(batch);
            }
            batches
        });
        for batch in &events {
            assert!(batch.windows(2).all(|w| w[0].time <= w[1].time), "{workers} workers: a batch out of time order");
        }
        for trial in 0..workers as u64 {
            assert!(
                events[0].iter().any(|e| e.trial_id == trial),
                "{workers} workers: trial {trial} in the first batch"
            );
            let kinds: Vec<&EventKind> =
                events.iter().flatten().filter(|e| e.trial_id == trial).map(|e| &e.kind).collect();
            let steps: Vec<f64> = kinds
                .iter()
                .filter_map(|k| match k {
                    EventKind::Report(m) => m.get("step"),
                    _ => None,
                })
                .collect();
            assert_eq!(steps, (0..REPORTS).map(f64::from).collect::<Vec<_>>(), "{workers} workers: trial {trial}");
            assert_eq!(kinds.last(), Some(&&EventKind::Completed), "{workers} workers: trial {trial} ends last");
        }
    }
}

/// A worker waiting for room in its ring (the tuner took nothing) is not left waiting when
/// the backend goes: its trial's report says to stop, and the trial ends.
#[test]
fn a_worker_waiting_for_the_tuner_stops_when_the_backend_goes() {
    use hpo_backends::Interrupted;
    use hpo_core::{Backend, Decision};
    let (tx, rx) = std::sync::mpsc::channel();
    let mut backend = hpo_backends::ThreadBackend::new(1, move |_, r| {
        let mut sent = 0u32;
        let stopped = loop {
            match r.report([("step", f64::from(sent))]) {
                Ok(()) => sent += 1,
                Err(interrupted) => break interrupted,
            }
        };
        tx.send((sent, stopped)).unwrap();
        Ok(())
    })
    .unwrap();
    common::runtime().block_on(backend.start(fresh_start(0))).unwrap();
    std::thread::sleep(Duration::from_millis(20)); // the worker fills its ring and waits
    drop(backend);
    let (sent, stopped) = rx.recv_timeout(Duration::from_secs(10)).expect("the trial still waits for room");
    assert!(sent > 0);
    assert_eq!(stopped, Interrupted(Decision::Stop));
}

/// The start of trial `trial_id`, new, that does not wait for decisions.
fn fresh_start(trial_id: u64) -> hpo_core::TrialStart {
    hpo_core::TrialStart {
        trial_id,
        config: Arc::new(Config::new()),
        resume: false,
        checkpoint_from: None,
        resource_done: None,
        launch: 1,
        relaunch: false,
        await_decisions: false,
    }
}

#[test]
fn random_search_finds_the_incumbent_and_its_trajectory() {
    let summary = tune(context(space(), "loss", Mode::Min, 1), Box::new(Fifo::default()), 2, max_trials(40), |t, r| {
        let x = t.config.f64("x")?;
        for epoch in 1..=3 {
            r.report([("epoch", f64::from(epoch)), ("loss", x * x + 1.0 / f64::from(epoch))])?;
        }
        Ok(())
    });
    assert_eq!(summary.reason, EndReason::MaxTrials);
    assert_eq!((summary.trials, summary.completed, summary.failed), (40, 40, 0));
    let best = summary.best.unwrap();
    let x = best.config.f64("x").unwrap();
    assert!((best.value - (x * x + 1.0 / 3.0)).abs() < 1e-12, "the best value is the best trial's last epoch");
    // the any-time curve only ever improves, ends at the incumbent, and is ordered in time
    assert!(summary.trajectory.windows(2).all(|w| w[1].1 < w[0].1 && w[1].0 >= w[0].0));
    assert_eq!(summary.trajectory.last().unwrap().1, best.value);
}

#[test]
fn mode_max_is_handled_once() {
    let summary =
        tune(context(space(), "accuracy", Mode::Max, 3), Box::new(Fifo::default()), 1, max_trials(20), |t, r| {
            r.report([("epoch", 1.0), ("accuracy", -t.config.f64("x")?.abs())])?;
            Ok(())
        });
    let best = summary.best.unwrap();
    assert!(best.value <= 0.0);
    assert!(summary.trajectory.windows(2).all(|w| w[1].1 > w[0].1), "maximizing: the curve rises");
    assert_eq!(best.value, -best.config.f64("x").unwrap().abs());
}

#[test]
fn failed_trials_are_recorded_and_the_experiment_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let ctx = context(space(), "loss", Mode::Min, 5);
    let backend = hpo_backends::ThreadBackend::new(2, |t, r| {
        match t.trial_id % 4 {
            1 => return Err("out of memory".into()),
            2 => panic!("objective bug"),
            3 => {
                r.report([("epoch", 1.0), ("loss", f64::NAN)])?;
            }
            _ => {
                r.report([("epoch", 1.0), ("loss", 1.0)])?;
            }
        }
        Ok(())
    })
    .unwrap();
    let journal = Journal::create(&path, "failures", serde_json::json!({"metric": "loss", "mode": "min"})).unwrap();
    let tuner = Tuner::new(ctx, Box::new(Fifo::default()), Box::new(backend))
        .workers(2)
        .stop_when(max_trials(12))
        .journal(journal);
    let summary = common::runtime().block_on(tuner.run()).unwrap();
    assert_eq!((summary.trials, summary.completed, summary.failed), (12, 3, 9));
    let results = ExperimentResults::from_entries(&read_journal(&path).unwrap()).unwrap();
    let error = |id: usize| results.trials[id].error.clone().unwrap_or_default();
    assert_eq!(results.trials[0].status, Status::Completed);
    assert!(error(1).contains("out of memory"), "{}", error(1));
    assert!(error(2).contains("panicked: objective bug"), "{}", error(2));
    assert!(error(3).contains("metric `loss` is not finite"), "{}", error(3));
    assert_eq!(results.count(Status::Failed), 9);
}

#[test]
fn max_failures_ends_the_experiment() {
    let summary = tune(
        context(space(), "loss", Mode::Min, 0),
        Box::new(Fifo::default()),
        2,
        StopCriteria { max_failures: Some(3), max_trials: Some(1000), ..StopCriteria::default() },
        |_, _| Err("broken".into()),
    );
    assert_eq!(summary.reason, EndReason::MaxFailures);
    assert!(summary.failed >= 3 && summary.trials < 10, "{summary:?}");
}

#[test]
fn metric_threshold_ends_the_experiment_and_stops_running_trials() {
    let summary = tune(
        context(space(), "loss", Mode::Min, 0),
        Box::new(Fifo::default()),
        2,
        StopCriteria { metric_threshold: Some(0.5), ..StopCriteria::default() },
        |t, r| {
            for epoch in 1..=1000 {
                let loss = if t.trial_id == 3 { 0.1 } else { 1.0 };
                r.report([("epoch", f64::from(epoch)), ("loss", loss)])?;
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(())
        },
    );
    assert_eq!(summary.reason, EndReason::MetricThreshold);
    assert_eq!(summary.best.as_ref().unwrap().trial_id, 3);
    assert!(summary.stopped >= 1, "the other running trial was stopped: {summary:?}");
}

#[test]
fn max_wallclock_ends_the_experiment() {
    let start = std::time::Instant::now();
    let summary = tune(
        context(space(), "loss", Mode::Min, 0),
        Box::new(Fifo::default()),
        2,
        StopCriteria { max_wallclock: Some(Duration::from_millis(300)), ..StopCriteria::default() },
        |_, r| {
            for epoch in 1..=100_000 {
                r.report([("epoch", f64::from(epoch)), ("loss", 1.0)])?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        },
    );
    assert_eq!(summary.reason, EndReason::MaxWallclock);
    assert_eq!(summary.stopped, 2);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn grid_search_is_exhaustive_without_repeats_then_done() {
    let space = Space::builder().uniform("x", 0.0, 1.0).choice("act", ["relu", "tanh"]).build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let grid = GridSearcher::new(4, false);
    let summary = tune(
        context(space, "loss", Mode::Min, 0),
        Box::new(Fifo::new(Box::new(grid))),
        2,
        StopCriteria::default(),
        move |t, r| {
            record.lock().unwrap().push(t.config.to_string());
            r.report([("loss", t.config.f64("x")?)])?;
            Ok(())
        },
    );
    assert_eq!(summary.reason, EndReason::SchedulerDone);
    let mut seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 8);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 8, "no grid point twice");
    assert_eq!(summary.best.unwrap().value, 0.0);
}

#[test]
fn points_to_evaluate_come_first() {
    let first: Config = [("x", hpo_core::Value::Float(0.25)), ("act", "tanh".into())].into_iter().collect();
    let searcher = RandomSearcher::new(vec![first.clone()]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tune(
        context(space(), "loss", Mode::Min, 0),
        Box::new(Fifo::new(Box::new(searcher))),
        1,
        max_trials(3),
        move |t, r| {
            record.lock().unwrap().push((*t.config).clone());
            r.report([("loss", 1.0)])?;
            Ok(())
        },
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].get("x"), Some(&hpo_core::Value::Float(0.25)));
    assert_eq!(seen[0].get("act"), Some(&"tanh".into()));
    // the left-out parameters take the middle of their domains
    assert_eq!(seen[0].get("n"), Some(&hpo_core::Value::Int(5)));
    assert_eq!(seen[0].get("epochs"), Some(&hpo_core::Value::Int(3)));
    assert_ne!(seen[1], seen[0]);
}

#[test]
fn random_search_on_a_finite_space_never_repeats_and_ends() {
    let space = Space::builder().randint("n", 1, 5).choice("c", ["a", "b"]).build().unwrap();
    let summary = tune(context(space, "loss", Mode::Min, 9), Box::new(Fifo::default()), 2, max_trials(100), |t, r| {
        r.report([("loss", t.config.f64("n")?)])?;
        Ok(())
    });
    assert_eq!(summary.reason, EndReason::SchedulerDone);
    assert_eq!(summary.trials, 10);
}

#[test]
fn paused_trials_resume_where_they_stopped_with_their_checkpoint_folder() {
    use hpo_schedulers::{Asha, Variant};
    let dir = tempfile::tempdir().unwrap();
    let space = Space::builder().uniform("x", 0.0, 1.0).constant("epochs", 9).build().unwrap();
    let mut ctx = context(space, "loss", Mode::Min, 4);
    ctx.max_resource_attr = Some("epochs".into());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&calls);
    let backend = hpo_backends::ThreadBackend::new(2, move |t, r| {
        let done = t.resource_done.unwrap_or(0.0) as i64;
        record.lock().unwrap().push((t.trial_id, t.resume, done, t.checkpoint_dir.clone()));
        let checkpoint = t.checkpoint_dir.as_ref().unwrap().join("epoch.txt");
        if done > 0 {
            assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), done.to_string(), "the checkpoint is kept");
        }
        std::fs::create_dir_all(checkpoint.parent().unwrap()).unwrap();
        for epoch in done + 1..=t.config.i64("epochs")? {
            std::fs::write(&checkpoint, epoch.to_string()).unwrap();
            r.report([("epoch", epoch as f64), ("loss", t.config.f64("x")? + 1.0 / epoch as f64)])?;
        }
        Ok(())
    })
    .unwrap()
    .trials_dir(dir.path());
    let scheduler = Asha::new(Variant::Promotion, 1.0, 3.0, None);
    let tuner = Tuner::new(ctx, Box::new(scheduler), Box::new(backend)).workers(2).stop_when(max_trials(20));
    let summary = common::runtime().block_on(tuner.run()).unwrap();
    assert!(summary.paused > 0 && summary.completed > 0, "{summary:?}");
    let calls = calls.lock().unwrap();
    let resumed: Vec<_> = calls.iter().filter(|c| c.1).collect();
    assert!(!resumed.is_empty());
    for (id, _, done, checkpoint_dir) in &resumed {
        assert!(*done == 1 || *done == 3, "trial {id} resumed after epoch {done}");
        let first = calls.iter().find(|c| c.0 == *id).unwrap();
        assert_eq!(&first.3, checkpoint_dir, "the same checkpoint folder across a resume");
        assert!(checkpoint_dir.as_ref().unwrap().join("epoch.txt").is_file());
    }
    // Trials that wrote nothing leave no folder; the others keep theirs.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        assert!(entry.unwrap().path().join("checkpoints/epoch.txt").is_file());
    }
}
