//! Tabulated learning curves: a CSV (optionally gzipped) with one row per (config, seed,
//! epoch), and a small spec file naming the columns' roles.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use hpo_core::{Config, Domain, Mode, Space, Value};
use serde::Deserialize;

use super::{Blackbox, BlackboxInfo, Curve};

const DIGITS_SPEC: &str = include_str!("../../data/digits-mlp/spec.toml");
const DIGITS_TABLE: &[u8] = include_bytes!("../../data/digits-mlp/table.csv.gz");

/// The spec file of a table (see `data/digits-mlp/spec.toml`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabularSpec {
    /// The blackbox's name.
    pub name: String,
    /// The CSV file, relative to the spec file; `.gz` is decompressed.
    pub table: String,
    /// A column naming each config (optional; configs are found by their values).
    #[serde(default)]
    pub config_id_column: Option<String>,
    /// The column of the repetition's seed, if the table has several.
    #[serde(default)]
    pub seed_column: Option<String>,
    /// The seeds present (a run picks one by its own seed).
    #[serde(default = "one_seed")]
    pub seeds: Vec<i64>,
    /// The column counting epochs (1-based).
    pub resource_column: String,
    /// Epochs of a full learning curve.
    pub max_resource: u32,
    /// The column of cumulative training seconds.
    pub elapsed_time_column: String,
    /// Metric columns and their directions (`"min"` or `"max"`).
    pub metrics: BTreeMap<String, Mode>,
    /// The metric optimized unless another is asked for.
    pub default_metric: String,
    /// A metric to add (minimized) reporting the seconds a config takes to train fully, the
    /// elapsed time of its last epoch: a cost to trade accuracy against, reported from the
    /// first epoch on (`train_time` on digits-mlp).
    #[serde(default)]
    pub full_time_metric: Option<String>,
    /// The hyperparameter columns and their values (finite domains).
    pub space: serde_json::Value,
}

fn one_seed() -> Vec<i64> {
    vec![0]
}

/// A table of learning curves, held as one flat array.
pub struct Tabular {
    info: BlackboxInfo,
    /// Per hyperparameter (in space order): its values, to find a config's position.
    axes: Vec<(String, Vec<Value>)>,
    seeds: usize,
    /// [(config, seed, epoch-1), (elapsed, metrics...)], NaN where the table has no row.
    data: Arc<[f64]>,
    stride: usize,
    optimum: Vec<f64>,
}

impl Tabular {
    /// The digits-mlp benchmark shipped in the repo.
    pub fn digits_mlp() -> Result<Tabular, crate::Error> {
        let spec: TabularSpec =
            toml::from_str(DIGITS_SPEC).map_err(|e| crate::Error::Data(format!("digits-mlp spec: {e}")))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(DIGITS_TABLE)
            .read_to_string(&mut text)
            .map_err(|e| crate::Error::Data(format!("digits-mlp table: {e}")))?;
        Tabular::from_csv(spec, &text)
    }

    /// A table from its spec file.
    pub fn from_spec_file(path: &Path) -> Result<Tabular, crate::Error> {
        let spec_text =
            std::fs::read_to_string(path).map_err(|e| crate::Error::Data(format!("{}: {e}", path.display())))?;
        let spec: TabularSpec = toml::from_str(&spec_text)
            .map_err(|e| crate::Error::Data(format!("{}: {}", path.display(), e.message())))?;
        let table_path = path.parent().unwrap_or(Path::new(".")).join(&spec.table);
        let bytes =
            std::fs::read(&table_path).map_err(|e| crate::Error::Data(format!("{}: {e}", table_path.display())))?;
        let mut text = String::new();
        if spec.table.ends_with(".gz") {
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .map_err(|e| crate::Error::Data(format!("{}: {e}", table_path.display())))?;
        } else {
            text =
                String::from_utf8(bytes).map_err(|e| crate::Error::Data(format!("{}: {e}", table_path.display())))?;
        }
        Tabular::from_csv(spec, &text).map_err(|e| crate::Error::Data(format!("{}: {e}", table_path.display())))
    }

    /// Builds the table from the CSV text.
    pub fn from_csv(spec: TabularSpec, text: &str) -> Result<Tabular, crate::Error> {
        Self::parse_csv(spec, text).map_err(crate::Error::Data)
    }

