//! The example binary runs, compares its scheduler with the built-ins, and its scheduler
//! really decides.

#[test]
fn the_custom_scheduler_is_compared_with_the_built_ins() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hpo-custom-scheduler-example")).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let row = |name: &str| -> Vec<f64> {
        let line =
            stdout.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("{stdout}"));
        line.split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect()
    };
    let (mine, asha, random) = (row("mine"), row("asha"), row("random"));
    assert_eq!((mine[0], asha[0], random[0]), (200.0, 200.0, 200.0), "{stdout}");
    assert!(mine[1] > 100.0, "top-k stops most trials early: {stdout}");
    assert_eq!(random[1], 0.0, "random search with FIFO stops none: {stdout}");
    assert!(mine[2] > 0.0 && mine[2] < 0.5, "a plausible validation error: {stdout}");
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_hpo-custom-scheduler-example"))
        .arg(r#"{"type": "top_q"}"#)
        .output()
        .expect("run");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown variant `top_q`"));
}
