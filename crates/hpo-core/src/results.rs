//! Results of an experiment, computed from its journal: per-trial summaries, the best
//! trial, and `results.csv` with Syne Tune's column names.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use hpo_space::{Config, Value};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::journal::{Entry, JournalError, LineError, stream_journal};
use crate::pareto::Constraint;
use crate::types::{Decision, Metrics, Mode, Objective, Status, TrialId};

/// One trial as the journal tells it.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialSummary {
    /// The trial.
    pub trial_id: TrialId,
    /// Its config (the latest, after resumes).
    pub config: Config,
    /// Where it is in its life.
    pub status: Status,
    /// Reports it made.
    pub reports: usize,
    /// Its latest report.
    pub last_metrics: Metrics,
    /// The best value of the optimized metric over all its reports, in the user's units.
    pub best: Option<f64>,
    /// The same as a value to minimize, for ranking.
    pub best_objective: Option<f64>,
    /// The config the trial ran with when it reported its best value (a multi-fidelity
    /// scheduler raises the resource limit on resume): the config that reproduces it.
    pub best_config: Option<Config>,
    /// The metrics of that report (with the resource at which the best value was reached).
    pub best_metrics: Option<Metrics>,
    /// That report's index in [`ExperimentResults::rows`] (journal order).
    pub best_row: Option<usize>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When it started (backend seconds).
    pub started: f64,
    /// When it last ended, if it did.
    pub ended: Option<f64>,
}

impl TrialSummary {
    /// The config that reproduces the trial's best value (its config when it reported it).
    pub fn config_of_best(&self) -> &Config {
        self.best_config.as_ref().unwrap_or(&self.config)
    }

    /// The resource (`resource_attr`) at which the best value was reported.
    pub fn best_at(&self, resource_attr: Option<&str>) -> Option<f64> {
        self.best_metrics.as_ref()?.get(resource_attr?)
    }
}

/// One report, as a row of `results.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The reporting trial.
    pub trial_id: TrialId,
    /// When (backend seconds).
    pub time: f64,
    /// What the scheduler decided.
    pub decision: Decision,
    /// What was reported.
    pub metrics: Metrics,
}

/// One trial's outcome over several objectives.
#[derive(Clone, Debug, PartialEq)]
pub struct ParetoPoint {
    /// The trial.
    pub trial_id: TrialId,
    /// The report (index in [`ExperimentResults::rows`]) it is judged by.
    pub row: usize,
    /// Each objective's value, in the user's units.
    pub values: Vec<f64>,
    /// The same as values to minimize.
    pub minimized: Vec<f64>,
    /// By how much the report breaks the constraints (0: feasible).
    pub violation: f64,
}

/// The trials ranked over several objectives: see [`ExperimentResults::pareto`].
#[derive(Clone, Debug, PartialEq)]
pub struct Pareto {
    /// The objectives, in order.
    pub objectives: Vec<Objective>,
    /// The feasible trials' non-dominated fronts, the Pareto front first.
    pub fronts: Vec<Vec<ParetoPoint>>,
    /// The trials that break a constraint, the least violation first.
    pub infeasible: Vec<ParetoPoint>,
}

/// The columns every `results.csv` starts with (Syne Tune's names).
pub const FIXED_COLUMNS: [&str; 4] = ["trial_id", "st_tuner_time", "st_decision", "st_status"];

/// Journal entries that do not tell a consistent story (as after hand edits).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("entry {line}: {message}")]
pub struct ResultsError {
    /// The entry's line in the journal (1 is the header).
    pub line: usize,
    /// What is inconsistent.
    pub message: String,
}

/// Everything `hpo results` shows, computed from a journal.
#[derive(Clone, Debug)]
pub struct ExperimentResults {
    /// The experiment's name.
    pub name: String,
    /// The resolved spec of the header.
    pub spec: serde_json::Value,
    /// The metric and its direction.
    pub objective: Objective,
    /// Every trial, by id.
    pub trials: Vec<TrialSummary>,
    /// Every report, in journal order.
    pub rows: Vec<Row>,
    /// When and why the experiment ended; `None` if it is still running or crashed.
    pub end: Option<(f64, String)>,
}

