#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Scheduler plugins as their authors and users meet them: the example plugin library loaded
//! by `hpo run` and `hpo bench run`, the same scheduler served over the process transport, a
//! Python plugin, `hpo plugin check`, and plugins that misbehave.

use crate::common;

use common::{hpo, journal, repo, text};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// Builds the example plugin library once (in a target folder of its own, so the build
/// never waits on the one running these tests) and returns its path.
fn plugin() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let target = repo().join("target/plugin-tests");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "hpo-plugin-top-k", "--target-dir"])
            .arg(&target)
            .current_dir(repo())
            .status()
            .unwrap();
        assert!(status.success(), "building the example plugin failed");
        let name = if cfg!(target_os = "macos") { "libhpo_plugin_top_k.dylib" } else { "libhpo_plugin_top_k.so" };
        target.join("debug").join(name)
    })
}

fn experiment(scheduler: &str) -> String {
    format!(
        "name = \"p\"\nmetric = \"mean_loss\"\nresource_attr = \"epoch\"\nmax_resource_attr = \"steps\"\nworkers = 2\nseed = 1\n[space]\nsteps = 9\nwidth = {{ randint = [0, 20] }}\nheight = {{ randint = [-100, 100] }}\n[scheduler]\n{scheduler}\n[backend]\ntype = \"threads\"\nobjective = \"height\"\n[stop]\nmax_trials = 30\n"
    )
}

fn count(entries: &[Value], f: impl Fn(&Value) -> bool) -> usize {
    entries.iter().filter(|e| f(e)).count()
}

