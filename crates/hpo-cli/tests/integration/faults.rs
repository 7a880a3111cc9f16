#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Faults and bad input, each as a class: the `hpo` binary driven as a user drives it, with
//! generated inputs of every kind the class covers.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{events, hpo, journal, processes_left, processes_matching, setup, text};

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
        assert!(log.len() > 290_000, "{bytes}: the stdout log keeps every line, got {} bytes", log.len());
    }
    // A line of 5 MB without a newline, on stdout and on stderr, then a report and a failure.
    let script = "#!/bin/sh\nhead -c 5000000 /dev/zero | tr '\\0' x\nhead -c 5000000 /dev/zero | tr '\\0' y >&2\necho >&2\n\
                  echo\necho '[tune-metric]: {\"epoch\": 1, \"loss\": 1}'\necho oops >&2\nexit 4\n";
    let dir = setup(&process_experiment("[\"./t.sh\"]", 1, 1, ""), &[("t.sh", script)]);
    let out = hpo(&["run", "exp.toml", "-q"], dir.path());
    let entries = journal(&dir.path().join("runs/exp"));
    assert_eq!(events(&entries, "report").len(), 1, "{}", text(&out));
    let error = events(&entries, "fail")[0]["error"].as_str().unwrap().to_owned();
    assert!(error.contains("status 4") && error.contains("oops") && error.len() < 20_000, "{} bytes", error.len());
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
    // With the small `hpo-trial-guard` beside `hpo`, and with `hpo` alone acting as its own.
    let alone = tempfile::tempdir().unwrap();
    let copy = alone.path().join("hpo");
    std::fs::copy(env!("CARGO_BIN_EXE_hpo"), &copy).unwrap();
    for hpo_bin in [Path::new(env!("CARGO_BIN_EXE_hpo")), copy.as_path()] {
        no_trial_process_survives(hpo_bin);
    }
}

fn no_trial_process_survives(hpo_bin: &Path) {
    // Children in the group, children that left it (setsid), and a double fork.
    let script = "#!/bin/sh\nsleep 4141.1 &\nsetsid sleep 4141.2 &\n(setsid sh -c 'sleep 4141.3 & sleep 4141.4') &\n\
                  echo '[tune-metric]: {\"epoch\": 1, \"loss\": 1}'\nsleep \"$WAIT\"\n";
    // 1. Trials that end by themselves.
    let dir = setup(&process_experiment("[\"./forks.sh\"]", 2, 4, "env = { WAIT = \"0.1\" }"), &[("forks.sh", script)]);
    let out = Command::new(hpo_bin).args(["run", "exp.toml", "-q"]).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(processes_left("sleep 4141"), 0, "{}: a descendant outlived its trial", hpo_bin.display());
    // 2. hpo killed with SIGKILL while trials run.
    let dir = setup(&process_experiment("[\"./forks.sh\"]", 2, 4, "env = { WAIT = \"300\" }"), &[("forks.sh", script)]);
    let mut child = common::spawn_run(hpo_bin, dir.path());
    let start = std::time::Instant::now();
    while processes_matching("sleep 4141") < 8 && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(processes_matching("sleep 4141") >= 8, "two trials with four descendants each");
    assert_eq!(processes_matching("__hpo-trial-guard"), 2, "each trial has its guard");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(processes_left("sleep 4141") + processes_left("forks.sh"), 0, "trials outlived kill -9 of hpo");
}

