use hpo_backends::ThreadBackend;
use hpo_core::{Context, Mode, Objective, Space, StopCriteria, Tuner};
use hpo_schedulers::Fifo;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let space = Space::builder().uniform("x", -2.0, 2.0).constant("epochs", 10).build()?;
    let ctx =
        Context { resource_attr: Some("epoch".into()), ..Context::new(space, Objective::new("loss", Mode::Min), 0) };
    // The function to tune: its trial's config in, reports out, on 2 threads.
    let backend = ThreadBackend::new(2, |trial, reporter| {
        let x = trial.config.f64("x")?;
        for epoch in 1..=trial.config.i64("epochs")? {
            // `?` ends the function when the scheduler stops or pauses the trial
            reporter.report([("epoch", epoch as f64), ("loss", x * x + 1.0 / epoch as f64)])?;
        }
        Ok(())
    })?;
    let tuner = Tuner::new(ctx, Box::new(Fifo::default()), Box::new(backend))
        .workers(2)
        .stop_when(StopCriteria { max_trials: Some(50), ..Default::default() });
    let summary = tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(tuner.run())?;

    println!("{} trials, {} completed, in {:.2} s", summary.trials, summary.completed, summary.elapsed);
    if let Some(best) = &summary.best {
        println!("best loss {:.4} (trial {}), config {}", best.value, best.trial_id, best.config);
    }
    Ok(())
}
