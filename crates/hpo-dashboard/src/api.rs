//! The JSON API (`docs/dashboard.md`): what the page shows, for scripts too.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use hpo_core::{Decision, ExperimentResults, Status, TotalF64, TrialSummary};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::live::Live;

/// Bytes of a trial's log shown, from its end.
const LOG_TAIL: u64 = 8 * 1024;
/// Learning curves drawn by default: the best trials'.
pub(crate) const CURVES: usize = 50;
/// Learning curves sent at most, however many are asked for (a chart of more is unreadable
/// and slow to draw).
const MAX_CURVES: usize = 2_000;
/// Points of the best-so-far curve sent at most (the improvements are few; this bounds them).
const MAX_CURVE_POINTS: usize = 2_000;

/// A thread panicked while it held the experiments (a bug): say so rather than go on.
fn poisoned() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "the dashboard's state is poisoned").into_response()
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": what }))).into_response()
}

/// Looks an experiment up by its key and answers with `view` of it.
fn with_experiment(state: &AppState, key: &str, view: impl FnOnce(&Live, &ExperimentResults) -> Value) -> Response {
    let Ok(experiments) = state.experiments.read() else {
        return poisoned();
    };
    match experiments.get(key) {
        Some(live) => match &live.results {
            Some(results) => Json(view(live, results)).into_response(),
            None => Json(summary(live)).into_response(),
        },
        None => not_found(&format!("no experiment `{key}` in this dashboard")),
    }
}

/// One line per experiment: where it stands.
pub(crate) fn summary(live: &Live) -> Value {
    let mut out = json!({
        "key": live.key,
        "dir": live.dir.display().to_string(),
        "status": live.status(),
        "entries": live.entries,
        "idle_s": live.idle(),
        "error": live.error,
    });
    let Some(r) = &live.results else { return out };
    let count = |s: Status| r.trials.iter().filter(|t| t.status == s).count();
    let best = r.best().map(|t| json!({ "value": t.best, "trial": t.trial_id }));
    let extra = json!({
        "name": r.name,
        "metric": r.objective.metric,
        "mode": if r.spec["mode"] == "max" { "max" } else { "min" },
        "scheduler": r.spec["scheduler"]["type"],
        "searcher": r.spec["scheduler"]["searcher"]["type"],
        "backend": r.spec["backend"]["type"],
        "trials": {
            "total": r.trials.len(),
            "running": count(Status::InProgress),
            "paused": count(Status::Paused),
            "completed": count(Status::Completed),
            "stopped": count(Status::Stopped),
            "failed": count(Status::Failed),
        },
        "best": best,
        "elapsed_s": elapsed(r),
        "end": r.end.as_ref().map(|(t, reason)| json!({ "t": t, "reason": reason })),
    });
    if let (Some(out), Value::Object(extra)) = (out.as_object_mut(), extra) {
        out.extend(extra);
    }
    out
}

/// The latest time the journal mentions (its end, else the latest report or trial event).
fn elapsed(r: &ExperimentResults) -> f64 {
    if let Some((t, _)) = r.end {
        return t;
    }
    let trials = r.trials.iter().map(|t| t.ended.unwrap_or(t.started));
    trials.chain(r.rows.last().map(|row| row.time)).fold(0.0, f64::max)
}

pub(crate) async fn experiments(State(state): State<AppState>) -> Response {
    let Ok(experiments) = state.experiments.read() else {
        return poisoned();
    };
    Json(Value::Array(experiments.list.iter().map(summary).collect())).into_response()
}

/// An experiment: its summary, spec, best trial and config, and the best value so far
/// against time and against trials.
pub(crate) async fn experiment(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    with_experiment(&state, &key, experiment_view)
}

pub(crate) fn experiment_view(live: &Live, r: &ExperimentResults) -> Value {
    let best = r.best().map(|t| {
        json!({
            "trial": t.trial_id, "value": t.best, "config": t.config_of_best(),
            "metrics": t.best_metrics, "status": t.status.as_str(),
        })
    });
    let mut out = summary(live);
    out["spec"] = r.spec.clone();
    out["best_trial"] = best.unwrap_or(Value::Null);
    out["best_so_far"] = best_so_far(r);
    out
}

