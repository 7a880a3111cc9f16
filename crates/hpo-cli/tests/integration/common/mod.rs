//! Helpers shared by the CLI's integration tests.
#![allow(dead_code, clippy::unwrap_used)] // not every test file uses every helper

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The repository's root folder.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Runs `hpo` with `args` in `cwd`.
pub fn hpo(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hpo")).args(args).current_dir(cwd).output().unwrap()
}

/// A Python training script (with the repository's `hpo_report` helper) that keeps its last
/// epoch in its checkpoint folder and goes on from there: `epochs` epochs of `seconds`
/// each, reporting `epoch` and `loss`; `extra` runs first.
pub fn checkpointing_script(seconds: f64, extra: &str) -> String {
    format!(
        r#"import os, sys, time
sys.path.insert(0, {helper:?})
from hpo_report import config, checkpoint_dir, report
cfg = config()
{extra}
ckpt = os.path.join(checkpoint_dir(), "epoch.txt")
start = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
for epoch in range(start + 1, int(cfg["epochs"]) + 1):
    time.sleep({seconds})
    open(ckpt, "w").write(str(epoch))
    report(epoch=epoch, loss=cfg["x"] + 1.0 / epoch)
"#,
        helper = repo().join("python").display().to_string()
    )
}

/// Waits (up to a minute) until the experiment's journal holds `n` reports (of `trial` if
/// given).
pub fn wait_for_reports(folder: &Path, trial: Option<u64>, n: usize) {
    let start = std::time::Instant::now();
    let of_trial = trial.map(|t| format!(r#""trial":{t},"#)).unwrap_or_default();
    loop {
        let text = std::fs::read_to_string(folder.join("journal.jsonl")).unwrap_or_default();
        if text.lines().filter(|l| l.contains(r#""event":"report""#) && l.contains(&of_trial)).count() >= n {
            return;
        }
        assert!(start.elapsed().as_secs() < 60, "fewer than {n} reports (trial {trial:?})");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Stdout and stderr together, for assertion messages.
pub fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Stdout and stderr, apart.
pub fn streams(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The entries of the experiment folder's `journal.jsonl`.
pub fn journal(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The entries of one kind (`start`, `report`, `fail`, ...).
pub fn events<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["event"] == kind).collect()
}

/// Writes `exp.toml` and the given scripts into a fresh folder.
pub fn setup(experiment: &str, scripts: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), experiment).unwrap();
    for (name, body) in scripts {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// Starts `<hpo_bin> run exp.toml -q` in `cwd` in the background, its output piped.
pub fn spawn_run(hpo_bin: &Path, cwd: &Path) -> std::process::Child {
    Command::new(hpo_bin)
        .args(["run", "exp.toml", "-q"])
        .current_dir(cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// How many processes have a command line matching `pattern` (`pgrep -f`).
pub fn processes_matching(pattern: &str) -> usize {
    let out = Command::new("pgrep").args(["-f", pattern]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Processes matching `pattern` still there after up to 10 s of waiting for them to go: a
/// killed process leaves the table only when reaped, which takes a moment on a loaded machine;
/// one that was left behind for good is still counted.
pub fn processes_left(pattern: &str) -> usize {
    let start = std::time::Instant::now();
    loop {
        let n = processes_matching(pattern);
        if n == 0 || start.elapsed() > std::time::Duration::from_secs(10) {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether a test's optional dependency is there. Without it the test is skipped, and says
/// so where `cargo test` shows it (written to stderr directly: libtest captures only the
/// print macros); with the environment variable `require` set (as CI sets it), a missing
/// dependency fails the test instead.
pub fn available(what: &str, present: bool, require: &str) -> bool {
    if !present {
        assert!(std::env::var_os(require).is_none(), "{require} is set but {what} is missing");
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "skipped: {what} is missing ({require}=1 makes this a failure)");
    }
    present
}
