//! `hpo plugin check`: a scripted conversation with a plugin, reporting what conforms.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use hpo_core::{Answer, Config, Context, Decision, Mode, Objective, Request, Space, Suggestion};
use hpo_plugin::{DylibTransport, ProcessTransport, Transport};
use serde_json::Value as Json;

use crate::PluginCheckArgs;

/// Steps of the conversation and whether each conformed.
struct Checker {
    transport: Box<dyn Transport>,
    failures: usize,
}

/// An answer as read (`None` if it is not one) and its line, for messages.
type Reply = (Option<Answer>, String);

impl Checker {
    /// Sends a request; `Err` if the plugin is gone.
    fn send(&mut self, request: &Request) -> anyhow::Result<Reply> {
        self.send_line(&request.to_line())
    }

    fn send_line(&mut self, line: &str) -> anyhow::Result<Reply> {
        let answer = self.transport.request(line)?;
        Ok((Answer::from_line(&answer).ok(), answer))
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

    /// Checks an acknowledgement (`{"ok": true}`).
    fn acknowledged(&mut self, step: &str, (answer, line): Reply, detail: String) {
        let ok = matches!(answer, Some(Answer::Ok { ok: true, .. }));
        self.verdict(step, if ok { Ok(detail) } else { Err(line) });
    }
}

pub fn check(args: PluginCheckArgs) -> anyhow::Result<ExitCode> {
    let config: Json = serde_json::from_str(&args.config).context("--config must be JSON")?;
    let target = &args.target;
    let is_library = target.len() == 1 && hpo_plugin::is_library_path(Path::new(&target[0]));
    let transport: Box<dyn Transport> = if is_library {
        Box::new(DylibTransport::load(Path::new(&target[0]))?)
    } else {
        Box::new(ProcessTransport::spawn(target, Duration::from_secs(10))?)
    };
    outln!("checking plugin {}", transport.name());
    let mut c = Checker { transport, failures: 0 };
    let space =
        Space::builder().uniform("x", 0.0, 1.0).choice("act", ["relu", "tanh"]).constant("epochs", 9).build()?;
    let ctx = Context {
        resource_attr: Some("epoch".into()),
        max_resource_attr: Some("epochs".into()),
        ..Context::new(space.clone(), Objective::new("loss", Mode::Min), 0)
    };
    let (answer, line) = c.send(&Request::init(&ctx, config))?;
    let ok = matches!(answer, Some(Answer::Ok { ok: true, .. }));
    c.verdict("init", if ok { Ok(line) } else { Err(format!("expected {{\"ok\":true}}, got {line}")) });
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
            let (answer, line) = c.send(&Request::Suggest { trial_id: next_id })?;
            let step = format!("suggest (round {round})");
            match answer {
                Some(Answer::Suggestion(Suggestion::Start { config, .. })) => {
                    match space.validate_except(&config, Some("epochs")) {
                        Ok(()) => {
                            c.verdict(&step, Ok(format!("start trial {next_id}")));
                            running.push((next_id, config));
                            next_id += 1;
                        }
                        Err(e) => {
                            c.verdict(&step, Err(format!("start with an invalid config: {e}")));
                            break;
                        }
                    }
                }
                Some(Answer::Suggestion(Suggestion::Resume { trial_id, config })) if paused.contains(&trial_id) => {
                    paused.retain(|p| *p != trial_id);
                    c.verdict(&step, Ok(format!("resume trial {trial_id}")));
                    running.push((trial_id, config));
                }
                Some(Answer::Suggestion(Suggestion::Resume { .. })) => {
                    c.verdict(&step, Err(format!("resume of a trial that is not paused: {line}")));
                    break;
                }
                Some(Answer::Suggestion(wait_or_done)) => {
                    let what = if wait_or_done == Suggestion::Wait { "wait" } else { "done" };
                    c.verdict(&step, Ok(what.to_owned()));
                    break;
                }
                _ => {
                    c.verdict(&step, Err(format!("not a suggestion: {line}")));
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
            let metrics = [("epoch".to_owned(), f64::from(epoch)), ("loss".to_owned(), loss)].into();
            match c.send(&Request::report(id, &metrics))? {
                (Some(Answer::Decision { decision }), _) => {
                    decisions.push(decision);
                    if decision == Decision::Pause {
                        paused.push(id);
                    }
                    if decision != Decision::Continue {
                        ended = true;
                        break;
                    }
                }
                (_, line) => {
                    c.verdict("report", Err(format!("not a decision: {line}")));
                    ended = true;
                    break;
                }
            }
        }
        if !ended {
            let reply = c.send(&Request::Complete { trial_id: id })?;
            c.acknowledged("complete", reply, format!("trial {id}"));
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
        let reply = c.send(&Request::Fail { trial_id: id })?;
        c.acknowledged("fail", reply, format!("trial {id}"));
    }
    let (answer, line) = c.send_line(r#"{"op":"dance"}"#)?;
    c.verdict(
        "a bad request",
        match answer {
            Some(Answer::Error { .. }) => Ok("answered with an error".into()),
            _ => Err(format!("expected {{\"error\": ...}}, got {line}")),
        },
    );
    let (answer, line) = c.send(&Request::Suggest { trial_id: next_id })?;
    c.verdict(
        "serving after a bad request",
        if matches!(answer, Some(Answer::Suggestion(_))) { Ok(line) } else { Err(line) },
    );
    let reply = c.send(&Request::Close)?;
    c.acknowledged("close", reply, "closed".into());
    outln!(
        "{}",
        if c.failures == 0 { "the plugin conforms".to_owned() } else { format!("{} checks failed", c.failures) }
    );
    Ok(if c.failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
