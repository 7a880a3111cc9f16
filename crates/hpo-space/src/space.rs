//! A search space: named hyperparameters, each with a domain.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::condition::{Analysis, Condition};
use crate::domain::{Axis, Domain};
use crate::symbol::Symbol;
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

/// Named hyperparameters with their domains, in name order; some active only under a
/// condition on others (`when`), and combinations that are never suggested (`forbid`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Space {
    params: BTreeMap<Symbol, Domain>,
    /// When each conditional parameter is active.
    conditions: BTreeMap<Symbol, Condition>,
    /// Combinations never suggested.
    forbid: Vec<Condition>,
    /// Every parameter after those its condition compares (by name otherwise).
    order: Vec<Symbol>,
}

/// A forbid clause must leave at least this many of [`FORBID_DRAWS`] random configs.
const FORBID_MIN_ALLOWED: usize = 10;
/// Random configs drawn to check that the forbid clauses leave enough of the space.
const FORBID_DRAWS: usize = 10_000;
/// Draws a sample makes at most to avoid the forbidden combinations: with at least 1 in 1,000
/// allowed (checked when the space is built), all fail with probability below e^-100.
const MAX_REDRAWS: usize = 100_000;
/// The most configs a conditional grid lists (it is listed, not indexed as a product).
const MAX_LISTED_CONFIGS: usize = 1_000_000;

/// A space's entries as parsed, before they are checked together.
#[derive(Default)]
struct Parts {
    params: BTreeMap<Symbol, Domain>,
    whens: BTreeMap<String, String>,
    forbids: Vec<String>,
}

impl Parts {
    /// Adds one entry of the search-space syntax: a domain with an optional `when`, or the
    /// space's `forbid` list (a parameter may still be named `forbid`: only a list is one).
    fn add(&mut self, name: &str, spec: &serde_json::Value) -> Result<(), String> {
        if name == "forbid"
            && let Some(list) = spec.as_array()
        {
            let clauses: Option<Vec<String>> = list.iter().map(|c| c.as_str().map(str::to_owned)).collect();
            self.forbids = clauses.ok_or_else(|| {
                format!("`forbid` is a list of conditions such as [\"batch_size > 256 and lr > 0.1\"], got {spec}")
            })?;
            return Ok(());
        }
        let mut spec = spec.clone();
        match spec.as_object_mut().and_then(|o| o.remove("when")) {
            None => {}
            Some(serde_json::Value::String(when)) => {
                self.whens.insert(name.to_owned(), when);
            }
            Some(other) => return Err(format!("`when` is a condition such as \"optimizer == 'sgd'\", got {other}")),
        }
        self.params.insert(name.into(), Domain::from_json(&spec).map_err(|e| e.0)?);
        Ok(())
    }

    fn assemble(self) -> Result<Space, SpaceError> {
        Space::assemble(self.params, self.whens, self.forbids)
    }
}

impl Space {
    /// Starts a space in code: `Space::builder().uniform("x", 0.0, 1.0).build()?`.
    pub fn builder() -> SpaceBuilder {
        SpaceBuilder::default()
    }

    /// A space from already checked domains.
    pub fn from_domains(params: impl IntoIterator<Item = (String, Domain)>) -> Result<Space, SpaceError> {
        let params: BTreeMap<Symbol, Domain> = params.into_iter().map(|(name, domain)| (name.into(), domain)).collect();
        for (name, domain) in &params {
            domain.check().map_err(|m| SpaceError::new(name, m.0))?;
        }
        Space::assemble(params, BTreeMap::new(), Vec::new())
    }

