//! Your own scheduler as a named type in your own binary: `TopK` registers itself as
//! `"top_k"` with `#[typetag::serde]`, so a scheduler table naming it builds it, exactly as
//! `[scheduler] type = "asha"` builds ASHA. Here `hpo_bench` compares it with two built-ins on
//! the digits-mlp benchmark in simulated time.
//!
//! ```text
//! cargo run -p hpo-custom-scheduler-example -- '{"type": "top_k", "k": 3}'
//! ```

fn main() -> Result<(), Box<dyn std::error::Error>> {
    hpo_schedulers::register();
    let _ = std::any::type_name::<hpo_plugin_top_k::TopK>(); // link the crate that registers "top_k"
    let table = std::env::args().nth(1).unwrap_or_else(|| r#"{"type": "top_k", "k": 3}"#.into());
    let mine: serde_json::Value = serde_json::from_str(&table)?;

    // Yours beside two built-ins, 5 seeds each, 200 trials on 4 workers, all in simulated time.
    let mut setup = hpo_bench::Setup::new("digits-mlp", None, 4)?;
    setup.max_trials = Some(200);
    let methods = vec![
        ("mine".to_owned(), mine),
        ("asha".into(), hpo_bench::method("asha")?),
        ("random".into(), hpo_bench::method("random")?),
    ];
    let runs = setup.compare(&methods, &[0, 1, 2, 3, 4])?;
    let horizon = runs.iter().map(|r| r.end_time).fold(0.0, f64::max);
    let summary = setup.summarize(&runs, horizon, None);
    println!("{} on {}, median over 5 seeds at the end:", summary.metric, summary.blackbox);
    for m in &summary.methods {
        let end = m.at.last().and_then(|p| p.best).map_or(f64::NAN, |q| q.1);
        println!("  {:<8} {end:.4}", m.method);
    }
    Ok(())
}
