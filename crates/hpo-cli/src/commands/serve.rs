//! `hpo scheduler serve`: the scheduler protocol on stdin/stdout.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use hpo_core::SchedulerServer;

pub fn serve() -> anyhow::Result<ExitCode> {
    let mut server = SchedulerServer::new();
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let (answer, close) = server.handle_line(&line);
        writeln!(stdout, "{answer}")?;
        stdout.flush()?;
        if close {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