/// Each improvement of the best value in journal order: `[time, value, trial, trials
/// started by then]`.
fn best_so_far(r: &ExperimentResults) -> Value {
    let mut points = Vec::new();
    let mut best: Option<f64> = None;
    for row in &r.rows {
        let Some(value) = r.objective.of(&row.metrics).ok() else { continue };
        if best.is_none_or(|b| value < b) {
            best = Some(value);
            let started = r.trials.partition_point(|t| t.started <= row.time).max(row.trial_id as usize + 1);
            points.push(json!([row.time, r.objective.to_metric(value), row.trial_id, started]));
        }
    }
    if points.len() > MAX_CURVE_POINTS {
        let step = points.len().div_ceil(MAX_CURVE_POINTS);
        let last = points.pop();
        points = points.into_iter().step_by(step).chain(last).collect();
    }
    Value::Array(points)
}

fn trial_row(t: &TrialSummary) -> Value {
    json!({
        "id": t.trial_id,
        "status": t.status.as_str(),
        "config": t.config_of_best(),
        "best": t.best,
        "reports": t.reports,
        "last_metrics": t.last_metrics,
        "started": t.started,
        "ended": t.ended,
        "error": t.error,
    })
}

#[derive(Default, Deserialize)]
pub(crate) struct TrialsQuery {
    /// `id` (the default), `status`, `best`, `reports`, a parameter's name, or `last:` and a
    /// metric's name (its last reported value).
    pub sort: Option<String>,
    /// `asc` (the default) or `desc`.
    pub order: Option<String>,
    /// Statuses to keep, comma-separated (`Completed,Stopped`); all by default.
    pub status: Option<String>,
    pub offset: Option<usize>,
    /// At most this many rows (default: all).
    pub limit: Option<usize>,
    /// Conditions on parameters, comma-separated: `lr<=0.01,batch_size>=64,act=relu`.
    pub filter: Option<String>,
}

/// One condition of a trials filter: a parameter compared with a number, or equal to a text.
#[derive(Debug, PartialEq)]
pub(crate) struct Clause {
    param: String,
    op: &'static str,
    value: String,
}

impl Clause {
    fn holds(&self, t: &TrialSummary) -> bool {
        let Some(v) = t.config_of_best().get(&self.param) else { return false };
        match (v.as_f64(), self.value.parse::<f64>()) {
            (Some(x), Ok(y)) => match self.op {
                "<=" => x <= y,
                ">=" => x >= y,
                "<" => x < y,
                ">" => x > y,
                _ => x == y,
            },
            _ => self.op == "=" && v.as_str().map_or_else(|| v.to_string(), str::to_owned) == self.value,
        }
    }
}

/// Parses `name<=1e-2,name2=relu`; the message names the clause that is not one.
pub(crate) fn parse_filter(text: &str) -> Result<Vec<Clause>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|clause| {
            let (at, op) = ["<=", ">=", "<", ">", "="]
                .iter()
                .find_map(|op| clause.find(op).map(|at| (at, *op)))
                .ok_or_else(|| format!("`{clause}`: expected a parameter, one of <= >= < > =, and a value"))?;
            let (param, value) = (clause[..at].trim(), clause[at + op.len()..].trim());
            if param.is_empty() || value.is_empty() {
                return Err(format!("`{clause}`: expected a parameter, one of <= >= < > =, and a value"));
            }
            if op != "=" && value.parse::<f64>().is_err() {
                return Err(format!("`{clause}`: {op} needs a number, got `{value}`"));
            }
            Ok(Clause { param: param.to_owned(), op, value: value.to_owned() })
        })
        .collect()
}

