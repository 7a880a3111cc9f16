//! Your own scheduler as a named type in your own binary: `TopK` registers itself as
//! `"top_k"` with `#[typetag::serde]`, so a scheduler table naming it builds it, exactly as
//! `[scheduler] type = "asha"` builds ASHA. Here `hpo-bench` compares it with built-in
//! methods on the digits-mlp benchmark in simulated time: 200 trials on 4 workers, 5 seeds.
//!
//! ```text
//! cargo run -p hpo-custom-scheduler-example -- '{"type": "top_k", "k": 3}'
//! ```

use hpo_bench::{Setup, method, quartiles};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    hpo_schedulers::register();
    let _ = std::any::type_name::<hpo_plugin_top_k::TopK>(); // link the crate that registers "top_k"
    let table = std::env::args().nth(1).unwrap_or_else(|| r#"{"type": "top_k", "k": 3}"#.into());
    let mine: serde_json::Value = serde_json::from_str(&table)?;

    let mut setup = Setup::new("digits-mlp", None, 4)?;
    setup.max_trials = Some(200);
    let methods =
        vec![("mine".to_owned(), mine), ("asha".to_owned(), method("asha")?), ("random".to_owned(), method("random")?)];
    let runs = setup.compare(&methods, &[0, 1, 2, 3, 4])?;
    println!("method  trials  stopped early  best {} (median over seeds)", setup.metric());
    for (name, _) in &methods {
        let of_method = || runs.iter().filter(|r| &r.method == name);
        let median = |mut values: Vec<f64>| quartiles(&mut values).map_or(f64::NAN, |q| q.1);
        let trials = median(of_method().map(|r| r.trials as f64).collect());
        let stopped = median(of_method().map(|r| r.stopped as f64).collect());
        let best = median(of_method().filter_map(|r| r.final_best).collect());
        println!("{name:<6}  {trials:>6}  {stopped:>13}  {best:.4}");
    }
    Ok(())
}
