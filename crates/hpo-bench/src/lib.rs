#![warn(missing_docs)]
//! The benchmark harness: run methods (built-in or your own scheduler) over seeds on a
//! blackbox in simulated time, and sum the runs up per method (quartiles of the best value
//! and of the regret over time, time to a target, idle workers). `hpo bench run` is this
//! library plus flags and printing.
//!
//! ```no_run
//! # fn main() -> Result<(), hpo_bench::BenchError> {
//! use hpo_bench::{Setup, method};
//! let mut setup = Setup::new("branin", None, 4)?;
//! setup.max_time = Some(std::time::Duration::from_secs(60));
//! let methods = vec![("random".to_owned(), method("random")?), ("asha".to_owned(), method("asha")?)];
//! let runs = setup.compare(&methods, &[0, 1, 2])?;
//! let summary = setup.summarize(&runs, 60.0, None);
//! for m in &summary.methods {
//!     println!("{}: median regret at the end {:?}", m.method, m.at.last().and_then(|p| p.regret));
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hpo_backends::SimulatorBackend;
use hpo_backends::blackbox::{Blackbox, blackbox};
use hpo_core::pareto::{hypervolume, reference_point};
use hpo_core::{Context, Mode, Objective, Scheduler, Space, StopCriteria, Tuner};
use hpo_schedulers::Method;
use serde::{Deserialize, Serialize};

