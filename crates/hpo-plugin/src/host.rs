//! The host side: talking to a plugin over a [`Transport`], and the plugin schedulers that
//! experiment files name (`type = "plugin"` and `type = "process"`).
#![allow(unsafe_code)] // calling into a loaded library through its C ABI

use std::ffi::c_void;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hpo_core::{
    Answer, Context, Decision, PROTOCOL_VERSION, Report, Request, Scheduler, SetupError, Suggestion, TrialId,
};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::abi::{CallFn, CreateFn, DestroyFn, FreeFn, ProtocolFn};

/// A plugin that cannot be used, or can no longer be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The library could not be loaded or the process not started.
    #[error("{0}")]
    Load(String),
    /// The plugin speaks another protocol version.
    #[error("{0}")]
    Protocol(String),
    /// The plugin died, hangs, or cannot be reached: nothing more can be asked of it.
    #[error("{0}")]
    Gone(String),
    /// The process was asked to stop ([`hpo_core::interrupt`]) while this request waited.
    #[error("interrupted while waiting for the plugin's answer")]
    Interrupted,
}

/// One request line to the plugin, one answer line back.
pub trait Transport: Send {
    /// Sends one request line and waits for the answer line.
    fn request(&mut self, line: &str) -> Result<String, PluginError>;
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
pub fn check_protocol(name: &str, found: u32) -> Result<(), PluginError> {
    if found == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(PluginError::Protocol(format!(
            "plugin {name}: speaks protocol version {found}, but this hpo speaks {PROTOCOL_VERSION}; rebuild it against this hpo-plugin"
        )))
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
    pub fn load(path: &Path) -> Result<DylibTransport, PluginError> {
        let name = path.display().to_string();
        // SAFETY: loading a library runs its initializers; that is what loading a plugin means.
        let library = unsafe { libloading::Library::new(path) }.map_err(|e| {
            // The loader's own reason (missing file, wrong architecture, missing symbol
            // of a dependency) is the error's source.
            let reason = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
            PluginError::Load(format!("plugin {name}: not a loadable library: {e}{reason}"))
        })?;
        let symbol = |sym: &str| {
            PluginError::Load(format!(
                "plugin {name}: not an hpo plugin (no `{sym}`; build it with hpo_plugin::export_scheduler!)"
            ))
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
            return Err(PluginError::Load(format!("plugin {name}: could not create a session")));
        }
        Ok(DylibTransport { name, session, call, free, destroy })
    }
}

impl Transport for DylibTransport {
    fn request(&mut self, line: &str) -> Result<String, PluginError> {
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
    /// Starts the plugin process `command`; an answer may take up to `timeout`.
    pub fn spawn(command: &[String], timeout: Duration) -> Result<ProcessTransport, PluginError> {
        let name = command.join(" ");
        let program = command.first().ok_or_else(|| PluginError::Load("the plugin command is empty".into()))?;
        let mut child = Command::new(program)
            .args(&command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group: a Ctrl-C at the terminal goes to hpo, which ends the
            // plugin in order, and killing the group also ends what the plugin started.
            .process_group(0)
            .spawn()
            .map_err(|e| PluginError::Load(format!("plugin process `{name}`: cannot start: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(PluginError::Load(format!("plugin process `{name}`: no pipes")));
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

    /// Kills the plugin's process group and reaps the plugin.
    fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Transport for ProcessTransport {
    fn request(&mut self, line: &str) -> Result<String, PluginError> {
        let name = &self.name;
        if writeln!(self.stdin, "{line}").and_then(|()| self.stdin.flush()).is_err() {
            return Err(PluginError::Gone(format!(
                "plugin process `{name}` is gone ({})",
                exit_status(&mut self.child)
            )));
        }
        // In short slices, so that a stop request is not held up by a slow plugin.
        let deadline = Instant::now() + self.timeout;
        let answer = loop {
            let slice = deadline.saturating_duration_since(Instant::now()).min(INTERRUPT_POLL);
            match self.answers.recv_timeout(slice) {
                Err(mpsc::RecvTimeoutError::Timeout) if hpo_core::interrupt::requested() => {
                    return Err(PluginError::Interrupted);
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                answer => break answer,
            }
        };
        match answer {
            Ok(answer) => Ok(answer),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.kill();
                let (name, timeout) = (&self.name, self.timeout);
                Err(PluginError::Gone(format!("plugin process `{name}` did not answer within {timeout:?}; killed it")))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(PluginError::Gone(format!("plugin process `{name}` exited ({})", exit_status(&mut self.child))))
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
        self.kill();
    }
}

/// After this many bad answers in a row, a plugin counts as failed.
const MAX_BAD_ANSWERS: u32 = 3;

/// How often a wait for a plugin process's answer looks for a stop request.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

/// A scheduler behind a transport: turns trait calls into protocol requests.
pub struct RemoteScheduler {
    transport: Box<dyn Transport>,
    bad_in_a_row: u32,
    failure: Option<String>,
}

impl RemoteScheduler {
    /// A scheduler that asks the plugin at the other end of `transport`.
    pub fn new(transport: Box<dyn Transport>) -> Self {
        RemoteScheduler { transport, bad_in_a_row: 0, failure: None }
    }

    /// Sends `init` with the experiment's context and the plugin's own `config`.
    pub fn init(&mut self, ctx: &Context, config: &Json) -> Result<(), SetupError> {
        let name = self.transport.name().to_owned();
        let line = self.transport.request(&Request::init(ctx, config.clone()).to_line());
        let line = line.map_err(|e| SetupError(e.to_string()))?;
        match Answer::from_line(&line) {
            Ok(Answer::Ok { ok: true, .. }) => Ok(()),
            Ok(Answer::Error { error }) => Err(SetupError(format!("plugin {name}: {error}"))),
            _ => Err(SetupError(format!("plugin {name}: answered `init` with `{line}`, expected {{\"ok\":true,...}}"))),
        }
    }

    /// One request; `None` when the answer is an error (counted as bad) or the plugin is
    /// gone. The text is the answer's line, for messages.
    fn ask(&mut self, request: &Request) -> Option<(Answer, String)> {
        // Once the process is asked to stop, the experiment ends without the plugin's answers.
        if self.failure.is_some() || hpo_core::interrupt::requested() {
            return None;
        }
        match self.transport.request(&request.to_line()) {
            Ok(line) => match Answer::from_line(&line) {
                Ok(Answer::Error { error }) => {
                    self.bad(request, &error);
                    None
                }
                Ok(answer) => Some((answer, line)),
                Err(_) => {
                    self.bad(request, &format!("not an answer: `{line}`"));
                    None
                }
            },
            Err(PluginError::Interrupted) => None,
            Err(e) => {
                self.failure = Some(e.to_string());
                None
            }
        }
    }

    fn bad(&mut self, request: &Request, why: &str) {
        self.bad_in_a_row += 1;
        let name = self.transport.name();
        let op = match request {
            Request::Init { .. } => "init",
            Request::Suggest { .. } => "suggest",
            Request::Report { .. } => "report",
            Request::Complete { .. } => "complete",
            Request::Fail { .. } => "fail",
            Request::Close => "close",
        };
        log::warn!("plugin {name}: bad answer to `{op}`: {why}");
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
        let request = Request::Suggest { trial_id };
        match self.ask(&request) {
            Some((Answer::Suggestion(suggestion), _)) => self.good(suggestion),
            Some((_, line)) => {
                self.bad(&request, &format!("`{line}` is no suggestion; treated as wait"));
                Suggestion::Wait
            }
            None => Suggestion::Wait,
        }
    }

    /// Sends a report; a bad answer counts as `continue`.
    pub fn on_report(&mut self, report: &Report<'_>) -> Decision {
        let request = Request::report(report.trial_id, report.metrics);
        match self.ask(&request) {
            Some((Answer::Decision { decision }, _)) => self.good(decision),
            Some((_, line)) => {
                self.bad(&request, &format!("`{line}` is no decision; treated as continue"));
                Decision::Continue
            }
            None => Decision::Continue,
        }
    }

    /// Tells the plugin a trial completed or failed (`Request::Complete` or `Request::Fail`).
    pub fn notify(&mut self, request: Request) {
        if self.ask(&request).is_some() {
            self.bad_in_a_row = 0;
        }
    }

    /// Why the plugin cannot go on, if it cannot.
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
    /// The plugin library (`.so`, `.dylib`, `.dll`).
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
    /// The program and its arguments, e.g. `["python3", "my_scheduler.py"]`.
    pub command: Vec<String>,
    /// The plugin's own settings, passed as `init`'s `scheduler` table.
    #[serde(default = "empty_config")]
    pub config: Json,
    /// How long an answer may take before the plugin counts as hanging.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(skip)]
    remote: Option<RemoteScheduler>,
}

impl PluginScheduler {
    /// The scheduler of the library at `path`, with its own settings `config`.
    pub fn new(path: impl Into<PathBuf>, config: Json) -> Self {
        PluginScheduler { path: path.into(), config, remote: None }
    }
}

impl ProcessScheduler {
    /// The scheduler process `command`, with its own settings `config`.
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
                r.notify(Request::Complete { trial_id });
            }
        }

        fn on_fail(&mut self, trial_id: TrialId) {
            if let Some(r) = self.remote.as_mut() {
                r.notify(Request::Fail { trial_id });
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
        let mut remote =
            RemoteScheduler::new(Box::new(DylibTransport::load(&self.path).map_err(|e| SetupError(e.to_string()))?));
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
        let mut remote = RemoteScheduler::new(Box::new(
            ProcessTransport::spawn(&self.command, timeout).map_err(|e| SetupError(e.to_string()))?,
        ));
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
        let err = check_protocol("libold.so", PROTOCOL_VERSION + 1).unwrap_err().to_string();
        assert!(err.contains("plugin libold.so: speaks protocol version 2, but this hpo speaks 1"), "{err}");
    }
}
