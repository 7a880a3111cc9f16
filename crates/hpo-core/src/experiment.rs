//! The experiment file (DESIGN.md, "The experiment file"): parsing with errors that name the
//! file, the line and the key, defaults filled in, and the resolved form written to
//! `experiment.toml`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use hpo_space::{Space, line_of};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::journal::JournalSync;
use crate::pareto::Constraint;
use crate::traits::{Context, Scheduler};
use crate::tuner::StopCriteria;
use crate::types::{Mode, Objective};

/// An experiment file that cannot be used: where and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ExperimentError {
    /// The experiment file.
    pub file: String,
    /// The line at fault, when known.
    pub line: Option<usize>,
    /// The key at fault (`scheduler`, `stop.max_wallclock`, `space.lr`, ...), if known.
    pub key: Option<String>,
    /// What was expected.
    pub message: String,
}

impl fmt::Display for ExperimentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "`{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

fn is_single(objectives: &[Objective]) -> bool {
    objectives.len() <= 1
}

/// The objectives of `metric = "loss"` or `metric = ["val_error", "latency_ms"]` with `mode`
/// one direction for all or one per metric (`mode = ["min", "min"]`); the message says what
/// was expected, and of which key.
fn objectives(metric: &toml::Value, mode: Option<&toml::Value>) -> Result<Vec<Objective>, (&'static str, String)> {
    let names: Vec<String> = match metric {
        toml::Value::String(name) => vec![name.clone()],
        toml::Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|m| m.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or(("metric", format!("expected metric names, got {metric}")))?,
        other => return Err(("metric", format!("expected a metric name or a list of them, got {other}"))),
    };
    if let Some(twice) = names.iter().enumerate().find_map(|(i, n)| names[..i].contains(n).then_some(n)) {
        return Err(("metric", format!("`{twice}` is listed twice")));
    }
    let parse_mode = |m: &toml::Value| match m.as_str() {
        Some("min") => Ok(Mode::Min),
        Some("max") => Ok(Mode::Max),
        _ => Err(("mode", format!("expected \"min\" or \"max\", got {m}"))),
    };
    let modes: Vec<Mode> = match mode {
        None => vec![Mode::Min; names.len()],
        Some(toml::Value::Array(items)) if items.len() == names.len() => {
            items.iter().map(parse_mode).collect::<Result<_, _>>()?
        }
        Some(toml::Value::Array(items)) => {
            return Err((
                "mode",
                format!("{} modes for {} metrics: give one per metric, or one for all", items.len(), names.len()),
            ));
        }
        Some(one) => vec![parse_mode(one)?; names.len()],
    };
    Ok(names.into_iter().zip(modes).map(|(metric, mode)| Objective::new(metric, mode)).collect())
}

/// The constraints of `constraints = ["latency_ms <= 20"]`, checked.
fn constraints(value: &toml::Value) -> Result<Vec<Constraint>, String> {
    let list =
        value.as_array().ok_or_else(|| format!("expected a list such as [\"latency_ms <= 20\"], got {value}"))?;
    list.iter()
        .map(|c| {
            let text =
                c.as_str().ok_or_else(|| format!("expected a constraint such as \"latency_ms <= 20\", got {c}"))?;
            Constraint::parse(text)
        })
        .collect()
}

fn default_name() -> String {
    "experiment".into()
}
fn default_workers() -> usize {
    1
}
fn default_output() -> PathBuf {
    "runs".into()
}

/// The file as written, with spans kept for error messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    #[serde(default = "default_name")]
    name: String,
    metric: Spanned<toml::Value>,
    mode: Option<Spanned<toml::Value>>,
    constraints: Option<Spanned<toml::Value>>,
    resource_attr: Option<String>,
    max_resource_attr: Option<String>,
    #[serde(default = "default_workers")]
    workers: usize,
    #[serde(default)]
    seed: u64,
    #[serde(default = "default_output")]
    output: PathBuf,
    #[serde(default)]
    journal: Option<bool>,
    #[serde(default)]
    journal_sync: JournalSync,
    space: Spanned<BTreeMap<String, Spanned<toml::Value>>>,
    searcher: Option<Spanned<toml::Table>>,
    scheduler: Option<Spanned<toml::Table>>,
    backend: Option<Spanned<toml::Table>>,
    #[serde(default)]
    stop: Option<Spanned<toml::Table>>,
}