impl ExperimentResults {
    /// Replays journal entries (as from [`crate::read_journal`]).
    pub fn from_entries(entries: &[Entry<'_>]) -> Result<Self, ResultsError> {
        let header = entries.first().ok_or_else(|| ResultsError { line: 1, message: "the journal is empty".into() })?;
        let mut results = ExperimentResults::from_header(header)?;
        for (index, entry) in entries.iter().enumerate().skip(1) {
            results.apply(entry).map_err(|message| ResultsError { line: index + 1, message })?;
        }
        Ok(results)
    }

    /// No trials yet: the results of a journal of only its header (its first entry). Entries
    /// that follow are added with [`ExperimentResults::apply`], as a journal grows.
    pub fn from_header(header: &Entry<'_>) -> Result<Self, ResultsError> {
        let bad = |message: &str| ResultsError { line: 1, message: message.to_owned() };
        let Entry::Experiment { name, spec, .. } = header else {
            return Err(bad("the journal has no header"));
        };
        let metric = spec["metric"].as_str().ok_or_else(|| bad("the journal's spec names no metric"))?;
        let mode = if spec["mode"].as_str() == Some("max") { Mode::Max } else { Mode::Min };
        Ok(ExperimentResults {
            name: name.clone(),
            spec: spec.clone(),
            objective: Objective::new(metric, mode),
            trials: Vec::new(),
            rows: Vec::new(),
            end: None,
        })
    }

    fn trial(&mut self, id: TrialId) -> Result<&mut TrialSummary, String> {
        let index = usize::try_from(id).unwrap_or(usize::MAX);
        self.trials.get_mut(index).ok_or_else(|| format!("the journal mentions trial {id} before starting it"))
    }

    /// Adds the journal's next entry (after the header); the message says why it does not fit.
    pub fn apply(&mut self, entry: &Entry<'_>) -> Result<(), String> {
        match entry {
            Entry::Experiment { .. } => return Err("a second experiment header".into()),
            Entry::Start { t, trial, config, .. } => {
                if *trial != self.trials.len() as TrialId {
                    return Err(format!("trial {trial} started out of order"));
                }
                self.trials.push(TrialSummary {
                    trial_id: *trial,
                    config: config.clone().into_owned(),
                    status: Status::InProgress,
                    reports: 0,
                    last_metrics: Metrics::new(),
                    best: None,
                    best_objective: None,
                    best_config: None,
                    best_metrics: None,
                    best_row: None,
                    error: None,
                    started: *t,
                    ended: None,
                });
            }
            Entry::Resume { trial, config, .. } => {
                let summary = self.trial(*trial)?;
                summary.config = config.clone().into_owned();
                summary.status = Status::InProgress;
            }
            Entry::Report { t, trial, metrics, decision } => {
                let objective = self.objective.of(metrics).ok();
                let value = objective.map(|o| self.objective.to_metric(o));
                let row = self.rows.len();
                let summary = self.trial(*trial)?;
                summary.reports += 1;
                summary.last_metrics = metrics.clone().into_owned();
                if let Some(o) = objective
                    && summary.best_objective.is_none_or(|b| o < b)
                {
                    summary.best_objective = Some(o);
                    summary.best = value;
                    summary.best_config = Some(summary.config.clone());
                    summary.best_metrics = Some(metrics.clone().into_owned());
                    summary.best_row = Some(row);
                }
                self.rows.push(Row {
                    trial_id: *trial,
                    time: *t,
                    decision: *decision,
                    metrics: metrics.clone().into_owned(),
                });
            }
            Entry::Complete { t, trial, .. } => self.end_trial(*trial, *t, Status::Completed, None)?,
            Entry::Fail { t, trial, error } => self.end_trial(*trial, *t, Status::Failed, Some(error.clone()))?,
            Entry::Stopped { t, trial } => self.end_trial(*trial, *t, Status::Stopped, None)?,
            Entry::Paused { t, trial } => self.end_trial(*trial, *t, Status::Paused, None)?,
            Entry::End { t, reason } => self.end = Some((*t, reason.clone())),
            Entry::Continued { .. } | Entry::Ending { .. } | Entry::Preempted { .. } => {}
        }
        Ok(())
    }

    fn end_trial(&mut self, id: TrialId, t: f64, status: Status, error: Option<String>) -> Result<(), String> {
        let summary = self.trial(id)?;
        // A failure recorded first (e.g. a NaN metric) is not overwritten by the ack that follows.
        if summary.status != Status::Failed {
            summary.status = status;
            summary.error = error;
        }
        summary.ended = Some(t);
        Ok(())
    }

    /// The experiment's objectives: `objectives` in the spec when there are several, else
    /// the one [`ExperimentResults::objective`].
    pub fn objectives(&self) -> Vec<Objective> {
        serde_json::from_value(self.spec["objectives"].clone()).unwrap_or_else(|_| vec![self.objective.clone()])
    }

    /// The experiment's outcome constraints (`constraints` in the spec).
    pub fn constraints(&self) -> Vec<Constraint> {
        self.spec["constraints"]
            .as_array()
            .map(|list| list.iter().filter_map(|c| Constraint::parse(c.as_str()?).ok()).collect())
            .unwrap_or_default()
    }

    /// The Pareto ranking of the trials over every objective: each trial by its latest report
    /// that has every objective (its final state: for a multi-fidelity scheduler, the highest
    /// resource it reached), the feasible ones (breaking no constraint of the spec) sorted
    /// into non-dominated fronts, each front by its first objective.
    pub fn pareto(&self) -> Pareto {
        let objectives = self.objectives();
        let constraints = self.constraints();
        let mut latest: Vec<Option<usize>> = vec![None; self.trials.len()];
        for (i, row) in self.rows.iter().enumerate() {
            if objectives.iter().all(|o| o.of(&row.metrics).is_ok()) {
                latest[row.trial_id as usize] = Some(i);
            }
        }
        let (mut feasible, mut infeasible) = (Vec::new(), Vec::new());
        for (trial_id, row) in latest.into_iter().enumerate().filter_map(|(t, r)| Some((t as TrialId, r?))) {
            let metrics = &self.rows[row].metrics;
            let point = ParetoPoint {
                trial_id,
                row,
                values: objectives.iter().map(|o| metrics.get(&o.metric).unwrap_or(f64::NAN)).collect(),
                minimized: objectives.iter().map(|o| o.of(metrics).unwrap_or(f64::INFINITY)).collect(),
                violation: constraints.iter().map(|c| c.violation(metrics)).sum(),
            };
            if point.violation > 0.0 { infeasible.push(point) } else { feasible.push(point) }
        }
        let minimized: Vec<Vec<f64>> = feasible.iter().map(|p| p.minimized.clone()).collect();
        let fronts = crate::pareto::non_dominated_fronts(&minimized)
            .into_iter()
            .map(|front| {
                let mut members: Vec<ParetoPoint> = front.into_iter().map(|i| feasible[i].clone()).collect();
                members.sort_by(|a, b| {
                    a.minimized.iter().zip(&b.minimized).fold(Ordering::Equal, |o, (x, y)| o.then(x.total_cmp(y)))
                });
                members
            })
            .collect();
        infeasible.sort_by(|a, b| a.violation.total_cmp(&b.violation).then(a.trial_id.cmp(&b.trial_id)));
        Pareto { objectives, fronts, infeasible }
    }

    /// Trials with at least one valid result, best first (ties: the one that reported its
    /// value first). The first is the experiment's best: the best value of the metric over
    /// every report, the same trial the run's summary names.
    pub fn ranked(&self) -> Vec<&TrialSummary> {
        let mut ranked: Vec<&TrialSummary> = self.trials.iter().filter(|t| t.best_objective.is_some()).collect();
        ranked.sort_by_key(|t| Rank::of(t));
        ranked
    }

    /// The best trial (the first of [`ExperimentResults::ranked`]), found in one pass.
    pub fn best(&self) -> Option<&TrialSummary> {
        self.trials.iter().filter(|t| t.best_objective.is_some()).min_by_key(|t| Rank::of(t))
    }

    /// Trials with this status.
    pub fn count(&self, status: Status) -> usize {
        self.trials.iter().filter(|t| t.status == status).count()
    }

    /// The metrics' columns in `results.csv`: `(metric, column)`, in name order. A metric
    /// whose name is taken by a fixed or config column (`trial_id`, `config_x`) gets the
    /// column `metric_<name>` instead.
    pub fn metric_columns(&self) -> Vec<(String, String)> {
        let config_keys: BTreeSet<&str> = self.trials.iter().flat_map(|t| t.config.iter().map(|(k, _)| k)).collect();
        let metric_keys: BTreeSet<&str> = self.rows.iter().flat_map(|r| r.metrics.names()).collect();
        let mut taken: BTreeSet<String> = FIXED_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        taken.extend(config_keys.iter().map(|k| format!("config_{k}")));
        let unique: BTreeSet<String> = metric_keys.iter().map(|k| (*k).to_owned()).collect();
        metric_keys
            .iter()
            .map(|&k| {
                let mut column = k.to_owned();
                while taken.contains(&column) || (column != k && unique.contains(&column)) {
                    column = format!("metric_{column}");
                }
                taken.insert(column.clone());
                (k.to_owned(), column)
            })
            .collect()
    }

    /// Writes `results.csv`: one row per report with Syne Tune's column names
    /// (`trial_id, st_tuner_time, st_decision, st_status, config_<name>..., <metrics>...`,
    /// metrics renamed as [`ExperimentResults::metric_columns`] says).
    /// `st_status` is the trial's status after that report.
    pub fn write_csv<W: std::io::Write>(&self, out: W) -> std::io::Result<()> {
        self.write_csv_of(out, |_| true)
    }

    /// Like [`ExperimentResults::write_csv`], with the rows of the trials `keep` accepts.
    pub fn write_csv_of<W: std::io::Write>(&self, out: W, keep: impl Fn(TrialId) -> bool) -> std::io::Result<()> {
        self.write_csv_records(out, keep).map_err(|e| match e.into_kind() {
            // The I/O error itself, so a closed pipe is recognized as one.
            csv::ErrorKind::Io(io) => io,
            other => std::io::Error::other(format!("{other:?}")),
        })
    }

    fn write_csv_records<W: std::io::Write>(&self, out: W, keep: impl Fn(TrialId) -> bool) -> Result<(), csv::Error> {
        let config_keys: BTreeSet<&str> = self.trials.iter().flat_map(|t| t.config.iter().map(|(k, _)| k)).collect();
        let metrics = self.metric_columns();
        let mut last_row_of = vec![usize::MAX; self.trials.len()];
        for (i, row) in self.rows.iter().enumerate() {
            last_row_of[row.trial_id as usize] = i;
        }
        let mut w = csv::Writer::from_writer(out);
        let mut header: Vec<String> = FIXED_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        header.extend(config_keys.iter().map(|k| format!("config_{k}")));
        header.extend(metrics.iter().map(|(_, column)| column.clone()));
        w.write_record(&header)?;
        for (i, row) in self.rows.iter().enumerate().filter(|(_, r)| keep(r.trial_id)) {
            let trial = &self.trials[row.trial_id as usize];
            let status = match row.decision {
                _ if last_row_of[row.trial_id as usize] == i && trial.status != Status::InProgress => trial.status,
                Decision::Continue => Status::InProgress,
                Decision::Pause => Status::Paused,
                Decision::Stop => Status::Stopped,
            };
            let mut record = vec![
                row.trial_id.to_string(),
                format!("{:.6}", row.time),
                row.decision.as_str().to_owned(),
                status.as_str().to_owned(),
            ];
            record.extend(config_keys.iter().map(|k| trial.config.get(k).map(Value::to_string).unwrap_or_default()));
            record.extend(metrics.iter().map(|(k, _)| row.metrics.get(k).map(|v| v.to_string()).unwrap_or_default()));
            w.write_record(&record)?;
        }
        w.flush()?;
        Ok(())
    }

    /// Writes `results.csv` to a file.
    pub fn write_csv_file(&self, path: &Path) -> std::io::Result<()> {
        self.write_csv(std::fs::File::create(path)?)
    }
}

/// Where a trial with a result ranks: by its best objective, ties going to the value
/// reported first, as in the tuner's own incumbent.
#[derive(Clone, Copy, Debug)]
struct Rank {
    objective: f64,
    row: usize,
}

impl Rank {
    fn of(trial: &TrialSummary) -> Rank {
        Rank { objective: trial.best_objective.unwrap_or(f64::INFINITY), row: trial.best_row.unwrap_or(usize::MAX) }
    }
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        self.objective.total_cmp(&other.objective).then(self.row.cmp(&other.row))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Rank {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Rank {}

/// The best trials of an experiment and how many there are, read from its journal in one
/// pass without holding it (what `hpo results` and `hpo best` show): the memory it takes is
/// that of the trials it keeps, of the configs of trials running, and 32 bytes per trial.
/// It ranks as [`ExperimentResults::ranked`] does.
#[derive(Clone, Debug)]
pub struct Leaderboard {
    /// The experiment's name.
    pub name: String,
    /// The resolved spec of the header.
    pub spec: serde_json::Value,
    /// The metric and its direction.
    pub objective: Objective,
    /// Trials started.
    pub trials: usize,
    /// Trials with at least one valid result.
    pub with_result: usize,
    /// The best trials with a result, best first, at most as many as asked for.
    pub top: Vec<TrialSummary>,
    /// Failed trials.
    pub failed: usize,
    /// The first trial that failed, and why.
    pub first_failure: Option<(TrialId, String)>,
    /// When and why the experiment ended; `None` if it is still running or crashed.
    pub end: Option<(f64, String)>,
}

/// What a [`Leaderboard`] keeps of every trial.
#[derive(Clone, Copy)]
struct Seen {
    best: f64,
    started: f64,
    /// When it last ended; NaN before.
    ended: f64,
    reports: u32,
    status: Status,
}

/// A journal line, with only what a [`Leaderboard`] reads parsed: of a report's metrics
/// only the one optimized, of a config its text (the rest when a trial is kept).
#[derive(Default)]
struct Line<'a> {
    event: std::borrow::Cow<'a, str>,
    t: Option<&'a RawValue>,
    trial: Option<TrialId>,
    config: Option<&'a RawValue>,
    /// With metrics, the optimized one's value, if there and finite.
    value: Option<Option<f64>>,
    error: Option<String>,
    reason: Option<String>,
}

impl Line<'_> {
    fn t(&self) -> Result<f64, String> {
        self.t.map_or(Ok(0.0), |t| serde_json::from_str(t.get()).map_err(|e| format!("a time that is not one: {e}")))
    }
}

/// Parses a [`Line`], picking `metric` out of a report's metrics.
struct LineSeed<'m>(&'m str);

