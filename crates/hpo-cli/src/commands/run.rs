//! `hpo run FILE`: run an experiment with a live progress line, then say where the results are.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hpo_core::{
    ExperimentResults, ExperimentSpec, Journal, Observer, Progress, Recorded, StopCriteria, Summary, TrialId, Tuner,
    read_journal,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::runtime;
use crate::{ResumeArgs, RunArgs};

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut spec = ExperimentSpec::from_file(&args.file)?;
    apply_overrides(&mut spec, &args)?;
    super::anchor_paths(&mut spec)?;
    if args.resume
        && let Some(dir) = newest_unfinished(&spec.output, &spec.name)?
    {
        let budgets = (spec.workers, spec.stop.clone());
        return go_on(&dir, spec, args.quiet, |_| Ok(budgets));
    }
    let dir = super::new_folder(&spec.output, &spec.name)?;
    std::fs::write(dir.join("experiment.toml"), spec.to_toml()?)
        .with_context(|| format!("writing {}", dir.join("experiment.toml").display()))?;
    let runtime = runtime()?;
    let _inside = runtime.enter();
    let tuner = match tuner(&spec, &dir, spec.workers, spec.stop.clone()) {
        Ok(tuner) => tuner,
        Err(e) => {
            std::fs::remove_dir_all(&dir).ok(); // nothing ran: leave no experiment behind
            return Err(e);
        }
    };
    let journal_path = dir.join("journal.jsonl");
    let tuner = match spec.journal {
        true => tuner.journal(
            Journal::create(&journal_path, &spec.name, spec.to_json())
                .with_context(|| format!("creating {}", journal_path.display()))?
                .sync(spec.journal_sync),
        ),
        false => tuner,
    };
    errln!("hpo: experiment `{}` in {}", spec.name, dir.display());
    execute(&runtime, tuner, &spec, &dir, args.quiet)
}

/// `hpo resume DIR`: the experiment of `DIR/experiment.toml`, with the budgets it last ran
/// with, or those given.
pub fn resume(args: ResumeArgs) -> anyhow::Result<ExitCode> {
    let spec = ExperimentSpec::from_file(&args.dir.join("experiment.toml"))?;
    go_on(&args.dir, spec, args.quiet, |(mut workers, mut stop)| {
        args.budgets.apply(&mut workers, &mut stop)?;
        Ok((workers, stop))
    })
}

/// Goes on with the experiment in `dir` as `spec` says, with the budgets `budgets` makes of
/// those it last ran with; only budgets (`workers`, the `[stop]` table) may differ from
/// what the journal recorded. The run makes every recorded entry again (the journal checks
/// each, and budget changes recur where they were made), then appends.
fn go_on(
    dir: &Path,
    spec: ExperimentSpec,
    quiet: bool,
    budgets: impl FnOnce((usize, StopCriteria)) -> anyhow::Result<(usize, StopCriteria)>,
) -> anyhow::Result<ExitCode> {
    let journal_path = dir.join("journal.jsonl");
    if !spec.journal {
        bail!("{}: `journal = false`: an experiment without a journal cannot be resumed", dir.display());
    }
    let recorded = Recorded::read(&journal_path)?;
    let differ = differing_keys(&spec.to_json(), &recorded.spec, &["workers", "stop", "journal_sync"]);
    if !differ.is_empty() {
        bail!(
            "{}: {} differ from the experiment recorded in {}; only `workers`, `journal_sync` and the `[stop]` table may change when going on",
            spec.origin.file,
            differ.join(", "),
            journal_path.display()
        );
    }
    let header_budgets = |what| format!("{}: the recorded {what}", journal_path.display());
    let first: (usize, StopCriteria) = (
        serde_json::from_value(recorded.spec["workers"].clone()).with_context(|| header_budgets("`workers`"))?,
        serde_json::from_value(recorded.spec["stop"].clone()).with_context(|| header_budgets("`[stop]` table"))?,
    );
    let (workers, stop) = budgets(recorded.last_budgets.clone().unwrap_or_else(|| first.clone()))?;
    let runtime = runtime()?;
    let _inside = runtime.enter();
    let tuner = tuner(&spec, dir, first.0, first.1)?.after_replay(workers, stop);
    // Last, as it cuts a torn last line and a finished experiment's `end` entry.
    let journal = Journal::resume(recorded)?.sync(spec.journal_sync);
    errln!("hpo: going on with experiment `{}` in {}", spec.name, dir.display());
    execute(&runtime, tuner.journal(journal), &spec, dir, quiet)
}

