//! The scheduler protocol, version 1 (docs/protocol.md): JSON lines in which a host asks a
//! scheduler for suggestions and decisions. [`SchedulerServer`] serves any built-in (or
//! registered) scheduler over it: `hpo scheduler serve` wraps it in stdin/stdout.

use std::collections::{BTreeMap, HashMap};

use hpo_space::{Config, Space};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::pareto::Constraint;
use crate::traits::{Context, Scheduler, SetupError};
use crate::types::{Decision, Metrics, Mode, Objective, Report, Suggestion, TrialId};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request from the host. Fields a reader does not know are ignored. The fields are those
/// of `docs/protocol.md` (and of [`Context`] for `init`).
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// The first request: the experiment and the scheduler's own settings.
    Init {
        protocol: u32,
        space: Json,
        metric: String,
        #[serde(default)]
        mode: Mode,
        #[serde(default)]
        resource_attr: Option<String>,
        #[serde(default)]
        max_resource_attr: Option<String>,
        #[serde(default)]
        seed: u64,
        /// Every objective when there are several (absent for one: protocol v1 unchanged).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        objectives: Vec<Objective>,
        /// Outcome constraints, as `"latency_ms <= 20"` (absent when there are none).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        constraints: Vec<Constraint>,
        scheduler: Json,
    },
    /// What a free worker should do; `trial_id` is the id a new trial would get.
    Suggest { trial_id: TrialId },
    /// A trial reported; non-finite values are `null`.
    Report { trial_id: TrialId, metrics: BTreeMap<String, Option<f64>> },
    /// A trial ended normally.
    Complete { trial_id: TrialId },
    /// A trial failed.
    Fail { trial_id: TrialId },
    /// The host is done.
    Close,
}

impl Request {
    /// The `init` request for an experiment and the scheduler's own settings.
    pub fn init(ctx: &Context, scheduler: Json) -> Request {
        Request::Init {
            protocol: PROTOCOL_VERSION,
            space: ctx.space.to_json(),
            metric: ctx.objective.metric.clone(),
            mode: ctx.objective.mode,
            resource_attr: ctx.resource_attr.clone(),
            max_resource_attr: ctx.max_resource_attr.clone(),
            seed: ctx.seed,
            objectives: ctx.objectives.clone(),
            constraints: ctx.constraints.clone(),
            scheduler,
        }
    }

    /// The `report` request for a trial's metrics (JSON has no NaN: those become `null`).
    pub fn report(trial_id: TrialId, metrics: &Metrics) -> Request {
        let metrics = metrics.iter().map(|(k, v)| (k.to_owned(), v.is_finite().then_some(v))).collect();
        Request::Report { trial_id, metrics }
    }

    /// The line sent on the wire.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!(r#"{{"op":"unserializable: {e}"}}"#))
    }
}

/// The answer to one request: a suggestion (to `suggest`), a decision (to `report`), an
/// acknowledgement (to `init`, `complete`, `fail`, `close`), or an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    /// The request could not be honoured, and why.
    Error {
        /// What went wrong.
        error: String,
    },
    /// What a free worker should do.
    Suggestion(Suggestion),
    /// Whether the reporting trial goes on.
    Decision {
        /// Continue, pause or stop.
        decision: Decision,
    },
    /// Done.
    Ok {
        /// The scheduler's registered name, in the answer to `init`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Always true.
        ok: bool,
    },
}

impl Answer {
    /// Reads an answer line; `Err` says why it is not one.
    pub fn from_line(line: &str) -> Result<Answer, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// The line sent on the wire.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!(r#"{{"error":"unserializable answer: {e}"}}"#))
    }

    fn ok() -> Answer {
        Answer::Ok { name: None, ok: true }
    }
}

struct Session {
    scheduler: Box<dyn Scheduler>,
    ctx: Context,
    /// Each known trial's current config and number of reports.
    trials: HashMap<TrialId, (Config, u32)>,
    /// The objectives of the report being handled.
    objectives: Vec<f64>,
}

/// Builds the scheduler named by `init`'s `scheduler` table.
pub type SchedulerFactory = Box<dyn Fn(Json) -> Result<Box<dyn Scheduler>, SetupError> + Send>;

