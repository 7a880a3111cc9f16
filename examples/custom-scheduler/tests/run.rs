//! The example binary runs and its scheduler really decides.

#[test]
fn the_custom_scheduler_tunes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hpo-custom-scheduler-example")).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("200 trials, "), "{stdout}");
    let stopped: usize =
        stdout.split(", ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(stopped > 100, "top-k stops most trials early: {stdout}");
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_hpo-custom-scheduler-example"))
        .arg(r#"{"type": "top_q"}"#)
        .output()
        .expect("run");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown variant `top_q`"));
}
