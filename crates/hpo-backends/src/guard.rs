//! The trial guard: a small process between hpo and each trial of the process backend, so
//! that nothing a trial started outlives it, or outlives hpo, however hpo ends.
//!
//! hpo starts `<hpo> __hpo-trial-guard <hpo's pid> <grace ms> -- <command...>` in a process
//! group of its own; the guard runs the command in that group and
//! - dies with hpo: it asks the kernel for SIGUSR2 when its parent dies (`PR_SET_PDEATHSIG`,
//!   so also after `kill -9` of hpo), and then kills everything below it at once;
//! - collects escapees: it is a child subreaper (`PR_SET_CHILD_SUBREAPER`), so a descendant
//!   that left the group (`setsid`, a double fork) is reparented to it when its parent ends,
//!   and is killed when the trial ends;
//! - passes the trial's end on: it exits with the trial's exit status, or by the same signal.
//!
//! SIGTERM, SIGINT or SIGHUP (hpo stopping or pausing the trial: the whole group gets it)
//! leaves the trial its grace period, then the guard kills everything below it.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawnp};
use nix::sys::prctl;
use nix::sys::signal::{SigSet, Signal, kill, raise};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpid, getppid};

/// The first argument that makes an executable act as a trial guard.
pub const GUARD_ARG: &str = "__hpo-trial-guard";

/// The signal that tells a guard to kill everything below it now (hpo died, or hpo gives up
/// on the trial).
pub const KILL_NOW: Signal = Signal::SIGUSR2;

/// The arguments that start `command` under a guard for a process whose pid is `parent`.
pub fn guard_args(parent: u32, grace: Duration, command: &[String]) -> Vec<String> {
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let mut args = vec![GUARD_ARG.to_owned(), parent.to_string(), grace_ms.to_string(), "--".into()];
    args.extend(command.iter().cloned());
    args
}

/// Runs as a guard if `args` (without the program name) start with [`GUARD_ARG`]; returns
/// the process's exit code then, `None` otherwise. Call it first thing in `main`.
pub fn run_if_guard(args: &[OsString]) -> Option<i32> {
    if args.first().is_none_or(|a| a != GUARD_ARG) {
        return None;
    }
    Some(match guard(&args[1..]) {
        Ok(code) => code,
        Err(e) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "hpo trial guard: {e}");
            127
        }
    })
}

fn guard(args: &[OsString]) -> Result<i32, String> {
    let text = |i: usize| args.get(i).and_then(|a| a.to_str()).ok_or("usage: <pid> <grace ms> -- <command...>");
    let parent: i32 = text(0)?.parse().map_err(|_| "the parent pid is not a number")?;
    let grace = Duration::from_millis(text(1)?.parse().map_err(|_| "the grace period is not a number")?);
    let command = args.get(3..).filter(|c| !c.is_empty() && text(2) == Ok("--")).ok_or("no command")?;

    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, KILL_NOW, Signal::SIGCHLD] {
        signals.add(s);
    }
    signals.thread_block().map_err(|e| format!("blocking signals: {e}"))?;
    let fd = SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK).map_err(|e| format!("signalfd: {e}"))?;
    prctl::set_pdeathsig(KILL_NOW).map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))?;
    if getppid().as_raw() != parent {
        return Ok(137); // hpo died before the guard was set up: run nothing
    }
    prctl::set_child_subreaper(true).map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;

    let trial = spawn_trial(command)?;

    let mut deadline: Option<Instant> = None;
    loop {
        let wait = deadline.map_or(PollTimeout::NONE, |d| {
            PollTimeout::try_from(d.saturating_duration_since(Instant::now())).unwrap_or(PollTimeout::MAX)
        });
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, wait) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        while let Ok(Some(info)) = fd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(s) if s == KILL_NOW => {
                    kill_descendants();
                    return Ok(137);
                }
                Ok(Signal::SIGCHLD) => {}
                // Stop or pause: the trial got the signal too; it has its grace period.
                Ok(_) => deadline = deadline.or_else(|| Instant::now().checked_add(grace)),
                Err(_) => {}
            }
        }
        if let Some(status) = reap(trial) {
            kill_descendants();
            return Ok(mirror(status));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            kill_descendants();
        }
    }
}

/// Starts the trial as the guard's child with an empty signal mask and SIGPIPE at its
/// default. A child inherits the mask, and the guard blocks the signals it reads from its
/// signalfd (std's `Command` keeps the mask): with it, a trial would never see the SIGTERM
/// that lets it save a checkpoint and stop in time, and would be killed after its grace.
fn spawn_trial(command: &[OsString]) -> Result<Pid, String> {
    let c_string =
        |s: &OsStr| CString::new(s.as_bytes()).map_err(|_| format!("`{}` holds a NUL byte", s.to_string_lossy()));
    let args = command.iter().map(|a| c_string(a)).collect::<Result<Vec<_>, _>>()?;
    let env = std::env::vars_os()
        .map(|(mut key, value)| {
            key.push("=");
            key.push(value);
            c_string(&key)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let setup = |e: Errno| format!("setting up the trial's start: {e}");
    let mut attr = PosixSpawnAttr::init().map_err(setup)?;
    attr.set_sigmask(&SigSet::empty()).map_err(setup)?;
    attr.set_sigdefault(&SigSet::from(Signal::SIGPIPE)).map_err(setup)?;
    attr.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF).map_err(setup)?;
    let actions = PosixSpawnFileActions::init().map_err(setup)?;
    posix_spawnp(&args[0], &actions, &attr, &args, &env)
        .map_err(|e| format!("cannot start `{}`: {}", command[0].to_string_lossy(), e.desc()))
}

/// Reaps every child that ended (orphans included); the trial's status once it ended.
fn reap(trial: Pid) -> Option<WaitStatus> {
    let mut ended = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return ended,
            Ok(status) if status.pid() == Some(trial) => ended = Some(status),
            Ok(_) => {}
        }
    }
}

/// Kills every process below the guard until none is left: killing one reparents its own
/// children to the guard (a subreaper), which then kills those in turn.
fn kill_descendants() {
    let me = getpid();
    for _ in 0..10_000 {
        let children = children_of(me);
        if children.is_empty() {
            return;
        }
        for child in children {
            let _ = kill(child, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(2));
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            if status == WaitStatus::StillAlive {
                break;
            }
        }
    }
}

/// The processes whose parent is `pid` (a single-threaded process: the guard), from
/// `/proc/<pid>/task/<pid>/children`, or by scanning `/proc/*/stat` where that is missing.
fn children_of(pid: Pid) -> Vec<Pid> {
    let parse = |text: &str| text.split_whitespace().filter_map(|p| p.parse().ok()).map(Pid::from_raw).collect();
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return parse(&text);
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                    .is_some_and(|ppid| ppid == pid.as_raw())
            })
        })
        .map(Pid::from_raw)
        .collect()
}

/// The guard's exit code for the trial's end: its exit status, or the same signal.
fn mirror(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => {
            // Default dispositions: blocked ones are delivered once unblocked.
            let _ = raise(signal);
            let mut set = SigSet::empty();
            set.add(signal);
            let _ = set.thread_unblock();
            128 + signal as i32
        }
        _ => 1,
    }
}
