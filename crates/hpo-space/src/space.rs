//! A search space: named hyperparameters, each with a domain.

use std::collections::BTreeMap;
use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::domain::{Axis, Domain};
use crate::value::{Config, Value};

/// Where a search space came from, so errors can name the file and line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Location {
    /// The file.
    pub file: String,
    /// The line, when known.
    pub line: Option<usize>,
}

/// A search space or config that is not valid: which parameter, where, and what was expected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct SpaceError {
    /// The parameter (empty when the error is about the whole space).
    pub param: String,
    /// Where it was written, when known.
    pub location: Option<Location>,
    /// What was expected.
    pub message: String,
}

impl fmt::Display for SpaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(Location { file, line: Some(line) }) => write!(f, "{file}:{line}: ")?,
            Some(Location { file, line: None }) => write!(f, "{file}: ")?,
            None => {}
        }
        write!(f, "search space parameter `{}`: {}", self.param, self.message)
    }
}

impl SpaceError {
    fn new(param: &str, message: impl Into<String>) -> Self {
        SpaceError { param: param.to_owned(), location: None, message: message.into() }
    }
}

/// Named hyperparameters with their domains, in name order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Space {
    params: BTreeMap<String, Domain>,
}

impl Space {
    /// Starts a space in code: `Space::builder().uniform("x", 0.0, 1.0).build()?`.
    pub fn builder() -> SpaceBuilder {
        SpaceBuilder::default()
    }

    /// A space from already checked domains.
    pub fn from_domains(params: impl IntoIterator<Item = (String, Domain)>) -> Result<Space, SpaceError> {
        let params: BTreeMap<String, Domain> = params.into_iter().collect();
        for (name, domain) in &params {
            domain.check().map_err(|m| SpaceError::new(name, m.0))?;
        }
        Ok(Space { params })
    }

    /// Parses the search-space syntax from a JSON object (`{"lr": {"loguniform": [1e-4, 1e-1]}}`).
    pub fn from_json(spec: &serde_json::Value) -> Result<Space, SpaceError> {
        let map = spec
            .as_object()
            .ok_or_else(|| SpaceError::new("", format!("expected a table of parameters, got {spec}")))?;
        let params = map
            .iter()
            .map(|(name, v)| Domain::from_json(v).map(|d| (name.clone(), d)).map_err(|m| SpaceError::new(name, m.0)))
            .collect::<Result<_, _>>()?;
        Ok(Space { params })
    }

    /// Parses a TOML table of parameters as it appears under `[space]` in an experiment file,
    /// reporting errors with the file name and the line of the offending parameter.
    pub fn from_toml_spanned(
        table: &BTreeMap<String, toml::Spanned<toml::Value>>,
        file: &str,
        source: &str,
    ) -> Result<Space, SpaceError> {
        let mut params = BTreeMap::new();
        for (name, spanned) in table {
            let located = |message: String| SpaceError {
                param: name.clone(),
                location: Some(Location { file: file.to_owned(), line: Some(line_of(source, spanned.span().start)) }),
                message,
            };
            // JSON has no NaN or infinity (they would turn into null): say so with TOML's text.
            if let Some(message) = non_finite(spanned.get_ref()) {
                return Err(located(message));
            }
            let json = serde_json::to_value(spanned.get_ref()).map_err(|e| located(e.to_string()))?;
            params.insert(name.clone(), Domain::from_json(&json).map_err(|e| located(e.0))?);
        }
        Ok(Space { params })
    }

    /// Parses a standalone TOML document whose top-level keys are the parameters.
    pub fn from_toml_str(source: &str, file: &str) -> Result<Space, SpaceError> {
        let table: BTreeMap<String, toml::Spanned<toml::Value>> = toml::from_str(source).map_err(|e| SpaceError {
            param: String::new(),
            location: Some(Location { file: file.to_owned(), line: e.span().map(|s| line_of(source, s.start)) }),
            message: e.message().to_owned(),
        })?;
        Space::from_toml_spanned(&table, file, source)
    }