/// The trials, sorted and filtered on the server so that a page of 100,000 trials shows a
/// few hundred: `total` (how many match) and `rows`.
pub(crate) async fn trials(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<TrialsQuery>,
) -> Response {
    match parse_filter(query.filter.as_deref().unwrap_or("")) {
        Ok(clauses) => with_experiment(&state, &key, |_, r| trials_view(r, &query, &clauses)),
        Err(message) => (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response(),
    }
}

pub(crate) fn trials_view(r: &ExperimentResults, query: &TrialsQuery, clauses: &[Clause]) -> Value {
    let statuses: Option<Vec<&str>> = query.status.as_deref().map(|s| s.split(',').collect());
    let mut rows: Vec<&TrialSummary> = r
        .trials
        .iter()
        .filter(|t| statuses.as_ref().is_none_or(|s| s.contains(&t.status.as_str())))
        .filter(|t| clauses.iter().all(|c| c.holds(t)))
        .collect();
    // Missing values (no result, no such parameter) go last either way.
    let key = |t: &TrialSummary| -> Option<SortKey> {
        match query.sort.as_deref().unwrap_or("id") {
            "id" => Some(SortKey::Number(TotalF64(t.trial_id as f64))),
            "status" => Some(SortKey::Text(t.status.as_str().to_owned())),
            "best" => t.best.map(|b| SortKey::Number(TotalF64(b))),
            "reports" => Some(SortKey::Number(TotalF64(t.reports as f64))),
            last if last.starts_with("last:") => t.last_metrics.get(&last[5..]).map(|x| SortKey::Number(TotalF64(x))),
            param => t.config_of_best().get(param).map(|v| match v.as_f64() {
                Some(x) => SortKey::Number(TotalF64(x)),
                None => SortKey::Text(v.to_string()),
            }),
        }
    };
    rows.sort_by_cached_key(|t| {
        let k = key(t);
        (k.is_none(), k, t.trial_id)
    });
    if query.order.as_deref() == Some("desc") {
        let with_key = rows.partition_point(|t| key(t).is_some());
        rows[..with_key].reverse();
    }
    let total = rows.len();
    let page = rows.into_iter().skip(query.offset.unwrap_or(0)).take(query.limit.unwrap_or(usize::MAX));
    json!({ "total": total, "rows": page.map(trial_row).collect::<Vec<_>>() })
}

/// A sortable cell: numbers (in total order) before text, as the variants are declared.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Number(TotalF64),
    Text(String),
}

/// One trial: its row, every report with the decision on it (`history`), and the ends of
/// its logs.
pub(crate) async fn trial(State(state): State<AppState>, Path((key, id)): Path<(String, u64)>) -> Response {
    let Ok(experiments) = state.experiments.read() else {
        return poisoned();
    };
    let Some(live) = experiments.get(&key) else { return not_found(&format!("no experiment `{key}`")) };
    match live.results.as_ref().and_then(|r| trial_view(live, r, id)) {
        Some(view) => Json(view).into_response(),
        None => not_found(&format!("no trial {id} in `{key}`")),
    }
}

pub(crate) fn trial_view(live: &Live, r: &ExperimentResults, id: u64) -> Option<Value> {
    let t = r.trials.get(usize::try_from(id).ok()?)?;
    let reports: Vec<Value> = r
        .rows
        .iter()
        .filter(|row| row.trial_id == id)
        .map(|row| json!({ "t": row.time, "decision": row.decision, "metrics": row.metrics }))
        .collect();
    let logs = live.dir.join("trials").join(id.to_string());
    let mut out = trial_row(t);
    out["history"] = Value::Array(reports);
    out["stdout"] = log_tail(&logs.join("stdout.log"));
    out["stderr"] = log_tail(&logs.join("stderr.log"));
    Some(out)
}

fn log_tail(path: &std::path::Path) -> Value {
    let Ok(mut file) = std::fs::File::open(path) else { return Value::Null };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    let read = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL))).and_then(|_| file.read_to_end(&mut bytes));
    match read {
        Ok(_) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        Err(_) => Value::Null,
    }
}

#[derive(Deserialize)]
pub(crate) struct CurvesQuery {
    /// The best N trials' curves (default [`CURVES`], at most [`MAX_CURVES`]).
    top: Option<usize>,
}