    fn parse_csv(spec: TabularSpec, text: &str) -> Result<Tabular, String> {
        let space = Space::from_json(&spec.space).map_err(|e| e.to_string())?;
        let axes: Vec<(String, Vec<Value>)> = space
            .params()
            .map(|(name, domain)| match domain {
                Domain::Choice(v) | Domain::Ordinal(v) => Ok((name.to_owned(), v.clone())),
                _ => Err(format!("`{name}`: a table's space must list its values (ordinal or choice)")),
            })
            .collect::<Result<_, _>>()?;
        let mut metrics: Vec<(String, Mode)> = spec.metrics.iter().map(|(k, m)| (k.clone(), *m)).collect();
        if !spec.metrics.contains_key(&spec.default_metric) {
            return Err(format!("default_metric `{}` is not among the metrics", spec.default_metric));
        }
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().ok_or("the table is empty")?.split(',').map(str::trim).collect();
        let column = |name: &str| header.iter().position(|h| *h == name).ok_or_else(|| format!("no column `{name}`"));
        let param_cols: Vec<usize> = axes.iter().map(|(n, _)| column(n)).collect::<Result<_, _>>()?;
        let metric_cols: Vec<usize> = metrics.iter().map(|(n, _)| column(n)).collect::<Result<_, _>>()?;
        let resource_col = column(&spec.resource_column)?;
        let elapsed_col = column(&spec.elapsed_time_column)?;
        let seed_col = spec.seed_column.as_deref().map(column).transpose()?;

        let table_metrics = metrics.len();
        if let Some(name) = &spec.full_time_metric {
            if spec.metrics.contains_key(name) {
                return Err(format!("full_time_metric `{name}` is already a metric column"));
            }
            metrics.push((name.clone(), Mode::Min));
        }
        let n_configs: usize = axes.iter().map(|(_, v)| v.len()).product();
        let (seeds, max_resource) = (spec.seeds.len(), spec.max_resource as usize);
        let stride = 1 + metrics.len();
        let mut data = vec![f64::NAN; n_configs * seeds * max_resource * stride];
        for (i, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split(',').collect();
            let row = i + 2;
            let number = |c: usize| -> Result<f64, String> {
                let f = fields.get(c).ok_or_else(|| format!("line {row}: too few columns"))?.trim();
                if f.is_empty() || f.eq_ignore_ascii_case("nan") {
                    return Ok(f64::NAN);
                }
                f.parse::<f64>().map_err(|_| format!("line {row}: `{f}` is not a number"))
            };
            let mut index = 0;
            for ((name, values), &c) in axes.iter().zip(&param_cols) {
                let v = Value::Float(number(c)?);
                let pos = values
                    .iter()
                    .position(|x| {
                        x.as_f64()
                            .is_some_and(|x| (x - v.as_f64().unwrap_or(f64::NAN)).abs() <= 1e-9 * x.abs().max(1e-300))
                    })
                    .ok_or_else(|| format!("line {row}: `{name}` = {v} is not in the space"))?;
                index = index * values.len() + pos;
            }
            let seed = match seed_col {
                Some(c) => {
                    let s = number(c)? as i64;
                    match spec.seeds.iter().position(|&x| x == s) {
                        Some(p) => p,
                        None => continue, // a seed the spec does not use
                    }
                }
                None => 0,
            };
            let epoch = number(resource_col)? as usize;
            if epoch == 0 || epoch > max_resource {
                continue;
            }
            let at = ((index * seeds + seed) * max_resource + epoch - 1) * stride;
            data[at] = number(elapsed_col)?;
            for (j, &c) in metric_cols.iter().enumerate() {
                data[at + 1 + j] = number(c)?;
            }
        }
        if metrics.len() > table_metrics {
            // Every epoch of a curve reports the elapsed time of the curve's last epoch.
            for curve in data.chunks_mut(max_resource * stride) {
                let total = curve.chunks(stride).map(|e| e[0]).rfind(|t| t.is_finite()).unwrap_or(f64::NAN);
                for epoch in curve.chunks_mut(stride).filter(|e| e[0].is_finite()) {
                    epoch[stride - 1] = total;
                }
            }
        }
        let optimum = (0..metrics.len())
            .map(|j| {
                let values = data.chunks(stride).map(|p| p[1 + j]).filter(|v| v.is_finite());
                match metrics[j].1 {
                    Mode::Min => values.fold(f64::INFINITY, f64::min),
                    Mode::Max => values.fold(f64::NEG_INFINITY, f64::max),
                }
            })
            .collect();
        Ok(Tabular {
            info: BlackboxInfo {
                name: spec.name,
                space,
                resource_attr: "epoch".into(),
                max_resource: spec.max_resource,
                metrics,
                default_metric: spec.default_metric,
            },
            axes,
            seeds,
            data: data.into(),
            stride,
            optimum,
        })
    }
}

struct TableCurve {
    data: Arc<[f64]>,
    offset: usize,
    stride: usize,
    epochs: u32,
}

impl Curve for TableCurve {
    fn at(&self, epoch: u32, out: &mut [f64]) -> Option<f64> {
        if epoch == 0 || epoch > self.epochs {
            return None;
        }
        let at = self.offset + (epoch as usize - 1) * self.stride;
        let elapsed = self.data[at];
        if elapsed.is_nan() {
            return None;
        }
        out.copy_from_slice(&self.data[at + 1..at + self.stride]);
        Some(elapsed)
    }
}

impl Blackbox for Tabular {
    fn info(&self) -> &BlackboxInfo {
        &self.info
    }

    fn curve(&self, config: &Config, seed: u64) -> Result<Box<dyn Curve>, crate::Error> {
        let mut index = 0;
        for (name, values) in &self.axes {
            let v = config.get(name).ok_or_else(|| crate::Error::Config(format!("the config has no `{name}`")))?;
            let pos = values
                .iter()
                .position(|x| x.as_f64() == v.as_f64() || x == v)
                .ok_or_else(|| crate::Error::Config(format!("`{name}` = {v} is not in the table")))?;
            index = index * values.len() + pos;
        }
        let seed = (seed % self.seeds as u64) as usize;
        let max = self.info.max_resource as usize;
        Ok(Box::new(TableCurve {
            data: Arc::clone(&self.data),
            offset: (index * self.seeds + seed) * max * self.stride,
            stride: self.stride,
            epochs: self.info.max_resource,
        }))
    }

    fn optimum(&self, metric: &str) -> Option<f64> {
        self.info.metric_index(metric).map(|j| self.optimum[j])
    }
}
