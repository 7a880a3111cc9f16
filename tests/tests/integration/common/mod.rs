#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
#![allow(dead_code)]

use hpo_backends::{Reporter, ThreadBackend, TrialContext, TrialError};
use hpo_core::{Context, Mode, Objective, Scheduler, Space, StopCriteria, Summary, Tuner};

pub fn context(space: Space, metric: &str, mode: Mode, seed: u64) -> Context {
    Context { resource_attr: Some("epoch".into()), ..Context::new(space, Objective::new(metric, mode), seed) }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Runs a tuner over a Rust function on the thread backend.
pub fn tune(
    ctx: Context,
    scheduler: Box<dyn Scheduler>,
    workers: usize,
    stop: StopCriteria,
    f: impl Fn(&TrialContext, &mut Reporter) -> Result<(), TrialError> + Send + Sync + 'static,
) -> Summary {
    let seed = ctx.seed;
    let backend = ThreadBackend::new(workers, f).unwrap().seed(seed);
    let tuner = Tuner::new(ctx, scheduler, Box::new(backend)).workers(workers).stop_when(stop);
    runtime().block_on(tuner.run()).unwrap()
}

pub fn max_trials(n: u64) -> StopCriteria {
    StopCriteria { max_trials: Some(n), ..StopCriteria::default() }
}
