//! `hpo results DIR` and `hpo best DIR`: read an experiment's journal and show what it found.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use hpo_core::{ExperimentResults, Leaderboard, Pareto, ParetoPoint, read_journal};

use crate::{BestArgs, ImportanceArgs, ResultsArgs};

fn journal_of(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("journal.jsonl");
    if !path.exists() {
        bail!("{} has no journal.jsonl: is it an experiment folder made by `hpo run`?", dir.display());
    }
    Ok(path)
}

/// Every report, as CSV: this needs the whole journal.
fn csv(dir: &Path, top: Option<usize>) -> anyhow::Result<ExitCode> {
    let results = whole(dir)?;
    match top {
        Some(top) => {
            let best: std::collections::HashSet<u64> = results.ranked().iter().take(top).map(|t| t.trial_id).collect();
            results.write_csv_of(std::io::stdout().lock(), |id| best.contains(&id))?;
        }
        None => results.write_csv(std::io::stdout().lock())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The whole results of an experiment folder's journal.
fn whole(dir: &Path) -> anyhow::Result<ExperimentResults> {
    let path = journal_of(dir)?;
    ExperimentResults::from_entries(&read_journal(&path)?).with_context(|| path.display().to_string())
}

/// Whether the experiment has several objectives (its header lists them).
fn several_objectives(dir: &Path) -> anyhow::Result<bool> {
    let path = journal_of(dir)?;
    let mut header = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(std::fs::File::open(&path)?), &mut header)?;
    let header: serde_json::Value = serde_json::from_str(&header).unwrap_or_default();
    Ok(header["spec"]["objectives"].as_array().is_some_and(|o| o.len() > 1))
}

/// A front member (or infeasible trial) as JSON: its trial, each objective, the config.
fn point_json(results: &ExperimentResults, pareto: &Pareto, p: &ParetoPoint) -> serde_json::Value {
    let mut line = serde_json::Map::new();
    line.insert("trial".into(), p.trial_id.into());
    for (o, v) in pareto.objectives.iter().zip(&p.values) {
        line.insert(o.metric.clone(), (*v).into());
    }
    line.insert("config".into(), serde_json::to_value(&results.trials[p.trial_id as usize].config).unwrap_or_default());
    serde_json::Value::Object(line)
}

/// `hpo results` of an experiment with several objectives: the trials by non-dominated
/// front, then the infeasible ones.
fn pareto_results(args: &ResultsArgs) -> anyhow::Result<ExitCode> {
    let results = whole(&args.dir)?;
    let pareto = results.pareto();
    let ranked = pareto.fronts.iter().enumerate().flat_map(|(f, front)| front.iter().map(move |p| (Some(f + 1), p)));
    let rows: Vec<(Option<usize>, &ParetoPoint)> = ranked
        .chain(pareto.infeasible.iter().map(|p| (None, p)))
        .take(args.top.unwrap_or(if args.json { usize::MAX } else { 20 }))
        .collect();
    if args.json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|(front, p)| {
                let mut row = point_json(&results, &pareto, p);
                row["front"] = (*front).into();
                row["violation"] = p.violation.into();
                row
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let names: Vec<String> = pareto
        .objectives
        .iter()
        .map(|o| format!("{} ({})", o.metric, if o.mode == hpo_core::Mode::Max { "max" } else { "min" }))
        .collect();
    let front_size = pareto.fronts.first().map_or(0, Vec::len);
    outln!(
        "Experiment `{}`: {}; Pareto front of {} over {}; {} infeasible.",
        results.name,
        super::count(results.trials.len(), "trial"),
        super::count(front_size, "trial"),
        names.join(", "),
        pareto.infeasible.len()
    );
    let widths: Vec<usize> = pareto.objectives.iter().map(|o| o.metric.len().max(10)).collect();
    let mut header = format!("{:>5}  {:>6}  {:<10}", "front", "trial", "status");
    for (o, w) in pareto.objectives.iter().zip(&widths) {
        header += &format!("  {:>w$}", o.metric);
    }
    outln!("{header}  config");
    for (front, p) in rows {
        let trial = &results.trials[p.trial_id as usize];
        let mut line = format!(
            "{:>5}  {:>6}  {:<10}",
            front.map_or_else(|| "-".into(), |f| f.to_string()),
            p.trial_id,
            trial.status.as_str()
        );
        for (v, w) in p.values.iter().zip(&widths) {
            line += &format!("  {v:>w$.6}");
        }
        outln!("{line}  {}", trial.config);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn results(args: ResultsArgs) -> anyhow::Result<ExitCode> {
    if args.csv {
        return csv(&args.dir, args.top);
    }
    if several_objectives(&args.dir)? {
        return pareto_results(&args);
    }
    let default_top = if args.json { usize::MAX } else { 10 };
    let results = Leaderboard::read(&journal_of(&args.dir)?, args.top.unwrap_or(default_top))?;
    let ranked = &results.top;
    let resource_attr = results.spec["resource_attr"].as_str();
    if args.json {
        let rows: Vec<serde_json::Value> = ranked
            .iter()
            .map(|t| {
                serde_json::json!({
                    "trial_id": t.trial_id,
                    "status": t.status.as_str(),
                    results.objective.metric.clone(): t.best,
                    "best_at": t.best_at(resource_attr),
                    "reports": t.reports,
                    "config": t.config_of_best(),
                    "last_metrics": t.last_metrics,
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let metric = &results.objective.metric;
    let state = match &results.end {
        Some((t, reason)) => {
            let simulated = if super::simulated(&results.spec["backend"]) { " of simulated time" } else { "" };
            format!("ended ({}) after {t:.1} s{simulated}", reason.replace('_', " "))
        }
        None => "running, or stopped without an end record".into(),
    };
    outln!("Experiment `{}`: {}, {state}.", results.name, super::count(results.trials, "trial"));
    if ranked.is_empty() {
        outln!("No trial has reported a valid `{metric}` yet.");
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "Best {} of {} trials with a result ({} is {}):",
        ranked.len(),
        results.with_result,
        metric,
        if results.objective.mode == hpo_core::Mode::Max { "maximized" } else { "minimized" }
    );
    let width = metric.len().max(10);
    let at = resource_attr.unwrap_or("at");
    let at_width = at.len().max(5);
    outln!(
        "{:>5}  {:>6}  {:<10}  {:>width$}  {:>at_width$}  {:>7}  config (as when the best value was reported)",
        "rank",
        "trial",
        "status",
        metric,
        at,
        "reports"
    );
    for (rank, t) in ranked.iter().enumerate() {
        let value = t.best.map_or_else(|| "-".into(), |v| format!("{v:.6}"));
        let reached = t.best_at(resource_attr).map_or_else(|| "-".into(), |r| r.to_string());
        outln!(
            "{:>5}  {:>6}  {:<10}  {:>width$}  {:>at_width$}  {:>7}  {}",
            rank + 1,
            t.trial_id,
            t.status.as_str(),
            value,
            reached,
            t.reports,
            t.config_of_best()
        );
    }
    if let Some((trial, error)) = &results.first_failure {
        outln!("{} failed trials; the first: trial {trial}: {error}", results.failed);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn best(args: BestArgs) -> anyhow::Result<ExitCode> {
    if several_objectives(&args.dir)? {
        // The Pareto front of the feasible trials, a JSON line each.
        let results = whole(&args.dir)?;
        let pareto = results.pareto();
        let front = pareto
            .fronts
            .first()
            .with_context(|| format!("no feasible trial in {} reported every objective", args.dir.display()))?;
        for p in front {
            // Written by hand to keep the order: trial, each objective, config.
            let mut line = format!("{{\"trial\":{}", p.trial_id);
            for (o, v) in pareto.objectives.iter().zip(&p.values) {
                line += &format!(",{}:{}", serde_json::to_string(&o.metric)?, serde_json::to_string(v)?);
            }
            outln!("{line},\"config\":{}}}", serde_json::to_string(&results.trials[p.trial_id as usize].config)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let results = Leaderboard::read(&journal_of(&args.dir)?, 1)?;
    let best = results.best().with_context(|| {
        format!("no trial in {} reported a valid `{}`", args.dir.display(), results.objective.metric)
    })?;
    // The config that reproduces the best value: the trial's config when it reported it.
    outln!("{}", serde_json::to_string(best.config_of_best())?);
    Ok(ExitCode::SUCCESS)
}

pub fn importance(args: ImportanceArgs) -> anyhow::Result<ExitCode> {
    let results = whole(&args.dir)?;
    let found = hpo_core::importance::of_results(&results, args.quantile)
        .with_context(|| format!("parameter importance of {}", args.dir.display()))?;
    if args.json {
        let params: Vec<serde_json::Value> =
            found.params.iter().map(|(name, v)| serde_json::json!({"name": name, "importance": v})).collect();
        let line = serde_json::json!({
            "method": "ped-anova",
            "quantile": args.quantile,
            "trials": found.trials,
            "top_trials": found.top_trials,
            "params": params,
        });
        outln!("{line}");
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "Parameter importance (PED-ANOVA): how differently each parameter is spread over the best {} of {} trials with a result ({}) than over all of them.",
        found.top_trials,
        found.trials,
        results.objective.metric
    );
    let width = found.params.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, v) in &found.params {
        outln!("  {name:<width$}  {v:>5.3}  {}", "#".repeat((v * 40.0).round() as usize));
    }
    Ok(ExitCode::SUCCESS)
}