#[test]
fn workers_are_bounded_by_the_work_and_a_thread_that_cannot_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("e.toml"),
        height_experiment("width = { uniform = [0, 9] }", "type = \"random\"", 5),
    )
    .unwrap();
    for workers in ["6", "30000", "18446744073709551615"] {
        let out = hpo(&["run", "e.toml", "-q", "--workers", workers, "--max-trials", "50", "--name", "w"], dir.path());
        assert!(out.status.success(), "--workers {workers}: {}", text(&out));
        let entries = journal(&dir.path().join("runs/w"));
        assert_eq!(entries[0]["spec"]["workers"].as_u64().unwrap(), workers.parse::<u64>().unwrap().min(50));
        assert_eq!(events(&entries, "start").len(), 50);
        std::fs::remove_dir_all(dir.path().join("runs/w")).unwrap();
    }
    // No trial limit: 30,000 threads in 1 GB of address space cannot all start.
    let file = height_experiment("width = { uniform = [0, 9] }", "type = \"random\"", 5)
        .replace("max_trials = 5", "max_wallclock = \"2s\"");
    std::fs::write(dir.path().join("t.toml"), file).unwrap();
    let out = hpo_limited(&["run", "t.toml", "-q", "--workers", "30000", "--name", "t"], dir.path(), 1000);
    assert!(!out.status.success());
    let all = text(&out);
    assert!(all.contains("cannot start worker thread") && all.contains("`workers`"), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    assert!(!dir.path().join("runs/t").exists(), "no experiment folder is left");
}

/// The raw text of the number after `"key":` in a JSON line.
fn raw_number<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
    let rest = &line[start..];
    &rest[..rest.find([',', '}']).unwrap()]
}

#[test]
fn configs_round_trip_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let space = "x = { uniform = [0, 1] }\nlr = { loguniform = [1e-9, 1e-1] }\nbig = { uniform = [-1e300, 1e300] }";
    std::fs::write(dir.path().join("e.toml"), height_experiment(space, "type = \"random\"", 2000)).unwrap();
    let out = hpo(&["run", "e.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let exp = dir.path().join("runs/exp");
    // The journal's text is what the tuner had: parse it with Rust's correctly rounded parser.
    let journal_text = std::fs::read_to_string(exp.join("journal.jsonl")).unwrap();
    let mut written: Vec<[u64; 3]> = Vec::new();
    for line in journal_text.lines().filter(|l| l.starts_with("{\"event\":\"start\"")) {
        written.push(["big", "lr", "x"].map(|k| raw_number(line, k).parse::<f64>().unwrap().to_bits()));
    }
    assert_eq!(written.len(), 2000);
    // results.csv, as written by `hpo run` and as printed by `hpo results --csv`.
    let csv_out = hpo(&["results", exp.to_str().unwrap(), "--csv"], dir.path());
    for csv_text in
        [std::fs::read_to_string(exp.join("results.csv")).unwrap(), String::from_utf8(csv_out.stdout).unwrap()]
    {
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let header = reader.headers().unwrap().clone();
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        for record in reader.records() {
            let record = record.unwrap();
            let id: usize = record[col("trial_id")].parse().unwrap();
            let got = ["config_big", "config_lr", "config_x"].map(|c| record[col(c)].parse::<f64>().unwrap().to_bits());
            assert_eq!(got, written[id], "results.csv, trial {id}");
        }
    }
    // `hpo results --json` and `hpo best`.
    let json = String::from_utf8(hpo(&["results", exp.to_str().unwrap(), "--json"], dir.path()).stdout).unwrap();
    let json: String = json.split_whitespace().collect();
    for trial in json.split("{\"config\":").skip(1) {
        let id: usize = raw_number(trial, "trial_id").parse().unwrap();
        let got = ["big", "lr", "x"].map(|k| raw_number(trial, k).parse::<f64>().unwrap().to_bits());
        assert_eq!(got, written[id], "hpo results --json, trial {id}");
    }
    let best = String::from_utf8(hpo(&["best", exp.to_str().unwrap()], dir.path()).stdout).unwrap();
    let best = ["big", "lr", "x"].map(|k| raw_number(&best, k).parse::<f64>().unwrap().to_bits());
    assert!(written.contains(&best), "hpo best prints a config that was run");
}

#[test]
fn every_printing_command_ends_quietly_on_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("e.toml"), height_experiment("w = { uniform = [0, 1] }", "type = \"random\"", 300))
        .unwrap();
    assert!(hpo(&["run", "e.toml", "-q"], dir.path()).status.success());
    let commands = [
        "results runs/exp --json",
        "results runs/exp --csv",
        "results runs/exp --top 300",
        "best runs/exp",
        "run e.toml --name again",
        "--help",
        "bench overhead --trials 2000 --repeats 1",
    ];
    for command in commands {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("\"$0\" {command} | head -c 1 >/dev/null; echo \"status ${{PIPESTATUS:-$?}}\""))
            .arg(env!("CARGO_BIN_EXE_hpo"))
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{command}: {stderr}");
    }
}

