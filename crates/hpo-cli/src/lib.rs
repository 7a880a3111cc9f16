//! The `hpo` command line: a thin layer over the hpo crates, one module per subcommand.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Hyperparameter optimization: tune any training script or Rust function.
#[derive(Debug, Parser)]
#[command(
    name = "hpo",
    version,
    about = "Hyperparameter optimization: tune any training script or Rust function, compare methods in simulated time"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an experiment described by a TOML file.
    Run(RunArgs),
    /// Go on with an experiment folder: one that crashed, was killed, or ended (with larger
    /// budgets), in the same folder and journal. Simulator experiments, so far.
    Resume(ResumeArgs),
    /// Show the best trials of an experiment folder.
    Results(ResultsArgs),
    /// List the built-in searchers, schedulers, methods, backends, objectives and blackboxes.
    List(ListArgs),
    /// Print the best config of an experiment folder as JSON.
    Best(BestArgs),
    /// Rank the parameters of an experiment folder by how much they set its best trials apart
    /// (PED-ANOVA).
    Importance(ImportanceArgs),
    /// Draw an experiment's figures (SVG) into DIR/plots/.
    Plot(PlotArgs),
    /// Serve experiment folders as a live web page and a JSON API (read-only).
    Dashboard(DashboardArgs),
    /// Write the dashboard's page of experiment folders as one self-contained HTML file.
    Report(ReportArgs),
    /// Benchmarks: timings (one JSON line each with --json) and method comparisons in simulated time.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Schedulers as a service for other programs.
    #[command(subcommand)]
    Scheduler(SchedulerCommand),
    /// Scheduler plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Run a scripted conversation through a plugin (a library, or a command) and report what
    /// conforms to the protocol; exits non-zero if anything does not.
    Check(PluginCheckArgs),
}

#[derive(Debug, Args)]
pub struct PluginCheckArgs {
    /// A plugin library (.so, .dylib), or a command and its arguments (after `--`).
    #[arg(required = true, num_args = 1..)]
    pub target: Vec<String>,
    /// The plugin's own settings (`init`'s `scheduler` table) as JSON.
    #[arg(long, default_value = "{}")]
    pub config: String,
}

