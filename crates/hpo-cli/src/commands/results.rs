//! `hpo results DIR` and `hpo best DIR`: read an experiment's journal and show what it found.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use hpo_core::{ExperimentResults, read_journal};

use crate::{BestArgs, ResultsArgs};

fn load(dir: &Path) -> anyhow::Result<ExperimentResults> {
    let path = dir.join("journal.jsonl");
    if !path.exists() {
        bail!("{} has no journal.jsonl: is it an experiment folder made by `hpo run`?", dir.display());
    }
    let entries = read_journal(&path)?;
    ExperimentResults::from_entries(&entries).with_context(|| path.display().to_string())
}

pub fn results(args: ResultsArgs) -> anyhow::Result<ExitCode> {
    let results = load(&args.dir)?;
    let ranked = results.ranked();
    if args.csv {
        match args.top {
            Some(top) => {
                let best: std::collections::HashSet<u64> = ranked.iter().take(top).map(|t| t.trial_id).collect();
                results.write_csv_of(std::io::stdout().lock(), |id| best.contains(&id))?;
            }
            None => results.write_csv(std::io::stdout().lock())?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let resource_attr = results.spec["resource_attr"].as_str();
    if args.json {
        let rows: Vec<serde_json::Value> = ranked
            .iter()
            .take(args.top.unwrap_or(usize::MAX))
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
    let top = args.top.unwrap_or(10);
    outln!("Experiment `{}`: {}, {state}.", results.name, super::count(results.trials.len(), "trial"));
    if ranked.is_empty() {
        outln!("No trial has reported a valid `{metric}` yet.");
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "Best {} of {} trials with a result ({} is {}):",
        top.min(ranked.len()),
        ranked.len(),
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
    for (rank, t) in ranked.iter().take(top).enumerate() {
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
    let failed: Vec<_> = results.trials.iter().filter(|t| t.error.is_some()).collect();
    if !failed.is_empty() {
        outln!(
            "{} failed trials; the first: trial {}: {}",
            failed.len(),
            failed[0].trial_id,
            failed[0].error.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn best(args: BestArgs) -> anyhow::Result<ExitCode> {
    let results = load(&args.dir)?;
    let best = results.best().with_context(|| {
        format!("no trial in {} reported a valid `{}`", args.dir.display(), results.objective.metric)
    })?;
    // The config that reproduces the best value: the trial's config when it reported it.
    outln!("{}", serde_json::to_string(best.config_of_best())?);
    Ok(ExitCode::SUCCESS)
}
