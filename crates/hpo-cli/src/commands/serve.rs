//! `hpo scheduler serve`: the scheduler protocol on stdin/stdout.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use hpo_core::SchedulerServer;
use hpo_plugin::{DylibTransport, Transport};

pub fn serve(plugin: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    // A plugin library answers the same requests as the built-in server.
    let mut plugin = plugin.map(DylibTransport::load).transpose()?;
    let mut server = SchedulerServer::new();
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let (answer, close) = match &mut plugin {
            Some(p) => (p.request(&line)?, line.contains("\"close\"")),
            None => server.handle_line(&line),
        };
        writeln!(stdout, "{answer}")?;
        stdout.flush()?;
        if close {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