    /// The space in the search-space syntax, as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.params.iter().map(|(k, d)| (k.clone(), d.to_json())).collect())
    }

    /// Every (name, domain), in name order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &Domain)> {
        self.params.iter().map(|(k, d)| (k.as_str(), d))
    }

    /// The domain of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Domain> {
        self.params.get(name)
    }

    /// Parameters in the space.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the space has no parameter.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Draws one config: every parameter independently from its domain.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Config {
        self.params.iter().map(|(k, d)| (k.clone(), d.sample(rng))).collect()
    }

    /// Checks that `config` has exactly the space's parameters, each within its domain.
    pub fn validate(&self, config: &Config) -> Result<(), SpaceError> {
        self.validate_except(config, None)
    }

    /// Like [`Space::validate`], but `resource_key` (a multi-fidelity scheduler's
    /// `max_resource_attr`, which it sets to each rung level) need only be a number.
    pub fn validate_except(&self, config: &Config, resource_key: Option<&str>) -> Result<(), SpaceError> {
        for (name, domain) in &self.params {
            let value = config.get(name).ok_or_else(|| SpaceError::new(name, "missing from the config"))?;
            if Some(name.as_str()) == resource_key {
                if value.as_f64().is_none() {
                    return Err(SpaceError::new(name, format!("the resource limit must be a number, got {value:?}")));
                }
                continue;
            }
            domain.validate(value).map_err(|m| SpaceError::new(name, m.0))?;
        }
        if let Some((extra, _)) = config.iter().find(|(k, _)| !self.params.contains_key(*k)) {
            return Err(SpaceError::new(extra, "is in the config but not in the search space"));
        }
        Ok(())
    }

    /// Length of the \[0,1\]^d encoding (constants take none, `choice` one per value).
    pub fn encoded_dim(&self) -> usize {
        self.params.values().map(Domain::encoded_dim).sum()
    }

    /// Encodes a valid config into \[0,1\]^d, parameters in name order.
    pub fn encode(&self, config: &Config) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.encoded_dim());
        for (name, domain) in &self.params {
            let fallback = Value::Bool(false);
            domain.encode(config.get(name).unwrap_or(&fallback), &mut out);
        }
        out
    }

    /// The encoding of a random config: `encode(&sample(rng))`, the same draws and the same
    /// numbers, without building the config (model-based searchers score thousands).
    pub fn sample_encoded<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.encoded_dim());
        for domain in self.params.values() {
            domain.sample_encoded(rng, &mut out);
        }
        out
    }

    /// The encoding of the config nearest to `coords`: `encode(&decode(coords))` without
    /// building the config.
    pub fn snap(&self, coords: &[f64]) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.encoded_dim());
        for (domain, coords) in self.domain_coords(coords) {
            domain.snap(coords, &mut out);
        }
        out
    }

    /// Each domain with its slice of `coords` (an encoding, possibly cut short).
    fn domain_coords<'a>(&'a self, coords: &'a [f64]) -> impl Iterator<Item = (&'a Domain, &'a [f64])> {
        let mut offset = 0;
        self.params.values().map(move |domain| {
            let end = (offset + domain.encoded_dim()).min(coords.len());
            let slice = &coords[offset.min(end)..end];
            offset += domain.encoded_dim();
            (domain, slice)
        })
    }

    /// Decodes a point of \[0,1\]^d (length `encoded_dim()`) into the nearest config.
    pub fn decode(&self, coords: &[f64]) -> Config {
        self.params
            .keys()
            .zip(self.domain_coords(coords))
            .map(|(name, (domain, c))| (name.clone(), domain.decode(c)))
            .collect()
    }

    /// How many configs the space holds, if every domain is finite and the count fits a
    /// `usize`.
    pub fn size(&self) -> Option<usize> {
        self.params.values().try_fold(1usize, |acc, d| d.cardinality().and_then(|n| acc.checked_mul(n)))
    }

    /// Every combination of the parameters' grid values (see [`Domain::grid_axis`]), in a
    /// fixed order: the last parameter by name varies fastest. Nothing is materialized, so
    /// any grid whose size fits a `usize` can be walked; a larger one is an error naming the
    /// parameter at which the count overflows.
    pub fn grid(&self, points_per_numeric: usize) -> Result<Grid, SpaceError> {
        let mut axes = Vec::with_capacity(self.params.len());
        let mut len = 1usize;
        for (name, domain) in &self.params {
            let axis = domain.grid_axis(points_per_numeric).map_err(|m| SpaceError::new(name, m.0))?;
            len = len.checked_mul(axis.len()).ok_or_else(|| {
                SpaceError::new(
                    name,
                    format!(
                        "the grid is too large to enumerate: with this parameter's {} values it has more than {} points",
                        axis.len(),
                        usize::MAX
                    ),
                )
            })?;
            axes.push((name.clone(), axis));
        }
        Ok(Grid { axes, len })
    }

    /// The grid of every value of a finite space ([`Space::size`] is `Some`).
    pub fn every_config(&self) -> Option<Grid> {
        self.size()?;
        self.grid(usize::MAX).ok()
    }
}