impl<'de> DeserializeSeed<'de> for LineSeed<'_> {
    type Value = Line<'de>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Line<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LineSeed<'_> {
    type Value = Line<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a journal entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Line<'de>, A::Error> {
        let mut line = Line::default();
        let mut event = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "event" => event = Some(map.next_value()?),
                "t" => line.t = Some(map.next_value()?),
                "trial" => line.trial = Some(map.next_value()?),
                "config" => line.config = Some(map.next_value()?),
                "metrics" => line.value = Some(map.next_value_seed(MetricSeed(self.0))?),
                "error" => line.error = Some(map.next_value()?),
                "reason" => line.reason = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        line.event = event.ok_or_else(|| serde::de::Error::missing_field("event"))?;
        Ok(line)
    }
}

/// The value of one metric in a report's metrics, if it is there and finite.
struct MetricSeed<'m>(&'m str);

impl<'de> DeserializeSeed<'de> for MetricSeed<'_> {
    type Value = Option<f64>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<f64>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetricSeed<'_> {
    type Value = Option<f64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of metrics")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<f64>, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.0 {
                found = map.next_value::<Option<f64>>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found.filter(|v| v.is_finite()))
    }
}

/// The metrics of a report entry's line.
fn report_metrics(text: &str) -> Result<Metrics, String> {
    match serde_json::from_str(text) {
        Ok(Entry::Report { metrics, .. }) => Ok(metrics.into_owned()),
        Ok(_) => Err("not a report".into()),
        Err(e) => Err(e.to_string()),
    }
}