    /// A space from checked domains, conditions (`when`, by parameter) and forbid clauses:
    /// each condition parsed and checked against the domains it compares, no cycle, every
    /// parameter able to be active, every forbid clause able to hold, and at least 1 in 1,000
    /// random configs left allowed.
    fn assemble(
        params: BTreeMap<Symbol, Domain>,
        whens: BTreeMap<String, String>,
        forbids: Vec<String>,
    ) -> Result<Space, SpaceError> {
        let mut conditions = BTreeMap::new();
        for (name, text) in whens {
            let name = Symbol::from(name);
            let when = |m: String| SpaceError::new(&name, format!("`when = \"{text}\"`: {m}"));
            let condition = Condition::parse(&text).map_err(when)?;
            condition.check(&params).map_err(when)?;
            if condition.params().contains(&name.as_str()) {
                return Err(when(format!("`{name}` cannot depend on itself")));
            }
            conditions.insert(name, condition);
        }
        let mut forbid = Vec::new();
        for text in forbids {
            let clause = |m: String| SpaceError::new("forbid", format!("`{text}`: {m}"));
            let condition = Condition::parse(&text).map_err(clause)?;
            condition.check(&params).map_err(clause)?;
            forbid.push(condition);
        }
        let order = dependency_order(&params, &conditions)?;
        let analysis = Analysis::new(&params, &conditions, &order);
        for (name, condition) in &conditions {
            if !analysis.can_be_active(name) {
                return Err(SpaceError::new(
                    name,
                    format!(
                        "`when = \"{condition}\"` can never hold (with the conditions of the parameters it compares): the parameter would never be used"
                    ),
                ));
            }
        }
        if let Some(clause) = forbid.iter().find(|c| !analysis.can_hold(c)) {
            return Err(SpaceError::new("forbid", format!("`{clause}` can never hold: it forbids nothing")));
        }
        let space = Space { params, conditions, forbid, order };
        if !space.forbid.is_empty() {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let allowed = (0..FORBID_DRAWS).filter(|_| !space.is_forbidden(&space.draw(&mut rng))).count();
            if allowed < FORBID_MIN_ALLOWED {
                return Err(SpaceError::new(
                    "forbid",
                    format!(
                        "the clauses forbid {} of {FORBID_DRAWS} random configs: too little of the space is left to search (write the rule as a `when` on the parameters instead)",
                        FORBID_DRAWS - allowed
                    ),
                ));
            }
        }
        Ok(space)
    }

    /// Parses the search-space syntax from a JSON object (`{"lr": {"loguniform": [1e-4, 1e-1]}}`).
    pub fn from_json(spec: &serde_json::Value) -> Result<Space, SpaceError> {
        let map = spec
            .as_object()
            .ok_or_else(|| SpaceError::new("", format!("expected a table of parameters, got {spec}")))?;
        let mut parts = Parts::default();
        for (name, v) in map {
            parts.add(name, v).map_err(|m| SpaceError::new(name, m))?;
        }
        parts.assemble()
    }

