//! The journal: an append-only, versioned JSON-lines log of everything that happened in an
//! experiment, written before the tuner acts on it. It is the experiment's source of truth:
//! `results.csv`, `hpo results` and `hpo best` are all computed from it, and it holds the
//! resolved spec, every start/resume with its config, every report with its decision, and
//! every end of a trial, so a crashed experiment can be replayed from it alone.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use hpo_space::Config;
use serde::{Deserialize, Deserializer, Serialize};

use crate::traits::{Event, EventKind};
use crate::tuner::{EndReason, StopCriteria};
use crate::types::{Decision, Metrics, TrialId};

/// The journal format version written in the first line; readers refuse other versions.
pub const JOURNAL_VERSION: u32 = 1;

/// One line of the journal. In every entry `t` is the backend's time in seconds and `trial`
/// the trial's id.
#[allow(missing_docs)] // the fields are the names above and those documented where they are new
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry<'a> {
    /// Always the first line: format version, experiment name and the resolved spec.
    Experiment { v: u32, name: String, spec: serde_json::Value },
    /// A new trial, with its config (and the trial whose checkpoint it starts from).
    Start {
        t: f64,
        trial: TrialId,
        config: Cow<'a, Config>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint_from: Option<TrialId>,
    },
    /// A paused trial goes on, with this config.
    Resume { t: f64, trial: TrialId, config: Cow<'a, Config> },
    /// A report and the scheduler's decision on it.
    Report {
        t: f64,
        trial: TrialId,
        #[serde(deserialize_with = "metrics_with_nulls")]
        metrics: Cow<'a, Metrics>,
        decision: Decision,
    },
    /// The trial ended normally.
    Complete {
        t: f64,
        trial: TrialId,
        /// The trial ended well without a single report: most likely a script that never
        /// printed its metrics.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        no_report: bool,
    },
    /// The trial failed, and why.
    Fail { t: f64, trial: TrialId, error: String },
    /// The trial ended after being told to stop.
    Stopped { t: f64, trial: TrialId },
    /// The trial ended after being told to pause.
    Paused { t: f64, trial: TrialId },
    /// The cluster preempted the trial (not a failure): it is launched again (a `resume`).
    Preempted { t: f64, trial: TrialId },
    /// The experiment went on (`hpo resume`) from here, with these budgets.
    Continued { t: f64, workers: usize, stop: StopCriteria },
    /// The experiment began to end, for this reason: nothing new starts, running trials
    /// are told to stop.
    Ending { t: f64, reason: EndReason },
    /// The last line of an experiment that ended (absent after a crash).
    End { t: f64, reason: String },
}

impl Entry<'_> {
    /// Its `t`; the header has none.
    pub fn time(&self) -> Option<f64> {
        match self {
            Entry::Experiment { .. } => None,
            Entry::Start { t, .. }
            | Entry::Resume { t, .. }
            | Entry::Report { t, .. }
            | Entry::Complete { t, .. }
            | Entry::Fail { t, .. }
            | Entry::Stopped { t, .. }
            | Entry::Paused { t, .. }
            | Entry::Preempted { t, .. }
            | Entry::Continued { t, .. }
            | Entry::Ending { t, .. }
            | Entry::End { t, .. } => Some(*t),
        }
    }
}

/// Non-finite metrics are written as `null` (JSON has no NaN) and read back as NaN.
fn metrics_with_nulls<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'static, Metrics>, D::Error> {
    Metrics::deserialize(d).map(Cow::Owned)
}

/// Appends entries to `journal.jsonl`; `flush` hands them to the OS.
///
/// A journal reopened by [`Journal::resume`] first checks instead of writing: every entry
/// appended must be the next one recorded, byte for byte, until none is left; then it appends.
#[derive(Debug)]
pub struct Journal {
    out: BufWriter<File>,
    path: PathBuf,
    /// Lines in the file, the header included.
    lines: u64,
    /// Entries an earlier run recorded that a resumed run must make again, in order.
    replay: VecDeque<String>,
    /// The time of the next entry to make again, or of the last one made once none is left
    /// (read once per entry: the clock of a replay asks for it often).
    recorded_t: f64,
    /// The test setting [`ABORT_AFTER_ENTRIES`]: abort once the file has this many lines.
    abort_after: Option<u64>,
    sync: JournalSync,
    /// When the oldest entry not yet handed to the OS was appended.
    unflushed_since: Option<Instant>,
}

