pub mod bench;
pub mod plot;
pub mod plugin;
pub mod results;
pub mod run;
pub mod serve;
pub mod simulate;

/// A current-thread tokio runtime: the tuner is one task; trials run on their own threads.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}
