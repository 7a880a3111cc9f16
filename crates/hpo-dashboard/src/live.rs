//! The experiments a dashboard shows, each followed as its journal grows: new bytes are read
//! from where the last read stopped and applied entry by entry, never the whole file again.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hpo_core::{Entry, ExperimentResults, Status, TrialId};

/// How long a journal may stay the same before the dashboard asks again whether a writer
/// still holds it (the answer takes a shared lock for an instant).
const WRITER_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Where experiments are looked for: folders holding `journal.jsonl`, or folders of such
/// folders (as `runs/`), looked at again on every poll so new experiments appear.
#[derive(Debug)]
pub(crate) struct Experiments {
    roots: Vec<PathBuf>,
    pub list: Vec<Live>,
    /// Folders written by `hpo bench run` (holding `summary.json`), by key.
    pub benchmarks: Vec<(String, PathBuf)>,
}

/// A stretch of time a trial ran, from a start or resume to how it ended (if it did).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    pub trial: TrialId,
    pub start: f64,
    pub end: Option<(f64, Status)>,
}

/// One experiment folder as the dashboard knows it.
#[derive(Debug)]
pub(crate) struct Live {
    /// Its name in URLs: the folder's name, made unique with `-2`, `-3`, ...
    pub key: String,
    pub dir: PathBuf,
    /// Bytes of the journal read and applied.
    offset: u64,
    /// The start of a line whose end is not written yet.
    partial: Vec<u8>,
    /// `None` until the header is read.
    pub results: Option<ExperimentResults>,
    /// Journal entries applied, the header included: a version number of `results`.
    pub entries: usize,
    /// A line that does not fit (the journal stops being followed there).
    pub error: Option<String>,
    /// Every stretch a trial ran, in start order (a paused trial runs again from a resume).
    pub runs: Vec<Run>,
    /// Per trial, its stretch still running (an index into `runs`).
    open: HashMap<TrialId, usize>,
    /// Whether some process holds the journal's lock, and when that was last asked.
    pub writer: bool,
    writer_checked: Option<Instant>,
    grew: Instant,
}

impl Experiments {
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Experiments { roots, list: Vec::new(), benchmarks: Vec::new() }
    }

    pub fn get(&self, key: &str) -> Option<&Live> {
        self.list.iter().find(|e| e.key == key)
    }

    /// Finds new experiment folders and reads what their journals gained; returns the keys of
    /// the experiments that changed.
    pub fn poll(&mut self) -> Vec<String> {
        let known: HashSet<PathBuf> = self.list.iter().map(|e| e.dir.clone()).collect();
        for dir in self.roots.iter().flat_map(|root| folders_holding(root, "journal.jsonl")) {
            if !known.contains(&dir) {
                let key = unique_key(&dir, self.list.iter().map(|e| e.key.as_str()));
                self.list.push(Live::new(key, dir));
            }
        }
        let known: HashSet<PathBuf> = self.benchmarks.iter().map(|(_, dir)| dir.clone()).collect();
        for dir in self.roots.iter().flat_map(|root| folders_holding(root, "summary.json")) {
            if !known.contains(&dir) {
                let key = unique_key(&dir, self.benchmarks.iter().map(|(k, _)| k.as_str()));
                self.benchmarks.push((key, dir));
            }
        }
        self.list.iter_mut().filter_map(|e| e.poll().then(|| e.key.clone())).collect()
    }
}

/// `root` itself if it holds `file`, else its subfolders that do (by name): experiments hold
/// `journal.jsonl`, `hpo bench run` folders `summary.json`.
fn folders_holding(root: &Path, file: &str) -> Vec<PathBuf> {
    if root.join(file).is_file() {
        return vec![root.to_owned()];
    }
    let Ok(children) = std::fs::read_dir(root) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = children.flatten().map(|c| c.path()).filter(|p| p.join(file).is_file()).collect();
    dirs.sort();
    dirs
}

fn unique_key<'a>(dir: &Path, taken: impl Iterator<Item = &'a str> + Clone) -> String {
    let base = dir.file_name().map_or_else(|| "experiment".to_owned(), |n| n.to_string_lossy().into_owned());
    let free = |k: &str| taken.clone().all(|t| t != k);
    (1..).map(|i| if i == 1 { base.clone() } else { format!("{base}-{i}") }).find(|k| free(k)).unwrap_or(base)
}

impl Live {
    fn new(key: String, dir: PathBuf) -> Self {
        Live {
            key,
            dir,
            offset: 0,
            partial: Vec::new(),
            results: None,
            entries: 0,
            error: None,
            runs: Vec::new(),
            open: HashMap::new(),
            writer: false,
            writer_checked: None,
            grew: Instant::now(),
        }
    }

    fn journal(&self) -> PathBuf {
        self.dir.join("journal.jsonl")
    }

    /// Reads what the journal gained; true if anything changed.
    fn poll(&mut self) -> bool {
        let grew = self.error.is_none() && self.read_new().unwrap_or(false);
        if grew {
            self.grew = Instant::now();
        }
        let ended = self.results.as_ref().is_some_and(|r| r.end.is_some());
        let due = self.writer_checked.is_none_or(|t| t.elapsed() >= WRITER_CHECK_EVERY);
        let writer_changed = if !ended && (grew || due) {
            self.writer_checked = Some(Instant::now());
            let writer = grew || writer_alive(&self.journal());
            std::mem::replace(&mut self.writer, writer) != writer
        } else if ended && self.writer {
            self.writer = false;
            true
        } else {
            false
        };
        grew || writer_changed
    }