/// A parsed, checked experiment with every default filled in.
#[derive(Clone, Debug, Serialize)]
pub struct ExperimentSpec {
    /// The experiment's name (its folder's).
    pub name: String,
    /// The reported key optimized (the first objective, when there are several).
    pub metric: String,
    /// Minimize or maximize it.
    pub mode: Mode,
    /// Every objective, `metric` and `mode` first (written to the journal only when there
    /// are several).
    #[serde(skip_serializing_if = "is_single")]
    pub objectives: Vec<Objective>,
    /// Outcome constraints (`latency_ms <= 20`): a trial breaking one is infeasible.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// The reported key that counts training progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_attr: Option<String>,
    /// The config key that tells a trial how far to train.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_resource_attr: Option<String>,
    /// Trials at once.
    pub workers: usize,
    /// The master seed.
    pub seed: u64,
    /// The folder that experiment folders are created in.
    pub output: PathBuf,
    /// Whether to write `journal.jsonl` (and so `results.csv`).
    pub journal: bool,
    /// How far each round of journal entries goes before the tuner acts on it.
    pub journal_sync: JournalSync,
    /// The search space.
    pub space: Space,
    /// The scheduler (with its searcher) in resolved, serialized form; see [`Self::build_scheduler`].
    pub scheduler: serde_json::Value,
    /// The backend's table, interpreted by the backend crate.
    pub backend: serde_json::Value,
    /// When to stop.
    pub stop: StopCriteria,
    /// Where the spec came from, to point errors found later at the right line.
    #[serde(skip)]
    pub origin: Origin,
}

/// Why a plugin scheduler takes no `[searcher]`.
pub const PLUGIN_SEARCHER: &str = "a plugin scheduler (`type = \"plugin\"` or `\"process\"`) suggests its own configs and takes no searcher: remove the [searcher] table (the plugin's own settings go in `config`)";

/// The file a spec was read from and the line of each top-level table.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// The file.
    pub file: String,
    /// The line of each top-level table.
    pub lines: BTreeMap<String, usize>,
}

impl Origin {
    /// Reads the table `key` of the file (e.g. `"backend"`, given as JSON) into `T`; an error
    /// names the nested key (`backend.timeout`) and the line of its table.
    pub fn parse<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        value: serde_json::Value,
    ) -> Result<T, ExperimentError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let message = e.inner().to_string();
            let full = in_table(key, blamed_key(&e.path().to_string()));
            self.error(&full, message)
        })
    }

    /// An error about `key` (a top-level table such as `backend`, or `backend.command`).
    pub fn error(&self, key: &str, message: impl std::fmt::Display) -> ExperimentError {
        let table = key.split('.').next().unwrap_or(key);
        ExperimentError {
            file: self.file.clone(),
            line: self.lines.get(table).copied(),
            key: Some(key.to_owned()),
            message: message.to_string(),
        }
    }
}

impl ExperimentSpec {
    /// Whether `name` can name the experiment's folder: not empty, no path separator, not
    /// `.` or `..`.
    pub fn is_valid_name(name: &str) -> bool {
        !(name.is_empty() || name.contains(['/', '\\']) || name == "." || name == "..")
    }