/// What went wrong setting up or running a comparison.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An unknown blackbox, a blackbox without the metric, a table that cannot be read.
    #[error(transparent)]
    Blackbox(#[from] hpo_backends::Error),
    /// The blackbox does not have the metric asked for.
    #[error("blackbox `{blackbox}` has no metric `{metric}`")]
    UnknownMetric {
        /// The blackbox's name.
        blackbox: String,
        /// The metric asked for.
        metric: String,
    },
    /// A method name that is neither a registered method nor a scheduler table.
    #[error("unknown method `{name}`: expected one of {} or a scheduler table as JSON", Method::names())]
    UnknownMethod {
        /// The name given.
        name: String,
    },
    /// A scheduler table that does not build a scheduler.
    #[error("method `{name}`: {source}")]
    Scheduler {
        /// The method's name.
        name: String,
        /// Why its table does not build a scheduler.
        source: serde_json::Error,
    },
    /// The blackbox's space plus the `epochs` constant is not a valid space.
    #[error(transparent)]
    Space(#[from] hpo_core::SpaceError),
    /// A simulated run could not go on.
    #[error("a simulated run: {0}")]
    Tuner(#[from] hpo_core::TunerError),
    /// The async runtime a run needs could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// A method by name (one of [`hpo_schedulers::METHODS`]) or a scheduler table as JSON.
pub fn method(name: &str) -> Result<serde_json::Value, BenchError> {
    match Method::named(name) {
        Some(method) => Ok(method.table()),
        None => serde_json::from_str(name).map_err(|_| BenchError::UnknownMethod { name: name.to_owned() }),
    }
}

/// One simulated run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    /// The method's name.
    pub method: String,
    /// The run's master seed.
    pub seed: u64,
    /// Trials started.
    pub trials: usize,
    /// Trials the scheduler stopped early.
    #[serde(default)]
    pub stopped: usize,
    /// The best value at the end (in the metric's units), if any trial reported; with
    /// several objectives, of the first.
    pub final_best: Option<f64>,
    /// (simulated time, best so far) at every improvement.
    pub trajectory: Vec<(f64, f64)>,
    /// With several objectives: each report that joined the Pareto front, when
    /// ([`hpo_core::Summary::front_trajectory`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub front_trajectory: Vec<(f64, Vec<f64>)>,
    /// Simulated worker-seconds with no trial running, up to the run's end.
    pub idle_time: f64,
    /// Simulated seconds when the run ended.
    pub end_time: f64,
    /// Wall-clock milliseconds the run took.
    pub wall_ms: f64,
}

/// Everything that defines a simulated run besides method and seed.
#[derive(Clone)]
pub struct Setup {
    /// The benchmark replayed.
    pub blackbox: Arc<dyn Blackbox>,
    /// The metrics optimized: one, or several objectives at once.
    pub metrics: Vec<String>,
    /// Trials at once.
    pub workers: usize,
    /// Simulated time per run.
    pub max_time: Option<Duration>,
    /// Trials per run.
    pub max_trials: Option<u64>,
    /// Add the tuner's own decision time to the simulated clock.
    pub charge_decision_time: bool,
}

impl Setup {
    /// Runs on the blackbox `name` (`digits-mlp`, `branin`, `zdt1`, ... or a tabular spec
    /// file), optimizing `metric` (default: the blackbox's; several objectives separated by
    /// commas, `val_error,train_time`) with `workers` trials at once.
    pub fn new(name: &str, metric: Option<&str>, workers: usize) -> Result<Setup, BenchError> {
        let blackbox = blackbox(name)?;
        let metrics: Vec<String> =
            metric.unwrap_or(&blackbox.info().default_metric).split(',').map(|m| m.trim().to_owned()).collect();
        if let Some(metric) = metrics.iter().find(|m| blackbox.info().mode(m).is_none()) {
            return Err(BenchError::UnknownMetric { blackbox: name.to_owned(), metric: metric.clone() });
        }
        Ok(Setup { blackbox, metrics, workers, max_time: None, max_trials: None, charge_decision_time: false })
    }

    /// The (first) metric optimized.
    pub fn metric(&self) -> &str {
        &self.metrics[0]
    }

    /// Whether the (first) metric is minimized or maximized.
    pub fn mode(&self) -> Mode {
        self.blackbox.info().mode(self.metric()).unwrap_or_default()
    }

    /// Every objective, with its direction.
    pub fn objectives(&self) -> Vec<Objective> {
        let info = self.blackbox.info();
        self.metrics.iter().map(|m| Objective::new(m.as_str(), info.mode(m).unwrap_or_default())).collect()
    }

    /// The blackbox's space plus the constant `epochs` schedulers set per trial.
    pub fn context(&self, seed: u64) -> Result<Context, BenchError> {
        let info = self.blackbox.info();
        // Through the space's syntax, which keeps its conditions.
        let mut space = info.space.to_json();
        space["epochs"] = info.max_resource.into();
        Ok(Context {
            objectives: if self.metrics.len() > 1 { self.objectives() } else { Vec::new() },
            resource_attr: Some(info.resource_attr.clone()),
            max_resource_attr: Some("epochs".into()),
            ..Context::new(Space::from_json(&space)?, Objective::new(self.metric(), self.mode()), seed)
        })
    }

    /// One run of the scheduler table `scheduler` (named `method_name` in the results).
    pub fn run(&self, method_name: &str, scheduler: &serde_json::Value, seed: u64) -> Result<RunResult, BenchError> {
        let scheduler: Box<dyn Scheduler> = serde_json::from_value(scheduler.clone())
            .map_err(|source| BenchError::Scheduler { name: method_name.to_owned(), source })?;
        self.run_scheduler(method_name, scheduler, seed)
    }

    /// One run of a scheduler value: your own type need not be registered.
    pub fn run_scheduler(
        &self,
        method_name: &str,
        scheduler: Box<dyn Scheduler>,
        seed: u64,
    ) -> Result<RunResult, BenchError> {
        let metrics: Vec<&str> = self.metrics.iter().map(String::as_str).collect();
        let backend = SimulatorBackend::new(Arc::clone(&self.blackbox), &metrics, Some("epochs"), seed)?
            .charge_decision_time(self.charge_decision_time);
        let stats = backend.stats();
        let tuner = Tuner::new(self.context(seed)?, scheduler, Box::new(backend)).workers(self.workers).stop_when(
            StopCriteria { max_wallclock: self.max_time, max_trials: self.max_trials, ..StopCriteria::default() },
        );
        let start = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let summary = runtime.block_on(tuner.run())?;
        let wall_ms = start.elapsed().as_secs_f64() * 1e3;
        let busy = stats.lock().map(|s| s.busy_time).unwrap_or_default();
        Ok(RunResult {
            method: method_name.to_owned(),
            seed,
            trials: summary.trials,
            stopped: summary.stopped,
            final_best: summary.best.map(|b| b.value),
            trajectory: summary.trajectory,
            front_trajectory: summary.front_trajectory,
            idle_time: (self.workers as f64 * summary.elapsed - busy).max(0.0),
            end_time: summary.elapsed,
            wall_ms,
        })
    }

    /// Every method on every seed, on every core; results in the order (method, seed).
    pub fn compare(
        &self,
        methods: &[(String, serde_json::Value)],
        seeds: &[u64],
    ) -> Result<Vec<RunResult>, BenchError> {
        let jobs: Vec<(&str, &serde_json::Value, u64)> =
            methods.iter().flat_map(|(n, s)| seeds.iter().map(move |&seed| (n.as_str(), s, seed))).collect();
        parallel(jobs, |(name, scheduler, seed)| self.run(name, scheduler, *seed)).into_iter().collect()
    }

    /// Per method: quartiles of best and regret at ten evenly spaced times up to `max_time`,
    /// and the median time to reach `target` (default: the median final best over all runs).
    /// With several objectives, quartiles of the hypervolume too, against one reference
    /// point for every run: the worst value of each objective on any run's front plus a
    /// tenth of its range ([`hpo_core::pareto::reference_point`]). It is quoted as a share of
    /// the box between the ideal point (each objective's best on any run) and the reference
    /// point, so 1 would be a single config best at everything.
    pub fn summarize(&self, runs: &[RunResult], max_time: f64, target: Option<f64>) -> Summary {
        let optimum = self.blackbox.optimum(self.metric());
        let objective = Objective::new(self.metric(), self.mode());
        let objectives = self.objectives();
        let to_minimize =
            |point: &[f64]| -> Vec<f64> { objectives.iter().zip(point).map(|(o, v)| o.to_minimize(*v)).collect() };
        let all: Vec<Vec<f64>> =
            runs.iter().flat_map(|r| r.front_trajectory.iter().map(|(_, p)| to_minimize(p))).collect();
        let reference = (self.metrics.len() > 1 && !all.is_empty()).then(|| reference_point(&all));
        // The box from the ideal point (the best of each objective on any run) to the
        // reference point: hypervolumes are quoted as a share of it, from 0 to 1.
        let ideal: Vec<f64> =
            (0..self.metrics.len()).map(|i| all.iter().map(|p| p[i]).fold(f64::INFINITY, f64::min)).collect();
        let hypervolume_at = |run: &RunResult, time: f64, reference: &[f64]| {
            let points: Vec<Vec<f64>> =
                run.front_trajectory.iter().take_while(|(t, _)| *t <= time).map(|(_, p)| to_minimize(p)).collect();
            let room: f64 = reference.iter().zip(&ideal).map(|(r, i)| r - i).product();
            hypervolume(&points, reference) / room
        };
        let mut finals: Vec<f64> = runs.iter().filter_map(|r| r.final_best).collect();
        let target = target.unwrap_or_else(|| quartiles(&mut finals).map_or(f64::NAN, |q| q.1));
        let mut by_method: BTreeMap<&str, Vec<&RunResult>> = BTreeMap::new();
        let mut order: Vec<&str> = Vec::new();
        for run in runs {
            if !by_method.contains_key(run.method.as_str()) {
                order.push(&run.method);
            }
            by_method.entry(&run.method).or_default().push(run);
        }
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
                        let mut volumes: Vec<f64> = reference.as_ref().map_or_else(Vec::new, |reference| {
                            group.iter().map(|r| hypervolume_at(r, time, reference)).collect()
                        });
                        TimePoint {
                            time,
                            best: quartiles(&mut best),
                            regret: quartiles(&mut regret),
                            hypervolume: quartiles(&mut volumes),
                        }
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
                    .map(|r| if r.end_time > 0.0 { r.idle_time / (self.workers as f64 * r.end_time) } else { 0.0 })
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
            blackbox: self.blackbox.info().name.clone(),
            metric: self.metric().to_owned(),
            objectives: if self.metrics.len() > 1 { self.metrics.clone() } else { Vec::new() },
            reference_point: reference.map(|r| objectives.iter().zip(r).map(|(o, v)| o.to_metric(v)).collect()),
            workers: self.workers,
            optimum,
            target,
            methods,
        }
    }
}

/// A comparison summed up: what `summary.json` holds.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The blackbox's name.
    pub blackbox: String,
    /// The metric optimized (the first objective, when there are several).
    pub metric: String,
    /// Every objective, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objectives: Vec<String>,
    /// With several objectives: the reference point of the hypervolumes, in the metrics'
    /// units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_point: Option<Vec<f64>>,
    /// Trials at once.
    pub workers: usize,
    /// The best value the blackbox holds, if known (regrets are measured against it).
    pub optimum: Option<f64>,
    /// The value time-to-target is measured for.
    pub target: f64,
    /// Per method, in the order of the runs.
    pub methods: Vec<MethodSummary>,
}

/// One method over its seeds.
#[derive(Debug, Serialize)]
pub struct MethodSummary {
    /// The method's name.
    pub method: String,
    /// Runs (seeds) summed up.
    pub runs: usize,
    /// Quartiles of the best value and of the regret at fixed simulated times.
    pub at: Vec<TimePoint>,
    /// Median simulated seconds to reach the target (`None` if most runs never did).
    pub median_time_to_target: Option<f64>,
    /// Median fraction of worker time with no trial running.
    pub median_idle_fraction: f64,
}

/// Quartiles (lower, median, upper) at one simulated time.
#[derive(Debug, Serialize)]
pub struct TimePoint {
    /// Simulated seconds.
    pub time: f64,
    /// Quartiles of the best value so far, over the runs that had one.
    pub best: Option<(f64, f64, f64)>,
    /// Quartiles of the regret (distance to the optimum), when the optimum is known.
    pub regret: Option<(f64, f64, f64)>,
    /// With several objectives: quartiles of the hypervolume of the front so far, as a share
    /// of the box between the ideal and the reference point ([`Setup::summarize`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hypervolume: Option<(f64, f64, f64)>,
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
