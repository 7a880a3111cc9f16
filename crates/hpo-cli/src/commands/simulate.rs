//! Simulated runs on blackboxes: `hpo bench run` (methods x seeds) and `hpo bench simulator`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hpo_backends::SimulatorBackend;
use hpo_backends::blackbox::{Blackbox, blackbox};
use hpo_core::{Context, Mode, Objective, Scheduler, Space, StopCriteria, Tuner};
use hpo_schedulers::Method;
use serde::{Deserialize, Serialize};

use crate::commands::runtime;
use crate::{BenchRunArgs, SimulatorBenchArgs};

/// A method by name (one of [`hpo_schedulers::METHODS`]) or a scheduler table as JSON.
pub fn method(name: &str) -> anyhow::Result<serde_json::Value> {
    if let Some(method) = Method::named(name) {
        return Ok(method.table());
    }
    serde_json::from_str(name).with_context(|| {
        format!("unknown method `{name}`: expected one of {} or a scheduler table as JSON", Method::names())
    })
}

/// One simulated run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub method: String,
    pub seed: u64,
    pub trials: usize,
    pub final_best: Option<f64>,
    /// (simulated time, best so far) at every improvement.
    pub trajectory: Vec<(f64, f64)>,
    /// Simulated worker-seconds with no trial running, up to the run's end.
    pub idle_time: f64,
    pub end_time: f64,
    pub wall_ms: f64,
}

/// Everything that defines a simulated run besides method and seed.
#[derive(Clone)]
pub struct Setup {
    pub blackbox: Arc<dyn Blackbox>,
    pub metric: String,
    pub workers: usize,
    pub max_time: Option<Duration>,
    pub max_trials: Option<u64>,
    /// Add the tuner's own decision time to the simulated clock.
    pub charge_decision_time: bool,
}

impl Setup {
    pub fn new(name: &str, metric: Option<&str>, workers: usize) -> anyhow::Result<Setup> {
        let blackbox = blackbox(name).map_err(anyhow::Error::msg)?;
        let metric = metric.unwrap_or(&blackbox.info().default_metric).to_owned();
        anyhow::ensure!(blackbox.info().mode(&metric).is_some(), "blackbox `{name}` has no metric `{metric}`");
        Ok(Setup { blackbox, metric, workers, max_time: None, max_trials: None, charge_decision_time: false })
    }

    pub fn mode(&self) -> Mode {
        self.blackbox.info().mode(&self.metric).unwrap_or_default()
    }

    /// The blackbox's space plus the constant `epochs` schedulers set per trial.
    pub fn context(&self, seed: u64) -> anyhow::Result<Context> {
        let info = self.blackbox.info();
        let mut params: Vec<(String, hpo_core::Domain)> =
            info.space.params().map(|(n, d)| (n.to_owned(), d.clone())).collect();
        params.push(("epochs".into(), hpo_core::Domain::Constant(i64::from(info.max_resource).into())));
        Ok(Context {
            space: Space::from_domains(params)?,
            objective: Objective::new(&self.metric, self.mode()),
            resource_attr: Some(info.resource_attr.clone()),
            max_resource_attr: Some("epochs".into()),
            seed,
        })
    }

    pub fn run(&self, method_name: &str, scheduler: &serde_json::Value, seed: u64) -> anyhow::Result<RunResult> {
        let scheduler: Box<dyn Scheduler> =
            serde_json::from_value(scheduler.clone()).with_context(|| format!("method `{method_name}`"))?;
        let backend = SimulatorBackend::new(Arc::clone(&self.blackbox), &[&self.metric], Some("epochs"), seed)
            .map_err(anyhow::Error::msg)?
            .charge_decision_time(self.charge_decision_time);
        let stats = backend.stats();
        let tuner = Tuner::new(self.context(seed)?, scheduler, Box::new(backend)).workers(self.workers).stop_when(
            StopCriteria { max_wallclock: self.max_time, max_trials: self.max_trials, ..StopCriteria::default() },
        );
        let start = Instant::now();
        let summary = runtime()?.block_on(tuner.run())?;
        let wall_ms = start.elapsed().as_secs_f64() * 1e3;
        let busy = stats.lock().map(|s| s.busy_time).unwrap_or_default();
        Ok(RunResult {
            method: method_name.to_owned(),
            seed,
            trials: summary.trials,
            final_best: summary.best.map(|b| b.value),
            trajectory: summary.trajectory,
            idle_time: (self.workers as f64 * summary.elapsed - busy).max(0.0),
            end_time: summary.elapsed,
            wall_ms,
        })
    }
}

/// The best value a run had reached by time `t` (`None` before its first result).
pub fn best_at(trajectory: &[(f64, f64)], t: f64) -> Option<f64> {
    trajectory.iter().take_while(|(time, _)| *time <= t).last().map(|(_, v)| *v)
}

/// (lower quartile, median, upper quartile), linear interpolation.
pub fn quartiles(values: &mut [f64]) -> Option<(f64, f64, f64)> {
    values.sort_by(f64::total_cmp);
    let q = |p: f64| hpo_schedulers::quantile::quantile(values, p);
    Some((q(0.25)?, q(0.5)?, q(0.75)?))
}

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

