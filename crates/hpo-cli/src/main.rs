use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // `hpo` is also the guard of each process-backend trial (hpo_backends::guard).
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(code) = hpo_backends::guard::run_if_guard(&args) {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // The small `hpo-trial-guard` beside this binary starts faster; `hpo` itself will do.
    if let Ok(me) = std::env::current_exe() {
        let small = me.with_file_name("hpo-trial-guard");
        hpo_backends::use_trial_guard(if small.is_file() { small } else { me });
    }
    let cli = hpo_cli::Cli::parse();
    match hpo_cli::run(cli) {
        Ok(code) => code,
        // Output cut short by its reader (`hpo results DIR --csv | head -1`) is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