struct Reading {
    board: Leaderboard,
    keep: usize,
    seen: Vec<Seen>,
    /// The config (JSON) of each trial running, by id.
    running: HashMap<TrialId, String>,
    /// The trials kept, by rank, and their rank by id.
    kept: BTreeMap<Rank, TrialSummary>,
    rank_of: HashMap<TrialId, Rank>,
    reports: usize,
}

impl Leaderboard {
    /// Reads the journal at `path`, keeping the `top` best trials.
    pub fn read(path: &Path, top: usize) -> Result<Leaderboard, JournalError> {
        let start = |header: Entry<'static>| {
            let Entry::Experiment { name, spec, .. } = header else { return Err("the journal has no header".into()) };
            let metric = spec["metric"].as_str().ok_or("the journal's spec names no metric")?;
            let mode = if spec["mode"].as_str() == Some("max") { Mode::Max } else { Mode::Min };
            let objective = Objective::new(metric, mode);
            let board = Leaderboard {
                name,
                spec,
                objective,
                trials: 0,
                with_result: 0,
                top: Vec::new(),
                failed: 0,
                first_failure: None,
                end: None,
            };
            Ok(Reading {
                board,
                keep: top,
                seen: Vec::new(),
                running: HashMap::new(),
                kept: BTreeMap::new(),
                rank_of: HashMap::new(),
                reports: 0,
            })
        };
        let mut reading = stream_journal(path, start, |reading: &mut Reading, _, text| {
            let seed = LineSeed(&reading.board.objective.metric);
            let mut d = serde_json::Deserializer::from_str(text);
            let line = seed.deserialize(&mut d).and_then(|line| d.end().map(|()| line));
            let line = line.map_err(|e| LineError::NotAnEntry(e.to_string()))?;
            reading.apply(line, text).map_err(LineError::DoesNotFit)
        })?;
        let mut board = reading.board;
        board.top = std::mem::take(&mut reading.kept).into_values().collect();
        for summary in &mut board.top {
            let seen = reading.seen[summary.trial_id as usize];
            (summary.status, summary.reports) = (seen.status, seen.reports as usize);
            summary.ended = Some(seen.ended).filter(|t| !t.is_nan());
        }
        Ok(board)
    }

    /// The best trial.
    pub fn best(&self) -> Option<&TrialSummary> {
        self.top.first()
    }
}