/// Answers protocol requests with a scheduler; every request gets exactly one answer, and a
/// bad request an `{"error": ...}` answer without ending the session.
#[derive(Default)]
pub struct SchedulerServer {
    session: Option<Session>,
    factory: Option<SchedulerFactory>,
}

impl SchedulerServer {
    /// A server for every registered scheduler type (`scheduler.type` picks one).
    pub fn new() -> Self {
        Self::default()
    }

    /// A server for one scheduler type, built from `init`'s `scheduler` table by `factory`
    /// (a plugin library serves its own type this way).
    pub fn with_factory(factory: SchedulerFactory) -> Self {
        SchedulerServer { session: None, factory: Some(factory) }
    }

    /// Answers one request line; the flag says the host closed the session.
    pub fn handle_line(&mut self, line: &str) -> (String, bool) {
        let request = match serde_json::from_str::<Request>(line) {
            Ok(request) => request,
            Err(e) => return (Answer::Error { error: format!("bad request: {e}") }.to_line(), false),
        };
        let close = matches!(request, Request::Close);
        (self.handle(request).to_line(), close)
    }

    /// Answers one parsed request.
    pub fn handle(&mut self, request: Request) -> Answer {
        self.try_handle(request).unwrap_or_else(|error| Answer::Error { error })
    }

    fn try_handle(&mut self, request: Request) -> Result<Answer, String> {
        match request {
            Request::Init {
                protocol,
                space,
                metric,
                mode,
                resource_attr,
                max_resource_attr,
                seed,
                objectives,
                constraints,
                scheduler,
            } => {
                if protocol != PROTOCOL_VERSION {
                    return Err(format!(
                        "protocol version {protocol} is not supported; this scheduler speaks {PROTOCOL_VERSION}"
                    ));
                }
                let objective = Objective::new(metric, mode);
                if objectives.first().is_some_and(|first| *first != objective) {
                    return Err("`objectives` must begin with `metric` and `mode`".into());
                }
                let space = Space::from_json(&space).map_err(|e| e.to_string())?;
                let mut scheduler: Box<dyn Scheduler> = match &self.factory {
                    Some(factory) => factory(scheduler).map_err(|e| format!("scheduler: {e}"))?,
                    None => serde_json::from_value(scheduler).map_err(|e| format!("scheduler: {e}"))?,
                };
                let ctx = Context { space, objective, objectives, constraints, resource_attr, max_resource_attr, seed };
                scheduler.init(&ctx).map_err(|e| e.to_string())?;
                let name = scheduler.typetag_name().to_owned();
                self.session = Some(Session { scheduler, ctx, trials: HashMap::new(), objectives: Vec::new() });
                Ok(Answer::Ok { name: Some(name), ok: true })
            }
            Request::Close => {
                self.session = None;
                Ok(Answer::ok())
            }
            other => {
                let session = self.session.as_mut().ok_or("no scheduler yet: send `init` first")?;
                session.handle(other)
            }
        }
    }
}

impl Session {
    fn handle(&mut self, request: Request) -> Result<Answer, String> {
        match request {
            Request::Suggest { trial_id } => {
                let suggestion = self.scheduler.suggest(trial_id);
                match &suggestion {
                    Suggestion::Start { config, .. } => {
                        self.trials.insert(trial_id, (config.clone(), 0));
                    }
                    Suggestion::Resume { trial_id, config } => {
                        self.trials.entry(*trial_id).or_insert_with(|| (Config::new(), 0)).0 = config.clone();
                    }
                    Suggestion::Wait | Suggestion::Done => {}
                }
                Ok(Answer::Suggestion(suggestion))
            }
            Request::Report { trial_id, metrics } => {
                let (config, reports) = self.trials.get_mut(&trial_id).ok_or_else(|| unknown(trial_id))?;
                *reports += 1;
                let metrics: Metrics = metrics.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect();
                let Ok(score) = self.ctx.score(&metrics, *reports, &mut self.objectives) else {
                    // A missing or non-finite metric fails the trial, as in the tuner.
                    self.scheduler.on_fail(trial_id);
                    return Ok(Answer::Decision { decision: Decision::Stop });
                };
                let decision = self.scheduler.on_report(&Report {
                    trial_id,
                    config,
                    metrics: &metrics,
                    resource: score.resource,
                    objective: score.objective,
                    objectives: &self.objectives,
                    violation: score.violation,
                });
                Ok(Answer::Decision { decision })
            }
            Request::Complete { trial_id } => {
                self.trials.get(&trial_id).ok_or_else(|| unknown(trial_id))?;
                self.scheduler.on_complete(trial_id);
                Ok(Answer::ok())
            }
            Request::Fail { trial_id } => {
                self.trials.get(&trial_id).ok_or_else(|| unknown(trial_id))?;
                self.scheduler.on_fail(trial_id);
                Ok(Answer::ok())
            }
            Request::Init { .. } | Request::Close => Err("handled by the server".into()),
        }
    }
}