/// Learning curves of the best trials: per trial `[resource, value, decision]` per report
/// (the resource is the report's index when the experiment has no `resource_attr`).
pub(crate) async fn curves(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<CurvesQuery>,
) -> Response {
    with_experiment(&state, &key, |_, r| curves_view(r, query.top.unwrap_or(CURVES)))
}

/// The decision of a report, with `promote` for a pause the trial was later resumed from.
pub(crate) fn curves_view(r: &ExperimentResults, top: usize) -> Value {
    let resource_attr = r.spec["resource_attr"].as_str();
    let chosen: Vec<&TrialSummary> = r.ranked().into_iter().take(top.min(MAX_CURVES)).collect();
    // Trial ids are 0, 1, 2, ... in start order: the curve of trial i is at slot[i].
    let mut slot = vec![None; r.trials.len()];
    for (i, t) in chosen.iter().enumerate() {
        slot[t.trial_id as usize] = Some(i);
    }
    let mut curves: Vec<Vec<(f64, f64, Decision)>> = vec![Vec::new(); chosen.len()];
    for row in &r.rows {
        let Some(Some(i)) = slot.get(row.trial_id as usize) else { continue };
        let Ok(value) = r.objective.of(&row.metrics) else { continue };
        let points = &mut curves[*i];
        let x = resource_attr.and_then(|a| row.metrics.get(a)).unwrap_or((points.len() + 1) as f64);
        points.push((x, r.objective.to_metric(value), row.decision));
    }
    let curves: Vec<Value> = chosen
        .iter()
        .zip(curves)
        .map(|(t, points)| {
            // A pause with reports after it, or the last report of a trial running again.
            let resumed = |i: usize| i + 1 < points.len() || t.status == Status::InProgress;
            let points: Vec<Value> = points
                .iter()
                .enumerate()
                .map(|(i, &(x, y, decision))| {
                    let decision = match decision {
                        Decision::Continue => "continue",
                        Decision::Pause if resumed(i) => "promote",
                        Decision::Pause => "pause",
                        Decision::Stop => "stop",
                    };
                    json!([x, y, decision])
                })
                .collect();
            json!({ "trial": t.trial_id, "points": points })
        })
        .collect();
    json!({ "resource_attr": resource_attr, "metric": r.objective.metric, "curves": curves, "rungs": rungs(&r.spec) })
}

/// The rung levels of a multi-fidelity scheduler as its spec gives them: `rung_levels`, or
/// round(grace_period · reduction_factor^k) below `max_t` (else the space's maximum
/// resource); empty for other schedulers.
fn rungs(spec: &Value) -> Vec<f64> {
    let scheduler = &spec["scheduler"];
    if let Some(levels) = scheduler["rung_levels"].as_array() {
        return levels.iter().filter_map(Value::as_f64).collect();
    }
    let (Some(grace), Some(eta)) = (scheduler["grace_period"].as_f64(), scheduler["reduction_factor"].as_f64()) else {
        return Vec::new();
    };
    let max_resource = spec["max_resource_attr"].as_str().and_then(|a| spec["space"][a].as_f64());
    let Some(max) = scheduler["max_t"].as_f64().or(max_resource) else { return Vec::new() };
    if grace <= 0.0 || eta <= 1.0 {
        return Vec::new();
    }
    let mut levels = Vec::new();
    let mut level = grace;
    while level.round() < max && levels.len() < 64 {
        levels.push(level.round());
        level *= eta;
    }
    levels
}

/// Folders written by `hpo bench run` among those served.
pub(crate) async fn benchmarks(State(state): State<AppState>) -> Response {
    let Ok(experiments) = state.experiments.read() else {
        return poisoned();
    };
    let list: Vec<Value> = experiments
        .benchmarks
        .iter()
        .map(|(key, dir)| json!({ "key": key, "dir": dir.display().to_string() }))
        .collect();
    Json(Value::Array(list)).into_response()
}