impl Reading {
    fn seen(&mut self, id: TrialId) -> Result<&mut Seen, String> {
        let index = usize::try_from(id).unwrap_or(usize::MAX);
        self.seen.get_mut(index).ok_or_else(|| format!("the journal mentions trial {id} before starting it"))
    }

    fn apply(&mut self, line: Line<'_>, text: &str) -> Result<(), String> {
        let needs = |what: &str| format!("a `{}` entry without `{what}`", line.event);
        let trial = line.trial;
        let id = || trial.ok_or_else(|| needs("trial"));
        match &*line.event {
            "experiment" => return Err("a second experiment header".into()),
            "start" => {
                let id = id()?;
                if id != self.seen.len() as TrialId {
                    return Err(format!("trial {id} started out of order"));
                }
                let config = line.config.ok_or_else(|| needs("config"))?;
                self.seen.push(Seen {
                    best: f64::INFINITY,
                    started: line.t()?,
                    ended: f64::NAN,
                    reports: 0,
                    status: Status::InProgress,
                });
                self.running.insert(id, config.get().to_owned());
                self.board.trials += 1;
            }
            "resume" => {
                let id = id()?;
                let config = line.config.ok_or_else(|| needs("config"))?;
                self.seen(id)?.status = Status::InProgress;
                self.running.insert(id, config.get().to_owned());
                if let Some(kept) = self.rank_of.get(&id).and_then(|rank| self.kept.get_mut(rank)) {
                    kept.config = parse_config(config.get())?;
                }
            }
            "report" => {
                let id = id()?;
                let value = line.value.ok_or_else(|| needs("metrics"))?;
                let row = self.reports;
                self.reports += 1;
                let objective = value.map(|v| self.board.objective.to_minimize(v));
                let seen = self.seen(id)?;
                seen.reports += 1;
                let first_result = seen.best == f64::INFINITY && objective.is_some();
                let improved = objective.filter(|o| *o < seen.best);
                if let Some(o) = improved {
                    seen.best = o;
                }
                self.board.with_result += usize::from(first_result);
                match improved {
                    Some(o) => self.improved(id, o, row, text)?,
                    None => {
                        if let Some(kept) = self.rank_of.get(&id).and_then(|rank| self.kept.get_mut(rank)) {
                            kept.last_metrics = report_metrics(text)?;
                        }
                    }
                }
            }
            "complete" => self.end_trial(id()?, line.t()?, Status::Completed, None)?,
            "fail" => self.end_trial(id()?, line.t()?, Status::Failed, line.error)?,
            "stopped" => self.end_trial(id()?, line.t()?, Status::Stopped, None)?,
            "paused" => self.end_trial(id()?, line.t()?, Status::Paused, None)?,
            "end" => self.board.end = Some((line.t()?, line.reason.unwrap_or_default())),
            "continued" | "ending" | "preempted" => {}
            other => return Err(format!("an entry of unknown kind `{other}`")),
        }
        Ok(())
    }