    /// Reads and checks an experiment file.
    pub fn from_file(path: &std::path::Path) -> Result<ExperimentSpec, ExperimentError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ExperimentError {
            file: file.clone(),
            line: None,
            key: None,
            message: format!("cannot read the experiment file: {e}"),
        })?;
        ExperimentSpec::from_toml_str(&text, &file)
    }

    /// Parses and checks an experiment from TOML text; `file` names it in errors.
    pub fn from_toml_str(text: &str, file: &str) -> Result<ExperimentSpec, ExperimentError> {
        let error = |e: toml::de::Error, key: Option<String>| ExperimentError {
            file: file.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)),
            key,
            message: e.message().trim_end().to_owned(),
        };
        let document = toml::Deserializer::parse(text).map_err(|e| error(e, None))?;
        let raw: RawExperiment = serde_path_to_error::deserialize(document).map_err(|e| {
            let key = blamed_key(&e.path().to_string());
            error(e.into_inner(), key)
        })?;
        let mut origin = Origin { file: file.to_owned(), lines: BTreeMap::new() };
        let mut note_line = |key: &str, start: usize| {
            origin.lines.insert(key.to_owned(), line_of(text, start));
        };
        note_line("space", raw.space.span().start);
        note_line("metric", raw.metric.span().start);
        for (key, value) in [("mode", &raw.mode), ("constraints", &raw.constraints)] {
            if let Some(v) = value {
                note_line(key, v.span().start);
            }
        }
        for (key, table) in
            [("searcher", &raw.searcher), ("scheduler", &raw.scheduler), ("backend", &raw.backend), ("stop", &raw.stop)]
        {
            if let Some(t) = table {
                note_line(key, t.span().start);
            }
        }
        let objectives = objectives(raw.metric.get_ref(), raw.mode.as_ref().map(Spanned::get_ref))
            .map_err(|(key, m)| origin.error(key, m))?;
        let constraints = match &raw.constraints {
            Some(list) => constraints(list.get_ref()).map_err(|m| origin.error("constraints", m))?,
            None => Vec::new(),
        };

        let space = Space::from_toml_spanned(raw.space.get_ref(), file, text).map_err(|e| ExperimentError {
            file: file.to_owned(),
            line: e.location.and_then(|l| l.line),
            key: Some(format!("space.{}", e.param)),
            message: e.message,
        })?;
        if space.is_empty() {
            return Err(origin.error("space", "the search space is empty"));
        }

        let mut scheduler = raw.scheduler.map(Spanned::into_inner).unwrap_or_default();
        if !scheduler.contains_key("type") {
            scheduler.insert("type".into(), "fifo".into());
        }
        let plugin = matches!(scheduler.get("type").and_then(|t| t.as_str()), Some("plugin" | "process"));
        if plugin && (raw.searcher.is_some() || scheduler.contains_key("searcher")) {
            return Err(origin.error("searcher", PLUGIN_SEARCHER));
        }
        if let Some(searcher) = raw.searcher {
            if scheduler.contains_key("searcher") {
                return Err(origin.error("searcher", "given both as [searcher] and as scheduler.searcher; keep one"));
            }
            scheduler.insert("searcher".into(), toml::Value::Table(searcher.into_inner()));
        }
        // The searcher alone first, so an error in it points at its own table.
        if let Some(toml::Value::Table(searcher)) = scheduler.get("searcher") {
            read_tagged::<Box<dyn crate::Searcher>>(searcher)
                .map_err(|(key, m)| origin.error(&in_table("searcher", key), m))?;
        }
        let scheduler = read_tagged::<Box<dyn Scheduler>>(&scheduler)
            .and_then(|s| serde_json::to_value(&s).map_err(|e| (None, e.to_string())))
            .map_err(|(key, m)| origin.error(&in_table("scheduler", key), m))?;

        let stop: StopCriteria = match raw.stop {
            Some(t) => origin.parse("stop", serde_json::to_value(t.into_inner()).unwrap_or_default())?,
            None => StopCriteria::default(),
        };
        if raw.workers == 0 {
            return Err(origin.error("workers", "must be at least 1"));
        }
        if !ExperimentSpec::is_valid_name(&raw.name) {
            return Err(origin.error("name", format!("`{}` cannot be used as a folder name", raw.name)));
        }
        let backend = match raw.backend {
            Some(t) => serde_json::to_value(t.into_inner()).map_err(|e| origin.error("backend", e.to_string()))?,
            None => serde_json::json!({ "type": "threads" }),
        };
        let spec = ExperimentSpec {
            name: raw.name,
            metric: objectives[0].metric.clone(),
            mode: objectives[0].mode,
            objectives,
            constraints,
            resource_attr: raw.resource_attr,
            max_resource_attr: raw.max_resource_attr,
            workers: raw.workers,
            seed: raw.seed,
            output: raw.output,
            journal: raw.journal.unwrap_or(true),
            journal_sync: raw.journal_sync,
            space,
            scheduler,
            backend,
            stop,
            origin,
        };
        if let Some(attr) = &spec.max_resource_attr
            && spec.space.get(attr).is_none()
        {
            return Err(spec
                .origin
                .error("max_resource_attr", format!("`{attr}` is not a parameter of the search space")));
        }
        Ok(spec)
    }

    /// A fresh scheduler (with its searcher) as the spec describes it.
    pub fn build_scheduler(&self) -> Result<Box<dyn Scheduler>, ExperimentError> {
        self.origin.parse("scheduler", self.scheduler.clone())
    }

    /// The metrics the experiment reads from reports: its objectives, then the others its
    /// constraints bound.
    pub fn metrics_read(&self) -> Vec<&str> {
        let mut metrics: Vec<&str> = self.objectives.iter().map(|o| o.metric.as_str()).collect();
        for constraint in &self.constraints {
            if !metrics.contains(&constraint.metric.as_str()) {
                metrics.push(&constraint.metric);
            }
        }
        metrics
    }

    /// What the scheduler and searcher learn about the experiment.
    pub fn context(&self) -> Context {
        Context {
            space: self.space.clone(),
            objective: Objective::new(&self.metric, self.mode),
            objectives: if is_single(&self.objectives) { Vec::new() } else { self.objectives.clone() },
            constraints: self.constraints.clone(),
            resource_attr: self.resource_attr.clone(),
            max_resource_attr: self.max_resource_attr.clone(),
            seed: self.seed,
        }
    }

    /// The spec as JSON (the journal's header holds it).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The resolved spec as TOML, as written to `experiment.toml`.
    /// The search space comes last, one line per parameter in the syntax users write
    /// (`lr = { loguniform = [0.0001, 0.1] }`).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let mut json = self.to_json();
        // Several objectives are written as the file spells them: lists of metrics and modes.
        if let Some(objectives) = json.as_object_mut().and_then(|o| o.remove("objectives")) {
            let list = |key: &str| objectives.as_array().into_iter().flatten().map(|o| o[key].clone()).collect();
            json["metric"] = serde_json::Value::Array(list("metric"));
            json["mode"] = serde_json::Value::Array(list("mode"));
        }
        let space = json.as_object_mut().and_then(|o| o.remove("space")).unwrap_or_default();
        let mut text = toml::to_string_pretty(&json)?;
        text.push_str("\n[space]\n");
        for (name, domain) in space.as_object().into_iter().flatten() {
            text.push_str(&format!("{} = {}\n", toml_key(name), inline_toml(domain)));
        }
        Ok(text)
    }
}