fn unknown(trial_id: TrialId) -> String {
    format!("unknown trial {trial_id}: it was never suggested")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn answers_read_back_as_written_in_docs_protocol_md() {
        let mut config = Config::new();
        config.insert("x", 0.5);
        let lines = [
            (r#"{"error":"no scheduler yet"}"#, Answer::Error { error: "no scheduler yet".into() }),
            (r#"{"op":"start","config":{"x":0.5}}"#, Answer::Suggestion(Suggestion::start(config.clone()))),
            (
                r#"{"op":"start","config":{"x":0.5},"checkpoint_from":3}"#,
                Answer::Suggestion(Suggestion::Start { config: config.clone(), checkpoint_from: Some(3) }),
            ),
            (
                r#"{"op":"resume","trial_id":2,"config":{"x":0.5}}"#,
                Answer::Suggestion(Suggestion::Resume { trial_id: 2, config }),
            ),
            (r#"{"op":"wait"}"#, Answer::Suggestion(Suggestion::Wait)),
            (r#"{"decision":"pause"}"#, Answer::Decision { decision: Decision::Pause }),
            (r#"{"name":"asha","ok":true}"#, Answer::Ok { name: Some("asha".into()), ok: true }),
            (r#"{"ok":true}"#, Answer::ok()),
        ];
        for (line, answer) in lines {
            assert_eq!(Answer::from_line(line).unwrap(), answer, "{line}");
            assert_eq!(answer.to_line(), line);
        }
        assert!(Answer::from_line(r#"{"op":"start"}"#).is_err(), "a start needs a config");
    }

    #[test]
    fn reports_carry_non_finite_values_as_null() {
        let metrics = [("loss".to_owned(), f64::NAN), ("epoch".to_owned(), 1.0)].into();
        assert_eq!(
            Request::report(4, &metrics).to_line(),
            r#"{"op":"report","trial_id":4,"metrics":{"epoch":1.0,"loss":null}}"#
        );
    }

    #[test]
    fn init_may_carry_several_objectives_and_constraints() {
        let ctx = Context {
            objectives: vec![Objective::new("error", Mode::Min), Objective::new("size", Mode::Max)],
            constraints: vec![Constraint::parse("latency <= 20").unwrap()],
            ..Context::new(
                Space::builder().uniform("x", 0.0, 1.0).build().unwrap(),
                Objective::new("error", Mode::Min),
                0,
            )
        };
        let line = Request::init(&ctx, serde_json::json!({"type": "fifo"})).to_line();
        assert!(
            line.contains(r#""objectives":[{"metric":"error","mode":"min"},{"metric":"size","mode":"max"}],"constraints":["latency <= 20"]"#),
            "{line}"
        );
        let Request::Init { objectives, constraints, .. } = serde_json::from_str(&line).unwrap() else { panic!() };
        assert_eq!((objectives, constraints), (ctx.objectives.clone(), ctx.constraints.clone()));
        // One objective: protocol v1's line, unchanged.
        let single = Context::new(ctx.space.clone(), Objective::new("error", Mode::Min), 0);
        let line = Request::init(&single, serde_json::json!({"type": "fifo"})).to_line();
        assert!(!line.contains("objectives") && !line.contains("constraints"), "{line}");
        // The list must begin with `metric`.
        let mut server = SchedulerServer::new();
        let bad = r#"{"op":"init","protocol":1,"space":{"x":{"uniform":[0,1]}},"metric":"a","objectives":[{"metric":"b","mode":"min"},{"metric":"a","mode":"min"}],"scheduler":{"type":"fifo"}}"#;
        let (answer, _) = server.handle_line(bad);
        assert!(answer.contains("`objectives` must begin with `metric` and `mode`"), "{answer}");
    }
}
