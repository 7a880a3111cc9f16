//! Values of hyperparameters and configs (one value per hyperparameter name).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The value of one hyperparameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
}

impl Value {
    /// The value as a number, if it is one (integers widen to `f64`).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(x) => Some(x),
            _ => None,
        }
    }

    /// The value as an integer, if it is one (a float with no fractional part counts).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Some(x as i64),
            _ => None,
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Loose equality used to find a value among a domain's finite values:
    /// numbers compare numerically (so `1` matches `1.0`), others exactly.
    pub(crate) fn matches(&self, other: &Value) -> bool {
        match (self.as_f64(), other.as_f64()) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs()),
            _ => self == other,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i.into())
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

/// A config: one value per hyperparameter name, in name order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Config(BTreeMap<String, Value>);

/// Asked a config for a value it does not have, or of another type.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("config value `{name}`: {problem}")]
pub struct ConfigError {
    /// The parameter.
    pub name: String,
    /// What is wrong with it (missing, another type).
    pub problem: String,
}

impl Config {
    /// An empty config.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Sets `name`; returns the value it had.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.0.insert(name.into(), value.into())
    }

    /// Removes `name`, returning its value if it had one.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name)
    }

    /// Every (name, value), in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Values in the config.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the config has no value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn typed<T>(&self, name: &str, kind: &str, f: impl Fn(&Value) -> Option<T>) -> Result<T, ConfigError> {
        let value =
            self.0.get(name).ok_or_else(|| ConfigError { name: name.to_owned(), problem: "missing".to_owned() })?;
        f(value)
            .ok_or_else(|| ConfigError { name: name.to_owned(), problem: format!("expected {kind}, got {value:?}") })
    }

    /// The named value as a float (integers widen).
    pub fn f64(&self, name: &str) -> Result<f64, ConfigError> {
        self.typed(name, "a number", Value::as_f64)
    }

    /// The named value as an integer.
    pub fn i64(&self, name: &str) -> Result<i64, ConfigError> {
        self.typed(name, "an integer", Value::as_i64)
    }

    /// The named value as a string.
    pub fn str(&self, name: &str) -> Result<&str, ConfigError> {
        let value =
            self.0.get(name).ok_or_else(|| ConfigError { name: name.to_owned(), problem: "missing".to_owned() })?;
        value
            .as_str()
            .ok_or_else(|| ConfigError { name: name.to_owned(), problem: format!("expected a string, got {value:?}") })
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Config {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Config(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl fmt::Display for Config {
    /// `{"a": 1, "b": "relu"}` as JSON, the way it appears in journals and on screen.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}
