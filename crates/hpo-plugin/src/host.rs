//! The host side: talking to a plugin over a [`Transport`], and the plugin schedulers that
//! experiment files name (`type = "plugin"` and `type = "process"`).
#![allow(unsafe_code)] // calling into a loaded library through its C ABI

use std::ffi::c_void;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hpo_core::{Config, Context, Decision, PROTOCOL_VERSION, Report, Scheduler, SetupError, Suggestion, TrialId};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::abi::{CallFn, CreateFn, DestroyFn, FreeFn, ProtocolFn};

/// One request line to the plugin, one answer line back. `Err` means the plugin is gone
/// (it died, hangs, or cannot be reached): nothing more can be asked of it.
pub trait Transport: Send {
    fn request(&mut self, line: &str) -> Result<String, String>;
    /// The plugin, for messages: its library path or command.
    fn name(&self) -> &str;
}

/// A plugin library, loaded once and never unloaded (calling into an unloaded library is
/// undefined behaviour, and plugins are few).
pub struct DylibTransport {
    name: String,
    session: *mut c_void,
    call: CallFn,
    free: FreeFn,
    destroy: DestroyFn,
}

// SAFETY: a session is only ever used by the one transport that owns it, from one thread at a
// time; the plugin's functions are plain C functions.
unsafe impl Send for DylibTransport {}

/// Checks a plugin's protocol version against the host's.
pub fn check_protocol(name: &str, found: u32) -> Result<(), String> {
    if found == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(format!(
            "plugin {name}: speaks protocol version {found}, but this hpo speaks {PROTOCOL_VERSION}; rebuild it against this hpo-plugin"
        ))
    }
}

/// Whether `path` names a shared library by its file name: `*.so`, a versioned `*.so.1.2`,
/// `*.dylib` or `*.dll`. Such a file is loaded, never executed.
pub fn is_library_path(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    if name.ends_with(".dylib") || name.ends_with(".dll") {
        return true;
    }
    name.split_once(".so").is_some_and(|(stem, version)| {
        !stem.is_empty() && (version.is_empty() || version.strip_prefix('.').is_some_and(is_version))
    })
}

