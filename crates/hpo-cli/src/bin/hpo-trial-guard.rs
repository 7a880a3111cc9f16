//! `hpo-trial-guard`: the small process between `hpo` and each process-backend trial (see
//! `hpo_backends::guard`). The `hpo` binary can act as its own guard too; this one starts in a
//! fraction of the time, which is most of the guard's cost per trial.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match hpo_backends::guard::run_if_guard(&args) {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => {
            use std::io::Write as _;
            let _ =
                writeln!(std::io::stderr(), "hpo-trial-guard is started by hpo for each trial; it is not run by hand");
            ExitCode::from(2)
        }
    }
}
