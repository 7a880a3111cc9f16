//! `hpo bench ...`: benchmarks that print one machine-readable line with `--json`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use hpo_backends::ThreadBackend;
use hpo_core::{Context, Journal, Mode, Objective, Space, StopCriteria, Tuner};
use hpo_schedulers::Fifo;

use crate::OverheadArgs;
use crate::commands::runtime;

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

/// Microseconds per trial for one run.
fn time_trials(args: &OverheadArgs, journal: Option<&std::path::Path>) -> anyhow::Result<f64> {
    let space = Space::builder()
        .uniform("x", 0.0, 1.0)
        .randint("n", 1, 100)
        .choice("act", ["relu", "tanh"])
        .build()?;
    let ctx = Context {
        space,
        objective: Objective::new("loss", Mode::Min),
        resource_attr: None,
        max_resource_attr: None,
        seed: 0,
    };
    let backend = ThreadBackend::new(args.workers, |trial, reporter| {
        reporter.report([("loss", trial.config.f64("x")?)])?;
        Ok(())
    });
    let mut tuner = Tuner::new(ctx, Box::new(Fifo::default()), Box::new(backend))
        .workers(args.workers)
        .stop_when(StopCriteria {
            max_trials: Some(args.trials),
            ..StopCriteria::default()
        });
    if let Some(path) = journal {
        tuner = tuner.journal(Journal::create(
            path,
            "bench",
            serde_json::json!({"metric": "loss"}),
        )?);
    }
    let rt = runtime()?;
    let start = Instant::now();
    let summary = rt.block_on(tuner.run())?;
    let elapsed = start.elapsed();
    anyhow::ensure!(
        summary.trials as u64 == args.trials,
        "ran {} trials, not {}",
        summary.trials,
        args.trials
    );
    Ok(elapsed.as_secs_f64() * 1e6 / args.trials as f64)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}
