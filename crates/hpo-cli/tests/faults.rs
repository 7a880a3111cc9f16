#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Faults and bad input, each as a class: the `hpo` binary driven as a user drives it, with
//! generated inputs of every kind the class covers.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{events, hpo, journal, text};

/// An experiment on the thread backend's `height` objective with `space` and `searcher`.
fn height_experiment(space: &str, searcher: &str, max_trials: u64) -> String {
    format!(
        "name = \"exp\"\nmetric = \"mean_loss\"\nmode = \"min\"\nresource_attr = \"epoch\"\nworkers = 2\n\
         [space]\n{space}\n[searcher]\n{searcher}\n[scheduler]\ntype = \"fifo\"\n\
         [backend]\ntype = \"threads\"\nobjective = \"height\"\n[stop]\nmax_trials = {max_trials}\n"
    )
}

/// Runs `hpo args` in `cwd` with its address space limited to `mb` megabytes.
fn hpo_limited(args: &[&str], cwd: &Path, mb: u64) -> Output {
    let mut command = format!("ulimit -v {}; exec \"$0\"", mb * 1024);
    for i in 1..=args.len() {
        command.push_str(&format!(" \"${i}\""));
    }
    Command::new("sh")
        .arg("-c")
        .arg(command)
        .arg(env!("CARGO_BIN_EXE_hpo"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

#[test]
fn finite_spaces_of_any_size_are_drawn_in_small_memory() {
    let spaces = [
        "seed = { randint = [0, 2000000000] }",
        "seed = { randint = [-9223372036854775808, 9223372036854775807] }",
        "r = { finrange = [0.0, 1.0, 100000000000] }",
        "r = { logfinrange = [1e-9, 1.0, 50000000000] }",
        "w = { lograndint = [1, 1000000000000000] }",
        "a = { randint = [0, 50000000] }\nb = { choice = [\"x\", \"y\"] }\nc = { finrange = [0.0, 1.0, 3000000000] }",
    ];
    let searchers = [
        "type = \"random\"",
        "type = \"grid\"",
        "type = \"grid\"\nshuffle = true",
        "type = \"tpe\"\nn_startup = 2",
        "type = \"bo\"\nn_startup = 2",
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, space) in spaces.iter().enumerate() {
        for (j, searcher) in searchers.iter().enumerate() {
            let file = format!("e{i}-{j}.toml");
            std::fs::write(dir.path().join(&file), height_experiment(space, searcher, 4)).unwrap();
            let out = hpo_limited(&["run", &file, "--quiet", "--name", &format!("e{i}-{j}")], dir.path(), 1500);
            assert!(out.status.success(), "{space} with {searcher}:\n{}", text(&out));
            let entries = journal(&dir.path().join(format!("runs/e{i}-{j}")));
            assert_eq!(events(&entries, "start").len(), 4, "{space} with {searcher}");
        }
    }
}

#[test]
fn a_grid_too_large_to_enumerate_says_so_before_any_trial() {
    let dir = tempfile::tempdir().unwrap();
    let space = "a = { randint = [0, 9223372036854775806] }\nb = { randint = [0, 9223372036854775806] }";
    std::fs::write(
        dir.path().join("e.toml"),
        height_experiment(space, "type = \"grid\"\npoints_per_numeric = 10000000000", 5),
    )
    .unwrap();
    let out = hpo(&["run", "e.toml", "--quiet"], dir.path());
    assert!(!out.status.success());
    let all = text(&out);
    assert!(all.contains("`b`") && all.contains("too large to enumerate"), "{all}");
    assert!(!dir.path().join("runs/exp").exists(), "no experiment folder for a run that never started");
}
