//! Results of an experiment, computed from its journal: per-trial summaries, the best
//! trial, and `results.csv` with Syne Tune's column names.

use std::collections::BTreeSet;
use std::path::Path;

use hpo_space::{Config, Value};

use crate::journal::Entry;
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
        self.best_metrics.as_ref()?.get(resource_attr?).copied()
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
        let bad = |line, message: &str| ResultsError { line, message: message.to_owned() };
        let Some(Entry::Experiment { name, spec, .. }) = entries.first() else {
            return Err(bad(1, "the journal has no header"));
        };
        let metric = spec["metric"].as_str().ok_or_else(|| bad(1, "the journal's spec names no metric"))?;
        let mode = if spec["mode"].as_str() == Some("max") { Mode::Max } else { Mode::Min };
        let objective = Objective::new(metric, mode);
        let mut results = ExperimentResults {
            name: name.clone(),
            spec: spec.clone(),
            objective,
            trials: Vec::new(),
            rows: Vec::new(),
            end: None,
        };
        for (index, entry) in entries.iter().enumerate().skip(1) {
            results.apply(entry).map_err(|message| ResultsError { line: index + 1, message })?;
        }
        Ok(results)
    }

    fn trial(&mut self, id: TrialId) -> Result<&mut TrialSummary, String> {
        let index = usize::try_from(id).unwrap_or(usize::MAX);
        self.trials.get_mut(index).ok_or_else(|| format!("the journal mentions trial {id} before starting it"))
    }

    fn apply(&mut self, entry: &Entry<'_>) -> Result<(), String> {
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

    /// Trials with at least one valid result, best first (ties: the one that reported its
    /// value first). The first is the experiment's best: the best value of the metric over
    /// every report, the same trial the run's summary names.
    pub fn ranked(&self) -> Vec<&TrialSummary> {
        let mut ranked: Vec<&TrialSummary> = self.trials.iter().filter(|t| t.best_objective.is_some()).collect();
        ranked.sort_by(|a, b| {
            let (x, y) = (a.best_objective.unwrap_or(f64::INFINITY), b.best_objective.unwrap_or(f64::INFINITY));
            // Ties: the value reported first wins, as in the tuner's own incumbent.
            x.total_cmp(&y).then(a.best_row.cmp(&b.best_row))
        });
        ranked
    }

    /// The best trial (the first of [`ExperimentResults::ranked`]).
    pub fn best(&self) -> Option<&TrialSummary> {
        self.ranked().into_iter().next()
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
        let metric_keys: BTreeSet<&str> = self.rows.iter().flat_map(|r| r.metrics.keys().map(String::as_str)).collect();
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
            record.extend(metrics.iter().map(|(k, _)| row.metrics.get(k).map(f64::to_string).unwrap_or_default()));
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
