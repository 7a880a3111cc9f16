//! `hpo bench ...`: benchmarks that print one machine-readable line with `--json`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hpo_backends::ThreadBackend;
use hpo_core::{Context, Decision, Journal, Mode, Objective, Report, Space, StopCriteria, Suggestion, TrialId, Tuner};
use hpo_schedulers::Fifo;
use rand::RngExt;

use crate::commands::runtime;
use crate::{OverheadArgs, ProcessBenchArgs, SchedulerBenchArgs};

/// Random search + FIFO over a function that reports once and returns: what is left is the
/// tuner's own cost per trial, without and with the journal.
pub fn overhead(args: OverheadArgs) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("hpo-bench-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut plain = Vec::new();
    let mut journaled = Vec::new();
    for repeat in 0..args.repeats.max(1) {
        plain.push(time_trials(&args, None)?);
        let path = dir.join(format!("journal-{repeat}.jsonl"));
        journaled.push(time_trials(&args, Some(&path))?);
        std::fs::remove_file(&path).ok();
    }
    std::fs::remove_dir_all(&dir).ok();
    let (us, us_journal) = (median(&mut plain), median(&mut journaled));
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "overhead",
                "trials": args.trials,
                "workers": args.workers,
                "repeats": args.repeats.max(1),
                "us_per_trial": us,
                "us_per_trial_journal": us_journal,
            })
        );
    } else {
        println!(
            "{} trials on {} workers: {us:.2} us per trial without the journal, {us_journal:.2} us with it (median of {})",
            args.trials,
            args.workers,
            args.repeats.max(1)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A single-fidelity experiment minimizing `loss` over `space`, seed 0.
fn loss_context(space: Space) -> Context {
    Context {
        space,
        objective: Objective::new("loss", Mode::Min),
        resource_attr: None,
        max_resource_attr: None,
        seed: 0,
    }
}

/// Microseconds per trial for one run.
fn time_trials(args: &OverheadArgs, journal: Option<&std::path::Path>) -> anyhow::Result<f64> {
    let ctx = loss_context(
        Space::builder().uniform("x", 0.0, 1.0).randint("n", 1, 100).choice("act", ["relu", "tanh"]).build()?,
    );
    let backend = ThreadBackend::new(args.workers, |trial, reporter| {
        reporter.report([("loss", trial.config.f64("x")?)])?;
        Ok(())
    });
    let mut tuner = Tuner::new(ctx, Box::new(Fifo::default()), Box::new(backend))
        .workers(args.workers)
        .stop_when(StopCriteria { max_trials: Some(args.trials), ..StopCriteria::default() });
    if let Some(path) = journal {
        tuner = tuner.journal(Journal::create(path, "bench", serde_json::json!({"metric": "loss"}))?);
    }
    let rt = runtime()?;
    let start = Instant::now();
    let summary = rt.block_on(tuner.run())?;
    let elapsed = start.elapsed();
    anyhow::ensure!(summary.trials as u64 == args.trials, "ran {} trials, not {}", summary.trials, args.trials);
    Ok(elapsed.as_secs_f64() * 1e6 / args.trials as f64)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Feeds random learning curves through a scheduler, one trial at a time, and times its
/// decisions: `ns_per_decision` over the whole run and over its last tenth (which must not be
/// slower when rungs hold many values).
pub fn scheduler(args: SchedulerBenchArgs) -> anyhow::Result<ExitCode> {
    let mut settings: serde_json::Value =
        serde_json::from_str(&args.settings).context("--settings must be a JSON object")?;
    anyhow::ensure!(settings.is_object(), "--settings must be a JSON object");
    settings = match &args.plugin {
        Some(path) => serde_json::json!({ "type": "plugin", "path": path, "config": settings }),
        None => {
            settings["type"] = serde_json::Value::String(args.scheduler.clone());
            settings
        }
    };
    let mut scheduler: Box<dyn hpo_core::Scheduler> =
        serde_json::from_value(settings).with_context(|| format!("scheduler `{}`", args.scheduler))?;
    let space = Space::builder().uniform("x", 0.0, 1.0).constant("epochs", i64::from(args.max_t)).build()?;
    let ctx = Context {
        space,
        objective: Objective::new("loss", Mode::Min),
        resource_attr: Some("epoch".into()),
        max_resource_attr: Some("epochs".into()),
        seed: args.seed,
    };
    scheduler.init(&ctx).map_err(anyhow::Error::msg)?;
    let mut rng = hpo_core::derive_rng(args.seed, "bench");
    let mut progress: HashMap<TrialId, u32> = HashMap::new();
    let metrics = hpo_core::Metrics::new();
    let (mut decisions, mut new_trials) = (0u64, 0u64);
    let mut last_tenth = (0u64, Duration::ZERO);
    let start = Instant::now();
    while new_trials < args.trials {
        let tenth_start = Instant::now();
        let before = decisions;
        let (trial_id, config) = match scheduler.suggest(new_trials) {
            Suggestion::Start { config, .. } => {
                new_trials += 1;
                (new_trials - 1, config)
            }
            Suggestion::Resume { trial_id, config } => (trial_id, config),
            Suggestion::Wait | Suggestion::Done => break,
        };
        let quality = config.f64("x")?;
        let limit = config.f64("epochs")? as u32;
        let epoch = progress.entry(trial_id).or_insert(0);
        let mut decision = Decision::Continue;
        while decision == Decision::Continue && *epoch < limit {
            *epoch += 1;
            let noise: f64 = rng.random::<f64>() * 0.05;
            decision = scheduler.on_report(&Report {
                trial_id,
                config: &config,
                metrics: &metrics,
                resource: f64::from(*epoch),
                objective: quality + 1.0 / f64::from(*epoch) + noise,
            });
            decisions += 1;
        }
        if decision == Decision::Continue {
            scheduler.on_complete(trial_id);
        }
        if new_trials * 10 > args.trials * 9 {
            last_tenth.0 += decisions - before;
            last_tenth.1 += tenth_start.elapsed();
        }
    }
    let elapsed = start.elapsed();
    let ns = elapsed.as_nanos() as f64 / decisions.max(1) as f64;
    let ns_last = last_tenth.1.as_nanos() as f64 / last_tenth.0.max(1) as f64;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "scheduler",
                "scheduler": args.plugin.as_ref().map_or(args.scheduler.clone(), |p| p.display().to_string()),
                "settings": args.settings,
                "trials": new_trials,
                "decisions": decisions,
                "ns_per_decision": ns,
                "ns_per_decision_last_tenth": ns_last,
            })
        );
    } else {
        println!(
            "{}: {decisions} decisions for {new_trials} trials, {ns:.0} ns per decision ({ns_last:.0} ns in the last tenth)",
            args.scheduler
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The trivial trial of `bench process`: one metrics line.
const TRIVIAL_SCRIPT: &str = r#"echo "[tune-metric]: {\"loss\": 1}""#;

/// Runs the trivial script as trials through the tuner and the process backend (journal on),
/// then spawns and waits for the same command bare with the same parallelism; the difference
/// per trial is what hpo adds.
pub fn process(args: ProcessBenchArgs) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("hpo-bench-process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let ctx = loss_context(Space::builder().uniform("x", 0.0, 1.0).build()?);
    let spec: hpo_backends::ProcessSpec = serde_json::from_value(serde_json::json!({
        "command": ["sh", "-c", TRIVIAL_SCRIPT],
        "checkpointing": false,
    }))?;
    let backend =
        hpo_backends::ProcessBackend::new(spec, args.workers, dir.join("trials")).map_err(anyhow::Error::msg)?;
    let journal = Journal::create(&dir.join("journal.jsonl"), "bench", serde_json::json!({"metric": "loss"}))?;
    let tuner = Tuner::new(ctx, Box::new(Fifo::default()), Box::new(backend))
        .workers(args.workers)
        .journal(journal)
        .stop_when(StopCriteria { max_trials: Some(args.trials), ..StopCriteria::default() });
    let start = Instant::now();
    let summary = runtime()?.block_on(tuner.run())?;
    let tuned = start.elapsed().as_secs_f64() * 1e3 / args.trials as f64;
    anyhow::ensure!(
        summary.completed as u64 == args.trials,
        "{} of {} trials completed",
        summary.completed,
        args.trials
    );

    let start = Instant::now();
    let per_worker = args.trials.div_ceil(args.workers.max(1) as u64);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..args.workers.max(1))
            .map(|_| {
                scope.spawn(move || -> std::io::Result<()> {
                    for _ in 0..per_worker {
                        std::process::Command::new("sh").args(["-c", TRIVIAL_SCRIPT]).output()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle.join().map_err(|_| anyhow::anyhow!("a bare-spawn thread panicked"))??;
        }
        Ok(())
    })?;
    let bare = start.elapsed().as_secs_f64() * 1e3 / (per_worker * args.workers.max(1) as u64) as f64;
    std::fs::remove_dir_all(&dir).ok();
    let overhead = tuned - bare;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "process",
                "trials": args.trials,
                "workers": args.workers,
                "ms_per_trial": tuned,
                "ms_bare_spawn_per_trial": bare,
                "ms_overhead_per_trial": overhead,
            })
        );
    } else {
        println!(
            "{} trials on {} workers: {tuned:.3} ms per trial, bare spawn {bare:.3} ms, overhead {overhead:.3} ms",
            args.trials, args.workers
        );
    }
    Ok(ExitCode::SUCCESS)
}