/// How far [`Journal::flush`] takes the entries of a round before the tuner acts on them
/// (`journal_sync` in the experiment file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalSync {
    /// Handed to the OS: survives a killed hpo, not a power loss or a crashed machine.
    #[default]
    Os,
    /// On the disk (fsync): survives a power loss too, at the cost of one fsync per round.
    Disk,
}

/// Fault injection for tests: with `HPO_ABORT_AFTER_ENTRIES=N` in the environment, the process
/// aborts (no cleanup, no `end`) right after the journal's N-th line (the header is line 1)
/// reaches the OS; each line is flushed on its own then. Never set it in real runs.
pub const ABORT_AFTER_ENTRIES: &str = "HPO_ABORT_AFTER_ENTRIES";

impl Journal {
    /// Creates the journal file (it must not exist) and writes the header line.
    pub fn create(path: &Path, name: &str, spec: serde_json::Value) -> io::Result<Journal> {
        let file = File::options().write(true).create_new(true).open(path)?;
        lock(&file, path).map_err(|e| io::Error::other(e.to_string()))?;
        let mut journal = Journal::appending_to(file, path, 0, VecDeque::new());
        journal.append(&Entry::Experiment { v: JOURNAL_VERSION, name: name.to_owned(), spec })?;
        journal.flush()?;
        Ok(journal)
    }

    /// Reopens a journal read by [`Recorded::read`] to go on with its experiment: a last line
    /// cut short by a crash is cut off, and so is the `end` entry of an experiment that
    /// ended (it is extended). The entries after the header are then to be made again, in
    /// order, by a run of the same experiment from its start (see [`Journal::replaying`]).
    pub fn resume(recorded: Recorded) -> Result<Journal, JournalError> {
        let path = recorded.path.as_path();
        let io_err = |source| JournalError::Io { path: path.to_owned(), source };
        let mut lines: Vec<&str> = recorded.text[..recorded.whole].split_inclusive('\n').collect();
        if recorded.ended {
            lines.pop();
        }
        let kept: usize = lines.iter().map(|l| l.len()).sum();
        let file = File::options().append(true).open(path).map_err(io_err)?;
        lock(&file, path)?;
        file.set_len(kept as u64).map_err(io_err)?;
        let replay = lines[1..].iter().map(|l| l.trim_end_matches('\n').to_owned()).collect();
        Ok(Journal::appending_to(file, path, 1, replay))
    }

    fn appending_to(file: File, path: &Path, lines: u64, replay: VecDeque<String>) -> Journal {
        let abort_after = std::env::var(ABORT_AFTER_ENTRIES).ok().and_then(|n| n.parse().ok());
        let out = BufWriter::with_capacity(1 << 16, file);
        let recorded_t = replay.front().and_then(|l| time_of(l)).unwrap_or(0.0);
        let sync = JournalSync::Os;
        Journal { out, path: path.to_owned(), lines, replay, recorded_t, abort_after, sync, unflushed_since: None }
    }