/// One `hpo bench run` folder's `summary.json`: per method, the quartiles of the best value at
/// ten points of simulated time.
pub(crate) async fn benchmark(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    let dir = match state.experiments.read() {
        Ok(experiments) => experiments.benchmarks.iter().find(|(k, _)| *k == key).map(|(_, dir)| dir.clone()),
        Err(_) => return poisoned(),
    };
    let Some(dir) = dir else { return not_found(&format!("no benchmark `{key}` in this dashboard")) };
    match std::fs::read(dir.join("summary.json")).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
        Some(summary) => Json(summary).into_response(),
        None => not_found(&format!("{}: no readable summary.json", dir.display())),
    }
}

#[derive(Deserialize)]
pub(crate) struct CompareQuery {
    /// Experiment keys, comma-separated.
    keys: String,
}

/// Points of time a comparison is drawn at.
const COMPARE_POINTS: usize = 100;

/// Several experiments on one any-time plot: grouped by method (scheduler and searcher), the
/// quartiles over the group of the best value so far at 100 points of time. Each group also
/// names its experiments.
pub(crate) async fn compare(State(state): State<AppState>, Query(query): Query<CompareQuery>) -> Response {
    let Ok(experiments) = state.experiments.read() else {
        return poisoned();
    };
    let mut chosen = Vec::new();
    for key in query.keys.split(',').filter(|k| !k.is_empty()) {
        match experiments.get(key).and_then(|live| Some((key, live.results.as_ref()?))) {
            Some(found) => chosen.push(found),
            None => return not_found(&format!("no experiment `{key}` with a journal header")),
        }
    }
    Json(compare_view(&chosen)).into_response()
}

pub(crate) fn compare_view(chosen: &[(&str, &ExperimentResults)]) -> Value {
    let end = chosen.iter().map(|(_, r)| elapsed(r)).fold(0.0, f64::max);
    let grid: Vec<f64> = (0..=COMPARE_POINTS).map(|i| end * i as f64 / COMPARE_POINTS as f64).collect();
    /// A method, its experiments, and their curves.
    type Group<'a> = (String, Vec<&'a str>, Vec<Vec<f64>>);
    let mut groups: Vec<Group<'_>> = Vec::new();
    for (key, r) in chosen {
        let method = format!(
            "{} + {}",
            r.spec["scheduler"]["type"].as_str().unwrap_or("?"),
            r.spec["scheduler"]["searcher"]["type"].as_str().unwrap_or("random")
        );
        let curve = best_on_grid(r, &grid);
        match groups.iter_mut().find(|(m, _, _)| *m == method) {
            Some((_, keys, curves)) => {
                keys.push(key);
                curves.push(curve);
            }
            None => groups.push((method, vec![key], vec![curve])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(method, keys, curves)| {
            let at = |i: usize| -> Vec<f64> { curves.iter().map(|c| c[i]).filter(|v| v.is_finite()).collect() };
            let bands: Vec<Option<[f64; 3]>> = (0..grid.len()).map(|i| quartiles(at(i))).collect();
            let column = |q: usize| bands.iter().map(|b| b.map(|b| b[q])).collect::<Vec<_>>();
            json!({ "method": method, "experiments": keys, "q25": column(0), "median": column(1), "q75": column(2) })
        })
        .collect();
    // Experiments of different metrics can be drawn together, but the page says so.
    let mut metrics: Vec<&str> = Vec::new();
    for (_, r) in chosen {
        if !metrics.contains(&r.objective.metric.as_str()) {
            metrics.push(&r.objective.metric);
        }
    }
    json!({ "metric": metrics.first(), "metrics": metrics, "time": grid, "groups": groups })
}

/// The best value so far (in the metric's units) at each time of `grid`; NaN before any.
fn best_on_grid(r: &ExperimentResults, grid: &[f64]) -> Vec<f64> {
    let mut best: Option<f64> = None;
    let mut rows = r.rows.iter().peekable();
    grid.iter()
        .map(|&t| {
            while let Some(row) = rows.next_if(|row| row.time <= t) {
                if let Ok(v) = r.objective.of(&row.metrics)
                    && best.is_none_or(|b| v < b)
                {
                    best = Some(v);
                }
            }
            best.map_or(f64::NAN, |b| r.objective.to_metric(b))
        })
        .collect()
}

/// The 25th, 50th and 75th percentiles, interpolated between order statistics.
fn quartiles(mut values: Vec<f64>) -> Option<[f64; 3]> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let pos = q * (values.len() - 1) as f64;
        let (low, high) = (pos.floor() as usize, pos.ceil() as usize);
        values[low] + (values[high] - values[low]) * (pos - low as f64)
    };
    Some([at(0.25), at(0.5), at(0.75)])
}

