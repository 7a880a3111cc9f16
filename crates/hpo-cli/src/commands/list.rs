//! `hpo list`: what is built in, from the registries of the library crates.

use std::process::ExitCode;

use hpo_backends::BACKENDS;
use hpo_backends::blackbox::BUILTIN_BLACKBOXES;
use hpo_backends::objectives::BUILTIN;
use hpo_schedulers::{Kind, METHODS, TYPES};
use serde_json::json;

use crate::ListArgs;

pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let of_kind = |kind| TYPES.iter().filter(move |t| t.kind == kind).map(|t| (t.name, t.summary));
    let sections: [(&str, Vec<(&str, &str)>); 5] = [
        ("searchers ([searcher] type = ...)", of_kind(Kind::Searcher).collect()),
        ("schedulers ([scheduler] type = ...)", of_kind(Kind::Scheduler).collect()),
        ("backends ([backend] type = ...)", BACKENDS.to_vec()),
        ("objectives ([backend] type = \"threads\", objective = ...)", BUILTIN.to_vec()),
        (
            "blackboxes ([backend] type = \"simulator\", blackbox = ...; hpo bench run --blackbox)",
            BUILTIN_BLACKBOXES.to_vec(),
        ),
    ];
    if args.json {
        let mut all = serde_json::Map::new();
        for (title, entries) in &sections {
            let key = title.split_whitespace().next().unwrap_or_default();
            all.insert(
                key.into(),
                entries.iter().map(|(name, summary)| json!({"name": name, "summary": summary})).collect(),
            );
        }
        let methods = METHODS.iter().map(|m| json!({"name": m.name, "summary": m.summary, "scheduler": m.table()}));
        all.insert("methods".into(), methods.collect());
        outln!("{}", serde_json::Value::Object(all));
        return Ok(ExitCode::SUCCESS);
    }
    for (title, entries) in &sections {
        outln!("{title}");
        for (name, summary) in entries {
            outln!("  {name:<20} {summary}");
        }
        outln!();
    }
    outln!("methods (hpo bench run --methods ...; the [scheduler] table each stands for)");
    for method in METHODS {
        outln!("  {:<20} {}", method.name, method.summary);
        outln!("  {:<20} {}", "", method.table);
    }
    Ok(ExitCode::SUCCESS)
}