/// A key, quoted unless it is bare-safe.
fn toml_key(key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        key.to_owned()
    } else {
        serde_json::Value::String(key.to_owned()).to_string()
    }
}

/// A JSON value as an inline TOML value (JSON strings are valid TOML basic strings).
fn inline_toml(value: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match value {
        J::Object(map) => {
            let fields: Vec<String> =
                map.iter().map(|(k, v)| format!("{} = {}", toml_key(k), inline_toml(v))).collect();
            format!("{{ {} }}", fields.join(", "))
        }
        J::Array(items) => format!("[{}]", items.iter().map(inline_toml).collect::<Vec<_>>().join(", ")),
        J::Number(n) if n.is_f64() => {
            // Shortest round-trip form, kept a float in TOML (`1` would read back as an integer).
            let text = n.as_f64().unwrap_or_default().to_string();
            if text.contains(['.', 'e', 'E']) { text } else { format!("{text}.0") }
        }
        other => other.to_string(),
    }
}

/// Builds the scheduler once (so unknown types and fields are caught now) and serializes it
/// back, which fills in every default.
/// Reads a table tagged by `type` (a scheduler or searcher) into `T`. On error, also the
/// key to blame: the tag hides the path from serde, so it is the first key whose removal
/// makes the message go away.
fn read_tagged<T: serde::de::DeserializeOwned>(table: &toml::Table) -> Result<T, (Option<String>, String)> {
    let read = |table: &toml::Table| -> Result<T, String> {
        toml::Value::Table(table.clone()).try_into().map_err(|e: toml::de::Error| e.message().trim_end().to_owned())
    };
    read(table).map_err(|message| {
        let blamed = table.keys().filter(|k| *k != "type").find(|key| {
            let mut without = table.clone();
            without.remove(key.as_str());
            read(&without).err().is_none_or(|m| m != message)
        });
        (blamed.cloned(), message)
    })
}

/// The key an error at `path` names, if any (serde's path of the document itself is `.`).
fn blamed_key(path: &str) -> Option<String> {
    Some(path.to_owned()).filter(|path| !path.is_empty() && path != ".")
}

/// `table.key`, or `table` alone.
fn in_table(table: &str, key: Option<String>) -> String {
    key.map_or_else(|| table.to_owned(), |key| format!("{table}.{key}"))
}