/// Stretches of trials a Gantt chart shows at most: the latest.
pub(crate) const GANTT_RUNS: usize = 2_000;

/// Trials on workers: every stretch a trial ran (`[trial, lane, start, end, status]`, `end`
/// null while it runs) on lanes assigned as workers take trials: each stretch on the free
/// lane of lowest number. The journal does not name workers, so a lane is a worker slot.
pub(crate) async fn gantt(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<AtMost>,
) -> Response {
    with_experiment(&state, &key, |live, r| gantt_view(live, r, query.max.unwrap_or(GANTT_RUNS)))
}

pub(crate) fn gantt_view(live: &Live, r: &ExperimentResults, max: usize) -> Value {
    let now = elapsed(r);
    let shown = &live.runs[live.runs.len().saturating_sub(max)..];
    // Free lanes as a heap of numbers, busy ones by the time they free up.
    let mut busy: std::collections::BinaryHeap<std::cmp::Reverse<(TotalF64, usize)>> = Default::default();
    let mut free: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = Default::default();
    let mut lanes = 0;
    let mut bars = Vec::with_capacity(shown.len());
    for run in shown {
        while busy.peek().is_some_and(|std::cmp::Reverse((end, _))| *end <= TotalF64(run.start)) {
            if let Some(std::cmp::Reverse((_, lane))) = busy.pop() {
                free.push(std::cmp::Reverse(lane));
            }
        }
        let lane = free.pop().map_or_else(
            || {
                lanes += 1;
                lanes - 1
            },
            |std::cmp::Reverse(lane)| lane,
        );
        let end = run.end.map_or(now, |(t, _)| t);
        busy.push(std::cmp::Reverse((TotalF64(end), lane)));
        let status = run.end.map_or("InProgress", |(_, s)| s.as_str());
        bars.push(json!([run.trial, lane, run.start, run.end.map(|(t, _)| t), status]));
    }
    json!({ "lanes": lanes, "now": now, "runs": live.runs.len(), "bars": bars, "workers": r.spec["workers"] })
}

/// `?max=N`: how much a chart draws at most (each view has its default).
#[derive(Deserialize)]
pub(crate) struct AtMost {
    max: Option<usize>,
}

/// Trials a slice plot shows at most (evenly spaced in id order).
pub(crate) const SLICE_POINTS: usize = 2_000;

/// One slice per parameter: the trials' best values against the parameter's value (numbers;
/// a `choice` or `ordinal` as its values' positions, named in `labels`), from at most `max`
/// trials.
pub(crate) async fn slices(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<AtMost>,
) -> Response {
    with_experiment(&state, &key, |_, r| slices_view(r, query.max.unwrap_or(SLICE_POINTS)))
}

pub(crate) fn slices_view(r: &ExperimentResults, max: usize) -> Value {
    let with_result: Vec<&TrialSummary> = r.trials.iter().filter(|t| t.best.is_some()).collect();
    let step = with_result.len().div_ceil(max.max(1)).max(1);
    let shown: Vec<&TrialSummary> = with_result.into_iter().step_by(step).collect();
    let space = r.spec["space"].as_object();
    let slices: Vec<Value> = space
        .into_iter()
        .flatten()
        .filter_map(|(name, domain)| {
            let kind = domain.as_object()?.keys().find(|k| *k != "when")?.as_str();
            // Values listed in the space are drawn at their positions, named by `labels`.
            let listed = kind == "choice" || kind == "ordinal";
            let labels: Option<Vec<Value>> = listed.then(|| domain[kind].as_array().cloned()).flatten();
            let points: Vec<Value> = shown
                .iter()
                .filter_map(|t| {
                    let value = t.config_of_best().get(name)?;
                    let x = match &labels {
                        Some(labels) => {
                            let value = serde_json::to_value(value).ok()?;
                            labels.iter().position(|l| *l == value)? as f64
                        }
                        None => value.as_f64()?,
                    };
                    Some(json!([x, t.best]))
                })
                .collect();
            (!points.is_empty())
                .then(|| json!({ "name": name, "log": kind.starts_with("log"), "labels": labels, "points": points }))
        })
        .collect();
    json!({ "metric": r.objective.metric, "trials": shown.len(), "slices": slices })
}