    /// Appends one entry (buffered until [`Journal::flush`]); while replaying, checks it is
    /// the next one recorded instead.
    pub fn append(&mut self, entry: &Entry<'_>) -> io::Result<()> {
        if let Some(recorded) = self.replay.front() {
            let made = serde_json::to_string(entry)?;
            if made != *recorded {
                let line = self.lines + 1;
                let path = self.path.display();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{path}:{line}: going on with the experiment made `{made}` where it recorded `{recorded}`"),
                ));
            }
            self.replay.pop_front();
            self.lines += 1;
            let made_t = entry.time().unwrap_or(self.recorded_t);
            self.recorded_t = self.replay.front().and_then(|l| time_of(l)).unwrap_or(made_t);
            return Ok(());
        }
        serde_json::to_writer(&mut self.out, entry)?;
        self.out.write_all(b"\n")?;
        self.lines += 1;
        self.unflushed_since.get_or_insert_with(Instant::now);
        if let Some(n) = self.abort_after {
            self.out.flush()?;
            if self.lines == n {
                std::process::abort();
            }
        }
        Ok(())
    }

    /// Whether entries recorded before a resume are still to be made again.
    pub fn replaying(&self) -> bool {
        !self.replay.is_empty()
    }

    /// The time and budgets of a recorded [`Entry::Continued`], if it is the next entry to
    /// make again: the experiment went on with them from this point.
    pub fn recorded_go_on(&self) -> Option<(f64, usize, StopCriteria)> {
        continued(self.replay.front()?)
    }

    /// The reason of a recorded [`Entry::Ending`], if it is the next entry to make again: the
    /// experiment began to end at this point (and time).
    pub fn recorded_ending(&self) -> Option<(EndReason, f64)> {
        let line = self.replay.front().filter(|l| l.starts_with(r#"{"event":"ending""#))?;
        match serde_json::from_str(line) {
            Ok(Entry::Ending { t, reason }) => Some((reason, t)),
            _ => None,
        }
    }

    /// The backend event that made the next recorded entry, if it is a trial's report or
    /// end: a run going on without the backend that ran it takes its events from here.
    /// `Err` holds the entry when it is one the run should have made itself by now.
    pub fn recorded_event(&self) -> Option<Result<Event, String>> {
        let line = self.replay.front()?;
        let (time, trial_id, kind) = match serde_json::from_str(line) {
            Ok(Entry::Report { t, trial, metrics, .. }) => (t, trial, EventKind::Report(metrics.into_owned())),
            Ok(Entry::Complete { t, trial, .. }) => (t, trial, EventKind::Completed),
            Ok(Entry::Fail { t, trial, error }) => (t, trial, EventKind::Failed(error)),
            Ok(Entry::Stopped { t, trial }) => (t, trial, EventKind::Stopped),
            Ok(Entry::Paused { t, trial }) => (t, trial, EventKind::Paused),
            Ok(Entry::Preempted { t, trial }) => (t, trial, EventKind::Preempted),
            _ => return Some(Err(line.clone())),
        };
        Some(Ok(Event { time, trial_id, kind }))
    }

    /// The time of the next recorded entry, or of the last one made again once none is
    /// left: the clock of a run making recorded entries again without their backend.
    pub fn recorded_time(&self) -> f64 {
        self.recorded_t
    }

    /// From now on, [`Journal::flush`] takes entries this far.
    pub fn sync(mut self, sync: JournalSync) -> Journal {
        self.sync = sync;
        self
    }

    /// Hands everything appended to the OS, and with [`JournalSync::Disk`] to the disk.
    pub fn flush(&mut self) -> io::Result<()> {
        self.unflushed_since = None;
        self.out.flush()?;
        match self.sync {
            JournalSync::Os => Ok(()),
            JournalSync::Disk => self.out.get_ref().sync_data(),
        }
    }

    /// When the oldest entry not yet handed to the OS was appended, if any.
    pub fn unflushed_since(&self) -> Option<Instant> {
        self.unflushed_since
    }

    /// How far [`Journal::flush`] takes entries.
    pub fn sync_mode(&self) -> JournalSync {
        self.sync
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A journal could not be read.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the fields say which file, line and what
pub enum JournalError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// Another process writes this journal: its experiment is running.
    #[error(
        "{path}: another hpo is running this experiment (it holds the journal's lock); let it end or stop it first"
    )]
    InUse { path: PathBuf },
    /// A line is not a journal entry, or the header is missing or of another version.
    #[error("{path}:{line}: {message}")]
    Format { path: PathBuf, line: usize, message: String },
}

