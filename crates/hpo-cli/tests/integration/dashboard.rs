#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! `hpo dashboard` as a user (or a script) reaches it: over HTTP on the loopback interface,
//! while `hpo run` writes the experiment it shows.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{available, hpo, repo, setup, spawn_run};

/// A running `hpo dashboard`, killed when dropped.
struct Dashboard {
    child: Child,
    /// `127.0.0.1:port`.
    addr: String,
    /// The URL it printed.
    url: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dashboard(cwd: &Path, args: &[&str]) -> Dashboard {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hpo"))
        .args(["dashboard", "--port", "0"])
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let url = first.trim().strip_prefix("hpo dashboard: ").unwrap_or_else(|| panic!("{first}")).to_owned();
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap().to_owned();
    Dashboard { child, addr: format!("127.0.0.1:{port}"), url }
}

/// A GET with a plain socket: the status and the body.
fn get(addr: &str, path: &str, headers: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn json(addr: &str, path: &str) -> Value {
    let (status, body) = get(addr, path, "");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Trials that sleep 0.1 s and report loss = x, so a run lasts a few seconds.
const SLOW: &str = "name = \"slow\"\nmetric = \"loss\"\nworkers = 2\nseed = 1\n\n[space]\nx = { uniform = [0.0, 1.0] }\n\n[backend]\ntype = \"process\"\ncommand = [\"sh\", \"trial.sh\"]\n\n[stop]\nmax_trials = 40\n";
const TRIAL: &str = "sleep 0.1\necho \"epoch done\"\necho \"[tune-metric]: {\\\"loss\\\": $2}\"\n";

#[test]
fn the_dashboard_follows_a_run_and_serves_only_its_experiments() {
    let dir = setup(SLOW, &[("trial.sh", TRIAL)]);
    // Started before runs/ exists: the experiment appears without a restart.
    let dash = dashboard(dir.path(), &[]);
    assert!(dash.url.starts_with("http://127.0.0.1:") && !dash.url.contains("token"), "{}", dash.url);
    assert_eq!(json(&dash.addr, "/api/experiments"), Value::Array(vec![]));
    let (status, page) = get(&dash.addr, "/", "");
    assert!(status == 200 && page.contains("assets/app.js"), "{page}");

    let mut run = spawn_run(Path::new(env!("CARGO_BIN_EXE_hpo")), dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let list = json(&dash.addr, "/api/experiments");
        if let Some(e) = list.as_array().unwrap().first() {
            seen.push((e["trials"]["total"].as_u64().unwrap_or(0), e["status"].as_str().unwrap_or("").to_owned()));
            if e["status"].as_str().is_some_and(|s| s.starts_with("ended")) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the run never ended: {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(run.wait().unwrap().success());
    let running: Vec<u64> = seen.iter().filter(|(_, s)| s == "running").map(|(n, _)| *n).collect();
    assert!(running.windows(2).any(|w| w[1] > w[0]), "the trial count rose while running: {seen:?}");
    assert_eq!(seen.last().map(|(n, _)| *n), Some(40));

    let e = json(&dash.addr, "/api/experiments/slow");
    let best = &e["best_trial"];
    assert_eq!(e["status"], "ended (max_trials)");
    assert!(best["value"].as_f64().unwrap() < 0.2 && best["config"]["x"] == best["value"], "{best}");
    assert!(!e["best_so_far"].as_array().unwrap().is_empty());
    let all = json(&dash.addr, "/api/experiments/slow/trials");
    assert_eq!((all["total"].as_u64(), all["rows"].as_array().map(Vec::len)), (Some(40), Some(40)));
    let best3 = json(&dash.addr, "/api/experiments/slow/trials?sort=best&limit=3");
    assert_eq!(best3["total"], 40);
    assert_eq!(best3["rows"][0]["best"], best["value"], "sorted by the best value, best first");
    let values: Vec<f64> = best3["rows"].as_array().unwrap().iter().map(|r| r["best"].as_f64().unwrap()).collect();
    assert!(values.len() == 3 && values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    let by_x = json(&dash.addr, "/api/experiments/slow/trials?sort=x&order=desc&offset=1&limit=1");
    assert!(by_x["rows"][0]["config"]["x"].as_f64().unwrap() < 1.0);
    assert_eq!(json(&dash.addr, "/api/experiments/slow/trials?status=Failed,Paused")["total"], 0);
    let low = json(&dash.addr, "/api/experiments/slow/trials?filter=x%3C%3D0.5");
    let n = low["total"].as_u64().unwrap();
    assert!(0 < n && n < 40, "{low}");
    assert!(low["rows"].as_array().unwrap().iter().all(|r| r["config"]["x"].as_f64().unwrap() <= 0.5));
    let high = json(&dash.addr, "/api/experiments/slow/trials?filter=x%3E0.5");
    assert_eq!(n + high["total"].as_u64().unwrap(), 40, "x <= 0.5 and x > 0.5 split the trials");
    let (status, body) = get(&dash.addr, "/api/experiments/slow/trials?filter=x~1", "");
    assert!(status == 400 && body.contains("`x~1`"), "{status} {body}");
    let trial = json(&dash.addr, "/api/experiments/slow/trials/3");
    assert_eq!((trial["reports"].as_u64(), trial["history"].as_array().map(Vec::len)), (Some(1), Some(1)));
    assert_eq!(trial["stdout"], "epoch done\n", "the end of the trial's log");
    let slices = json(&dash.addr, "/api/experiments/slow/slices?max=10");
    let x = &slices["slices"][0];
    assert_eq!((x["name"].as_str(), x["points"].as_array().map(Vec::len)), (Some("x"), Some(10)), "{slices}");
    let gantt = json(&dash.addr, "/api/experiments/slow/gantt");
    assert_eq!(gantt["bars"].as_array().map(Vec::len), Some(40), "one stretch per trial");
    assert_eq!(gantt["lanes"], 2, "as many lanes as workers: {gantt}");
    let importance = json(&dash.addr, "/api/experiments/slow/importance");
    assert_eq!(importance["params"][0]["name"], "x");

    // Nothing outside the experiments it serves, however the path is spelled.
    for path in [
        "/api/experiments/..%2F..%2Fetc",
        "/api/experiments/slow/trials/..%2F..%2Fjournal.jsonl",
        "/api/experiments/slow/trials/99",
        "/assets/..%2F..%2FCargo.toml",
        "/assets/../../Cargo.toml",
        "/../exp.toml",
        "/exp.toml",
    ] {
        let (status, body) = get(&dash.addr, path, "");
        assert!(status == 404 || status == 400, "{path}: {status} {body}");
        assert!(!body.contains("max_trials = 40"), "{path} leaked a file: {body}");
    }
}

#[test]
fn changes_are_pushed_as_server_sent_events_and_a_killed_run_shows_as_crashed() {
    let dir = setup(SLOW, &[("trial.sh", TRIAL)]);
    let dash = dashboard(dir.path(), &[]);
    let mut stream = TcpStream::connect(&dash.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET /api/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n", dash.addr).unwrap();
    let mut run = spawn_run(Path::new(env!("CARGO_BIN_EXE_hpo")), dir.path());
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let change = loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended");
        if let Some(data) = line.strip_prefix("data: ") {
            break serde_json::from_str::<Value>(data.trim()).unwrap();
        }
    };
    assert_eq!(change["key"], "slow", "{change}");

    // Killed: no `end` in its journal and no writer holding it.
    run.kill().unwrap();
    run.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while json(&dash.addr, "/api/experiments/slow")["status"] != "crashed" {
        assert!(Instant::now() < deadline, "never seen as crashed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn beyond_the_loopback_interface_every_api_request_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let dash = dashboard(dir.path(), &["--host", "0.0.0.0", dir.path().to_str().unwrap()]);
    let token = dash.url.split("?token=").nth(1).unwrap_or_else(|| panic!("no token in {}", dash.url)).to_owned();
    assert!(token.len() >= 32, "{token}");
    let (status, body) = get(&dash.addr, "/api/experiments", "");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("token"), "{body}");
    assert_eq!(get(&dash.addr, "/api/experiments?token=wrong", "").0, 401);
    assert_eq!(get(&dash.addr, &format!("/api/experiments?token={token}"), "").0, 200);
    assert_eq!(get(&dash.addr, "/api/experiments", &format!("Authorization: Bearer {token}\r\n")).0, 200);
    assert_eq!(get(&dash.addr, "/api/events", "").0, 401);

    let missing = crate::common::hpo(&["dashboard", "no-such-folder"], dir.path());
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-folder: no such folder"));
}

/// f(x, y, z) = 10 x + y (z unused) from the arguments `--x X --y Y --z Z ...`.
const LINEAR: &str = r#"awk -v x="$2" -v y="$4" 'BEGIN { printf "[tune-metric]: {\"loss\": %.17g}\n", 10 * x + y }'"#;

/// ASHA on Branin in simulated time (the stop criterion follows).
const BRANIN: &str = "name = \"many\"\nmetric = \"objective\"\nresource_attr = \"epoch\"\nmax_resource_attr = \"epochs\"\nworkers = 4\nseed = 0\n\n[space]\nepochs = 27\nx1 = { uniform = [-5.0, 10.0] }\nx2 = { uniform = [0.0, 15.0] }\n\n[scheduler]\ntype = \"asha\"\n\n[backend]\ntype = \"simulator\"\nblackbox = \"branin\"\n\n[stop]\n";

/// The page in headless Chromium through WebDriver (`tests/browser/dashboard.py`, selenium):
/// no console error, the trial count rises while a run goes on, a click opens a trial, the
/// importance view lists x first, a range filter keeps only the trials in range, an
/// experiment of 100,000 trials shows its best value in under 2 s (timed with an optimized
/// build), two experiments compare on one plot, a benchmark folder is drawn; a screenshot per
/// view in target/dashboard-screenshots/.
#[test]
fn the_page_works_in_a_real_browser() {
    let python = Command::new("python3").args(["-c", "import selenium"]).status().is_ok_and(|s| s.success());
    let browser = Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
    if !available("chromium, chromium-driver and selenium", python && browser, "HPO_REQUIRE_BROWSER") {
        return;
    }
    let linear = "name = \"linear\"\nmetric = \"loss\"\nworkers = 2\nseed = 1\n\n[space]\nx = { uniform = [0.0, 1.0] }\ny = { uniform = [0.0, 1.0] }\nz = { uniform = [0.0, 1.0] }\n\n[backend]\ntype = \"process\"\ncommand = [\"sh\", \"f.sh\"]\n\n[stop]\nmax_trials = 300\n";
    let dir = setup(linear, &[("f.sh", LINEAR), ("trial.sh", TRIAL)]);
    assert!(hpo(&["run", "exp.toml", "--quiet"], dir.path()).status.success());
    // Many trials in simulated time: 100,000 with an optimized build (`cargo test --release`,
    // as CI runs this test too), 10,000 with a debug one.
    let many = if cfg!(debug_assertions) { 10_000 } else { 100_000 };
    std::fs::write(dir.path().join("exp.toml"), format!("{BRANIN}max_trials = {many}\n")).unwrap();
    assert!(hpo(&["run", "exp.toml", "--quiet"], dir.path()).status.success());
    let bench = ["bench", "run", "--blackbox", "branin", "--methods", "random,asha", "--seeds", "0..3"];
    let out = hpo(&[&bench[..], &["--max-time", "60s", "--output", "runs/bench"]].concat(), dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.path().join("exp.toml"), SLOW.replace("max_trials = 40", "max_trials = 400")).unwrap();
    let mut run = spawn_run(Path::new(env!("CARGO_BIN_EXE_hpo")), dir.path());
    let dash = dashboard(dir.path(), &[]);
    let report = dir.path().join("report.html");
    let wrote = hpo(&["report", "runs/linear", "-o", report.to_str().unwrap()], dir.path());
    assert!(wrote.status.success(), "{}", String::from_utf8_lossy(&wrote.stderr));
    let shots = repo().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = repo().join("crates/hpo-cli/tests/browser/dashboard.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([&dash.url, "slow", "linear", "many", "bench", report.to_str().unwrap(), shots.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = run.kill();
    let _ = run.wait();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Timings the page took, for the record: `cargo test -- --nocapture` shows them.
    println!("{}", stdout.trim());
    let measured: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    assert_eq!(measured["big_trials"], many);
    if !cfg!(debug_assertions) {
        let shown = measured["big_best_shown_s"].as_f64().unwrap();
        assert!(shown < 2.0, "100,000 trials: the best value took {shown} s to show (goal: under 2 s)");
    }
    let views = ["list", "running", "experiment", "importance", "filtered", "trial", "many-trials", "curves"];
    for view in views.iter().chain(&["compare", "benchmark", "report"]) {
        assert!(shots.join(format!("{view}.png")).exists(), "no screenshot of {view}");
    }
}

#[test]
fn a_report_is_one_file_that_needs_nothing_else() {
    let dir = setup(SLOW.replace("max_trials = 40", "max_trials = 6").as_str(), &[("trial.sh", TRIAL)]);
    assert!(hpo(&["run", "exp.toml", "--quiet"], dir.path()).status.success());
    let out = hpo(&["report", "runs"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for outside in ["src=\"assets/", "href=\"assets/", "src=\"http", "href=\"http"] {
        assert!(!html.contains(outside), "the report refers to {outside}");
    }
    assert!(html.contains("window.HPO_REPORT = {") && html.contains("\"experiments/slow/trials/0\""));
    assert!(html.matches("<script>").count() == 3, "uPlot, the data and the page's script, inline");

    let none = hpo(&["report", "."], dir.path());
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no experiment folder"));
}

#[test]
fn experiments_and_a_benchmark_folder_compare_on_one_plot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), format!("{BRANIN}max_trials = 60\n")).unwrap();
    for seed in ["1", "2"] {
        assert!(hpo(&["run", "exp.toml", "--quiet", "--seed", seed], dir.path()).status.success());
    }
    let bench = ["bench", "run", "--blackbox", "branin", "--methods", "random,asha", "--seeds", "0..3"];
    let out = hpo(&[&bench[..], &["--max-time", "60s", "--output", "runs/bench"]].concat(), dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dash = dashboard(dir.path(), &[]);

    let compared = json(&dash.addr, "/api/compare?keys=many,many-2");
    let groups = compared["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "one method, two experiments: {compared}");
    assert_eq!(groups[0]["method"], "asha + random");
    assert_eq!(groups[0]["experiments"], serde_json::json!(["many", "many-2"]));
    let (median, q25, q75) = (&groups[0]["median"], &groups[0]["q25"], &groups[0]["q75"]);
    assert_eq!(median.as_array().map(Vec::len), Some(101));
    let last = |v: &Value| v.as_array().unwrap().last().unwrap().as_f64().unwrap();
    assert!(last(q25) <= last(median) && last(median) <= last(q75));
    assert_eq!(get(&dash.addr, "/api/compare?keys=many,nope", "").0, 404);

    let benchmarks = json(&dash.addr, "/api/benchmarks");
    assert_eq!(benchmarks[0]["key"], "bench", "{benchmarks}");
    let summary = json(&dash.addr, "/api/benchmarks/bench");
    let methods: Vec<&str> =
        summary["methods"].as_array().unwrap().iter().map(|m| m["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["random", "asha"]);
    assert_eq!(get(&dash.addr, "/api/benchmarks/..%2Fmany", "").0, 404);
}

/// An experiment of two objectives: `/api/experiments/KEY/front` holds its Pareto front (no
/// member dominated by a feasible trial), the other feasible trials and the infeasible ones.
#[test]
fn several_objectives_show_their_pareto_front() {
    use crate::objectives::{EXPERIMENT, TRADE_OFF};
    let dir = setup(EXPERIMENT, &[("f.sh", TRADE_OFF)]);
    assert!(hpo(&["run", "exp.toml", "--quiet"], dir.path()).status.success());
    let dash = dashboard(dir.path(), &[]);
    let front = json(&dash.addr, "/api/experiments/two/front");
    assert_eq!(front["objectives"][1], serde_json::json!({ "metric": "cost", "mode": "min" }));
    let values = |list: &Value| -> Vec<(f64, f64)> {
        list.as_array().unwrap().iter().map(|p| (p[1][0].as_f64().unwrap(), p[1][1].as_f64().unwrap())).collect()
    };
    let (members, others, infeasible) =
        (values(&front["front"]), values(&front["others"]), values(&front["infeasible"]));
    assert_eq!(members.len() + others.len() + infeasible.len(), 40);
    for &(e, c) in &members {
        assert!(c <= 0.8);
        assert!(!members.iter().chain(&others).any(|&(e2, c2)| e2 <= e && c2 <= c && (e2 < e || c2 < c)));
    }
    assert!(infeasible.iter().all(|&(_, c)| c > 0.8));
}