/// Points of a front view sent at most: the front whole, the other trials evenly spread.
const FRONT_OTHERS: usize = 2_000;

/// The trials over several objectives ([`ExperimentResults::pareto`]): `objectives`
/// (`metric`, `mode`), the Pareto front of the feasible trials by the first objective, and
/// the other feasible and the infeasible trials, each as `[trial, value per objective]`.
pub(crate) async fn front(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    with_experiment(&state, &key, |_, r| front_view(r))
}

pub(crate) fn front_view(r: &ExperimentResults) -> Value {
    // One objective: nothing to rank (and sorting into fronts costs n² comparisons).
    if r.objectives().len() < 2 {
        return json!({ "objectives": r.objectives(), "front": [], "others": [], "infeasible": [] });
    }
    let pareto = r.pareto();
    let point = |p: &hpo_core::ParetoPoint| json!([p.trial_id, p.values]);
    let spread = |points: Vec<&hpo_core::ParetoPoint>| -> Vec<Value> {
        let step = points.len().div_ceil(FRONT_OTHERS).max(1);
        points.into_iter().step_by(step).map(point).collect()
    };
    json!({
        "objectives": pareto.objectives,
        "front": pareto.fronts.first().map(|f| f.iter().map(point).collect::<Vec<_>>()).unwrap_or_default(),
        "others": spread(pareto.fronts.iter().skip(1).flatten().collect()),
        "infeasible": spread(pareto.infeasible.iter().collect()),
        "constraints": r.spec["constraints"],
    })
}

/// PED-ANOVA importances ([`hpo_core::importance`]).
pub(crate) async fn importance(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    with_experiment(&state, &key, |_, r| importance_view(r))
}

