//! The journal: an append-only, versioned JSON-lines log of everything that happened in an
//! experiment, written before the tuner acts on it. It is the experiment's source of truth:
//! `results.csv`, `hpo results` and `hpo best` are all computed from it, and it holds the
//! resolved spec, every start/resume with its config, every report with its decision, and
//! every end of a trial, so a crashed experiment can be replayed from it alone.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use hpo_space::Config;
use serde::{Deserialize, Deserializer, Serialize};

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
    /// The last line of an experiment that ended (absent after a crash).
    End { t: f64, reason: String },
}

/// Non-finite metrics are written as `null` (JSON has no NaN) and read back as NaN.
fn metrics_with_nulls<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'static, Metrics>, D::Error> {
    let raw = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(Cow::Owned(raw.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect()))
}

/// Appends entries to `journal.jsonl`; `flush` hands them to the OS.
#[derive(Debug)]
pub struct Journal {
    out: BufWriter<File>,
    path: PathBuf,
}

impl Journal {
    /// Creates the journal file (it must not exist) and writes the header line.
    pub fn create(path: &Path, name: &str, spec: serde_json::Value) -> io::Result<Journal> {
        let file = File::options().write(true).create_new(true).open(path)?;
        let mut journal = Journal { out: BufWriter::with_capacity(1 << 16, file), path: path.to_owned() };
        journal.append(&Entry::Experiment { v: JOURNAL_VERSION, name: name.to_owned(), spec })?;
        journal.flush()?;
        Ok(journal)
    }

    /// Appends one entry (buffered until [`Journal::flush`]).
    pub fn append(&mut self, entry: &Entry<'_>) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, entry)?;
        self.out.write_all(b"\n")
    }

    /// Hands everything appended to the OS.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
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
    /// A line is not a journal entry, or the header is missing or of another version.
    #[error("{path}:{line}: {message}")]
    Format { path: PathBuf, line: usize, message: String },
}

/// Reads a whole journal. A last line cut short by a crash is skipped; any other bad line,
/// a missing header or another format version is an error naming the line.
pub fn read_journal(path: &Path) -> Result<Vec<Entry<'static>>, JournalError> {
    let io_err = |source| JournalError::Io { path: path.to_owned(), source };
    let format_err = |line: usize, message: String| JournalError::Format { path: path.to_owned(), line, message };
    let lines: Vec<String> =
        BufReader::new(File::open(path).map_err(io_err)?).lines().collect::<Result<_, _>>().map_err(io_err)?;
    let mut entries = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Entry<'static>>(line) {
            Ok(entry) => entries.push(entry),
            Err(_) if i + 1 == lines.len() && i > 0 => break, // torn last write
            Err(e) => return Err(format_err(i + 1, e.to_string())),
        }
    }
    match entries.first() {
        Some(Entry::Experiment { v, .. }) if *v == JOURNAL_VERSION => Ok(entries),
        Some(Entry::Experiment { v, .. }) => {
            Err(format_err(1, format!("journal format version {v}; this hpo reads version {JOURNAL_VERSION}")))
        }
        _ => Err(format_err(1, "not an hpo journal: the first line is not an `experiment` entry".into())),
    }
}