    /// Parses a TOML table of parameters as it appears under `[space]` in an experiment file,
    /// reporting errors with the file name and the line of the offending parameter.
    pub fn from_toml_spanned(
        table: &BTreeMap<String, toml::Spanned<toml::Value>>,
        file: &str,
        source: &str,
    ) -> Result<Space, SpaceError> {
        let location = |name: &str| {
            let line = table.get(name).map(|spanned| line_of(source, spanned.span().start));
            Some(Location { file: file.to_owned(), line })
        };
        let mut parts = Parts::default();
        for (name, spanned) in table {
            let located = |message: String| SpaceError { param: name.clone(), location: location(name), message };
            // JSON has no NaN or infinity (they would turn into null): say so with TOML's text.
            if let Some(message) = non_finite(spanned.get_ref()) {
                return Err(located(message));
            }
            let json = serde_json::to_value(spanned.get_ref()).map_err(|e| located(e.to_string()))?;
            parts.add(name, &json).map_err(located)?;
        }
        // Errors about conditions name the parameter (or `forbid`): point at its line.
        parts.assemble().map_err(|e| SpaceError { location: location(&e.param), ..e })
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

    /// The space in the search-space syntax, as JSON (conditions as `when`, and `forbid`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut map: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, d)| {
                let mut json = d.to_json();
                if let (Some(c), Some(o)) = (self.conditions.get(k), json.as_object_mut()) {
                    o.insert("when".into(), c.text().into());
                }
                (k.to_string(), json)
            })
            .collect();
        if !self.forbid.is_empty() {
            map.insert("forbid".into(), self.forbid.iter().map(|c| c.text()).collect());
        }
        serde_json::Value::Object(map)
    }

    /// Whether some parameter has a condition or some combination is forbidden.
    pub fn is_conditional(&self) -> bool {
        !self.conditions.is_empty() || !self.forbid.is_empty()
    }

    /// The condition under which `name` is active (`None`: always).
    pub fn condition(&self, name: &str) -> Option<&Condition> {
        self.conditions.get(name)
    }

    /// The forbid clauses.
    pub fn forbidden(&self) -> &[Condition] {
        &self.forbid
    }

    /// Whether `name` is active given the config's other values (its condition holds).
    pub fn is_active(&self, name: &str, config: &Config) -> bool {
        self.conditions.get(name).is_none_or(|c| c.holds(config))
    }

    /// Whether a forbid clause holds for the config.
    pub fn is_forbidden(&self, config: &Config) -> bool {
        self.forbid.iter().any(|c| c.holds(config))
    }

    /// Every (name, domain), each after the parameters its condition compares (by name
    /// otherwise): the order in which a config is drawn.
    pub fn params_in_order(&self) -> impl Iterator<Item = (&str, &Domain)> {
        self.order.iter().filter_map(|name| self.params.get_key_value(name)).map(|(k, d)| (k.as_str(), d))
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

    /// Draws one config: every active parameter independently from its domain, in
    /// [`Space::params_in_order`] (so a condition sees the values it compares), drawn again
    /// while a forbid clause holds.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Config {
        let mut config = self.draw(rng);
        for _ in 1..MAX_REDRAWS {
            if !self.is_forbidden(&config) {
                break;
            }
            config = self.draw(rng);
        }
        config
    }

    /// One draw, forbidden or not.
    fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Config {
        let mut config = Config::new();
        if self.conditions.is_empty() {
            // Every parameter, in name order: the draw order, and the config's.
            for (name, domain) in &self.params {
                config.push_in_order(name.clone(), domain.sample(rng));
            }
            return config;
        }
        for name in &self.order {
            if self.is_active(name, &config)
                && let Some(domain) = self.params.get(name.as_str())
            {
                config.insert(name, domain.sample(rng));
            }
        }
        config
    }

    /// Checks that `config` has exactly the space's parameters, each within its domain.
    pub fn validate(&self, config: &Config) -> Result<(), SpaceError> {
        self.validate_except(config, None)
    }

    /// Like [`Space::validate`], but `resource_key` (a multi-fidelity scheduler's
    /// `max_resource_attr`, which it sets to each rung level) need only be a number.
    pub fn validate_except(&self, config: &Config, resource_key: Option<&str>) -> Result<(), SpaceError> {
        let mut found = 0;
        for (name, domain) in &self.params {
            let active = self.is_active(name, config);
            let value = match (config.get(name), active) {
                (Some(value), true) => {
                    found += 1;
                    value
                }
                (None, false) => continue,
                (None, true) => return Err(SpaceError::new(name, "missing from the config")),
                (Some(_), false) => {
                    let condition = self.conditions.get(name).map(Condition::text).unwrap_or_default();
                    return Err(SpaceError::new(
                        name,
                        format!("is in the config, but inactive: its condition `{condition}` does not hold"),
                    ));
                }
            };
            if Some(name.as_str()) == resource_key {
                if value.as_f64().is_none() {
                    return Err(SpaceError::new(name, format!("the resource limit must be a number, got {value:?}")));
                }
                continue;
            }
            domain.validate(value).map_err(|m| SpaceError::new(name, m.0))?;
        }
        // Every value found is one of the config's: any more are not the space's.
        if found < config.len()
            && let Some((extra, _)) = config.iter().find(|(k, _)| !self.params.contains_key(*k))
        {
            return Err(SpaceError::new(extra, "is in the config but not in the search space"));
        }
        if let Some(clause) = self.forbid.iter().find(|c| c.holds(config)) {
            return Err(SpaceError::new("forbid", format!("the config is forbidden by `{clause}`")));
        }
        Ok(())
    }

    /// Length of the \[0,1\]^d encoding (constants take none, `choice` one per value).
    pub fn encoded_dim(&self) -> usize {
        self.params.values().map(Domain::encoded_dim).sum()
    }

    /// Encodes a valid config into \[0,1\]^d, parameters in name order; every coordinate
    /// of a parameter the config leaves out (an inactive one) is [`Space::INACTIVE`].
    pub fn encode(&self, config: &Config) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.encoded_dim());
        for (name, domain) in &self.params {
            match config.get(name) {
                Some(value) => domain.encode(value, &mut out),
                None => out.extend(std::iter::repeat_n(Space::INACTIVE, domain.encoded_dim())),
            }
        }
        out
    }

    /// The coordinates of an inactive parameter: half a domain below every value's, so that
    /// configs where it is inactive are alike in it and unlike those where it is active.
    pub const INACTIVE: f64 = -0.5;

    /// The encoding of a random config: `encode(&sample(rng))`, the same draws and the same
    /// numbers, without building the config (model-based searchers score thousands).
    pub fn sample_encoded<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64> {
        if self.is_conditional() {
            return self.encode(&self.sample(rng));
        }
        let mut out = Vec::with_capacity(self.encoded_dim());
        for domain in self.params.values() {
            domain.sample_encoded(rng, &mut out);
        }
        out
    }

    /// The encoding of the config nearest to `coords`: `encode(&decode(coords))` without
    /// building the config.
    pub fn snap(&self, coords: &[f64]) -> Vec<f64> {
        if self.is_conditional() {
            return self.encode(&self.decode(coords));
        }
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

    /// Decodes a point of \[0,1\]^d (length `encoded_dim()`) into the nearest config: in a
    /// conditional space, only the parameters active given the others' decoded values (it
    /// may be a forbidden one: see [`Space::is_forbidden`]).
    pub fn decode(&self, coords: &[f64]) -> Config {
        let decoded = self.params.keys().zip(self.domain_coords(coords)).map(|(name, (domain, c))| (name, domain, c));
        if !self.is_conditional() {
            return decoded.map(|(name, domain, c)| (name.clone(), domain.decode(c))).collect();
        }
        let slices: BTreeMap<&str, (&Domain, &[f64])> =
            decoded.map(|(name, domain, c)| (name.as_str(), (domain, c))).collect();
        let mut config = Config::new();
        for name in &self.order {
            if self.is_active(name, &config)
                && let Some((domain, c)) = slices.get(name.as_str())
            {
                config.insert(name, domain.decode(c));
            }
        }
        config
    }

    /// How many configs the space holds, if every domain is finite and the count fits a
    /// `usize`.
    pub fn size(&self) -> Option<usize> {
        let product = self.params.values().try_fold(1usize, |acc, d| d.cardinality().and_then(|n| acc.checked_mul(n)));
        if !self.is_conditional() {
            return product;
        }
        // The valid configs of a conditional space, counted (up to the most a grid lists).
        product?;
        let axes = self.axes(usize::MAX).ok()?;
        let mut count = 0;
        self.walk(&axes, &mut Config::new(), &mut |_| {
            count += 1;
            count <= MAX_LISTED_CONFIGS
        });
        (count <= MAX_LISTED_CONFIGS).then_some(count)
    }

    /// Every combination of the parameters' grid values (see [`Domain::grid_axis`]), in a
    /// fixed order: the last parameter by name varies fastest. Nothing is materialized, so
    /// any grid whose size fits a `usize` can be walked; a larger one is an error naming the
    /// parameter at which the count overflows.
    ///
    /// A conditional space's grid lists the valid combinations only (each once: an inactive
    /// parameter takes no value, a forbidden combination is left out), at most 1,000,000.
    pub fn grid(&self, points_per_numeric: usize) -> Result<Grid, SpaceError> {
        if self.is_conditional() {
            return self.listed_grid(points_per_numeric);
        }
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
        Ok(Grid { points: Points::Product(axes), len })
    }

    fn listed_grid(&self, points_per_numeric: usize) -> Result<Grid, SpaceError> {
        let axes = self.axes(points_per_numeric)?;
        let mut listed = Vec::new();
        self.walk(&axes, &mut Config::new(), &mut |config| {
            listed.push(config.clone());
            listed.len() <= MAX_LISTED_CONFIGS
        });
        if listed.len() > MAX_LISTED_CONFIGS {
            return Err(SpaceError::new(
                "",
                format!("the grid of this conditional space has more than {MAX_LISTED_CONFIGS} configs to list"),
            ));
        }
        Ok(Grid { len: listed.len(), points: Points::Listed(listed) })
    }

    /// Each parameter's grid values, in [`Space::params_in_order`].
    fn axes(&self, points_per_numeric: usize) -> Result<Vec<(&str, Axis)>, SpaceError> {
        self.params_in_order()
            .map(|(name, domain)| {
                domain.grid_axis(points_per_numeric).map(|a| (name, a)).map_err(|m| SpaceError::new(name, m.0))
            })
            .collect()
    }

    /// Visits every valid completion of `config` by the parameters of `axes` (an inactive one
    /// takes no value, a forbidden completion is skipped) until `visit` says stop; whether it
    /// did not.
    fn walk(&self, axes: &[(&str, Axis)], config: &mut Config, visit: &mut dyn FnMut(&Config) -> bool) -> bool {
        let Some(((name, axis), rest)) = axes.split_first() else {
            return self.is_forbidden(config) || visit(config);
        };
        if !self.is_active(name, config) {
            return self.walk(rest, config, visit);
        }
        for value in axis.values() {
            config.insert(*name, value);
            if !self.walk(rest, config, visit) {
                return false;
            }
        }
        config.remove(name);
        true
    }

    /// The grid of every value of a finite space ([`Space::size`] is `Some`).
    pub fn every_config(&self) -> Option<Grid> {
        if self.is_conditional() {
            // Listed once, not counted first.
            self.params.values().try_for_each(|d| d.cardinality().map(drop))?;
            return self.grid(usize::MAX).ok();
        }
        self.size()?;
        self.grid(usize::MAX).ok()
    }
}