#[test]
fn a_trial_too_large_for_memory_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    for (width, layers) in [(300_000_000i64, 1i64), (5000, 3), (100_000, 10), (i64::MAX, 1)] {
        let file = format!(
            "name = \"mlp\"\nmetric = \"val_error\"\nresource_attr = \"epoch\"\n[space]\nepochs = 1\n\
             hidden_width = {{ choice = [{width}, 8] }}\nnum_layers = {layers}\n[searcher]\ntype = \"grid\"\n\
             [backend]\ntype = \"threads\"\nobjective = \"digits-mlp\"\n[stop]\nmax_trials = 2\n"
        );
        std::fs::write(dir.path().join("m.toml"), file).unwrap();
        let out = hpo_limited(&["run", "m.toml", "-q", "--name", "m"], dir.path(), 3000);
        assert!(out.status.success(), "{width}x{layers}: {}", text(&out));
        let entries = journal(&dir.path().join("runs/m"));
        let fails = events(&entries, "fail");
        assert_eq!(fails.len(), 1, "{width}x{layers}");
        assert!(fails[0]["error"].as_str().unwrap().contains("`hidden_width`"), "{:?}", fails[0]);
        assert_eq!(events(&entries, "complete").len(), 1, "the other trial ran");
        std::fs::remove_dir_all(dir.path().join("runs/m")).unwrap();
    }
}

#[test]
fn metrics_named_like_results_columns_are_renamed_with_a_warning() {
    for names in [["trial_id", "loss"], ["config_x", "st_status"], ["metric_trial_id", "trial_id"]] {
        let payload = format!("{{\"epoch\": 1, \"loss\": 1, \"{}\": 2, \"{}\": 3}}", names[0], names[1]);
        let script = format!("#!/bin/sh\necho '[tune-metric]: {payload}'\n");
        let dir = setup(&process_experiment("[\"./t.sh\"]", 1, 2, ""), &[("t.sh", &script)]);
        let out = hpo(&["run", "exp.toml", "-q"], dir.path());
        assert!(out.status.success(), "{}", text(&out));
        let csv_text = std::fs::read_to_string(dir.path().join("runs/exp/results.csv")).unwrap();
        let header: Vec<&str> = csv_text.lines().next().unwrap().split(',').collect();
        let unique: std::collections::BTreeSet<&&str> = header.iter().collect();
        assert_eq!(unique.len(), header.len(), "duplicate columns: {header:?}");
        assert_eq!(header[..4], ["trial_id", "st_tuner_time", "st_decision", "st_status"]);
        for name in names.iter().filter(|n| header[..5].contains(n)) {
            assert!(text(&out).contains(&format!("metric `{name}`")), "{name}: {}", text(&out));
        }
    }
}

