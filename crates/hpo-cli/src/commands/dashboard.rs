//! `hpo dashboard [DIR...]`: serve experiment folders as a live web page; `hpo report`: the
//! same page as one HTML file (hpo-dashboard).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::{DashboardArgs, ReportArgs};

/// Folders named must exist.
fn check_folders(dirs: &[PathBuf]) -> anyhow::Result<()> {
    if let Some(missing) = dirs.iter().find(|d| !d.is_dir()) {
        anyhow::bail!(
            "{}: no such folder (give experiment folders, or folders of them such as runs/)",
            missing.display()
        );
    }
    Ok(())
}

pub fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    check_folders(&args.dirs)?;
    let html = hpo_dashboard::report(&args.dirs)?;
    std::fs::write(&args.output, html).with_context(|| format!("writing {}", args.output.display()))?;
    outln!("Wrote {}: open it in a browser (everything is inside; no server needed).", args.output.display());
    Ok(ExitCode::SUCCESS)
}

pub fn dashboard(args: DashboardArgs) -> anyhow::Result<ExitCode> {
    // The default runs/ may not exist yet (`hpo run` makes it).
    check_folders(&args.dirs)?;
    let dirs = if args.dirs.is_empty() { vec![PathBuf::from("runs")] } else { args.dirs };
    let addr = SocketAddr::new(args.host, args.port);
    // Anyone who can reach a non-loopback address could read the experiments: a token,
    // printed with the URL as Jupyter does.
    let token = if hpo_dashboard::is_loopback(&addr) { None } else { Some(hpo_dashboard::new_token()?) };
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
        let bound = listener.local_addr()?;
        let query = token.as_ref().map(|t| format!("?token={t}")).unwrap_or_default();
        outln!("hpo dashboard: http://{bound}/{query}");
        outln!(
            "  serving {} (read-only; Ctrl-C to stop)",
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        );
        let options = hpo_dashboard::Options { dirs, token };
        hpo_dashboard::serve(listener, options, std::future::pending()).await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
