//! `hpo bench ...`: benchmarks that print one machine-readable line with `--json`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hpo_backends::ThreadBackend;
use hpo_core::{
    Backend, BackendError, Config, Context, Decision, Domain, Event, EventKind, ExperimentSpec, Journal, JournalSync,
    Mode, Objective, Recorded, Report, Space, StopCriteria, Suggestion, TrialId, TrialStart, Tuner, async_trait,
};
use hpo_schedulers::Fifo;
use rand::RngExt;

use crate::commands::runtime;
use crate::{
    OverheadArgs, ProcessBenchArgs, ResumeBenchArgs, ScaleArgs, ScaleStep, SchedulerBenchArgs, SearcherBenchArgs,
    SlurmBenchArgs,
};

/// Random search + FIFO over a function that reports once and returns: what is left is the
/// tuner's own cost per trial, without and with the journal; and the part of it the tuner's
/// thread spends, with trials that end at once in that thread.
pub fn overhead(args: OverheadArgs) -> anyhow::Result<ExitCode> {
    let dir = scratch_dir("overhead")?;
    let mut plain = Vec::new();
    let mut tuner_only = Vec::new();
    let mut journaled = Vec::new();
    let mut synced = Vec::new();
    // An fsync per round costs a disk's latency: fewer trials for `journal_sync = "disk"`.
    let disk_trials = args.trials.min(DISK_TRIALS);
    for repeat in 0..args.repeats {
        plain.push(time_trials(args.workers, args.trials, None)?);
        tuner_only.push(time_tuner_only(args.workers, args.trials)?);
        for (sync, trials, times) in
            [(JournalSync::Os, args.trials, &mut journaled), (JournalSync::Disk, disk_trials, &mut synced)]
        {
            let path = dir.join(format!("journal-{repeat}.jsonl"));
            times.push(time_trials(args.workers, trials, Some((&path, sync)))?);
            std::fs::remove_file(&path).ok();
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    let (us, us_journal, us_disk) = (median(&mut plain), median(&mut journaled), median(&mut synced));
    let us_tuner = median(&mut tuner_only);
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "bench": "overhead",
                "trials": args.trials,
                "workers": args.workers,
                "repeats": args.repeats,
                "us_per_trial": us,
                "us_per_trial_tuner_only": us_tuner,
                "us_per_trial_journal": us_journal,
                "us_per_trial_journal_disk": us_disk,
                "trials_journal_disk": disk_trials,
            })
        );
    } else {
        outln!(
            "{} trials on {} workers: {us:.2} us per trial without the journal ({us_tuner:.2} us of it the tuner's own \
             work), {us_journal:.2} us with it, {us_disk:.2} us with journal_sync = \"disk\" ({disk_trials} trials) \
             (median of {})",
            args.trials,
            args.workers,
            args.repeats
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A single-fidelity experiment minimizing `loss` over `space`, seed 0.
fn loss_context(space: Space) -> Context {
    Context::new(space, Objective::new("loss", Mode::Min), 0)
}

/// Trials of the `journal_sync = "disk"` figure, at most.
const DISK_TRIALS: u64 = 5000;

/// Microseconds per trial for one run of `trials` trials on the thread backend.
fn time_trials(workers: usize, trials: u64, journal: Option<(&std::path::Path, JournalSync)>) -> anyhow::Result<f64> {
    let backend = ThreadBackend::new(workers, |trial, reporter| {
        reporter.report([("loss", trial.config.f64("x")?)])?;
        Ok(())
    })?;
    time_experiment(Box::new(backend), workers, trials, journal)
}

/// Microseconds per trial of random search + FIFO minimizing `loss` on `backend`.
fn time_experiment(
    backend: Box<dyn Backend>,
    workers: usize,
    trials: u64,
    journal: Option<(&std::path::Path, JournalSync)>,
) -> anyhow::Result<f64> {
    let ctx = loss_context(
        Space::builder().uniform("x", 0.0, 1.0).randint("n", 1, 100).choice("act", ["relu", "tanh"]).build()?,
    );
    let mut tuner = Tuner::new(ctx, Box::new(Fifo::default()), backend)
        .workers(workers)
        .stop_when(StopCriteria { max_trials: Some(trials), ..StopCriteria::default() });
    if let Some((path, sync)) = journal {
        tuner = tuner.journal(Journal::create(path, "bench", serde_json::json!({"metric": "loss"}))?.sync(sync));
    }
    let rt = runtime()?;
    let start = Instant::now();
    let summary = rt.block_on(tuner.run())?;
    let elapsed = start.elapsed();
    anyhow::ensure!(summary.trials as u64 == trials, "ran {} trials, not {}", summary.trials, trials);
    Ok(elapsed.as_secs_f64() * 1e6 / trials as f64)
}

/// Microseconds per trial of the same experiment as [`time_trials`] with trials that report
/// and end at once, in the tuner's thread: the tuner's own work, without the handoffs to and
/// from worker threads.
fn time_tuner_only(workers: usize, trials: u64) -> anyhow::Result<f64> {
    time_experiment(Box::new(AtOnce { events: Vec::new(), clock: Instant::now() }), workers, trials, None)
}

/// A backend whose trials report `loss = x` and complete as they start, as a worker
/// thread's trial would, but in the tuner's thread.
struct AtOnce {
    events: Vec<Event>,
    clock: Instant,
}

#[async_trait]
impl Backend for AtOnce {
    async fn start(&mut self, trial: TrialStart) -> Result<(), BackendError> {
        let loss = trial.config.f64("x").map_err(|e| BackendError(e.to_string()))?;
        let report = EventKind::Report([("loss", loss)].into_iter().collect());
        for kind in [report, EventKind::Completed] {
            self.events.push(Event { time: self.now(), trial_id: trial.trial_id, kind });
        }
        Ok(())
    }

    async fn decide(&mut self, _: TrialId, _: Decision) -> Result<(), BackendError> {
        Ok(())
    }

    async fn next_events(&mut self, out: &mut Vec<Event>) -> Result<(), BackendError> {
        self.events_so_far(out)
    }

    fn events_so_far(&mut self, out: &mut Vec<Event>) -> Result<(), BackendError> {
        out.append(&mut self.events);
        Ok(())
    }

    fn now(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    fn runs_in_process(&self) -> bool {
        true
    }
}

/// `hpo bench scale`: each run, then `hpo results` and `hpo best` on its folder, in a process
/// of its own (this binary with `--step`), so that each peak resident memory is its own.
pub fn scale(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    if let (Some(step), Some(dir)) = (args.step, &args.dir) {
        return scale_step(step, dir, args.trials, args.workers);
    }
    let root = scratch_dir("scale")?;
    let sizes = std::iter::successors(Some(10_000u64), |n| n.checked_mul(10)).take_while(|&n| n < args.trials);
    for trials in sizes.chain([args.trials]) {
        let dir = root.join(trials.to_string());
        let run = measure_step(ScaleStep::Run, &dir, trials, args.workers)?;
        let results = measure_step(ScaleStep::Results, &dir, trials, args.workers)?;
        let best = measure_step(ScaleStep::Best, &dir, trials, args.workers)?;
        let journal_bytes = std::fs::metadata(dir.join("journal.jsonl"))?.len();
        std::fs::remove_dir_all(&dir).ok();
        let per_trial = |bytes: f64| bytes / trials as f64;
        let (rss_run, journal) = (per_trial(run.added_rss_bytes()), per_trial(journal_bytes as f64));
        if args.json {
            outln!(
                "{}",
                serde_json::json!({
                    "bench": "scale",
                    "trials": trials,
                    "workers": args.workers,
                    "run_s": run.seconds,
                    "us_per_trial": run.seconds * 1e6 / trials as f64,
                    "peak_rss_bytes_per_trial": rss_run,
                    "peak_rss_mb": run.peak_rss_bytes / 1e6,
                    "journal_bytes_per_trial": journal,
                    "results_s": results.seconds,
                    "results_peak_rss_mb": results.peak_rss_bytes / 1e6,
                    "best_s": best.seconds,
                    "best_peak_rss_mb": best.peak_rss_bytes / 1e6,
                })
            );
        } else {
            outln!(
                "{trials} trials: {:.1} s, {rss_run:.0} bytes of peak memory and {journal:.0} journal bytes per trial; \
                 `hpo results` {:.2} s ({:.0} MB), `hpo best` {:.2} s ({:.0} MB)",
                run.seconds,
                results.seconds,
                results.peak_rss_bytes / 1e6,
                best.seconds,
                best.peak_rss_bytes / 1e6
            );
        }
    }
    std::fs::remove_dir_all(&root).ok();
    Ok(ExitCode::SUCCESS)
}

/// What one step measured of itself.
#[derive(serde::Serialize, serde::Deserialize)]
struct StepMeasure {
    seconds: f64,
    /// Peak resident memory of the step's process.
    peak_rss_bytes: f64,
    /// Resident memory before the step's work began.
    start_rss_bytes: f64,
}

impl StepMeasure {
    fn added_rss_bytes(&self) -> f64 {
        self.peak_rss_bytes - self.start_rss_bytes
    }
}

fn measure_step(step: ScaleStep, dir: &std::path::Path, trials: u64, workers: usize) -> anyhow::Result<StepMeasure> {
    let exe = std::env::current_exe().context("finding this hpo binary")?;
    let step_name = format!("{step:?}").to_lowercase();
    let out = std::process::Command::new(exe)
        .args(["bench", "scale", "--step", &step_name, "--trials", &trials.to_string()])
        .args(["--workers", &workers.to_string(), "--dir"])
        .arg(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running a step of `hpo bench scale`")?;
    anyhow::ensure!(out.status.success(), "the {step_name} step of {trials} trials failed ({})", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("the {step_name} step printed `{last}`"))
}

/// One step, measured in this process: its time and peak resident memory, printed as the
/// last line (after the output of `hpo results` or `hpo best`).
fn scale_step(step: ScaleStep, dir: &std::path::Path, trials: u64, workers: usize) -> anyhow::Result<ExitCode> {
    let start_rss_bytes = peak_rss_bytes()?;
    let start = Instant::now();
    match step {
        ScaleStep::Run => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            time_trials(workers, trials, Some((&dir.join("journal.jsonl"), JournalSync::Os)))?;
        }
        ScaleStep::Results => {
            let args = crate::ResultsArgs { dir: dir.to_owned(), top: None, json: false, csv: false };
            super::results::results(args)?;
        }
        ScaleStep::Best => {
            super::results::best(crate::BestArgs { dir: dir.to_owned() })?;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let measure = StepMeasure { seconds, peak_rss_bytes: peak_rss_bytes()?, start_rss_bytes };
    outln!("{}", serde_json::to_string(&measure)?);
    Ok(ExitCode::SUCCESS)
}

/// This process's peak resident memory so far.
fn peak_rss_bytes() -> anyhow::Result<f64> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
    Ok(usage.max_rss() as f64 * 1024.0) // kilobytes on Linux
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
        resource_attr: Some("epoch".into()),
        max_resource_attr: Some("epochs".into()),
        ..Context::new(space, Objective::new("loss", Mode::Min), args.seed)
    };
    scheduler.init(&ctx)?;
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
            let objective = quality + 1.0 / f64::from(*epoch) + noise;
            decision = scheduler.on_report(&Report {
                trial_id,
                config: &config,
                metrics: &metrics,
                resource: f64::from(*epoch),
                objective,
                objectives: std::slice::from_ref(&objective),
                violation: 0.0,
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
        outln!(
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
        outln!(
            "{}: {decisions} decisions for {new_trials} trials, {ns:.0} ns per decision ({ns_last:.0} ns in the last tenth)",
            args.scheduler
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Feeds a searcher `observations` results of random configs on a smooth `dims`-dimensional
/// function, then times `suggestions` suggestions, reporting each one's result before the
/// next so that every suggestion refits its model.
pub fn searcher(args: SearcherBenchArgs) -> anyhow::Result<ExitCode> {
    let mut settings: serde_json::Value =
        serde_json::from_str(&args.settings).context("--settings must be a JSON object")?;
    anyhow::ensure!(settings.is_object(), "--settings must be a JSON object");
    settings["type"] = serde_json::Value::String(args.searcher.clone());
    let mut searcher: Box<dyn hpo_core::Searcher> =
        serde_json::from_value(settings).with_context(|| format!("searcher `{}`", args.searcher))?;
    anyhow::ensure!(args.dims >= 1, "--dims must be at least 1");
    let space =
        Space::from_domains((0..args.dims).map(|i| (format!("x{i}"), Domain::Uniform { low: 0.0, high: 1.0 })))?;
    let ctx = Context::new(space.clone(), Objective::new("loss", Mode::Min), args.seed);
    searcher.init(&ctx)?;
    // A shifted sphere with a little noise: smooth, with its optimum inside the box.
    let mut rng = hpo_core::derive_rng(args.seed, "bench");
    let mut loss = |coords: &[f64]| -> f64 {
        let d = coords.len() as f64;
        let sphere: f64 = coords.iter().enumerate().map(|(i, x)| (x - (i as f64 + 1.0) / (d + 1.0)).powi(2)).sum();
        sphere + 0.01 * rng.random::<f64>()
    };
    let metrics = hpo_core::Metrics::new();
    let mut tell = |searcher: &mut dyn hpo_core::Searcher, trial_id: TrialId, config: &Config| {
        let objective = loss(&space.encode(config));
        let objectives = std::slice::from_ref(&objective);
        let report =
            Report { trial_id, config, metrics: &metrics, resource: 0.0, objective, objectives, violation: 0.0 };
        searcher.on_report(&report);
        searcher.on_complete(trial_id);
    };
    let mut sample_rng = hpo_core::derive_rng(args.seed, "bench-configs");
    for trial_id in 0..args.observations as TrialId {
        tell(searcher.as_mut(), trial_id, &space.sample(&mut sample_rng));
    }
    let mut times = Vec::with_capacity(args.suggestions);
    for k in 0..args.suggestions as TrialId {
        let trial_id = args.observations as TrialId + k;
        let start = Instant::now();
        let config = searcher.suggest(trial_id).context("the searcher has no suggestion left")?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        tell(searcher.as_mut(), trial_id, &config);
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "bench": "searcher",
                "searcher": args.searcher,
                "settings": args.settings,
                "observations": args.observations,
                "dims": args.dims,
                "suggestions": args.suggestions,
                "ms_per_suggest": median,
                "ms_per_suggest_mean": mean,
                "ms_per_suggest_max": times.last(),
            })
        );
    } else {
        outln!(
            "{}: {median:.2} ms per suggestion (median of {}; mean {mean:.2} ms) with {} observations in {} dims",
            args.searcher,
            args.suggestions,
            args.observations,
            args.dims
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
    let dir = scratch_dir("process")?;
    let ctx = loss_context(Space::builder().uniform("x", 0.0, 1.0).build()?);
    let spec: hpo_backends::ProcessSpec = serde_json::from_value(serde_json::json!({
        "command": ["sh", "-c", TRIVIAL_SCRIPT],
        "checkpointing": false,
    }))?;
    let backend = hpo_backends::ProcessBackend::new(spec, args.workers, dir.join("trials"))?;
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
    let per_worker = args.trials.div_ceil(args.workers as u64);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..args.workers)
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
    let bare = start.elapsed().as_secs_f64() * 1e3 / (per_worker * args.workers as u64) as f64;
    std::fs::remove_dir_all(&dir).ok();
    let overhead = tuned - bare;
    if args.json {
        outln!(
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
        outln!(
            "{} trials on {} workers: {tuned:.3} ms per trial, bare spawn {bare:.3} ms, overhead {overhead:.3} ms",
            args.trials,
            args.workers
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Milliseconds per trial of `trials` trivial trials through the tuner on `backend`.
fn tuned_ms_per_trial(backend: Box<dyn hpo_core::Backend>, trials: u64, workers: usize) -> anyhow::Result<f64> {
    let ctx = loss_context(Space::builder().uniform("x", 0.0, 1.0).build()?);
    let tuner = Tuner::new(ctx, Box::new(Fifo::default()), backend)
        .workers(workers)
        .stop_when(StopCriteria { max_trials: Some(trials), ..StopCriteria::default() });
    let start = Instant::now();
    let summary = runtime()?.block_on(tuner.run())?;
    anyhow::ensure!(summary.completed as u64 == trials, "{} of {trials} trials completed", summary.completed);
    Ok(start.elapsed().as_secs_f64() * 1e3 / trials as f64)
}

/// Milliseconds per run of `run` (one bare job or step), `workers` at a time.
fn bare_ms_per_trial(
    trials: u64,
    workers: usize,
    run: impl Fn(u64) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<f64> {
    let per_worker = trials.div_ceil(workers.max(1) as u64);
    let start = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let run = &run;
        let handles: Vec<_> = (0..workers.max(1) as u64)
            .map(|w| scope.spawn(move || (0..per_worker).try_for_each(|i| run(w * per_worker + i))))
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a bare-run thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(start.elapsed().as_secs_f64() * 1e3 / (per_worker * workers.max(1) as u64) as f64)
}

/// The Slurm backend's overhead: hpo's wall time per trial minus Slurm's own turnaround for
/// the same trivial jobs submitted by hand, as batch jobs and (inside an allocation this
/// command makes with `salloc`) as job steps.
pub fn slurm(args: SlurmBenchArgs) -> anyhow::Result<ExitCode> {
    let dir = scratch_dir("slurm")?;
    let slurm_spec = |mode: &str| -> anyhow::Result<hpo_backends::SlurmSpec> {
        Ok(serde_json::from_value(serde_json::json!({
            "command": ["sh", "-c", TRIVIAL_SCRIPT], "mode": mode, "checkpointing": false,
            "cpus_per_trial": 1, "workdir": dir,
        }))?)
    };
    if args.in_allocation {
        let backend = hpo_backends::slurm_backend(slurm_spec("steps")?, args.workers, dir.join("trials"))?;
        let tuned = tuned_ms_per_trial(backend, args.trials, args.workers)?;
        let bare = bare_ms_per_trial(args.trials, args.workers, |_| {
            let out = std::process::Command::new("srun")
                .args([
                    "--ntasks=1",
                    "--nodes=1",
                    "--exclusive",
                    "--quiet",
                    "--cpus-per-task=1",
                    "sh",
                    "-c",
                    TRIVIAL_SCRIPT,
                ])
                .output()?;
            anyhow::ensure!(out.status.success(), "srun failed: {}", String::from_utf8_lossy(&out.stderr));
            Ok(())
        })?;
        std::fs::remove_dir_all(&dir).ok();
        outln!("{}", serde_json::json!({ "ms_per_trial": tuned, "ms_bare_per_trial": bare }));
        return Ok(ExitCode::SUCCESS);
    }
    let backend = hpo_backends::slurm_backend(slurm_spec("jobs")?, args.workers, dir.join("trials"))?;
    let jobs_tuned = tuned_ms_per_trial(backend, args.trials, args.workers)?;
    let bare_dir = dir.join("bare");
    std::fs::create_dir_all(&bare_dir)?;
    let jobs_bare = bare_ms_per_trial(args.trials, args.workers, |i| {
        let marker = bare_dir.join(format!("{i}.exit"));
        let script = bare_dir.join(format!("{i}.sh"));
        std::fs::write(&script, format!("#!/bin/bash\n{TRIVIAL_SCRIPT}\necho $? > {}\n", marker.display()))?;
        let out = std::process::Command::new("sbatch")
            .args(["--parsable", "--cpus-per-task=1", "--output=/dev/null"])
            .arg(&script)
            .output()?;
        anyhow::ensure!(out.status.success(), "sbatch failed: {}", String::from_utf8_lossy(&out.stderr));
        while !marker.exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    })?;
    // Job steps need an allocation: measure them inside one.
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new("salloc")
        .args(["-n", &args.workers.to_string(), "--quiet"])
        .arg(exe)
        .args([
            "bench",
            "slurm",
            "--in-allocation",
            "--trials",
            &args.trials.to_string(),
            "--workers",
            &args.workers.to_string(),
        ])
        .output()?;
    anyhow::ensure!(out.status.success(), "the allocation-mode run failed: {}", String::from_utf8_lossy(&out.stderr));
    let steps: serde_json::Value = serde_json::from_slice(&out.stdout).context("the allocation-mode run's output")?;
    std::fs::remove_dir_all(&dir).ok();
    let (steps_tuned, steps_bare) =
        (steps["ms_per_trial"].as_f64().unwrap_or(f64::NAN), steps["ms_bare_per_trial"].as_f64().unwrap_or(f64::NAN));
    let line = serde_json::json!({
        "bench": "slurm",
        "trials": args.trials,
        "workers": args.workers,
        "jobs": { "ms_per_trial": jobs_tuned, "ms_bare_per_trial": jobs_bare, "ms_overhead_per_trial": jobs_tuned - jobs_bare },
        "steps": { "ms_per_trial": steps_tuned, "ms_bare_per_trial": steps_bare, "ms_overhead_per_trial": steps_tuned - steps_bare },
        "ms_overhead_per_trial": (jobs_tuned - jobs_bare).max(steps_tuned - steps_bare),
    });
    if args.json {
        outln!("{line}");
    } else {
        outln!("{}", serde_json::to_string_pretty(&line)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// `hpo bench resume`: a simulated experiment of about 100,000 journal entries, killed
/// right before its `end` entry, goes on: the time from reading its journal to writing the
/// first new entry (every recorded entry made again and checked on the way).
pub fn resume(args: ResumeBenchArgs) -> anyhow::Result<ExitCode> {
    let dir = scratch_dir("resume")?;
    let experiment = format!(
        "name = \"resume\"\nmetric = \"objective\"\nresource_attr = \"epoch\"\nmax_resource_attr = \"epochs\"\n\
         workers = 4\nseed = 0\n[space]\nepochs = 27\nx1 = {{ uniform = [-5, 10] }}\nx2 = {{ uniform = [0, 15] }}\n\
         [backend]\ntype = \"simulator\"\nblackbox = \"branin\"\n[stop]\nmax_trials = {}\n",
        args.trials
    );
    let file = dir.join("experiment.toml");
    std::fs::write(&file, experiment).with_context(|| format!("writing {}", file.display()))?;
    let spec = ExperimentSpec::from_file(&file)?;
    let journal_path = dir.join("journal.jsonl");
    let runtime = runtime()?;
    let _inside = runtime.enter();
    let journal = Journal::create(&journal_path, &spec.name, spec.to_json())?;
    runtime.block_on(super::run::tuner(&spec, &dir, spec.workers, spec.stop.clone())?.journal(journal).run())?;
    let whole = std::fs::read_to_string(&journal_path)?;
    let without_end = whole.trim_end_matches('\n').rsplit_once('\n').map_or("", |(kept, _)| kept);
    std::fs::write(&journal_path, format!("{without_end}\n"))?;
    let entries = without_end.lines().count();

    let start = Instant::now();
    let spec = ExperimentSpec::from_file(&file)?;
    let journal = Journal::resume(Recorded::read(&journal_path)?)?;
    runtime.block_on(super::run::tuner(&spec, &dir, spec.workers, spec.stop.clone())?.journal(journal).run())?;
    let secs = start.elapsed().as_secs_f64();
    let same = std::fs::read_to_string(&journal_path)? == whole;
    std::fs::remove_dir_all(&dir).ok();
    if !same {
        anyhow::bail!("the resumed journal differs from the whole run's");
    }
    let ms = secs * 1e3;
    let per_sec = entries as f64 / secs;
    if args.json {
        let line =
            serde_json::json!({"bench": "resume", "entries": entries, "ms_to_go_on": ms, "entries_per_sec": per_sec});
        outln!("{line}");
    } else {
        outln!("going on with {entries} journal entries took {ms:.0} ms ({per_sec:.0} entries per second)");
    }
    Ok(ExitCode::SUCCESS)
}

/// A fresh folder for benchmark `name`'s files under the system's temporary folder.
fn scratch_dir(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("hpo-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
