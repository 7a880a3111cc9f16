//! `hpo dashboard`: experiment folders served over HTTP, as a web page (embedded in the
//! binary, nothing fetched at run time) and a JSON API under `/api/` (`docs/dashboard.md`).
//! Journals are followed as they grow and changes are pushed to pages as server-sent events.
//!
//! Safe by default: read-only, it serves only the experiments found under the folders it was
//! given (by name, never by a path from a request), and when it listens beyond the loopback
//! interface every API request needs the token it prints.

mod api;
mod live;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::broadcast;

use live::Experiments;

/// How often journals are read for what they gained.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// What `hpo dashboard` serves, and to whom.
#[derive(Clone, Debug)]
pub struct Options {
    /// Experiment folders, or folders of them (as `runs/`); one that does not exist yet is
    /// looked at again on every poll.
    pub dirs: Vec<PathBuf>,
    /// A token every API request must carry (`?token=` or `Authorization: Bearer`), or none.
    pub token: Option<String>,
}

/// Why the dashboard cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The socket failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone)]
pub(crate) struct AppState {
    experiments: Arc<RwLock<Experiments>>,
    changes: broadcast::Sender<String>,
    token: Option<Arc<str>>,
}

/// A token to print and require: 128 random bits from the OS, as hex.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether an address only this machine can reach.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Serves until `shutdown` resolves. The listener is bound by the caller, so it can print
/// the address (a port of 0 picks a free one).
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DashboardError> {
    let experiments = Arc::new(RwLock::new(Experiments::new(options.dirs)));
    let (changes, _) = broadcast::channel(1024);
    let state =
        AppState { experiments: experiments.clone(), changes: changes.clone(), token: options.token.map(Arc::from) };
    poll(&experiments, &changes);
    let poller = tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_EVERY);
        loop {
            tick.tick().await;
            poll(&experiments, &changes);
        }
    });
    let result = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await;
    poller.abort();
    Ok(result?)
}

/// Reads what every journal gained and tells the pages listening which experiments changed.
fn poll(experiments: &RwLock<Experiments>, changes: &broadcast::Sender<String>) {
    let Ok(mut experiments) = experiments.write() else { return };
    for key in experiments.poll() {
        if let Some(live) = experiments.get(&key) {
            // No page listening is no error.
            let _ = changes.send(api::summary(live).to_string());
        }
    }
}

fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/experiments", get(api::experiments))
        .route("/api/experiments/{key}", get(api::experiment))
        .route("/api/experiments/{key}/trials", get(api::trials))
        .route("/api/experiments/{key}/trials/{id}", get(api::trial))
        .route("/api/experiments/{key}/curves", get(api::curves))
        .route("/api/experiments/{key}/importance", get(api::importance))
        .route("/api/events", get(api::events))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/", get(|| asset("index.html")))
        .route("/assets/{name}", get(|axum::extract::Path(name): axum::extract::Path<String>| asset_named(name)))
        .merge(api)
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .with_state(state)
}

/// The page's files, compiled in. Only these names are served: no path reaches the disk.
const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../assets/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../assets/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../assets/app.css")),
    ("uPlot.iife.min.js", "text/javascript; charset=utf-8", include_str!("../assets/uPlot.iife.min.js")),
    ("uPlot.min.css", "text/css; charset=utf-8", include_str!("../assets/uPlot.min.css")),
];

async fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => ([(header::CONTENT_TYPE, *kind)], *body).into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

async fn asset_named(name: String) -> Response {
    asset(&name).await
}

/// API requests carry the token when one is set: in the query (`?token=`, as pages and
/// `EventSource` do) or as `Authorization: Bearer`.
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else { return next.run(request).await };
    let in_query =
        request.uri().query().is_some_and(|q| q.split('&').any(|kv| kv.strip_prefix("token=") == Some(token)));
    let in_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.strip_prefix("Bearer ") == Some(token));
    if in_query || in_header {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "this dashboard needs the token it printed: add ?token=... to the URL")
            .into_response()
    }
}