#[derive(Debug, Subcommand)]
pub enum SchedulerCommand {
    /// Serve the scheduler protocol (docs/protocol.md) on stdin/stdout: one JSON request per
    /// line in, one JSON answer per line out.
    Serve {
        /// Serve the scheduler of this plugin library instead of the built-in ones.
        #[arg(long)]
        plugin: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment file.
    pub file: PathBuf,
    #[command(flatten)]
    pub budgets: BudgetArgs,
    /// Override `seed`: the master seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override `name`: the experiment folder's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Override `output`: the folder experiment folders are created in.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Use the scheduler of this plugin library (its settings: the file's
    /// `[scheduler] config` if the file names a plugin too).
    #[arg(long)]
    pub plugin: Option<PathBuf>,
    /// Go on with the newest experiment of this name that did not end or was interrupted (as `hpo resume`),
    /// or start a new one if there is none: a job script can run the same command after
    /// every restart.
    #[arg(long)]
    pub resume: bool,
    /// No live progress line.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The experiment folder (holding `journal.jsonl` and `experiment.toml`).
    pub dir: PathBuf,
    #[command(flatten)]
    pub budgets: BudgetArgs,
    /// No live progress line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The budgets `hpo run` and `hpo resume` may set over the experiment's.
#[derive(Debug, Args)]
pub struct BudgetArgs {
    /// Override `workers`: trials run at once.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Override `stop.max_trials` (after a resume, trials of every segment count).
    #[arg(long)]
    pub max_trials: Option<u64>,
    /// Override `stop.max_wallclock`, e.g. "90s" or "10m".
    #[arg(long, value_parser = hpo_core::parse_duration)]
    pub max_wallclock: Option<Duration>,
}

impl BudgetArgs {
    /// Sets what was given over `workers` and `stop`.
    pub fn apply(&self, workers: &mut usize, stop: &mut hpo_core::StopCriteria) -> anyhow::Result<()> {
        if self.workers == Some(0) {
            anyhow::bail!("--workers must be at least 1");
        }
        *workers = self.workers.unwrap_or(*workers);
        stop.max_trials = self.max_trials.or(stop.max_trials);
        stop.max_wallclock = self.max_wallclock.or(stop.max_wallclock);
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// An experiment folder (holding `journal.jsonl`).
    pub dir: PathBuf,
    /// How many of the best trials to show (default: 10 in the table, all with --json or --csv).
    #[arg(long)]
    pub top: Option<usize>,
    /// The trials, best first, as JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Every report of the trials as CSV (the contents of `results.csv`; with --top, the
    /// reports of the best trials).
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// An experiment folder (holding `journal.jsonl`).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchPlotArgs {
    /// A folder written by `hpo bench run` (holding `runs.jsonl`).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct BestArgs {
    /// An experiment folder (holding `journal.jsonl`).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Experiment folders, or folders of them (default: runs/). New experiments in them appear
    /// without a restart.
    pub dirs: Vec<PathBuf>,
    /// The port (0 picks a free one; the URL printed says which).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The address to listen on. Beyond the loopback interface every API request needs the
    /// token printed with the URL.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Experiment folders, or folders of them.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(short, long, default_value = "report.html")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportanceArgs {
    /// An experiment folder (holding `journal.jsonl`).
    pub dir: PathBuf,
    /// The best fraction of trials whose parameters are compared with all trials'.
    #[arg(long, default_value_t = hpo_core::importance::DEFAULT_QUANTILE, value_parser = fraction)]
    pub quantile: f64,
    /// One JSON object: the method, the counts and the parameters, most important first.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Per-trial overhead of the tuner: random search + FIFO over a no-op function.
    Overhead(OverheadArgs),
    /// Time per decision of a scheduler fed random learning curves (no backend).
    Scheduler(SchedulerBenchArgs),
    /// Time per suggestion of a searcher (model fitting included) after N observations.
    Searcher(SearcherBenchArgs),
    /// Per-trial overhead of the process backend over a bare spawn-and-wait of a trivial script.
    Process(ProcessBenchArgs),
    /// Compare methods over seeds on a blackbox in simulated time.
    Run(BenchRunArgs),
    /// Per-trial overhead of the Slurm backend over Slurm's own turnaround (jobs and steps).
    Slurm(SlurmBenchArgs),
    /// Simulator throughput: reports per second, and a 1,000-trial ASHA run.
    Simulator(SimulatorBenchArgs),
    /// Going on with a simulated experiment killed at its last entry: time until it goes on.
    Resume(ResumeBenchArgs),
    /// Memory, journal size and `hpo results`/`hpo best` times of random searches of 10,000
    /// trials and ten times more, up to --trials (each measured in a process of its own).
    Scale(ScaleArgs),
    /// Draw a comparison made by `bench run`: median and quartile band per method (SVG).
    Plot(BenchPlotArgs),
}

/// `--methods`' help, from the registry of methods.
fn methods_help() -> String {
    format!("Comma-separated methods ({}), or a scheduler table as JSON", hpo_schedulers::Method::names())
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchRunArgs {
    /// `digits-mlp`, `branin`, `hartmann6`, or a tabular spec file (.toml).
    #[arg(long, default_value = "digits-mlp")]
    pub blackbox: String,
    #[arg(long, default_value = "random,asha", help = methods_help())]
    pub methods: String,
    /// Seeds: a range `0..30` (end excluded) or a list `1,2,3`.
    #[arg(long, default_value = "0..10")]
    pub seeds: String,
    /// Trials at once.
    #[arg(long, default_value_t = 4, value_parser = at_least_one::<usize>())]
    pub workers: usize,
    /// Simulated time per run, e.g. "2h".
    #[arg(long, default_value = "1h", value_parser = hpo_core::parse_duration)]
    pub max_time: Duration,
    /// Also stop after this many trials.
    #[arg(long)]
    pub max_trials: Option<u64>,
    /// The metric (default: the blackbox's).
    #[arg(long)]
    pub metric: Option<String>,
    /// The value for time-to-target (default: the median final best over all runs).
    #[arg(long)]
    pub target: Option<f64>,
    /// Add each method's own decision time to the simulated clock (slow methods pay for it).
    #[arg(long)]
    pub charge_decision_time: bool,
    /// Where per-run results go (default: `runs/bench-<blackbox>`).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// One JSON line per method.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SlurmBenchArgs {
    /// Trials to run.
    #[arg(long, default_value_t = 50, value_parser = at_least_one::<u64>())]
    pub trials: u64,
    /// Trials at once.
    #[arg(long, default_value_t = 2, value_parser = at_least_one::<usize>())]
    pub workers: usize,
    /// Measure job steps only (used inside the allocation this benchmark makes).
    #[arg(long, hide = true)]
    pub in_allocation: bool,
    /// Print one JSON line (otherwise a sentence).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SimulatorBenchArgs {
    /// Random-search runs for the throughput figure (each replays 78,750 reports).
    #[arg(long, default_value_t = 10, value_parser = at_least_one::<u64>())]
    pub runs: u64,
    /// Print one JSON line (otherwise a sentence).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResumeBenchArgs {
    /// Trials of the experiment (random search on branin, 29 journal lines per trial).
    #[arg(long, default_value_t = 3450, value_parser = at_least_one::<u64>())]
    pub trials: u64,
    /// Print one JSON line (otherwise a sentence).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ProcessBenchArgs {
    /// Trials to run.
    #[arg(long, default_value_t = 500, value_parser = at_least_one::<u64>())]
    pub trials: u64,
    /// Trials at once.
    #[arg(long, default_value_t = 2, value_parser = at_least_one::<usize>())]
    pub workers: usize,
    /// Print one JSON line (otherwise a sentence).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SchedulerBenchArgs {
    /// The scheduler's name (`type`), e.g. asha, hyperband, successive_halving, median_stopping.
    #[arg(long, default_value = "asha")]
    pub scheduler: String,
    /// More scheduler settings as JSON, e.g. '{"variant": "promotion"}' (with --plugin: the
    /// plugin's config).
    #[arg(long, default_value = "{}")]
    pub settings: String,
    /// Benchmark the scheduler of this plugin library, across its C-ABI boundary.
    #[arg(long)]
    pub plugin: Option<PathBuf>,
    /// Trials to run.
    #[arg(long, default_value_t = 100_000, value_parser = at_least_one::<u64>())]
    pub trials: u64,
    /// The maximum resource (epochs) of every trial.
    #[arg(long, default_value_t = 81, value_parser = at_least_one::<u32>())]
    pub max_t: u32,
    /// The master seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON line (otherwise a sentence).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SearcherBenchArgs {
    /// The searcher's name (`type`): bo, tpe, random, grid.
    #[arg(long, default_value = "bo")]
    pub searcher: String,
    /// More searcher settings as JSON, e.g. '{"n_candidates": 1000}'.
    #[arg(long, default_value = "{}")]
    pub settings: String,
    /// Results the searcher has before the timed suggestions.
    #[arg(long, default_value_t = 200)]
    pub observations: usize,
    /// Continuous parameters of the search space.
    #[arg(long, default_value_t = 6, value_parser = at_least_one::<usize>())]
    pub dims: usize,
    /// Timed suggestions; each one's result is reported before the next.
    #[arg(long, default_value_t = 10, value_parser = at_least_one::<usize>())]
    pub suggestions: usize,
    /// The master seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON line (otherwise a sentence).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OverheadArgs {
    /// Trials to run.
    #[arg(long, default_value_t = 100_000, value_parser = at_least_one::<u64>())]
    pub trials: u64,
    /// Trials at once.
    #[arg(long, default_value_t = 2, value_parser = at_least_one::<usize>())]
    pub workers: usize,
    /// Runs per setting; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = at_least_one::<usize>())]
    pub repeats: usize,
    /// Print one JSON line (otherwise a sentence).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The largest run: runs of 10,000 trials, ten times more, ... up to this many.
    #[arg(long, default_value_t = 1_000_000, value_parser = at_least_one::<u64>())]
    pub trials: u64,
    /// Trials at once.
    #[arg(long, default_value_t = 2, value_parser = at_least_one::<usize>())]
    pub workers: usize,
    /// Print one JSON line per run (otherwise a sentence).
    #[arg(long)]
    pub json: bool,
    /// One measurement, in this process (the benchmark runs itself this way).
    #[arg(long, value_enum, hide = true, requires = "dir")]
    pub step: Option<ScaleStep>,
    /// The experiment folder of `--step`.
    #[arg(long, hide = true)]
    pub dir: Option<PathBuf>,
}

/// What one process of `hpo bench scale` measures.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ScaleStep {
    /// The run, which writes the experiment folder.
    Run,
    /// `hpo results` on it.
    Results,
    /// `hpo best` on it.
    Best,
}

/// A number strictly between 0 and 1.
fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(q) if q > 0.0 && q < 1.0 => Ok(q),
        _ => Err(format!("expected a number strictly between 0 and 1, got `{text}`")),
    }
}

/// For counts that mean nothing at 0 (trials, workers, repeats, runs, ...): 0 is refused
/// with clap's own error, which names the flag.
fn at_least_one<T>() -> clap::builder::RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    clap::builder::RangedU64ValueParser::<T>::new().range(1..)
}