    /// Trial `id` reported a better value than before (`objective`, in report `row`): it is
    /// kept if it ranks among the best `keep`.
    /// `text` is the report's line.
    fn improved(&mut self, id: TrialId, objective: f64, row: usize, text: &str) -> Result<(), String> {
        let rank = Rank { objective, row };
        let before = self.rank_of.remove(&id).and_then(|r| self.kept.remove(&r));
        let ranks_in =
            self.kept.len() < self.keep || self.kept.last_key_value().is_some_and(|(worst, _)| rank < *worst);
        if !ranks_in {
            return Ok(());
        }
        let config_text = self.running.get(&id).ok_or_else(|| format!("trial {id} reported while not running"))?;
        let config = parse_config(config_text)?;
        let metrics = report_metrics(text)?;
        let seen = self.seen[id as usize];
        let summary = TrialSummary {
            trial_id: id,
            config: config.clone(),
            status: seen.status,
            reports: seen.reports as usize,
            last_metrics: metrics.clone(),
            best: Some(self.board.objective.to_metric(objective)),
            best_objective: Some(objective),
            best_config: Some(config),
            best_metrics: Some(metrics),
            best_row: Some(row),
            error: before.and_then(|b| b.error),
            started: seen.started,
            ended: None,
        };
        self.kept.insert(rank, summary);
        self.rank_of.insert(id, rank);
        if self.kept.len() > self.keep
            && let Some((_, dropped)) = self.kept.pop_last()
        {
            self.rank_of.remove(&dropped.trial_id);
        }
        Ok(())
    }

