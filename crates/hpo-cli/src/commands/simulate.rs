//! `hpo bench run` (methods x seeds) and `hpo bench simulator`: flags and printing around the
//! `hpo_bench` harness.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use hpo_bench::{Setup, method, quartiles};
use hpo_core::Mode;

use crate::{BenchRunArgs, SimulatorBenchArgs};

/// Splits `--methods` at the commas that are not inside a JSON scheduler table.
fn split_methods(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut in_string, mut start) = (Vec::new(), 0i32, false, 0);
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' | '[' if !in_string => depth += 1,
            '}' | ']' if !in_string => depth -= 1,
            ',' if !in_string && depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

fn parse_seeds(text: &str) -> anyhow::Result<Vec<u64>> {
    if let Some((a, b)) = text.split_once("..") {
        let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
        anyhow::ensure!(a < b, "--seeds {text}: an empty range");
        return Ok((a..b).collect());
    }
    text.split(',')
        .map(|s| s.trim().parse::<u64>().with_context(|| format!("--seeds: `{s}` is not a number")))
        .collect()
}

pub fn bench_run(args: BenchRunArgs) -> anyhow::Result<ExitCode> {
    let mut setup = Setup::new(&args.blackbox, args.metric.as_deref(), args.workers)?;
    setup.max_time = Some(args.max_time);
    setup.max_trials = args.max_trials;
    setup.charge_decision_time = args.charge_decision_time;
    let seeds = parse_seeds(&args.seeds)?;
    let methods: Vec<(String, serde_json::Value)> = split_methods(&args.methods)
        .into_iter()
        .map(|m| Ok((m.to_owned(), method(m)?)))
        .collect::<anyhow::Result<_>>()?;
    let runs = setup.compare(&methods, &seeds)?;

    // A new folder every time (`bench-<blackbox>-2`, ...): an earlier comparison is never touched.
    let output =
        args.output.clone().unwrap_or_else(|| Path::new("runs").join(format!("bench-{}", setup.blackbox.info().name)));
    let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = output.file_name().and_then(|n| n.to_str()).context("--output must name a folder")?;
    let output = super::new_folder(parent, name)?;
    let mut lines = String::new();
    for run in &runs {
        lines.push_str(&serde_json::to_string(run)?);
        lines.push('\n');
    }
    std::fs::write(output.join("runs.jsonl"), lines)
        .with_context(|| format!("writing {}", output.join("runs.jsonl").display()))?;

    let summary = setup.summarize(&runs, args.max_time.as_secs_f64(), args.target);
    std::fs::write(output.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    if args.json {
        for method in &summary.methods {
            outln!("{}", serde_json::to_string(method)?);
        }
    } else if let Some(reference) = &summary.reference_point {
        print_hypervolumes(&setup, &summary, reference, &args, seeds.len());
        outln!("Per-run results: {}", output.join("runs.jsonl").display());
    } else {
        outln!(
            "{} on {}: {}, {}, {} of simulated time; {} is {}; target {}",
            args.methods,
            setup.blackbox.info().name,
            super::count(seeds.len(), "seed"),
            super::count(args.workers, "worker"),
            super::human_duration(args.max_time),
            setup.metric(),
            if setup.mode() == Mode::Max { "maximized" } else { "minimized" },
            summary.target
        );
        outln!(
            "{:<16} {:>12} {:>12} {:>12} {:>14} {:>12} {:>6}",
            "method",
            "best q25",
            "median",
            "q75",
            "median regret",
            "to target",
            "idle"
        );
        for m in &summary.methods {
            let last = m.at.last();
            let fmt = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.5}"));
            outln!(
                "{:<16} {:>12} {:>12} {:>12} {:>14} {:>12} {:>5.1}%",
                m.method,
                fmt(last.and_then(|p| p.best.map(|b| b.0))),
                fmt(last.and_then(|p| p.best.map(|b| b.1))),
                fmt(last.and_then(|p| p.best.map(|b| b.2))),
                fmt(last.and_then(|p| p.regret.map(|r| r.1))),
                m.median_time_to_target.map_or_else(|| "never".into(), |t| format!("{t:.0} s")),
                100.0 * m.median_idle_fraction
            );
        }
        // The any-time view: the median at each tenth of the simulated time.
        if summary.optimum.is_some() {
            print_tenths(&summary, "regret", |p| p.regret);
        } else {
            print_tenths(&summary, "best value", |p| p.best);
        }
        outln!("Per-run results: {}", output.join("runs.jsonl").display());
    }
    Ok(ExitCode::SUCCESS)
}

/// With several objectives: quartiles of the hypervolume at the end, and its median at each
/// tenth of the simulated time.
fn print_hypervolumes(
    setup: &Setup,
    summary: &hpo_bench::Summary,
    reference: &[f64],
    args: &BenchRunArgs,
    seeds: usize,
) {
    let objectives: Vec<String> = setup
        .objectives()
        .iter()
        .map(|o| format!("{} ({})", o.metric, if o.mode == Mode::Max { "max" } else { "min" }))
        .collect();
    outln!(
        "{} on {}: {}, {}, {} of simulated time; objectives {}; hypervolume as a share of the box from the \
         ideal point to the reference point ({})",
        args.methods,
        setup.blackbox.info().name,
        super::count(seeds, "seed"),
        super::count(args.workers, "worker"),
        super::human_duration(args.max_time),
        objectives.join(", "),
        reference.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", ")
    );
    outln!("{:<16} {:>12} {:>12} {:>12} {:>6}", "method", "volume q25", "median", "q75", "idle");
    let fmt = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.5}"));
    for m in &summary.methods {
        let last = m.at.last().and_then(|p| p.hypervolume);
        outln!(
            "{:<16} {:>12} {:>12} {:>12} {:>5.1}%",
            m.method,
            fmt(last.map(|q| q.0)),
            fmt(last.map(|q| q.1)),
            fmt(last.map(|q| q.2)),
            100.0 * m.median_idle_fraction
        );
    }
    print_tenths(summary, "hypervolume", |p| p.hypervolume);
}