/// Runs a parsed command line; the exit code says whether the experiment went well.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    hpo_schedulers::register();
    commands::show_library_warnings();
    match cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Resume(args) => commands::run::resume(args),
        Command::Results(args) => commands::results::results(args),
        Command::List(args) => commands::list::list(args),
        Command::Best(args) => commands::results::best(args),
        Command::Importance(args) => commands::results::importance(args),
        Command::Bench(BenchCommand::Overhead(args)) => commands::bench::overhead(args),
        Command::Bench(BenchCommand::Scale(args)) => commands::bench::scale(args),
        Command::Bench(BenchCommand::Scheduler(args)) => commands::bench::scheduler(args),
        Command::Bench(BenchCommand::Searcher(args)) => commands::bench::searcher(args),
        Command::Bench(BenchCommand::Process(args)) => commands::bench::process(args),
        Command::Bench(BenchCommand::Run(args)) => commands::simulate::bench_run(args),
        Command::Bench(BenchCommand::Slurm(args)) => commands::bench::slurm(args),
        Command::Bench(BenchCommand::Simulator(args)) => commands::simulate::bench_simulator(args),
        Command::Bench(BenchCommand::Resume(args)) => commands::bench::resume(args),
        Command::Bench(BenchCommand::Plot(args)) => commands::plot::bench_plot(args),
        Command::Plot(args) => commands::plot::plot(args),
        Command::Dashboard(args) => commands::dashboard::dashboard(args),
        Command::Report(args) => commands::dashboard::report(args),
        Command::Scheduler(SchedulerCommand::Serve { plugin }) => commands::serve::serve(plugin.as_deref()),
        Command::Plugin(PluginCommand::Check(args)) => commands::plugin::check(args),
    }
}