/// The grid of a space: indexable without materializing any config but the one asked for.
#[derive(Clone, Debug)]
pub struct Grid {
    axes: Vec<(String, Axis)>,
    len: usize,
}

impl Grid {
    /// The number of configs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the grid has no config.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `index`-th config in mixed-radix order, or `None` past the end.
    pub fn get(&self, mut index: usize) -> Option<Config> {
        if index >= self.len {
            return None;
        }
        let mut config = Config::new();
        for (name, axis) in self.axes.iter().rev() {
            config.insert(name.clone(), axis.get(index % axis.len()));
            index /= axis.len();
        }
        Some(config)
    }

    /// Every config, in mixed-radix order.
    pub fn iter(&self) -> impl Iterator<Item = Config> + '_ {
        (0..self.len).map_while(|i| self.get(i))
    }
}

impl Serialize for Space {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Space {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(d)?;
        Space::from_json(&json).map_err(serde::de::Error::custom)
    }
}

/// Why a parameter's TOML holds a NaN or an infinity, if it does.
fn non_finite(value: &toml::Value) -> Option<String> {
    fn has(value: &toml::Value) -> bool {
        match value {
            toml::Value::Float(x) => !x.is_finite(),
            toml::Value::Array(items) => items.iter().any(has),
            toml::Value::Table(table) => table.values().any(has),
            _ => false,
        }
    }
    if !has(value) {
        return None;
    }
    Some(match value.as_table().filter(|t| t.len() == 1).and_then(|t| t.iter().next()) {
        Some((kw, args)) => format!("`{kw}` needs finite numbers, got {args}"),
        None => format!("values must be finite numbers, got {value}"),
    })
}

/// 1-based line number of a byte offset.
pub fn line_of(source: &str, offset: usize) -> usize {
    source.as_bytes()[..offset.min(source.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Builds a [`Space`] in code; `build` reports the first invalid parameter.
#[derive(Clone, Debug, Default)]
pub struct SpaceBuilder {
    params: Vec<(String, Domain)>,
}

impl SpaceBuilder {
    /// Adds a parameter with any domain.
    pub fn param(mut self, name: impl Into<String>, domain: Domain) -> Self {
        self.params.push((name.into(), domain));
        self
    }

    /// Adds `{ uniform = [low, high] }`.
    pub fn uniform(self, name: impl Into<String>, low: f64, high: f64) -> Self {
        self.param(name, Domain::Uniform { low, high })
    }

    /// Adds `{ loguniform = [low, high] }`.
    pub fn loguniform(self, name: impl Into<String>, low: f64, high: f64) -> Self {
        self.param(name, Domain::LogUniform { low, high })
    }

    /// Adds `{ randint = [low, high] }`.
    pub fn randint(self, name: impl Into<String>, low: i64, high: i64) -> Self {
        self.param(name, Domain::RandInt { low, high })
    }

    /// Adds `{ lograndint = [low, high] }`.
    pub fn lograndint(self, name: impl Into<String>, low: i64, high: i64) -> Self {
        self.param(name, Domain::LogRandInt { low, high })
    }

    /// Adds `{ choice = [...] }`.
    pub fn choice<V: Into<Value>>(self, name: impl Into<String>, values: impl IntoIterator<Item = V>) -> Self {
        self.param(name, Domain::Choice(values.into_iter().map(Into::into).collect()))
    }

    /// Adds `{ ordinal = [...] }`.
    pub fn ordinal<V: Into<Value>>(self, name: impl Into<String>, values: impl IntoIterator<Item = V>) -> Self {
        self.param(name, Domain::Ordinal(values.into_iter().map(Into::into).collect()))
    }

    /// Adds `{ finrange = [low, high, size] }`.
    pub fn finrange(self, name: impl Into<String>, low: f64, high: f64, size: usize) -> Self {
        self.param(name, Domain::FinRange { low, high, size })
    }

    /// Adds `{ logfinrange = [low, high, size] }`.
    pub fn logfinrange(self, name: impl Into<String>, low: f64, high: f64, size: usize) -> Self {
        self.param(name, Domain::LogFinRange { low, high, size })
    }

    /// Adds a constant.
    pub fn constant(self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.param(name, Domain::Constant(value.into()))
    }

    /// The space, once every domain is checked and no name is given twice.
    pub fn build(self) -> Result<Space, SpaceError> {
        let mut seen = std::collections::BTreeSet::new();
        for (name, _) in &self.params {
            if !seen.insert(name.as_str()) {
                return Err(SpaceError::new(name, "is defined twice"));
            }
        }
        Space::from_domains(self.params)
    }
}
