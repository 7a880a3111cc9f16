//! `hpo plugin check`: a scripted conversation with a plugin, reporting what conforms.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use hpo_core::{Config, Space};
use hpo_plugin::{DylibTransport, ProcessTransport, Transport};
use serde_json::{Value as Json, json};

use crate::PluginCheckArgs;

/// Steps of the conversation and whether each conformed.
struct Checker {
    transport: Box<dyn Transport>,
    failures: usize,
}

impl Checker {
    /// Sends a request; `Err` if the plugin is gone.
    fn send(&mut self, request: &Json) -> anyhow::Result<Json> {
        let answer = self.transport.request(&request.to_string()).map_err(anyhow::Error::msg)?;
        Ok(serde_json::from_str(&answer).unwrap_or_else(|_| json!({ "unparsable": answer })))
    }

    fn verdict(&mut self, step: &str, result: Result<String, String>) {
        match result {
            Ok(detail) => outln!("ok    {step}: {detail}"),
            Err(why) => {
                self.failures += 1;
                outln!("FAIL  {step}: {why}");
            }
        }
    }
}

pub fn check(args: PluginCheckArgs) -> anyhow::Result<ExitCode> {
    let config: Json = serde_json::from_str(&args.config).context("--config must be JSON")?;
    let target = &args.target;
    let is_library = target.len() == 1 && hpo_plugin::is_library_path(Path::new(&target[0]));
    let transport: Box<dyn Transport> = if is_library {
        Box::new(DylibTransport::load(Path::new(&target[0])).map_err(anyhow::Error::msg)?)
    } else {
        Box::new(ProcessTransport::spawn(target, Duration::from_secs(10)).map_err(anyhow::Error::msg)?)
    };
    outln!("checking plugin {}", transport.name());
    let mut c = Checker { transport, failures: 0 };
    let space =
        Space::builder().uniform("x", 0.0, 1.0).choice("act", ["relu", "tanh"]).constant("epochs", 9).build()?;
    let init = json!({
        "op": "init", "protocol": hpo_core::PROTOCOL_VERSION, "space": space.to_json(), "metric": "loss", "mode": "min",
        "resource_attr": "epoch", "max_resource_attr": "epochs", "seed": 0, "scheduler": config,
    });
    let answer = c.send(&init)?;
    let ok = answer["ok"] == true;
    c.verdict(
        "init",
        if ok { Ok(format!("{answer}")) } else { Err(format!("expected {{\"ok\":true}}, got {answer}")) },
    );
    if !ok {
        outln!("cannot go on without a successful init");
        return Ok(ExitCode::FAILURE);
    }

    // Suggestions for three workers, then reports until each trial is told to stop or pause
    // or reaches its limit.
    let mut running: Vec<(u64, Config)> = Vec::new();
    let mut paused: Vec<u64> = Vec::new();
    let mut next_id = 0u64;
    let mut decisions = Vec::new();
    for round in 0..6 {
        while running.len() < 3 {
            let answer = c.send(&json!({ "op": "suggest", "trial_id": next_id }))?;
            let step = format!("suggest (round {round})");
            let config = serde_json::from_value::<Config>(answer["config"].clone());
            match answer["op"].as_str() {
                Some("start") => match config.map_err(|e| e.to_string()).and_then(|cfg| {
                    space.validate_except(&cfg, Some("epochs")).map_err(|e| e.to_string()).map(|()| cfg)
                }) {
                    Ok(cfg) => {
                        c.verdict(&step, Ok(format!("start trial {next_id}")));
                        running.push((next_id, cfg));
                        next_id += 1;
                    }
                    Err(e) => {
                        c.verdict(&step, Err(format!("start with an invalid config: {e}")));
                        break;
                    }
                },
                Some("resume") => {
                    let id = answer["trial_id"].as_u64();
                    match (id, config) {
                        (Some(id), Ok(cfg)) if paused.contains(&id) => {
                            paused.retain(|p| *p != id);
                            c.verdict(&step, Ok(format!("resume trial {id}")));
                            running.push((id, cfg));
                        }
                        _ => {
                            c.verdict(
                                &step,
                                Err(format!("resume of a trial that is not paused, or without a config: {answer}")),
                            );
                            break;
                        }
                    }
                }
                Some("wait") | Some("done") => {
                    c.verdict(&step, Ok(answer["op"].as_str().unwrap_or_default().to_owned()));
                    break;
                }
                _ => {
                    c.verdict(&step, Err(format!("not a suggestion: {answer}")));
                    break;
                }
            }
        }
        let Some((id, cfg)) = running.first().cloned() else { break };
        running.remove(0);
        let limit = cfg.f64("epochs").unwrap_or(9.0) as u32;
        let mut ended = false;
        for epoch in 1..=limit {
            let loss = cfg.f64("x").unwrap_or(0.5) + 1.0 / f64::from(epoch);
            let answer =
                c.send(&json!({ "op": "report", "trial_id": id, "metrics": { "epoch": epoch, "loss": loss } }))?;
            match answer["decision"].as_str() {
                Some(d @ ("continue" | "pause" | "stop")) => {
                    decisions.push(d.to_owned());
                    if d == "pause" {
                        paused.push(id);
                    }
                    if d != "continue" {
                        ended = true;
                        break;
                    }
                }
                _ => {
                    c.verdict("report", Err(format!("not a decision: {answer}")));
                    ended = true;
                    break;
                }
            }
        }
        if !ended {
            let answer = c.send(&json!({ "op": "complete", "trial_id": id }))?;
            c.verdict(
                "complete",
                if answer["ok"] == true { Ok(format!("trial {id}")) } else { Err(format!("{answer}")) },
            );
        }
    }
    c.verdict(
        "reports",
        if decisions.is_empty() {
            Err("no report was answered".into())
        } else {
            Ok(format!("{} decisions", decisions.len()))
        },
    );
    if let Some((id, _)) = running.first().cloned() {
        let answer = c.send(&json!({ "op": "fail", "trial_id": id }))?;
        c.verdict("fail", if answer["ok"] == true { Ok(format!("trial {id}")) } else { Err(format!("{answer}")) });
    }
    let answer = c.send(&json!({ "op": "dance" }))?;
    c.verdict(
        "a bad request",
        if answer["error"].is_string() {
            Ok("answered with an error".into())
        } else {
            Err(format!("expected {{\"error\": ...}}, got {answer}"))
        },
    );
    let answer = c.send(&json!({ "op": "suggest", "trial_id": next_id }))?;
    c.verdict(
        "serving after a bad request",
        if answer["op"].is_string() { Ok(format!("{answer}")) } else { Err(format!("{answer}")) },
    );
    let answer = c.send(&json!({ "op": "close" }))?;
    c.verdict("close", if answer["ok"] == true { Ok("closed".into()) } else { Err(format!("{answer}")) });
    outln!(
        "{}",
        if c.failures == 0 { "the plugin conforms".to_owned() } else { format!("{} checks failed", c.failures) }
    );
    Ok(if c.failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