#[test]
fn weak_messages_are_precise() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[&str]); 6] = [
        ("p = { uniform = [nan, 20] }", "type = \"random\"", &["e.toml:7:", "got [nan, 20]"]),
        ("p = { loguniform = [1e-3, inf] }", "type = \"random\"", &["got [0.001, inf]"]),
        ("p = { randint = [0, 5] }", "type = \"bogus\"", &["e.toml:8: `searcher`", "unknown variant `bogus`"]),
        (
            "p = { randint = [0, 5] }",
            "type = \"grid\"\npoints_per_numeric = \"x\"",
            &["e.toml:8: `searcher.points_per_numeric`"],
        ),
        ("p = { randint = [0, 5] }", "type = \"tpe\"\ngamma = 7.0", &["e.toml:", "`scheduler`", "gamma"]),
        ("p = { randint = [0, 5] }", "type = \"random\"", &[]),
    ];
    for (space, searcher, expected) in cases {
        std::fs::write(dir.path().join("e.toml"), height_experiment(space, searcher, 2)).unwrap();
        let out = hpo(&["run", "e.toml", "-q"], dir.path());
        let all = text(&out);
        for e in expected {
            assert!(all.contains(e), "{space} / {searcher}: expected {e:?} in {all}");
        }
        if !expected.is_empty() {
            assert!(!out.status.success() && !all.contains("experiment `exp` in"), "{all}");
            assert!(!dir.path().join("runs/exp").exists());
        }
    }
    // Plugins: the loader's reason, and a versioned library name is loaded, never executed.
    std::fs::write(dir.path().join("libfake.so.1"), "#!/bin/sh\ntouch executed\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path().join("libfake.so.1"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let no_searcher = height_experiment("p = { randint = [0, 5] }", "", 2).replace("[searcher]\n\n", "");
    std::fs::write(dir.path().join("plain.toml"), no_searcher).unwrap();
    for args in
        [vec!["plugin", "check", "./libfake.so.1"], vec!["run", "plain.toml", "-q", "--plugin", "./libfake.so.1"]]
    {
        let out = hpo(&args, dir.path());
        assert!(!out.status.success());
        assert!(
            text(&out).contains("not a loadable library: dlopen failed:") && text(&out).contains("libfake.so.1:"),
            "{}",
            text(&out)
        );
        assert!(!dir.path().join("executed").exists(), "a library was executed");
    }
    // A script that exits 0 without reporting: flagged, and its failures print without a terminal.
    let dir = setup(&process_experiment("[\"./t.sh\"]", 1, 3, ""), &[("t.sh", "#!/bin/sh\necho no metrics here\n")]);
    let out = hpo(&["run", "exp.toml"], dir.path());
    assert!(text(&out).contains("3 trials ended without reporting anything"), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/exp"));
    assert!(events(&entries, "complete").iter().all(|e| e["no_report"] == true));
    let dir = setup(
        &process_experiment("[\"./t.sh\"]", 1, 2, ""),
        &[("t.sh", "#!/bin/sh\necho 'no numpy here' >&2\nexit 3\n")],
    );
    for quiet in [false, true] {
        let args: &[&str] = if quiet { &["run", "exp.toml", "-q"] } else { &["run", "exp.toml"] };
        let out = hpo(args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("trial 0 failed: the trial exited with status 3") && stderr.contains("no numpy here"),
            "{stderr}"
        );
    }
}

#[test]
fn large_runs_leave_small_folders_and_plots_that_render() {
    let dir = tempfile::tempdir().unwrap();
    let file = height_experiment(
        "steps = 1\nwidth = { uniform = [0, 20] }\nheight = { uniform = [-100, 100] }",
        "type = \"random\"",
        100_000,
    )
    .replace("workers = 2", "workers = 4\nmax_resource_attr = \"steps\"");
    std::fs::write(dir.path().join("e.toml"), file).unwrap();
    let out = hpo(&["run", "e.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let exp = dir.path().join("runs/exp");
    let left = std::fs::read_dir(exp.join("trials")).unwrap().count();
    assert_eq!(left, 0, "trials that wrote nothing leave no folder");
    let out = hpo(&["plot", exp.to_str().unwrap()], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    for plot in ["anytime.svg", "learning_curves.svg", "gantt.svg"] {
        let size = std::fs::metadata(exp.join("plots").join(plot)).unwrap().len();
        assert!(size < 1_000_000, "{plot}: {size} bytes for 100,000 trials");
    }
    let curves = std::fs::read_to_string(exp.join("plots/learning_curves.svg")).unwrap();
    assert!(curves.contains("1000 of 100000 trials"), "the thinning is said");
    // Each figure renders as a picture (librsvg, as image viewers and browsers do).
    let rsvg = Command::new("rsvg-convert").arg("--version").output().is_ok_and(|o| o.status.success());
    if common::available("rsvg-convert (Debian's librsvg2-bin)", rsvg, "HPO_REQUIRE_RSVG") {
        for plot in ["anytime", "learning_curves", "gantt"] {
            let png = exp.join("plots").join(format!("{plot}.png"));
            let status = Command::new("rsvg-convert")
                .arg(exp.join("plots").join(format!("{plot}.svg")))
                .arg("-o")
                .arg(&png)
                .status()
                .unwrap();
            assert!(status.success(), "{plot}.svg does not render");
            assert!(std::fs::metadata(&png).unwrap().len() > 5_000, "{plot}.png is blank");
        }
    }
}

/// Starts `hpo run exp.toml` in `dir` with `path` as PATH, waits for `marker` to appear
/// there, sends `signals` Ctrl-Cs, and returns its output once it exits (at most 10 s later).
fn interrupt_run(dir: &Path, path: &str, marker: &str, signals: usize) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_hpo"))
        .args(["run", "exp.toml", "-q"])
        .current_dir(dir)
        .env("PATH", path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !dir.join(marker).exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "{marker} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..signals {
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        panic!("hpo still runs 10 s after {signals} Ctrl-C")
    })
}

/// Class: a backend call that never returns (a cluster's scheduler that hangs). Ctrl-C is
/// still honoured: the call is dropped, the trial is journaled as not started, the run ends
/// as interrupted.
#[test]
fn ctrl_c_is_honoured_while_a_backend_call_hangs() {
    let experiment = r#"name = "hang"
metric = "loss"
workers = 2
[space]
x = { uniform = [0, 1] }
[backend]
type = "slurm"
mode = "jobs"
command = ["true"]
[stop]
max_trials = 2
"#;
    let fake_sbatch =
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'slurm 0'; exit 0; }\ntouch sbatch-called\nexec sleep 2929\n";
    let dir = setup(experiment, &[("bin/sbatch", fake_sbatch)]);
    let path = format!("{}:{}", dir.path().join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let out = interrupt_run(dir.path(), &path, "sbatch-called", 1);
    assert!(!out.status.success(), "an interrupted run exits non-zero");
    let entries = journal(&dir.path().join("runs/hang"));
    let failures = events(&entries, "fail");
    assert!(failures.iter().any(|f| f["error"].as_str().unwrap().contains("not started")), "{entries:?}");
    assert_eq!(events(&entries, "end")[0]["reason"], "interrupted");
    assert_eq!(processes_left("sleep 2929"), 0, "the hanging sbatch was ended");
}

/// Class: a scheduler call that waits on a plugin process that does not answer, at each
/// kind of request (`init` while hpo sets up, `suggest` with no trial running, `report` while
/// its trial runs). Ctrl-C is honoured at once, not after the plugin's 120 s timeout; the
/// run ends as interrupted with every trial stopped (or, during set-up, leaves no
/// experiment behind), and the plugin goes with its children.
#[test]
fn ctrl_c_is_honoured_while_a_plugin_process_hangs() {
    let ok = r#"echo '{"ok":true,"name":"hang"}'"#;
    let start = r#"echo '{"op":"start","config":{"x":0.5}}'"#;
    let hang = "touch asked\nsleep 2941";
    let cases = [
        ("init", format!("#!/bin/sh\nread init\n{hang}\n")),
        ("suggest", format!("#!/bin/sh\nread init\n{ok}\nread suggest\n{hang}\n")),
        ("report", format!("#!/bin/sh\nread init\n{ok}\nread suggest\n{start}\nread report\n{hang}\n")),
    ];
    let trial = "#!/bin/sh\necho '[tune-metric]: {\"epoch\": 1, \"loss\": 0.5}'\nexec sleep 2942\n";
    let scheduler = "[scheduler]\ntype = \"process\"\ncommand = [\"./plugin.sh\"]\ntimeout = \"120s\"";
    for (request, plugin) in cases {
        let experiment = process_experiment(r#"["./trial.sh"]"#, 1, 5, scheduler);
        let dir = setup(&experiment, &[("plugin.sh", &plugin), ("trial.sh", trial)]);
        let started = std::time::Instant::now();
        let out = interrupt_run(dir.path(), &std::env::var("PATH").unwrap_or_default(), "asked", 1);
        assert!(started.elapsed() < Duration::from_secs(15), "{request}: waited for the timeout: {}", text(&out));
        assert!(!out.status.success(), "{request}: an interrupted run exits non-zero");
        let folder = dir.path().join("runs/exp");
        if request == "init" {
            assert!(!folder.exists(), "nothing ran: no experiment is left behind");
        } else {
            let entries = journal(&folder);
            assert_eq!(events(&entries, "end")[0]["reason"], "interrupted", "{request}: {entries:?}");
            let started = events(&entries, "start").len();
            assert_eq!(events(&entries, "stopped").len(), started, "{request}: every trial stopped: {entries:?}");
        }
        assert_eq!(processes_left("sleep 2941"), 0, "{request}: the plugin's child went with it");
        assert_eq!(processes_left("sleep 2942"), 0, "{request}: the trial went");
    }
}

/// Class: what a trial inherits from the guard between hpo and it. No signal is blocked and
/// none the guard handles is ignored, so a stopped trial gets SIGTERM at once, can save a
/// checkpoint and ends well within its grace period.
#[test]
fn a_stopped_trial_gets_sigterm_at_once() {
    // The signal state as the trial starts, read with shell builtins only (a shell unblocks
    // signals whenever it forks), then Python, as a training script would be (Python itself
    // ignores SIGPIPE).
    let shell = "#!/bin/sh\nwhile read -r key value; do\n  case $key in SigBlk:|SigIgn:) echo \"$key $value\";; esac\n\
                 done < /proc/$$/status > signals\nexec python3 polite.py\n";
    let python = "import pathlib, signal, sys, time\n\
                  signal.signal(signal.SIGTERM, lambda *_: (pathlib.Path('got-term').touch(), sys.exit(0)))\n\
                  print('[tune-metric]: {\"epoch\": 1, \"loss\": 0.5}', flush=True)\n\
                  pathlib.Path('started').touch()\ntime.sleep(2951)\n";
    let experiment = process_experiment(r#"["./polite.sh"]"#, 1, 1, "grace_period = \"60s\"");
    let dir = setup(&experiment, &[("polite.sh", shell), ("polite.py", python)]);
    let out = interrupt_run(dir.path(), &std::env::var("PATH").unwrap_or_default(), "started", 1);
    assert!(dir.path().join("got-term").exists(), "the trial never saw SIGTERM: {}", text(&out));
    assert_eq!(events(&journal(&dir.path().join("runs/exp")), "stopped").len(), 1);
    // Every signal the guard reads, and SIGPIPE, reach the trial as they would without it.
    let signals = std::fs::read_to_string(dir.path().join("signals")).unwrap();
    let mask = |name: &str| {
        let line = signals.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk"), 0, "nothing blocked: {signals}");
    for (name, number) in
        [("SIGHUP", 1), ("SIGINT", 2), ("SIGUSR2", 12), ("SIGPIPE", 13), ("SIGTERM", 15), ("SIGCHLD", 17)]
    {
        assert_eq!(mask("SigIgn") & (1 << (number - 1)), 0, "{name} ignored: {signals}");
    }
}

/// A trial that ignores the stop keeps the run waiting out its grace period; a second
/// Ctrl-C quits at once, and the trial goes with hpo.
#[test]
fn a_second_ctrl_c_quits_at_once() {
    let script = "#!/bin/sh\ntrap '' TERM\ntouch started\nsleep 2931\n";
    let dir =
        setup(&process_experiment(r#"["./stubborn.sh"]"#, 1, 1, "grace_period = \"60s\""), &[("stubborn.sh", script)]);
    let out = interrupt_run(dir.path(), &std::env::var("PATH").unwrap_or_default(), "started", 2);
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(text(&out).contains("interrupted again; quitting now"), "{}", text(&out));
    assert_eq!(processes_left("sleep 2931"), 0, "the trial went with hpo");
}