/// The top-level keys, but `except`, whose values differ between two specs, quoted.
fn differing_keys(a: &serde_json::Value, b: &serde_json::Value, except: &[&str]) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec!["the whole spec".into()];
    };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| !except.contains(&k.as_str()) && a.get(*k) != b.get(*k))
        .map(|k| format!("`{k}`"))
        .collect()
}

/// The newest folder `output/name`, `output/name-2`, ... whose experiment is not done: its
/// journal has no `end` entry (it crashed) or ended interrupted (Ctrl-C, or the SIGTERM a
/// batch job gets when it is preempted or requeued).
fn newest_unfinished(output: &Path, name: &str) -> anyhow::Result<Option<std::path::PathBuf>> {
    let mut newest = None;
    for n in 1.. {
        let dir = super::experiment_folder(output, name, n);
        if !dir.exists() {
            break;
        }
        let journal = dir.join("journal.jsonl");
        if journal.exists() && Recorded::read(&journal).map(|r| !r.ended || r.interrupted)? {
            newest = Some(dir);
        }
    }
    Ok(newest)
}

/// The experiment's tuner, its scheduler set up, with these budgets (inside the runtime:
/// plugin schedulers may start processes while set up).
pub(crate) fn tuner(spec: &ExperimentSpec, dir: &Path, workers: usize, stop: StopCriteria) -> anyhow::Result<Tuner> {
    let trials_dir = dir.join("trials");
    std::fs::create_dir_all(&trials_dir).with_context(|| format!("creating {}", trials_dir.display()))?;
    let scheduler = spec.build_scheduler()?;
    let backend = super::build_backend(spec, Some(&trials_dir))?;
    Tuner::new(spec.context(), scheduler, backend)
        .workers(workers)
        .stop_when(stop)
        .interrupt_on(interrupted())
        .set_up()
        .map_err(|e| spec.origin.error("scheduler", e.0).into())
}

