#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Faults and bad input, each as a class: the `hpo` binary driven as a user drives it, with
//! generated inputs of every kind the class covers.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{events, hpo, journal, processes_matching, setup, text};

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

/// A process-backend experiment running `command` for `max_trials` trials on `workers`.
fn process_experiment(command: &str, workers: usize, max_trials: u64, extra: &str) -> String {
    format!(
        "name = \"exp\"\nmetric = \"loss\"\nresource_attr = \"epoch\"\nworkers = {workers}\n\
         [space]\nx = {{ uniform = [0, 1] }}\n[backend]\ntype = \"process\"\ncommand = {command}\n{extra}\n\
         [stop]\nmax_trials = {max_trials}\n"
    )
}

#[test]
fn trial_output_is_bytes_and_reading_never_stops() {
    // Bytes that are not UTF-8, in many shapes, on stdout and stderr, between the reports.
    let garbage = [r"caf\351", r"\377\376\375", r"\300\200", r"\355\240\200", r"[tune-metric]\351: {}", r"\200"];
    for (i, bytes) in garbage.iter().enumerate() {
        let script = format!(
            "#!/bin/sh\nfor e in 1 2 3; do\n  printf '{bytes}\\n'\n  printf '{bytes}\\n' >&2\n  \
             echo \"[tune-metric]: {{\\\"epoch\\\": $e, \\\"loss\\\": 1.5}}\"\ndone\n\
             head -c 300000 /dev/urandom | tr -d '\\n'\necho\necho '[tune-metric]: {{\"epoch\": 4, \"loss\": 1}}'\n"
        );
        let dir = setup(&process_experiment("[\"./t.sh\"]", 2, 3, ""), &[("t.sh", &script)]);
        let out = hpo(&["run", "exp.toml", "-q"], dir.path());
        assert!(out.status.success(), "{bytes}: {}", text(&out));
        let entries = journal(&dir.path().join("runs/exp"));
        assert_eq!(events(&entries, "report").len(), 12, "{bytes}: every report of 3 trials, case {i}");
        assert_eq!(events(&entries, "complete").len(), 3, "{bytes}");
        let log = std::fs::read(dir.path().join("runs/exp/trials/0/stdout.log")).unwrap();
        assert!(log.len() > 290_000, "{bytes}: the stdout log keeps every line");
    }
}

#[test]
fn a_malformed_metrics_line_fails_the_trial_whatever_the_timing() {
    let payloads = [
        r#"{"epoch": 1, "loss": NaN}"#,
        r#"{"epoch": 1, "loss": Infinity}"#,
        r#"{"epoch": 1, "loss": "0.5"}"#,
        r#"{"epoch": 1, "loss": [0.5]}"#,
        r#"{"epoch": 1, "loss": {"v": 1}}"#,
        r#"[1, 2]"#,
        r#"{"epoch": 1, "loss": 0.5"#,
        "\\351",
    ];
    for payload in payloads {
        // The only output, and the script exits at once: the line races the exit.
        let script = format!("#!/bin/sh\nprintf '%s\\n' '[tune-metric]: {payload}'\n");
        let script = script.replace("'\\351'", "\"$(printf '\\351')\"");
        let dir = setup(&process_experiment("[\"./t.sh\"]", 4, 40, ""), &[("t.sh", &script)]);
        let out = hpo(&["run", "exp.toml", "-q"], dir.path());
        let entries = journal(&dir.path().join("runs/exp"));
        assert_eq!(events(&entries, "complete").len(), 0, "{payload}: {}", text(&out));
        assert_eq!(events(&entries, "fail").len(), 40, "{payload}");
        assert!(events(&entries, "fail")[0]["error"].as_str().unwrap().contains("malformed metrics line"), "{payload}");
    }
    // A string says so, naming the key.
    let script = "#!/bin/sh\necho '[tune-metric]: {\"epoch\": 1, \"loss\": \"low\"}'\n";
    let dir = setup(&process_experiment("[\"./t.sh\"]", 1, 1, ""), &[("t.sh", script)]);
    hpo(&["run", "exp.toml", "-q"], dir.path());
    let entries = journal(&dir.path().join("runs/exp"));
    let error = events(&entries, "fail")[0]["error"].as_str().unwrap().to_owned();
    assert!(error.contains("`loss` is a string (\"low\"), expected a number"), "{error}");
}

#[test]
fn durations_beyond_any_clock_are_refused_with_the_key() {
    let huge = ["18446744073709551615s", "99999999999999d", "584942417356years"];
    for d in huge {
        let dir = setup(&process_experiment("[\"true\"]", 1, 1, ""), &[]);
        let out = hpo(&["run", "exp.toml", "-q", "--max-wallclock", d], dir.path());
        assert!(!out.status.success());
        let refused = |t: &str| t.contains("at most 100 years") || t.contains("is not a duration like");
        assert!(text(&out).contains("--max-wallclock") && refused(&text(&out)), "{d}: {}", text(&out));
        for (key, line) in
            [("timeout", format!("timeout = \"{d}\"")), ("grace_period", format!("grace_period = \"{d}\""))]
        {
            let dir = setup(&process_experiment("[\"true\"]", 1, 1, &line), &[]);
            let out = hpo(&["run", "exp.toml", "-q"], dir.path());
            assert!(!out.status.success(), "{key} = {d}");
            assert!(text(&out).contains(key) && refused(&text(&out)), "{key} = {d}: {}", text(&out));
        }
        let dir = setup(
            &process_experiment("[\"true\"]", 1, 1, "")
                .replace("[stop]\n", &format!("[stop]\nmax_wallclock = \"{d}\"\n")),
            &[],
        );
        let out = hpo(&["run", "exp.toml", "-q"], dir.path());
        assert!(text(&out).contains("exp.toml") && refused(&text(&out)), "{d}: {}", text(&out));
    }
    // The longest accepted ones work.
    let dir = setup(&process_experiment("[\"true\"]", 1, 2, "timeout = \"100years\""), &[]);
    let out = hpo(&["run", "exp.toml", "-q", "--max-wallclock", "36500d"], dir.path());
    assert!(text(&out).contains("2 trials"), "{}", text(&out));
}

#[test]
fn nothing_a_trial_started_outlives_it_or_a_killed_driver() {
    // Children in the group, children that left it (setsid), and a double fork.
    let script = "#!/bin/sh\nsleep 4141.1 &\nsetsid sleep 4141.2 &\n(setsid sh -c 'sleep 4141.3 & sleep 4141.4') &\n\
                  echo '[tune-metric]: {\"epoch\": 1, \"loss\": 1}'\nsleep \"$WAIT\"\n";
    // 1. Trials that end by themselves.
    let dir = setup(&process_experiment("[\"./forks.sh\"]", 2, 4, "env = { WAIT = \"0.1\" }"), &[("forks.sh", script)]);
    let out = hpo(&["run", "exp.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(processes_matching("sleep 4141"), 0, "a descendant outlived its trial");
    // 2. hpo killed with SIGKILL while trials run.
    let dir = setup(&process_experiment("[\"./forks.sh\"]", 2, 4, "env = { WAIT = \"300\" }"), &[("forks.sh", script)]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hpo"))
        .args(["run", "exp.toml", "-q"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while processes_matching("sleep 4141") < 8 && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(processes_matching("sleep 4141") >= 8, "two trials with four descendants each");
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = std::time::Instant::now();
    while (processes_matching("sleep 4141") > 0 || processes_matching("forks.sh") > 0) && killed.elapsed().as_secs() < 5
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(processes_matching("sleep 4141") + processes_matching("forks.sh"), 0, "trials outlived kill -9 of hpo");
}
