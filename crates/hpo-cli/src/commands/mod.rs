/// `println!` that never panics: once stdout is gone (a closed pipe, as in `hpo results |
/// head -1`, or a closed terminal) the output is dropped and the command ends as it would.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that never panics (stderr can be a closed terminal after SIGHUP).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

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