fn is_version(text: &str) -> bool {
    text.split('.').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

impl DylibTransport {
    /// Loads the library at `path`, checks its protocol version and opens a session.
    pub fn load(path: &Path) -> Result<DylibTransport, String> {
        let name = path.display().to_string();
        // SAFETY: loading a library runs its initializers; that is what loading a plugin means.
        let library = unsafe { libloading::Library::new(path) }.map_err(|e| {
            // The loader's own reason (missing file, wrong architecture, missing symbol
            // of a dependency) is the error's source.
            let reason = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
            format!("plugin {name}: not a loadable library: {e}{reason}")
        })?;
        let symbol = |sym: &str| {
            format!("plugin {name}: not an hpo plugin (no `{sym}`; build it with hpo_plugin::export_scheduler!)")
        };
        // SAFETY: the symbols are looked up with the types the SDK's macro exports them with.
        let (protocol, create, call, free, destroy) = unsafe {
            (
                *library.get::<ProtocolFn>(b"hpo_plugin_protocol").map_err(|_| symbol("hpo_plugin_protocol"))?,
                *library.get::<CreateFn>(b"hpo_plugin_create").map_err(|_| symbol("hpo_plugin_create"))?,
                *library.get::<CallFn>(b"hpo_plugin_call").map_err(|_| symbol("hpo_plugin_call"))?,
                *library.get::<FreeFn>(b"hpo_plugin_free").map_err(|_| symbol("hpo_plugin_free"))?,
                *library.get::<DestroyFn>(b"hpo_plugin_destroy").map_err(|_| symbol("hpo_plugin_destroy"))?,
            )
        };
        // SAFETY: a plain function of the plugin's ABI.
        check_protocol(&name, unsafe { protocol() })?;
        std::mem::forget(library); // never unloaded: the function pointers stay valid
        // SAFETY: as above.
        let session = unsafe { create() };
        if session.is_null() {
            return Err(format!("plugin {name}: could not create a session"));
        }
        Ok(DylibTransport { name, session, call, free, destroy })
    }
}

impl Transport for DylibTransport {
    fn request(&mut self, line: &str) -> Result<String, String> {
        // SAFETY: the session is live; the request bytes outlive the call; the answer buffer
        // is copied and then handed back to the plugin's allocator.
        let answer = unsafe {
            let buffer = (self.call)(self.session, line.as_ptr(), line.len());
            let text = if buffer.ptr.is_null() {
                String::new()
            } else {
                String::from_utf8_lossy(std::slice::from_raw_parts(buffer.ptr, buffer.len)).into_owned()
            };
            (self.free)(buffer);
            text
        };
        Ok(answer)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for DylibTransport {
    fn drop(&mut self) {
        // SAFETY: the session was created by this library and is destroyed once.
        unsafe { (self.destroy)(self.session) }
    }
}

/// A plugin process: requests on its stdin, answers on its stdout, one JSON object per line;
/// its stderr is passed through. An answer that takes longer than `timeout` means it hangs.
pub struct ProcessTransport {
    name: String,
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<String>,
    timeout: Duration,
}

impl ProcessTransport {
    pub fn spawn(command: &[String], timeout: Duration) -> Result<ProcessTransport, String> {
        let name = command.join(" ");
        let program = command.first().ok_or("the plugin command is empty")?;
        let mut child = Command::new(program)
            .args(&command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("plugin process `{name}`: cannot start: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(format!("plugin process `{name}`: no pipes"));
        };
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !line.trim().is_empty() && tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ProcessTransport { name, child, stdin, answers, timeout })
    }
}

impl Transport for ProcessTransport {
    fn request(&mut self, line: &str) -> Result<String, String> {
        let name = &self.name;
        if writeln!(self.stdin, "{line}").and_then(|()| self.stdin.flush()).is_err() {
            return Err(format!("plugin process `{name}` is gone ({})", exit_status(&mut self.child)));
        }
        match self.answers.recv_timeout(self.timeout) {
            Ok(answer) => Ok(answer),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                Err(format!("plugin process `{name}` did not answer within {:?}; killed it", self.timeout))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(format!("plugin process `{name}` exited ({})", exit_status(&mut self.child)))
            }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

fn exit_status(child: &mut Child) -> String {
    match child.wait() {
        Ok(status) => status.to_string(),
        Err(e) => e.to_string(),
    }
}

impl Drop for ProcessTransport {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, r#"{{"op":"close"}}"#);
        let _ = self.stdin.flush();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// After this many bad answers in a row, a plugin counts as failed.
const MAX_BAD_ANSWERS: u32 = 3;

/// A scheduler behind a transport: turns trait calls into protocol requests.
pub struct RemoteScheduler {
    transport: Box<dyn Transport>,
    bad_in_a_row: u32,
    failure: Option<String>,
}

impl RemoteScheduler {
    pub fn new(transport: Box<dyn Transport>) -> Self {
        RemoteScheduler { transport, bad_in_a_row: 0, failure: None }
    }

    /// Sends `init` with the experiment's context and the plugin's own `config`.
    pub fn init(&mut self, ctx: &Context, config: &Json) -> Result<(), SetupError> {
        let request = json!({
            "op": "init",
            "protocol": PROTOCOL_VERSION,
            "space": ctx.space.to_json(),
            "metric": ctx.objective.metric,
            "mode": ctx.objective.mode,
            "resource_attr": ctx.resource_attr,
            "max_resource_attr": ctx.max_resource_attr,
            "seed": ctx.seed,
            "scheduler": config,
        });
        let name = self.transport.name().to_owned();
        let answer = self.transport.request(&request.to_string()).map_err(SetupError)?;
        match serde_json::from_str::<Json>(&answer) {
            Ok(a) if a["ok"] == true => Ok(()),
            Ok(a) if a["error"].is_string() => {
                Err(SetupError(format!("plugin {name}: {}", a["error"].as_str().unwrap_or(""))))
            }
            _ => {
                Err(SetupError(format!("plugin {name}: answered `init` with `{answer}`, expected {{\"ok\":true,...}}")))
            }
        }
    }

    /// One request; `None` when the answer is unusable (counted) or the plugin is gone.
    fn ask(&mut self, request: Json) -> Option<Json> {
        if self.failure.is_some() {
            return None;
        }
        match self.transport.request(&request.to_string()) {
            Ok(answer) => match serde_json::from_str::<Json>(&answer) {
                Ok(a) if !a["error"].is_string() => Some(a),
                Ok(a) => {
                    self.bad(&request, a["error"].as_str().unwrap_or_default());
                    None
                }
                Err(_) => {
                    self.bad(&request, &format!("not JSON: `{answer}`"));
                    None
                }
            },
            Err(e) => {
                self.failure = Some(e);
                None
            }
        }
    }

    fn bad(&mut self, request: &Json, why: &str) {
        self.bad_in_a_row += 1;
        let name = self.transport.name();
        use std::io::Write as _; // never a panic, also with stderr closed
        let op = request["op"].as_str().unwrap_or("?");
        let _ = writeln!(std::io::stderr(), "hpo: plugin {name}: bad answer to `{op}`: {why}");
        if self.bad_in_a_row >= MAX_BAD_ANSWERS {
            self.failure = Some(format!("plugin {name}: {MAX_BAD_ANSWERS} bad answers in a row, the last: {why}"));
        }
    }

    fn good<T>(&mut self, value: T) -> T {
        self.bad_in_a_row = 0;
        value
    }

    /// Asks again after a bad answer (up to the limit), since a worker may be idle waiting.
    pub fn suggest(&mut self, trial_id: TrialId) -> Suggestion {
        loop {
            let bad_before = self.bad_in_a_row;
            let suggestion = self.suggest_once(trial_id);
            if self.failure.is_some() || self.bad_in_a_row <= bad_before {
                return suggestion;
            }
        }
    }

    fn suggest_once(&mut self, trial_id: TrialId) -> Suggestion {
        let Some(answer) = self.ask(json!({ "op": "suggest", "trial_id": trial_id })) else { return Suggestion::Wait };
        let config = || serde_json::from_value::<Config>(answer["config"].clone()).ok();
        let suggestion = match answer["op"].as_str() {
            Some("start") => {
                config().map(|config| Suggestion::Start { config, checkpoint_from: answer["checkpoint_from"].as_u64() })
            }
            Some("resume") => answer["trial_id"]
                .as_u64()
                .zip(config())
                .map(|(trial_id, config)| Suggestion::Resume { trial_id, config }),
            Some("wait") => Some(Suggestion::Wait),
            Some("done") => Some(Suggestion::Done),
            _ => None,
        };
        match suggestion {
            Some(s) => self.good(s),
            None => {
                self.bad(&json!({"op": "suggest"}), &format!("`{answer}` is no suggestion; treated as wait"));
                Suggestion::Wait
            }
        }
    }

    pub fn on_report(&mut self, report: &Report<'_>) -> Decision {
        let metrics: serde_json::Map<String, Json> = report
            .metrics
            .iter()
            .map(|(k, v)| (k.clone(), if v.is_finite() { json!(v) } else { Json::Null }))
            .collect();
        let Some(answer) = self.ask(json!({ "op": "report", "trial_id": report.trial_id, "metrics": metrics })) else {
            return Decision::Continue;
        };
        match answer["decision"].as_str() {
            Some("continue") => self.good(Decision::Continue),
            Some("pause") => self.good(Decision::Pause),
            Some("stop") => self.good(Decision::Stop),
            _ => {
                self.bad(&json!({"op": "report"}), &format!("`{answer}` is no decision; treated as continue"));
                Decision::Continue
            }
        }
    }

    pub fn notify(&mut self, op: &str, trial_id: TrialId) {
        if self.ask(json!({ "op": op, "trial_id": trial_id })).is_some() {
            self.bad_in_a_row = 0;
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failure.clone()
    }
}

fn empty_config() -> Json {
    json!({})
}

fn default_timeout() -> String {
    "10s".into()
}

/// `[scheduler] type = "plugin", path = "libmy_scheduler.so", config = {...}`: a scheduler
/// from a plugin library.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginScheduler {
    pub path: PathBuf,
    /// The plugin's own settings, passed as `init`'s `scheduler` table.
    #[serde(default = "empty_config")]
    pub config: Json,
    #[serde(skip)]
    remote: Option<RemoteScheduler>,
}

/// `[scheduler] type = "process", command = ["python3", "my_scheduler.py"], config = {...}`:
/// a scheduler in any language speaking the protocol on stdin/stdout.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessScheduler {
    pub command: Vec<String>,
    #[serde(default = "empty_config")]
    pub config: Json,
    /// How long an answer may take before the plugin counts as hanging.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(skip)]
    remote: Option<RemoteScheduler>,
}

impl PluginScheduler {
    pub fn new(path: impl Into<PathBuf>, config: Json) -> Self {
        PluginScheduler { path: path.into(), config, remote: None }
    }
}

impl ProcessScheduler {
    pub fn new(command: Vec<String>, config: Json) -> Self {
        ProcessScheduler { command, config, timeout: default_timeout(), remote: None }
    }
}

macro_rules! forward_to_remote {
    () => {
        fn suggest(&mut self, trial_id: TrialId) -> Suggestion {
            self.remote.as_mut().map_or(Suggestion::Done, |r| r.suggest(trial_id))
        }

        fn on_report(&mut self, report: &Report<'_>) -> Decision {
            self.remote.as_mut().map_or(Decision::Continue, |r| r.on_report(report))
        }

        fn on_complete(&mut self, trial_id: TrialId) {
            if let Some(r) = self.remote.as_mut() {
                r.notify("complete", trial_id);
            }
        }

        fn on_fail(&mut self, trial_id: TrialId) {
            if let Some(r) = self.remote.as_mut() {
                r.notify("fail", trial_id);
            }
        }

        fn failure(&self) -> Option<String> {
            self.remote.as_ref().and_then(RemoteScheduler::failure)
        }
    };
}

#[typetag::serde(name = "plugin")]
impl Scheduler for PluginScheduler {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        let mut remote = RemoteScheduler::new(Box::new(DylibTransport::load(&self.path).map_err(SetupError)?));
        remote.init(ctx, &self.config)?;
        self.remote = Some(remote);
        Ok(())
    }

    forward_to_remote!();
}

#[typetag::serde(name = "process")]
impl Scheduler for ProcessScheduler {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        let timeout = hpo_core::parse_duration(&self.timeout)
            .map_err(|e| SetupError(format!("process scheduler: `timeout`: {e}")))?;
        let mut remote =
            RemoteScheduler::new(Box::new(ProcessTransport::spawn(&self.command, timeout).map_err(SetupError)?));
        remote.init(ctx, &self.config)?;
        self.remote = Some(remote);
        Ok(())
    }

    forward_to_remote!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names_are_told_from_commands() {
        for name in ["libfoo.so", "libfoo.so.1", "./lib/libfoo.so.1.2.3", "foo.dylib", "foo.dll"] {
            assert!(is_library_path(Path::new(name)), "{name}");
        }
        for name in ["python3", "plugin.py", "libfoo.so.x", ".so", "libfoo.sock", "libfoo.so.1."] {
            assert!(!is_library_path(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn protocol_versions_must_match() {
        assert!(check_protocol("p", PROTOCOL_VERSION).is_ok());
        let err = check_protocol("libold.so", PROTOCOL_VERSION + 1).unwrap_err();
        assert!(err.contains("plugin libold.so: speaks protocol version 2, but this hpo speaks 1"), "{err}");
    }
}