    fn read_new(&mut self) -> std::io::Result<bool> {
        let mut file = File::open(self.journal())?;
        let len = file.metadata()?.len();
        if len < self.offset {
            // Replaced or cut: start over.
            *self = Live::new(std::mem::take(&mut self.key), std::mem::take(&mut self.dir));
        }
        if len == self.offset {
            return Ok(false);
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = std::mem::take(&mut self.partial);
        let start = bytes.len();
        file.take(len - self.offset).read_to_end(&mut bytes)?;
        self.offset += (bytes.len() - start) as u64;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.partial = bytes.split_off(complete);
        let before = self.entries;
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if let Err(message) = self.apply(line) {
                self.error = Some(format!("{}: line {}: {message}", self.journal().display(), self.entries + 1));
                break;
            }
        }
        Ok(self.entries > before || self.error.is_some())
    }

    fn apply(&mut self, line: &[u8]) -> Result<(), String> {
        let entry: Entry<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        match &mut self.results {
            None => self.results = Some(ExperimentResults::from_header(&entry).map_err(|e| e.message)?),
            Some(results) => results.apply(&entry)?,
        }
        self.entries += 1;
        self.track_runs(&entry);
        Ok(())
    }

    fn track_runs(&mut self, entry: &Entry<'_>) {
        let (trial, t, ended) = match *entry {
            Entry::Start { trial, t, .. } | Entry::Resume { trial, t, .. } => {
                self.open.insert(trial, self.runs.len());
                self.runs.push(Run { trial, start: t, end: None });
                return;
            }
            Entry::Complete { trial, t, .. } => (trial, t, Status::Completed),
            Entry::Fail { trial, t, .. } => (trial, t, Status::Failed),
            Entry::Stopped { trial, t } => (trial, t, Status::Stopped),
            Entry::Paused { trial, t } | Entry::Preempted { trial, t } => (trial, t, Status::Paused),
            _ => return,
        };
        if let Some(run) = self.open.remove(&trial).and_then(|i| self.runs.get_mut(i)) {
            run.end = Some((t, ended));
        }
    }

    /// running, ended (and why), crashed (no end and no writer), or waiting for its header.
    pub fn status(&self) -> String {
        match &self.results {
            None => "starting".into(),
            Some(r) => match &r.end {
                Some((_, reason)) => format!("ended ({reason})"),
                None if self.writer => "running".into(),
                None => "crashed".into(),
            },
        }
    }

    /// Seconds since the journal last grew.
    pub fn idle(&self) -> f64 {
        self.grew.elapsed().as_secs_f64()
    }
}

/// Whether a process holds the journal's lock (every writer does while it runs).
fn writer_alive(path: &Path) -> bool {
    File::open(path).is_ok_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_journal_is_followed_line_by_line_and_a_torn_line_waits_for_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exp = dir.path().join("exp");
        std::fs::create_dir(&exp).expect("mkdir");
        let mut journal = File::create(exp.join("journal.jsonl")).expect("journal");
        let header = r#"{"event":"experiment","v":1,"name":"exp","spec":{"metric":"loss","mode":"min"}}"#;
        writeln!(journal, "{header}").expect("write");
        let mut experiments = Experiments::new(vec![dir.path().to_owned()]);
        assert_eq!(experiments.poll(), ["exp"]);
        // A journal that grows has a writer.
        assert_eq!(experiments.get("exp").map(|e| (e.entries, e.status())), Some((1, "running".to_owned())));

        write!(journal, r#"{{"event":"start","t":0.0,"trial":0,"config":{{"x":1}}}}{}{{"event":"rep"#, "\n")
            .expect("write");
        experiments.poll();
        let live = experiments.get("exp").expect("exp");
        assert_eq!((live.entries, live.results.as_ref().map(|r| r.trials.len())), (2, Some(1)));
        writeln!(journal, r#"ort","t":1.0,"trial":0,"metrics":{{"loss":0.5}},"decision":"continue"}}"#).expect("write");
        writeln!(journal, r#"{{"event":"end","t":2.0,"reason":"max_trials"}}"#).expect("write");
        assert_eq!(experiments.poll(), ["exp"]);
        let live = experiments.get("exp").expect("exp");
        assert_eq!(live.results.as_ref().and_then(|r| r.trials[0].best), Some(0.5));
        assert_eq!(live.status(), "ended (max_trials)");
        assert!(experiments.poll().is_empty(), "nothing new");

        // A second folder of the same name elsewhere gets its own key.
        std::fs::create_dir_all(dir.path().join("more/exp")).expect("mkdir");
        std::fs::write(dir.path().join("more/exp/journal.jsonl"), format!("{header}\n")).expect("write");
        experiments.roots.push(dir.path().join("more"));
        assert_eq!(experiments.poll(), ["exp-2"]);
    }

    #[test]
    fn a_line_that_does_not_fit_is_reported_with_its_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let header = r#"{"event":"experiment","v":1,"name":"exp","spec":{"metric":"loss"}}"#;
        let text = format!("{header}\n{}\n", r#"{"event":"complete","t":1.0,"trial":7}"#);
        std::fs::write(dir.path().join("journal.jsonl"), text).expect("write");
        let mut experiments = Experiments::new(vec![dir.path().to_owned()]);
        experiments.poll();
        let error = experiments.list[0].error.clone().unwrap_or_default();
        assert!(error.contains("journal.jsonl: line 2: ") && error.contains("trial 7"), "{error}");
    }
}