/// The grid of a space: indexable without materializing any config but the one asked for
/// (a conditional space's grid is listed).
#[derive(Clone, Debug)]
pub struct Grid {
    points: Points,
    len: usize,
}

#[derive(Clone, Debug)]
enum Points {
    /// Every combination of the axes' values.
    Product(Vec<(Symbol, Axis)>),
    /// The valid combinations of a conditional space.
    Listed(Vec<Config>),
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
        let axes = match &self.points {
            Points::Product(axes) => axes,
            Points::Listed(configs) => return configs.get(index).cloned(),
        };
        let mut config = Config::new();
        for (name, axis) in axes.iter().rev() {
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

/// The parameters, each after those its condition compares (by name otherwise); a cycle of
/// conditions is an error naming it.
fn dependency_order(
    params: &BTreeMap<Symbol, Domain>,
    conditions: &BTreeMap<Symbol, Condition>,
) -> Result<Vec<Symbol>, SpaceError> {
    let depends = |name: &str| conditions.get(name).map(Condition::params).unwrap_or_default();
    let mut order: Vec<Symbol> = Vec::with_capacity(params.len());
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    while order.len() < params.len() {
        // The first parameter by name whose dependencies are all placed.
        let Some(next) =
            params.keys().find(|n| !placed.contains(n.as_str()) && depends(n).iter().all(|d| placed.contains(d)))
        else {
            // Every one left waits on another one left: follow the waits to a cycle.
            let mut path: Vec<&str> = vec![params.keys().find(|n| !placed.contains(n.as_str())).map_or("", |n| n)];
            loop {
                let last = path[path.len() - 1];
                let Some(&next) = depends(last).iter().find(|d| !placed.contains(*d)) else { break };
                if let Some(start) = path.iter().position(|p| *p == next) {
                    let cycle = [&path[start..], &[next]].concat().join(" → ");
                    return Err(SpaceError::new(next, format!("the `when` conditions form a cycle: {cycle}")));
                }
                path.push(next);
            }
            return Err(SpaceError::new(path[0], "the `when` conditions form a cycle"));
        };
        placed.insert(next);
        order.push(next.clone());
    }
    Ok(order)
}

/// 1-based line number of a byte offset.
pub fn line_of(source: &str, offset: usize) -> usize {
    source.as_bytes()[..offset.min(source.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Builds a [`Space`] in code; `build` reports the first invalid parameter.
#[derive(Clone, Debug, Default)]
pub struct SpaceBuilder {
    params: Vec<(String, Domain)>,
    whens: Vec<(String, String)>,
    forbids: Vec<String>,
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

    /// Makes `name` active only when `condition` holds (`"optimizer == 'sgd'"`).
    pub fn when(mut self, name: impl Into<String>, condition: impl Into<String>) -> Self {
        self.whens.push((name.into(), condition.into()));
        self
    }

    /// Never suggests a config for which `clause` holds (`"batch_size > 256 and lr > 0.1"`).
    pub fn forbid(mut self, clause: impl Into<String>) -> Self {
        self.forbids.push(clause.into());
        self
    }

    /// The space, once every domain and condition is checked and no name is given twice.
    pub fn build(self) -> Result<Space, SpaceError> {
        let mut seen = BTreeSet::new();
        for (name, domain) in &self.params {
            if !seen.insert(name.as_str()) {
                return Err(SpaceError::new(name, "is defined twice"));
            }
            domain.check().map_err(|m| SpaceError::new(name, m.0))?;
        }
        let mut whens = BTreeMap::new();
        for (name, condition) in self.whens {
            if !seen.contains(name.as_str()) {
                return Err(SpaceError::new(&name, "has a condition but is not a parameter of the space"));
            }
            if whens.insert(name.clone(), condition).is_some() {
                return Err(SpaceError::new(&name, "has two conditions: join them with `and`"));
            }
        }
        Space::assemble(
            self.params.into_iter().map(|(name, domain)| (name.into(), domain)).collect(),
            whens,
            self.forbids,
        )
    }
}