#[test]
fn a_plugin_library_schedules_hpo_run() {
    let dir = tempfile::tempdir().unwrap();
    let scheduler = format!("type = \"plugin\"\npath = {:?}\nconfig = {{ k = 2 }}", plugin().display().to_string());
    std::fs::write(dir.path().join("e.toml"), experiment(&scheduler)).unwrap();
    let out = hpo(&["run", "e.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/p"));
    assert_eq!(count(&entries, |e| e["event"] == "start"), 30);
    assert!(count(&entries, |e| e["decision"] == "stop") > 10, "top-2 stops most trials");

    // --plugin on the command line puts the library in charge of any experiment
    std::fs::write(dir.path().join("f.toml"), experiment("type = \"fifo\"")).unwrap();
    let out = hpo(&["run", "f.toml", "-q", "--plugin", plugin().to_str().unwrap(), "--name", "q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let resolved = std::fs::read_to_string(dir.path().join("runs/q/experiment.toml")).unwrap();
    assert!(resolved.contains("type = \"plugin\""), "{resolved}");
    assert!(count(&journal(&dir.path().join("runs/q")), |e| e["decision"] == "stop") > 10);
}

#[test]
fn library_and_process_transports_decide_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = plugin().display().to_string();
    let library = serde_json::json!({"type": "plugin", "path": path, "config": {"k": 3}}).to_string();
    let process = serde_json::json!({
        "type": "process",
        "command": [env!("CARGO_BIN_EXE_hpo"), "scheduler", "serve", "--plugin", path],
        "config": {"k": 3},
    })
    .to_string();
    let mut runs = Vec::new();
    for (name, method) in [("lib", &library), ("proc", &process)] {
        let out = hpo(
            &[
                "bench",
                "run",
                "--blackbox",
                "digits-mlp",
                "--methods",
                method,
                "--seeds",
                "0..3",
                "--workers",
                "4",
                "--max-time",
                "60s",
                "--output",
                name,
            ],
            dir.path(),
        );
        assert!(out.status.success(), "{}", text(&out));
        let mut lines: Vec<Value> = std::fs::read_to_string(dir.path().join(name).join("runs.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for l in &mut lines {
            let o = l.as_object_mut().unwrap();
            o.remove("wall_ms");
            o.remove("method");
        }
        runs.push(lines);
    }
    assert!(runs[0][0]["trials"].as_u64().unwrap() > 10);
    assert_eq!(runs[0], runs[1], "the same scheduler, the same seed: the same run over either transport");
}

#[test]
fn a_python_plugin_schedules_and_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let script = repo().join("examples/plugins/random_search.py").display().to_string();
    let scheduler = format!("type = \"process\"\ncommand = [\"python3\", {script:?}]\nconfig = {{ grace = 2 }}");
    std::fs::write(dir.path().join("e.toml"), experiment(&scheduler)).unwrap();
    let out = hpo(&["run", "e.toml", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/p"));
    assert_eq!(count(&entries, |e| e["event"] == "start"), 30);
    assert!(count(&entries, |e| e["decision"] == "stop") > 0, "the median rule stopped some trial");

    let check = hpo(&["plugin", "check", "--", "python3", &script], dir.path());
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("the plugin conforms"));

    // A conditional space reaches the plugin with its conditions, and it keeps to them.
    let conditional = experiment(&scheduler).replace(
        "height = { randint = [-100, 100] }\n",
        "height = { randint = [-100, 100] }\ndepth = { randint = [1, 5], when = \"width > 10 and height >= 0\" }\nforbid = [\"width < 5 and height > 50\"]\n",
    );
    std::fs::write(dir.path().join("c.toml"), conditional).unwrap();
    let out = hpo(&["run", "c.toml", "-q", "--name", "c"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let entries = journal(&dir.path().join("runs/c"));
    let starts: Vec<&Value> = entries.iter().filter(|e| e["event"] == "start").collect();
    assert_eq!(starts.len(), 30);
    for config in starts.iter().map(|e| &e["config"]) {
        let (width, height) = (config["width"].as_i64().unwrap(), config["height"].as_i64().unwrap());
        assert_eq!(config.get("depth").is_some(), width > 10 && height >= 0, "{config}");
        assert!(!(width < 5 && height > 50), "forbidden: {config}");
    }
    assert!(starts.iter().any(|e| e["config"].get("depth").is_some()), "the branch was reached");
    let check = hpo(&["plugin", "check", plugin().to_str().unwrap()], dir.path());
    assert!(check.status.success(), "{}", text(&check));
}

const GARBAGE: &str = r#"import json, sys
for line in sys.stdin:
    op = json.loads(line).get("op")
    if op == "init":
        print(json.dumps({"ok": True, "name": "garbage"}), flush=True)
    elif op == "close":
        print(json.dumps({"ok": True}), flush=True)
        break
    else:
        print("what?", flush=True)
"#;

#[test]
fn plugin_check_reports_what_does_not_conform() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.py"), GARBAGE).unwrap();
    let out = hpo(&["plugin", "check", "--", "python3", "g.py"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("FAIL  suggest"), "{}", text(&out));
}

/// A Python plugin that starts configs but misbehaves on the given trial id.
fn misbehaving(what: &str) -> String {
    format!(
        r#"import json, random, sys, time
rng = random.Random(0)
misbehaved = False
for line in sys.stdin:
    req = json.loads(line)
    op = req.get("op")
    if op == "init":
        answer = {{"ok": True}}
    elif op == "suggest":
        if req["trial_id"] == 4 and not misbehaved:
            misbehaved = True
            {what}
        answer = {{"op": "start", "config": {{"steps": 9, "width": rng.randint(0, 20), "height": rng.randint(-100, 100)}}}}
    elif op == "report":
        answer = {{"decision": "continue"}}
    elif op == "close":
        print(json.dumps({{"ok": True}}), flush=True)
        break
    else:
        answer = {{"ok": True}}
    print(json.dumps(answer), flush=True)
"#
    )
}

#[test]
fn failing_plugins_end_the_experiment_cleanly_or_are_survived() {
    let cases = [
        ("dies", "sys.exit(1)", "exited", false),
        ("hangs", "time.sleep(60)", "did not answer within", false),
        ("one bad answer", "print('garbage', flush=True); continue", "", true),
    ];
    for (name, what, message, survives) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.py"), misbehaving(what)).unwrap();
        let scheduler = "type = \"process\"\ncommand = [\"python3\", \"m.py\"]\ntimeout = \"2s\""; // a slow start under load is no hang
        std::fs::write(dir.path().join("e.toml"), experiment(scheduler)).unwrap();
        let out = hpo(&["run", "e.toml", "-q"], dir.path());
        let entries = journal(&dir.path().join("runs/p"));
        let end = entries.last().unwrap();
        if survives {
            assert!(out.status.success(), "{name}: {}", text(&out));
            assert!(text(&out).contains("bad answer to `suggest`"), "{name}: {}", text(&out));
            assert_eq!(count(&entries, |e| e["event"] == "start"), 30, "{name}");
        } else {
            assert!(!out.status.success(), "{name}: an experiment whose scheduler failed exits non-zero");
            assert!(
                text(&out).contains(message) && text(&out).contains("plugin process `python3 m.py`"),
                "{name}: {}",
                text(&out)
            );
            assert_eq!(end["event"], "end", "{name}: the journal is closed properly");
            assert_eq!(end["reason"], "scheduler_failed", "{name}");
            assert_eq!(count(&entries, |e| e["event"] == "start"), 4, "{name}: what ran is recorded");
            let ended = count(&entries, |e| e["event"] == "complete" || e["event"] == "stopped");
            assert_eq!(ended, 4, "{name}: every running trial finished or was stopped");
        }
    }
}

#[test]
fn a_file_that_is_not_a_plugin_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fake.so"), "not a library").unwrap();
    std::fs::write(dir.path().join("e.toml"), experiment("type = \"plugin\"\npath = \"fake.so\"")).unwrap();
    let out = hpo(&["run", "e.toml", "-q"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("plugin fake.so: not a loadable library"), "{}", text(&out));
    let out = hpo(&["plugin", "check", "fake.so"], dir.path());
    assert!(!out.status.success());
    // a real library that is no plugin
    let libc = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if let Some(libm) = libc {
        std::fs::write(dir.path().join("m.toml"), experiment(&format!("type = \"plugin\"\npath = {libm:?}"))).unwrap();
        let out = hpo(&["run", "m.toml", "-q"], dir.path());
        assert!(text(&out).contains("not an hpo plugin (no `hpo_plugin_protocol`"), "{}", text(&out));
    }
}

#[test]
fn bench_scheduler_across_the_library_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        hpo(&["bench", "scheduler", "--plugin", plugin().to_str().unwrap(), "--trials", "2000", "--json"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(line["ns_per_decision"].as_f64().unwrap() > 0.0);
    assert_eq!(line["trials"], 2000);
}