/// Runs the tuner to the end with a progress line, then writes results.csv and sums up.
fn execute(
    runtime: &tokio::runtime::Runtime,
    tuner: Tuner,
    spec: &ExperimentSpec,
    dir: &Path,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let journal_path = dir.join("journal.jsonl");
    let tuner = tuner.observer(Box::new(ProgressLine::new(spec, !quiet)));
    let started = std::time::Instant::now();
    let outcome = runtime.block_on(tuner.run());
    let wall = started.elapsed().as_secs_f64();
    // Whatever happened, results.csv reflects everything the journal recorded.
    let mut reported = std::collections::BTreeSet::new();
    if spec.journal {
        let results = ExperimentResults::from_entries(&read_journal(&journal_path)?)?;
        reported.extend(results.rows.iter().flat_map(|r| r.metrics.names().map(str::to_owned)));
        for (metric, column) in results.metric_columns().iter().filter(|(m, c)| m != c) {
            errln!(
                "hpo: warning: metric `{metric}` is in results.csv's column `{column}` (`{metric}` names another column)"
            );
        }
        results
            .write_csv_file(&dir.join("results.csv"))
            .with_context(|| format!("writing {}", dir.join("results.csv").display()))?;
    }
    let summary = outcome?;
    print_summary(spec, &summary, dir, &reported, wall);
    // An experiment whose every trial failed found nothing: say so in the exit code too.
    let all_failed = summary.trials > 0 && summary.failed == summary.trials;
    if all_failed {
        errln!("error: all {} trials failed; the first reasons are above, every one in journal.jsonl", summary.trials);
    }
    Ok(if summary.reason.is_error() || all_failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Completes on Ctrl-C, SIGTERM or SIGHUP (a closed terminal, a dropped SSH session): each
/// ends the experiment cleanly, with its `end` entry and results.csv. A second signal quits
/// at once (the journal already holds everything; trial guards end the trials). The signals
/// are taken on a thread of their own, so they are seen while the tuner's thread waits on a
/// slow call (a plugin process), which gives up on [`hpo_core::interrupt::requested`]. Never
/// completes if no handler can be installed.
///
/// Inside a Slurm job, SIGTERM is Slurm taking the job back (preemption, requeue, the end
/// of its time limit, scancel): hpo quits at once and leaves the experiment open, as a crash
/// would, so that the next `hpo run FILE --resume` takes its running trials up again (Slurm
/// trial jobs run on and are reattached; trials inside the job are launched again from their
/// checkpoints) instead of finding them stopped for good.
fn interrupted() -> impl Future<Output = ()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let (tx, rx) = tokio::sync::oneshot::channel();
    match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                let mut signals = signals.forever();
                let Some(signal) = signals.next() else { return };
                if let Some(job) = std::env::var_os("SLURM_JOB_ID").filter(|_| signal == SIGTERM) {
                    errln!(
                        "hpo: SIGTERM in Slurm job {}: quitting with the experiment left open; \
                         `hpo run FILE --resume` takes its running trials up again",
                        job.to_string_lossy()
                    );
                    std::process::exit(143);
                }
                hpo_core::interrupt::request();
                errln!("hpo: interrupted; stopping the running trials (interrupt again to quit now)");
                let _ = tx.send(());
                if signals.next().is_some() {
                    errln!("hpo: interrupted again; quitting now");
                    std::process::exit(130);
                }
            });
        }
        Err(e) => errln!("hpo: warning: cannot handle Ctrl-C ({e}); it will kill hpo without an `end` entry"),
    }
    async move {
        if rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn apply_overrides(spec: &mut ExperimentSpec, args: &RunArgs) -> anyhow::Result<()> {
    args.budgets.apply(&mut spec.workers, &mut spec.stop)?;
    if let Some(seed) = args.seed {
        spec.seed = seed;
    }
    if let Some(name) = &args.name {
        if !ExperimentSpec::is_valid_name(name) {
            bail!("--name `{name}` cannot be used as a folder name");
        }
        spec.name.clone_from(name);
    }
    if let Some(output) = &args.output {
        spec.output.clone_from(output);
    }
    // More workers than trials could ever use are not started.
    if let Some(max) = spec.stop.max_trials {
        spec.workers = spec.workers.min(usize::try_from(max.max(1)).unwrap_or(usize::MAX));
    }
    if let Some(plugin) = &args.plugin {
        if spec.origin.lines.contains_key("searcher") {
            return Err(spec.origin.error("searcher", hpo_core::PLUGIN_SEARCHER).into());
        }
        let config =
            if spec.scheduler["type"] == "plugin" { spec.scheduler["config"].clone() } else { serde_json::json!({}) };
        spec.scheduler = serde_json::json!({ "type": "plugin", "path": plugin, "config": config });
    }
    Ok(())
}

fn print_summary(
    spec: &ExperimentSpec,
    s: &Summary,
    dir: &Path,
    reported: &std::collections::BTreeSet<String>,
    wall: f64,
) {
    if let Some(error) = &s.error {
        errln!("error: {error}");
    }
    let simulated = super::simulated(&spec.backend);
    let elapsed = if simulated {
        format!("{:.1} s of simulated time ({:.2} s of wall time)", s.elapsed, wall)
    } else {
        format!("{:.1} s", s.elapsed)
    };
    outln!(
        "Finished ({}) after {elapsed}: {}, {} completed, {} stopped, {} paused, {} failed.",
        s.reason.as_str().replace('_', " "),
        super::count(s.trials, "trial"),
        s.completed,
        s.stopped,
        s.paused,
        s.failed
    );
    match &s.best {
        // Several objectives: the front is what was found (below), not one best value.
        Some(_) if spec.objectives.len() > 1 => {}
        Some(best) => {
            let at = spec.resource_attr.as_deref().and_then(|a| Some((a, best.metrics.get(a)?)));
            let at = at.map_or_else(String::new, |(a, r)| format!(", at {a} {r}"));
            outln!("Best {} = {} (trial {}{at}).", spec.metric, best.value, best.trial_id);
            outln!("Best config: {}", best.config);
        }
        None if reported.is_empty() => outln!("No trial reported a valid `{}`.", spec.metric),
        None => {
            let names: Vec<&str> = reported.iter().map(String::as_str).collect();
            outln!("No trial reported a valid `{}`; the reports hold: {}.", spec.metric, names.join(", "));
        }
    }
    if s.no_report > 0 {
        errln!(
            "warning: {} trials ended without reporting anything (`no_report` in journal.jsonl): does the script print `[tune-metric]:` lines?",
            s.no_report
        );
    }
    outln!("Results: {}", dir.display());
    if spec.journal {
        if spec.objectives.len() > 1 {
            let names: Vec<&str> = spec.objectives.iter().map(|o| o.metric.as_str()).collect();
            outln!(
                "  {} objectives ({}): the Pareto front with `hpo best {}`, every trial by front with `hpo results {}`",
                names.len(),
                names.join(", "),
                dir.display(),
                dir.display()
            );
        }
        outln!("  see them with `hpo results {}`; every report is in results.csv", dir.display());
    }
}

/// The live progress line (trials finished of the maximum, running, failed, best so far),
/// and the first trial failures, also without a terminal or the line.
struct ProgressLine {
    bar: ProgressBar,
    metric: String,
    failures_shown: usize,
}

/// Failures printed as they happen; the rest are in the journal.
const FAILURES_SHOWN: usize = 20;

impl ProgressLine {
    fn new(spec: &ExperimentSpec, visible: bool) -> Self {
        if !visible {
            let bar = ProgressBar::hidden();
            return ProgressLine { bar, metric: spec.metric.clone(), failures_shown: 0 };
        }
        let bar = match spec.stop.max_trials {
            Some(max) => ProgressBar::new(max).with_style(
                ProgressStyle::with_template("{bar:25} {pos}/{len} trials [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {pos} trials [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        ProgressLine { bar, metric: spec.metric.clone(), failures_shown: 0 }
    }
}

impl Observer for ProgressLine {
    fn update(&mut self, p: &Progress) {
        self.bar.set_position((p.completed + p.stopped + p.failed) as u64);
        let best = match p.best {
            Some((value, trial)) => format!("best {} {value:.4} (trial {trial})", self.metric),
            None => format!("no {} yet", self.metric),
        };
        self.bar.set_message(format!(
            "running {} | completed {} | stopped {} | paused {} | failed {} | {best}",
            p.running, p.completed, p.stopped, p.paused, p.failed
        ));
    }

    fn trial_failed(&mut self, trial_id: TrialId, error: &str) {
        self.failures_shown += 1;
        let line = match self.failures_shown {
            n if n <= FAILURES_SHOWN => format!("trial {trial_id} failed: {error}"),
            n if n == FAILURES_SHOWN + 1 => "further failures are in journal.jsonl".to_owned(),
            _ => return,
        };
        // A hidden bar (no terminal, or --quiet) prints nothing: write the line directly.
        if self.bar.is_hidden() {
            errln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.bar.finish();
    }
}