    fn end_trial(&mut self, id: TrialId, t: f64, status: Status, error: Option<String>) -> Result<(), String> {
        let seen = self.seen(id)?;
        seen.ended = t;
        // A failure recorded first (e.g. a NaN metric) is not overwritten by the ack that follows.
        if seen.status == Status::Failed {
            return Ok(());
        }
        seen.status = status;
        self.running.remove(&id);
        if status == Status::Failed {
            self.board.failed += 1;
            if self.board.first_failure.is_none() {
                self.board.first_failure = Some((id, error.clone().unwrap_or_default()));
            }
            if let Some(kept) = self.rank_of.get(&id).and_then(|rank| self.kept.get_mut(rank)) {
                kept.error = error;
            }
        }
        Ok(())
    }
}

fn parse_config(json: &str) -> Result<Config, String> {
    serde_json::from_str(json).map_err(|e| format!("a config that is not one: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, read_journal};
    use std::borrow::Cow;
    use std::io::Write as _;

    fn config(x: f64) -> Config {
        serde_json::from_value(serde_json::json!({ "x": x, "act": "relu" })).unwrap()
    }

    fn report(t: f64, trial: TrialId, loss: f64) -> Entry<'static> {
        let metrics = [("epoch".to_owned(), t), ("loss".to_owned(), loss)].into_iter().collect();
        Entry::Report { t, trial, metrics: Cow::Owned(metrics), decision: Decision::Continue }
    }

    /// A journal with every kind of trial life: completed, paused and resumed with another
    /// config (improving after), failed after a result, failed without one (a NaN), stopped,
    /// still running, two with the same value (the first reported ranks first); and a line
    /// cut short at the end.
    fn journal(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("journal.jsonl");
        let mut j = Journal::create(&path, "x", serde_json::json!({ "metric": "loss", "mode": "min" })).unwrap();
        let start = |t, trial, x| Entry::Start { t, trial, config: Cow::Owned(config(x)), checkpoint_from: None };
        let entries = [
            start(0.0, 0, 0.1),
            start(0.0, 1, 0.2),
            report(1.0, 0, 0.5),
            report(1.0, 1, 0.7),
            Entry::Paused { t: 1.5, trial: 1 },
            Entry::Complete { t: 2.0, trial: 0, no_report: false },
            start(2.0, 2, 0.3),
            Entry::Resume { t: 2.0, trial: 1, config: Cow::Owned(config(0.25)) },
            report(3.0, 2, 0.4),
            report(3.0, 1, 0.3),
            report(3.5, 1, 0.9),
            Entry::Fail { t: 4.0, trial: 2, error: "out of memory".into() },
            start(4.0, 3, 0.4),
            report(5.0, 3, f64::NAN),
            Entry::Fail { t: 5.0, trial: 3, error: "loss is not finite".into() },
            Entry::Stopped { t: 5.5, trial: 1 },
            start(5.5, 4, 0.5),
            report(6.0, 4, 0.5),
            start(6.0, 5, 0.6),
        ];
        for entry in &entries {
            j.append(entry).unwrap();
        }
        j.flush().unwrap();
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(br#"{"event":"rep"#).unwrap();
        path
    }

    /// Two objectives (error min, speed max) and `cost <= 1`: trial 0 (0.1, 5) and trial 1
    /// (0.3, 9) trade off; trial 2 (0.2, 4) is dominated by trial 0; trial 3 (0.05, 9) would
    /// dominate all but costs 2; trial 4 reported no speed. Trial 1's first report (0.5, 1)
    /// is replaced by its latest.
    #[test]
    fn the_pareto_ranking_by_hand() {
        let spec = serde_json::json!({
            "metric": "error", "mode": "min",
            "objectives": [{ "metric": "error", "mode": "min" }, { "metric": "speed", "mode": "max" }],
            "constraints": ["cost <= 1"],
        });
        let header = Entry::Experiment { v: 1, name: "x".into(), spec };
        let mut r = ExperimentResults::from_header(&header).unwrap();
        let report = |trial, error: f64, speed: Option<f64>, cost: f64| {
            let mut metrics: Metrics = [("error".to_owned(), error), ("cost".to_owned(), cost)].into_iter().collect();
            if let Some(speed) = speed {
                metrics.insert("speed", speed);
            }
            Entry::Report { t: 1.0, trial, metrics: Cow::Owned(metrics), decision: Decision::Continue }
        };
        for trial in 0..5 {
            r.apply(&Entry::Start { t: 0.0, trial, config: Cow::Owned(config(0.1)), checkpoint_from: None }).unwrap();
        }
        for entry in [
            report(1, 0.5, Some(1.0), 0.0),
            report(0, 0.1, Some(5.0), 0.5),
            report(1, 0.3, Some(9.0), 1.0),
            report(2, 0.2, Some(4.0), 0.0),
            report(3, 0.05, Some(9.0), 2.0),
            report(4, 0.01, None, 0.0),
        ] {
            r.apply(&entry).unwrap();
        }
        let pareto = r.pareto();
        let ids = |points: &[ParetoPoint]| points.iter().map(|p| p.trial_id).collect::<Vec<_>>();
        assert_eq!(pareto.fronts.iter().map(|f| ids(f)).collect::<Vec<_>>(), [vec![0, 1], vec![2]]);
        assert_eq!(pareto.fronts[0][1].values, [0.3, 9.0]);
        assert_eq!(pareto.fronts[0][1].minimized, [0.3, -9.0]);
        assert_eq!(ids(&pareto.infeasible), [3]);
        assert_eq!(pareto.infeasible[0].violation, 1.0);
    }

    #[test]
    fn the_leaderboard_read_in_one_pass_agrees_with_the_whole_results() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal(dir.path());
        let whole = ExperimentResults::from_entries(&read_journal(&path).unwrap()).unwrap();
        let ranked: Vec<TrialSummary> = whole.ranked().into_iter().cloned().collect();
        assert_eq!(ranked.iter().map(|t| t.trial_id).collect::<Vec<_>>(), [1, 2, 0, 4]);
        for keep in [1, 2, 3, 10] {
            let board = Leaderboard::read(&path, keep).unwrap();
            assert_eq!(board.top, ranked[..keep.min(ranked.len())], "keeping {keep}");
            assert_eq!((board.trials, board.with_result, board.failed), (6, 4, 2));
            assert_eq!(board.first_failure, Some((2, "out of memory".into())));
            assert_eq!(board.end, None);
        }
        let best = Leaderboard::read(&path, 1).unwrap();
        assert_eq!(best.best().unwrap().config_of_best(), &config(0.25), "the config it had when it reported it");
    }

    #[test]
    fn a_bad_line_before_the_last_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal(dir.path());
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"\n{}\n").unwrap();
        let error = Leaderboard::read(&path, 1).unwrap_err().to_string();
        assert!(error.contains("journal.jsonl:21: "), "the line cut short, now followed by another: {error}");
    }
}