pub(crate) fn importance_view(r: &ExperimentResults) -> Value {
    match hpo_core::importance::of_results(r, hpo_core::importance::DEFAULT_QUANTILE) {
        Ok(found) => json!({
            "method": "ped-anova",
            "quantile": hpo_core::importance::DEFAULT_QUANTILE,
            "trials": found.trials,
            "top_trials": found.top_trials,
            "params": found.params.iter().map(|(name, v)| json!({ "name": name, "importance": v })).collect::<Vec<_>>(),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// Server-sent events: one `change` event with an experiment's summary whenever its journal
/// grows or its status changes.
pub(crate) async fn events(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.changes.subscribe();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(summary) => return Some((Ok(Event::default().event("change").data(summary)), receiver)),
                // A slow page missed some: it refetches on the next one anyway.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_name_a_bad_clause() {
        let clauses = parse_filter(" lr <= 1e-2, act=relu ,").expect("parses");
        assert_eq!(clauses[0], Clause { param: "lr".into(), op: "<=", value: "1e-2".into() });
        assert_eq!(clauses[1], Clause { param: "act".into(), op: "=", value: "relu".into() });
        assert!(parse_filter("lr~1").unwrap_err().contains("`lr~1`: expected a parameter"));
        assert!(parse_filter("lr<=big").unwrap_err().contains("<= needs a number"));
        assert!(parse_filter("").expect("no clause").is_empty());
    }

    #[test]
    fn quartiles_by_hand() {
        // 1..=5: positions 1, 2, 3 exactly; 1..=4: 1.75, 2.5, 3.25 interpolated.
        assert_eq!(quartiles(vec![5.0, 1.0, 3.0, 2.0, 4.0]), Some([2.0, 3.0, 4.0]));
        assert_eq!(quartiles(vec![4.0, 1.0, 3.0, 2.0]), Some([1.75, 2.5, 3.25]));
        assert_eq!(quartiles(vec![]), None);
    }

    /// Trial 0 paused at epoch 1 and resumed (promoted), reporting again; trial 1 paused for
    /// good at epoch 1; trial 2 stopped at epoch 1; trial 3 paused, then resumed, not yet
    /// reporting again.
    #[test]
    fn a_pause_the_trial_was_resumed_from_is_a_promotion() {
        use std::borrow::Cow;

        use hpo_core::{Config, Entry, Metrics};

        let spec = json!({ "metric": "loss", "mode": "min", "resource_attr": "epoch" });
        let header = Entry::Experiment { v: 1, name: "x".into(), spec };
        let mut r = ExperimentResults::from_header(&header).unwrap();
        let config: Config = serde_json::from_value(json!({ "x": 1.0 })).unwrap();
        let start = |trial| Entry::Start { t: 0.0, trial, config: Cow::Owned(config.clone()), checkpoint_from: None };
        let report = |trial, epoch: f64, loss: f64, decision| {
            let metrics: Metrics = [("epoch".to_owned(), epoch), ("loss".to_owned(), loss)].into_iter().collect();
            Entry::Report { t: epoch, trial, metrics: Cow::Owned(metrics), decision }
        };
        let resume = |trial| Entry::Resume { t: 2.0, trial, config: Cow::Owned(config.clone()) };
        let entries = [
            start(0),
            start(1),
            start(2),
            start(3),
            report(0, 1.0, 0.5, Decision::Pause),
            report(1, 1.0, 0.6, Decision::Pause),
            report(2, 1.0, 0.9, Decision::Stop),
            report(3, 1.0, 0.7, Decision::Pause),
            Entry::Paused { t: 1.0, trial: 0 },
            Entry::Paused { t: 1.0, trial: 1 },
            Entry::Stopped { t: 1.0, trial: 2 },
            Entry::Paused { t: 1.0, trial: 3 },
            resume(0),
            report(0, 2.0, 0.4, Decision::Continue),
            resume(3),
        ];
        for entry in &entries {
            r.apply(entry).unwrap();
        }
        let view = curves_view(&r, 10);
        let decisions = |trial: usize| -> Vec<&str> {
            let curve = view["curves"].as_array().unwrap().iter().find(|c| c["trial"] == trial).unwrap();
            curve["points"].as_array().unwrap().iter().map(|p| p[2].as_str().unwrap()).collect()
        };
        assert_eq!(decisions(0), ["promote", "continue"]);
        assert_eq!(decisions(1), ["pause"]);
        assert_eq!(decisions(2), ["stop"]);
        assert_eq!(decisions(3), ["promote"]);
        // Best first (0.4, 0.6, 0.7, 0.9), and only as many as asked for.
        let trials: Vec<u64> =
            curves_view(&r, 3)["curves"].as_array().unwrap().iter().map(|c| c["trial"].as_u64().unwrap()).collect();
        assert_eq!(trials, [0, 1, 3]);
    }

    #[test]
    fn rung_levels_from_the_spec_by_hand() {
        // 1, 3, 9, 27 below the space's 50 epochs; 81 is past it.
        let asha = json!({ "scheduler": { "type": "asha", "grace_period": 1.0, "reduction_factor": 3.0 },
                           "max_resource_attr": "epochs", "space": { "epochs": 50 } });
        assert_eq!(rungs(&asha), [1.0, 3.0, 9.0, 27.0]);
        // max_t first; 2 · 2.5^k rounded: 2, 5, 12.5 -> 13 (below 20), 31.25 is past it.
        let max_t = json!({ "scheduler": { "grace_period": 2.0, "reduction_factor": 2.5, "max_t": 20.0 } });
        assert_eq!(rungs(&max_t), [2.0, 5.0, 13.0]);
        let listed =
            json!({ "scheduler": { "rung_levels": [1, 4, 16], "grace_period": 1.0, "reduction_factor": 3.0 } });
        assert_eq!(rungs(&listed), [1.0, 4.0, 16.0]);
        assert!(rungs(&json!({ "scheduler": { "type": "fifo" } })).is_empty());
    }
}
