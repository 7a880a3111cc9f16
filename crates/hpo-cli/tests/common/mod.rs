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

/// Stdout and stderr together, for assertion messages.
pub fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
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
