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

/// Why the dashboard cannot serve, or a report cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// No experiment folder (holding `journal.jsonl`) in the folders given.
    #[error("no experiment folder (one holding journal.jsonl) in {0}")]
    NoExperiment(String),
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

/// Trials of an experiment whose own page a report holds: the best ones.
const REPORT_TRIAL_PAGES: usize = 200;
/// Rows of an experiment's trials table a report holds, best first.
const REPORT_TRIAL_ROWS: usize = 10_000;

/// `hpo report`: the dashboard's page for the experiments under `dirs` as one self-contained
/// HTML file (styles, scripts and data inline), for when no port can be forwarded. It holds
/// the best 10,000 trials' rows and the best 200 trials' pages of each experiment.
pub fn report(dirs: &[PathBuf]) -> Result<String, DashboardError> {
    let mut experiments = Experiments::new(dirs.to_vec());
    experiments.poll();
    if experiments.list.is_empty() {
        let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(DashboardError::NoExperiment(names.join(", ")));
    }
    let mut answers = serde_json::Map::new();
    answers.insert("experiments".into(), serde_json::Value::Array(experiments.list.iter().map(api::summary).collect()));
    // Comparisons and benchmarks are the live dashboard's.
    answers.insert("benchmarks".into(), serde_json::Value::Array(Vec::new()));
    for live in &experiments.list {
        let Some(r) = &live.results else { continue };
        let at = |path: &str| format!("experiments/{}{path}", live.key);
        answers.insert(at(""), api::experiment_view(live, r));
        answers.insert(at("/curves"), api::curves_view(r, api::CURVES));
        answers.insert(at("/importance"), api::importance_view(r));
        answers.insert(at("/slices"), api::slices_view(r, api::SLICE_POINTS));
        answers.insert(at("/front"), api::front_view(r));
        answers.insert(at("/gantt"), api::gantt_view(live, r, api::GANTT_RUNS));
        let best_first =
            api::TrialsQuery { sort: Some("best".into()), limit: Some(REPORT_TRIAL_ROWS), ..Default::default() };
        answers.insert(at("/trials"), api::trials_view(r, &best_first, &[]));
        for t in r.ranked().iter().take(REPORT_TRIAL_PAGES) {
            if let Some(view) = api::trial_view(live, r, t.trial_id) {
                answers.insert(at(&format!("/trials/{}", t.trial_id)), view);
            }
        }
    }
    // Inside <script>, "</" could close the element: JSON allows "<\/" for it.
    let data = serde_json::Value::Object(answers).to_string().replace("</", "<\\/");
    let text = |name: &str| ASSETS.iter().find(|(n, _, _)| *n == name).map_or("", |(_, _, body)| body);
    let inline_script = |name: &str| format!("<script>{}</script>", text(name).replace("</script", "<\\/script"));
    Ok(text("index.html")
        .replace(
            r#"<link rel="stylesheet" href="assets/uPlot.min.css">"#,
            &format!("<style>{}</style>", text("uPlot.min.css")),
        )
        .replace(r#"<link rel="stylesheet" href="assets/app.css">"#, &format!("<style>{}</style>", text("app.css")))
        .replace(r#"<script src="assets/uPlot.iife.min.js"></script>"#, &inline_script("uPlot.iife.min.js"))
        .replace(
            r#"<script src="assets/app.js"></script>"#,
            &format!("<script>window.HPO_REPORT = {data};</script>{}", inline_script("app.js")),
        ))
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
        .route("/api/experiments/{key}/slices", get(api::slices))
        .route("/api/experiments/{key}/gantt", get(api::gantt))
        .route("/api/experiments/{key}/front", get(api::front))
        .route("/api/compare", get(api::compare))
        .route("/api/benchmarks", get(api::benchmarks))
        .route("/api/benchmarks/{key}", get(api::benchmark))
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
