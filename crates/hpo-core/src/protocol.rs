//! The scheduler protocol, version 1 (docs/protocol.md): JSON lines in which a host asks a
//! scheduler for suggestions and decisions. [`SchedulerServer`] serves any built-in (or
//! registered) scheduler over it: `hpo scheduler serve` wraps it in stdin/stdout.

use std::collections::{BTreeMap, HashMap};

use hpo_space::{Config, Space};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::traits::{Context, Scheduler};
use crate::types::{Decision, Metrics, Mode, Objective, Report, Suggestion, TrialId};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request from the host. Fields a reader does not know are ignored.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
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
        scheduler: Json,
    },
    Suggest {
        trial_id: TrialId,
    },
    Report {
        trial_id: TrialId,
        metrics: BTreeMap<String, Option<f64>>,
    },
    Complete {
        trial_id: TrialId,
    },
    Fail {
        trial_id: TrialId,
    },
    Close,
}

struct Session {
    scheduler: Box<dyn Scheduler>,
    ctx: Context,
    /// Each known trial's current config and number of reports.
    trials: HashMap<TrialId, (Config, u32)>,
}

/// Builds the scheduler named by `init`'s `scheduler` table.
pub type SchedulerFactory = Box<dyn Fn(Json) -> Result<Box<dyn Scheduler>, String> + Send>;

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
            Err(e) => return (error(format!("bad request: {e}")), false),
        };
        let close = matches!(request, Request::Close);
        let answer = self.handle(request).unwrap_or_else(|message| json!({ "error": message }));
        (answer.to_string(), close)
    }

    /// Answers one parsed request: `Err` is the text of an error answer.
    pub fn handle(&mut self, request: Request) -> Result<Json, String> {
        match request {
            Request::Init { protocol, space, metric, mode, resource_attr, max_resource_attr, seed, scheduler } => {
                if protocol != PROTOCOL_VERSION {
                    return Err(format!(
                        "protocol version {protocol} is not supported; this scheduler speaks {PROTOCOL_VERSION}"
                    ));
                }
                let space = Space::from_json(&space).map_err(|e| e.to_string())?;
                let mut scheduler: Box<dyn Scheduler> = match &self.factory {
                    Some(factory) => factory(scheduler).map_err(|e| format!("scheduler: {e}"))?,
                    None => serde_json::from_value(scheduler).map_err(|e| format!("scheduler: {e}"))?,
                };
                let ctx =
                    Context { space, objective: Objective::new(metric, mode), resource_attr, max_resource_attr, seed };
                scheduler.init(&ctx).map_err(|e| e.to_string())?;
                let name = scheduler.typetag_name().to_owned();
                self.session = Some(Session { scheduler, ctx, trials: HashMap::new() });
                Ok(json!({ "ok": true, "name": name }))
            }
            Request::Close => {
                self.session = None;
                Ok(json!({ "ok": true }))
            }
            other => {
                let session = self.session.as_mut().ok_or("no scheduler yet: send `init` first")?;
                session.handle(other)
            }
        }
    }
}

impl Session {
    fn handle(&mut self, request: Request) -> Result<Json, String> {
        match request {
            Request::Suggest { trial_id } => Ok(match self.scheduler.suggest(trial_id) {
                Suggestion::Start { config, checkpoint_from } => {
                    let mut answer = json!({ "op": "start", "config": config });
                    if let Some(from) = checkpoint_from {
                        answer["checkpoint_from"] = json!(from);
                    }
                    self.trials.insert(trial_id, (config, 0));
                    answer
                }
                Suggestion::Resume { trial_id, config } => {
                    let answer = json!({ "op": "resume", "trial_id": trial_id, "config": config });
                    self.trials.entry(trial_id).or_insert_with(|| (Config::new(), 0)).0 = config;
                    answer
                }
                Suggestion::Wait => json!({ "op": "wait" }),
                Suggestion::Done => json!({ "op": "done" }),
            }),
            Request::Report { trial_id, metrics } => {
                let (config, reports) = self.trials.get_mut(&trial_id).ok_or_else(|| unknown(trial_id))?;
                *reports += 1;
                let metrics: Metrics = metrics.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect();
                let Ok(objective) = self.ctx.objective.of(&metrics) else {
                    // A missing or non-finite metric fails the trial, as in the tuner.
                    self.scheduler.on_fail(trial_id);
                    return Ok(json!({ "decision": "stop" }));
                };
                let resource = self
                    .ctx
                    .resource_attr
                    .as_deref()
                    .and_then(|attr| metrics.get(attr).copied())
                    .unwrap_or(f64::from(*reports));
                let decision =
                    self.scheduler.on_report(&Report { trial_id, config, metrics: &metrics, resource, objective });
                Ok(json!({ "decision": match decision {
                    Decision::Continue => "continue",
                    Decision::Pause => "pause",
                    Decision::Stop => "stop",
                } }))
            }
            Request::Complete { trial_id } => {
                self.trials.get(&trial_id).ok_or_else(|| unknown(trial_id))?;
                self.scheduler.on_complete(trial_id);
                Ok(json!({ "ok": true }))
            }
            Request::Fail { trial_id } => {
                self.trials.get(&trial_id).ok_or_else(|| unknown(trial_id))?;
                self.scheduler.on_fail(trial_id);
                Ok(json!({ "ok": true }))
            }
            Request::Init { .. } | Request::Close => Err("handled by the server".into()),
        }
    }
}

fn unknown(trial_id: TrialId) -> String {
    format!("unknown trial {trial_id}: it was never suggested")
}

fn error(message: String) -> String {
    json!({ "error": message }).to_string()
}
