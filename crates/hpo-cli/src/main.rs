use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = hpo_cli::Cli::parse();
    match hpo_cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
