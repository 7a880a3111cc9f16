//! Your own scheduler as a named type in your own binary: `TopK` registers itself as
//! `"top_k"` with `#[typetag::serde]`, so a scheduler table naming it builds it, exactly as
//! `[scheduler] type = "asha"` builds ASHA. Here it tunes on the digits-mlp benchmark in
//! simulated time.
//!
//! ```text
//! cargo run -p hpo-custom-scheduler-example -- '{"type": "top_k", "k": 3}'
//! ```

use std::sync::Arc;

use hpo_backends::SimulatorBackend;
use hpo_backends::blackbox::blackbox;
use hpo_core::{Context, Domain, Objective, Scheduler, Space, StopCriteria, Tuner};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    hpo_schedulers::register();
    let _ = std::any::type_name::<hpo_plugin_top_k::TopK>(); // link the crate that registers "top_k"
    let table = std::env::args().nth(1).unwrap_or_else(|| r#"{"type": "top_k", "k": 3}"#.into());
    let scheduler: Box<dyn Scheduler> = serde_json::from_str(&table)?;

    let digits = blackbox("digits-mlp")?;
    let info = digits.info();
    let mut params: Vec<(String, Domain)> = info.space.params().map(|(n, d)| (n.to_owned(), d.clone())).collect();
    params.push(("epochs".into(), Domain::Constant(i64::from(info.max_resource).into())));
    let ctx = Context {
        space: Space::from_domains(params)?,
        objective: Objective::new("val_error", info.mode("val_error").unwrap_or_default()),
        resource_attr: Some("epoch".into()),
        max_resource_attr: Some("epochs".into()),
        seed: 0,
    };
    let backend = SimulatorBackend::new(Arc::clone(&digits), &["val_error"], Some("epochs"), 0)?;
    let tuner = Tuner::new(ctx, scheduler, Box::new(backend))
        .workers(4)
        .stop_when(StopCriteria { max_trials: Some(200), ..StopCriteria::default() });
    let summary = tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(tuner.run())?;
    let best = summary.best.ok_or("no result")?;
    println!(
        "{} trials, {} stopped early; best val_error {} (trial {})",
        summary.trials, summary.stopped, best.value, best.trial_id
    );
    Ok(())
}