/// Runs `jobs` on every core, keeping their order.
fn parallel<T: Sync, R: Send>(jobs: Vec<T>, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<R>> = (0..jobs.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let r = f(job);
                    if let Ok(mut slots) = slots.lock() {
                        slots[i] = Some(r);
                    }
                }
            });
        }
    });
    results.into_iter().flatten().collect()
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
    let jobs: Vec<(String, serde_json::Value, u64)> =
        methods.iter().flat_map(|(n, s)| seeds.iter().map(move |&seed| (n.clone(), s.clone(), seed))).collect();
    let runs: Vec<RunResult> = parallel(jobs, |(name, scheduler, seed)| setup.run(name, scheduler, *seed))
        .into_iter()
        .collect::<anyhow::Result<_>>()?;

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

    let summary = summarize(&setup, &runs, args.max_time.as_secs_f64(), args.target);
    std::fs::write(output.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    if args.json {
        for method in &summary.methods {
            outln!("{}", serde_json::to_string(method)?);
        }
    } else {
        outln!(
            "{} on {}: {}, {}, {} of simulated time; {} is {}; target {}",
            args.methods,
            setup.blackbox.info().name,
            super::count(seeds.len(), "seed"),
            super::count(args.workers, "worker"),
            super::human_duration(args.max_time),
            setup.metric,
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
        let regret = summary.optimum.is_some();
        outln!("\nmedian {} at each tenth of the simulated time (s):", if regret { "regret" } else { "best value" });
        let times: Vec<String> = summary
            .methods
            .first()
            .map_or_else(Vec::new, |m| m.at.iter().map(|p| format!("{:>9.0}", p.time)).collect());
        outln!("{:<16} {}", "method", times.join(" "));
        for m in &summary.methods {
            let cells: Vec<String> =
                m.at.iter()
                    .map(|p| {
                        let q = if regret { p.regret } else { p.best };
                        q.map_or_else(|| format!("{:>9}", "-"), |q| format!("{:>9.4}", q.1))
                    })
                    .collect();
            outln!("{:<16} {}", m.method, cells.join(" "));
        }
        outln!("Per-run results: {}", output.join("runs.jsonl").display());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub blackbox: String,
    pub metric: String,
    pub workers: usize,
    pub optimum: Option<f64>,
    pub target: f64,
    pub methods: Vec<MethodSummary>,
}

#[derive(Debug, Serialize)]
pub struct MethodSummary {
    pub method: String,
    pub runs: usize,
    /// Quartiles of the best value and of the regret at fixed simulated times.
    pub at: Vec<TimePoint>,
    pub median_time_to_target: Option<f64>,
    pub median_idle_fraction: f64,
}

#[derive(Debug, Serialize)]
pub struct TimePoint {
    pub time: f64,
    pub best: Option<(f64, f64, f64)>,
    pub regret: Option<(f64, f64, f64)>,
}

/// Per method: quartiles of best and regret at ten evenly spaced times, and the median time
/// to reach `target` (default: the median final best over all runs).
pub fn summarize(setup: &Setup, runs: &[RunResult], max_time: f64, target: Option<f64>) -> Summary {
    let optimum = setup.blackbox.optimum(&setup.metric);
    let objective = Objective::new(setup.metric.as_str(), setup.mode());
    let mut finals: Vec<f64> = runs.iter().filter_map(|r| r.final_best).collect();
    let target = target.unwrap_or_else(|| quartiles(&mut finals).map_or(f64::NAN, |q| q.1));
    let mut by_method: BTreeMap<&str, Vec<&RunResult>> = BTreeMap::new();
    for run in runs {
        by_method.entry(&run.method).or_default().push(run);
    }
    let order: Vec<&str> = runs.iter().map(|r| r.method.as_str()).fold(Vec::new(), |mut v, m| {
        if !v.contains(&m) {
            v.push(m);
        }
        v
    });
    let methods = order
        .into_iter()
        .map(|name| {
            let group = &by_method[name];
            let at = (1..=10)
                .map(|i| {
                    let time = max_time * f64::from(i) / 10.0;
                    let mut best: Vec<f64> = group.iter().filter_map(|r| best_at(&r.trajectory, time)).collect();
                    let mut regret: Vec<f64> = optimum.map_or_else(Vec::new, |o| {
                        best.iter().map(|b| objective.to_minimize(*b) - objective.to_minimize(o)).collect()
                    });
                    TimePoint { time, best: quartiles(&mut best), regret: quartiles(&mut regret) }
                })
                .collect();
            let mut reach: Vec<f64> = group
                .iter()
                .map(|r| {
                    r.trajectory
                        .iter()
                        .find(|(_, v)| objective.to_minimize(*v) <= objective.to_minimize(target))
                        .map_or(f64::INFINITY, |(t, _)| *t)
                })
                .collect();
            let median_time_to_target = quartiles(&mut reach).map(|q| q.1).filter(|t| t.is_finite());
            let mut idle: Vec<f64> = group
                .iter()
                .map(|r| if r.end_time > 0.0 { r.idle_time / (setup.workers as f64 * r.end_time) } else { 0.0 })
                .collect();
            MethodSummary {
                method: name.to_owned(),
                runs: group.len(),
                at,
                median_time_to_target,
                median_idle_fraction: quartiles(&mut idle).map_or(0.0, |q| q.1),
            }
        })
        .collect();
    Summary {
        blackbox: setup.blackbox.info().name.clone(),
        metric: setup.metric.clone(),
        workers: setup.workers,
        optimum,
        target,
        methods,
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
    for seed in 0..args.runs.max(1) {
        let run = setup.run("random", &random, seed)?;
        reports += run.trials * setup.blackbox.info().max_resource as usize;
    }
    let random_secs = start.elapsed().as_secs_f64();
    setup.max_trials = Some(1000);
    let asha = method("asha")?;
    let mut asha_ms: Vec<f64> =
        (0..5).map(|seed| setup.run("asha", &asha, seed).map(|r| r.wall_ms)).collect::<anyhow::Result<_>>()?;
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