/// Takes the journal's lock for as long as `file` is open (the OS lets it go when the
/// process dies, however it dies): one writer per experiment. A file system without locks
/// is no reason to refuse.
/// A reader may hold a shared lock for an instant (`hpo dashboard` asks whether a writer is
/// alive that way), so a lock found taken is tried again for 50 ms before giving up.
fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    for _ in 0..10 {
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(std::time::Duration::from_millis(5)),
            _ => return Ok(()),
        }
    }
    Err(JournalError::InUse { path: path.to_owned() })
}

/// What going on with an experiment needs to know of its journal, read without parsing
/// every entry (a journal may hold millions).
#[derive(Debug)]
pub struct Recorded {
    path: PathBuf,
    text: String,
    /// Bytes of the lines a crash left whole.
    whole: usize,
    /// The header's spec.
    pub spec: serde_json::Value,
    /// Whether the last entry is `end`.
    pub ended: bool,
    /// Whether it ended interrupted (Ctrl-C, SIGTERM): it is not done.
    pub interrupted: bool,
    /// Workers and stopping criteria of the last [`Entry::Continued`], if any.
    pub last_budgets: Option<(usize, StopCriteria)>,
}

impl Recorded {
    /// Reads the journal at `path`: its header must be right; a last line cut short by a
    /// crash is left out.
    pub fn read(path: &Path) -> Result<Recorded, JournalError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| JournalError::Io { path: path.to_owned(), source })?;
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        let parse = |line: &str| serde_json::from_str::<Entry<'static>>(line).ok();
        let mut last = lines.last().filter(|l| l.ends_with('\n')).and_then(|l| parse(l));
        if lines.len() > 1 && last.is_none() {
            lines.pop(); // torn last write
            last = lines.last().and_then(|l| parse(l));
        }
        let header = lines.first().and_then(|l| parse(l));
        let spec = match check_header(path, header.as_ref())? {
            Entry::Experiment { spec, .. } => spec.clone(),
            _ => serde_json::Value::Null,
        };
        let ended = lines.len() > 1 && matches!(last, Some(Entry::End { .. }));
        let interrupted =
            ended && matches!(&last, Some(Entry::End { reason, .. }) if reason == EndReason::Interrupted.as_str());
        let last_budgets = lines.iter().rev().find_map(|l| continued(l)).map(|(_, workers, stop)| (workers, stop));
        let whole = lines.iter().map(|l| l.len()).sum();
        Ok(Recorded { path: path.to_owned(), text, whole, spec, ended, interrupted, last_budgets })
    }
}

/// The `t` of a journal line, if it has one.
fn time_of(line: &str) -> Option<f64> {
    #[derive(Deserialize)]
    struct Stamp {
        t: Option<f64>,
    }
    serde_json::from_str::<Stamp>(line).ok()?.t
}

/// The time and budgets of a journal line if it is a `continued` entry (looked at without
/// parsing any other line).
fn continued(line: &str) -> Option<(f64, usize, StopCriteria)> {
    if !line.starts_with(r#"{"event":"continued""#) {
        return None;
    }
    match serde_json::from_str(line) {
        Ok(Entry::Continued { t, workers, stop }) => Some((t, workers, stop)),
        _ => None,
    }
}

/// The header if it is one of this format version, or the error naming line 1.
fn check_header<'e>(path: &Path, header: Option<&'e Entry<'static>>) -> Result<&'e Entry<'static>, JournalError> {
    let error = |message: String| JournalError::Format { path: path.to_owned(), line: 1, message };
    match header {
        Some(entry @ Entry::Experiment { v, .. }) if *v == JOURNAL_VERSION => Ok(entry),
        Some(Entry::Experiment { v, .. }) => {
            Err(error(format!("journal format version {v}; this hpo reads version {JOURNAL_VERSION}")))
        }
        _ => Err(error("not an hpo journal: the first line is not an `experiment` entry".into())),
    }
}

/// What is wrong with a line of a journal read by [`stream_journal`].
pub(crate) enum LineError {
    /// It is not an entry: forgiven for the last line (cut short by a crash).
    NotAnEntry(String),
    /// The entry does not fit the ones before.
    DoesNotFit(String),
}