/// The median of a quantity (quartiles from `quartiles`) per method at each tenth of the
/// simulated time.
fn print_tenths(
    summary: &hpo_bench::Summary,
    quantity: &str,
    quartiles: impl Fn(&hpo_bench::TimePoint) -> Option<(f64, f64, f64)>,
) {
    outln!("\nmedian {quantity} at each tenth of the simulated time (s):");
    let times: Vec<String> =
        summary.methods.first().map_or_else(Vec::new, |m| m.at.iter().map(|p| format!("{:>9.0}", p.time)).collect());
    outln!("{:<16} {}", "method", times.join(" "));
    for m in &summary.methods {
        let cells: Vec<String> =
            m.at.iter()
                .map(|p| quartiles(p).map_or_else(|| format!("{:>9}", "-"), |q| format!("{:>9.4}", q.1)))
                .collect();
        outln!("{:<16} {}", m.method, cells.join(" "));
    }
}

/// Simulator throughput: reports per second over whole random-search runs on digits-mlp
/// (each replays all 1,575 learning curves), and the wall time of a 1,000-trial ASHA run
/// with 4 workers (median of 5).
pub fn bench_simulator(args: SimulatorBenchArgs) -> anyhow::Result<ExitCode> {
    let mut setup = Setup::new("digits-mlp", None, 4)?;
    let random = method("random")?;
    // Random search replays whole learning curves until the table is exhausted.
    let mut reports = 0usize;
    let start = Instant::now();
    for seed in 0..args.runs {
        let run = setup.run("random", &random, seed)?;
        reports += run.trials * setup.blackbox.info().max_resource as usize;
    }
    let random_secs = start.elapsed().as_secs_f64();
    setup.max_trials = Some(1000);
    let asha = method("asha")?;
    let mut asha_ms: Vec<f64> =
        (0..5).map(|seed| setup.run("asha", &asha, seed).map(|r| r.wall_ms)).collect::<Result<_, _>>()?;
    let asha_ms = quartiles(&mut asha_ms).map_or(f64::NAN, |q| q.1);
    let reports_per_sec = reports as f64 / random_secs;
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "bench": "simulator",
                "reports": reports,
                "reports_per_sec": reports_per_sec,
                "ms_asha_1000_trials": asha_ms,
            })
        );
    } else {
        outln!(
            "{reports} simulated reports at {reports_per_sec:.0} per second; a 1,000-trial ASHA run takes {asha_ms:.2} ms"
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn methods_split_outside_json() {
        let parts = super::split_methods(r#"random, {"type": "asha", "rung_levels": [1, 3]},sh"#);
        assert_eq!(parts, ["random", r#"{"type": "asha", "rung_levels": [1, 3]}"#, "sh"]);
    }
}