/// Reads a journal line by line without holding it: checks the header and makes a state of
/// it with `start`, then hands each later line's number and text to `on_line`. A line it
/// finds wrong is an error naming the line, unless it is the last and not an entry.
pub(crate) fn stream_journal<S>(
    path: &Path,
    start: impl FnOnce(Entry<'static>) -> Result<S, String>,
    mut on_line: impl FnMut(&mut S, usize, &str) -> Result<(), LineError>,
) -> Result<S, JournalError> {
    let io_err = |source| JournalError::Io { path: path.to_owned(), source };
    let format_err = |line: usize, message: String| JournalError::Format { path: path.to_owned(), line, message };
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err)?);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(io_err)?;
    let header = serde_json::from_str::<Entry<'static>>(&line).ok();
    let header = check_header(path, header.as_ref())?.clone();
    let mut state = start(header).map_err(|message| format_err(1, message))?;
    let mut torn: Option<(usize, String)> = None;
    for number in 2.. {
        line.clear();
        if reader.read_line(&mut line).map_err(io_err)? == 0 {
            break;
        }
        if let Some((line, message)) = torn.take() {
            return Err(format_err(line, message));
        }
        match on_line(&mut state, number, &line) {
            Ok(()) => {}
            Err(LineError::NotAnEntry(message)) => torn = Some((number, message)),
            Err(LineError::DoesNotFit(message)) => return Err(format_err(number, message)),
        }
    }
    Ok(state)
}

/// Reads a whole journal. A last line cut short by a crash is skipped; any other bad line,
/// a missing header or another format version is an error naming the line.
pub fn read_journal(path: &Path) -> Result<Vec<Entry<'static>>, JournalError> {
    stream_journal(
        path,
        |header| Ok(vec![header]),
        |entries, _, line| {
            let entry = serde_json::from_str(line).map_err(|e| LineError::NotAnEntry(e.to_string()))?;
            entries.push(entry);
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(trial: TrialId) -> Entry<'static> {
        Entry::Complete { t: trial as f64, trial, no_report: false }
    }

    /// A journal of a header and trials 0..n completing, ended, with a torn line after.
    fn recorded(dir: &Path, n: TrialId) -> PathBuf {
        let path = dir.join("journal.jsonl");
        let mut journal = Journal::create(&path, "x", serde_json::json!({})).unwrap();
        for trial in 0..n {
            journal.append(&complete(trial)).unwrap();
        }
        journal.append(&Entry::End { t: 9.0, reason: "max_trials".into() }).unwrap();
        journal.flush().unwrap();
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(br#"{"event":"comp"#).unwrap();
        path
    }

    #[test]
    fn a_resumed_journal_checks_the_recorded_entries_then_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = recorded(dir.path(), 2);
        let mut journal = Journal::resume(Recorded::read(&path).unwrap()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3, "torn line and `end` cut");
        assert!(journal.replaying());
        journal.append(&complete(0)).unwrap();
        journal.append(&complete(1)).unwrap();
        assert!(!journal.replaying());
        journal.append(&complete(2)).unwrap();
        journal.flush().unwrap();
        let entries = read_journal(&path).unwrap();
        assert_eq!(entries[1..], [complete(0), complete(1), complete(2)], "made again, not written twice");
    }

    #[test]
    fn a_resumed_run_that_differs_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = recorded(dir.path(), 2);
        let mut journal = Journal::resume(Recorded::read(&path).unwrap()).unwrap();
        journal.append(&complete(0)).unwrap();
        let error = journal.append(&complete(5)).unwrap_err().to_string();
        assert!(error.contains("journal.jsonl:3: ") && error.contains(r#""trial":5"#), "{error}");
        assert!(error.contains(r#"recorded `{"event":"complete","t":1.0,"trial":1}`"#), "{error}");
        journal.flush().unwrap();
        assert_eq!(read_journal(&path).unwrap()[1..], [complete(0), complete(1)], "nothing recorded is lost");
    }
}
