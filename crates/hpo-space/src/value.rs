//! Values of hyperparameters and configs (one value per hyperparameter name).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Symbol, SymbolMap};

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
    /// A string (a categorical value, mostly: interned).
    Str(Symbol),
}

impl Value {
    /// The value as a number, if it is one (integers widen to `f64`).
    #[inline]
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(x) => Some(x),
            _ => None,
        }
    }

    /// The value as an integer, if it is one (a float with no fractional part counts).
    #[inline]
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Some(x as i64),
            _ => None,
        }
    }

    /// The string, if it is one.
    #[inline]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_str()),
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
        Value::Str(Symbol::new(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(Symbol::new(&s))
    }
}
impl From<Symbol> for Value {
    fn from(s: Symbol) -> Self {
        Value::Str(s)
    }
}

/// A config: one value per hyperparameter name, in name order, as a `BTreeMap<String, Value>`
/// keeps them (and serialized as such a map).
///
/// Made for the tuner's hot path, where a config is drawn for every trial: up to six values
/// are held inline, and names and categorical values are [`Symbol`]s, so that drawing one
/// allocates nothing.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Config(SymbolMap<Value, 6>);

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
    #[inline]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Sets `name`; returns the value it had.
    pub fn insert(&mut self, name: impl Into<Symbol>, value: impl Into<Value>) -> Option<Value> {
        self.0.insert(name.into(), value.into())
    }

    /// Appends `name`, which the caller knows comes after every name in the config.
    pub(crate) fn push_in_order(&mut self, name: Symbol, value: Value) {
        self.0.push_in_order(name, value);
    }

    /// Removes `name`, returning its value if it had one.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name)
    }

    /// Every (name, value), in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.0.entries().iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Values in the config.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the config has no value.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn typed<T>(&self, name: &str, kind: &str, f: impl Fn(&Value) -> Option<T>) -> Result<T, ConfigError> {
        let value =
            self.get(name).ok_or_else(|| ConfigError { name: name.to_owned(), problem: "missing".to_owned() })?;
        f(value)
            .ok_or_else(|| ConfigError { name: name.to_owned(), problem: format!("expected {kind}, got {value:?}") })
    }

    /// The named value as a float (integers widen).
    #[inline]
    pub fn f64(&self, name: &str) -> Result<f64, ConfigError> {
        self.typed(name, "a number", Value::as_f64)
    }

    /// The named value as an integer.
    #[inline]
    pub fn i64(&self, name: &str) -> Result<i64, ConfigError> {
        self.typed(name, "an integer", Value::as_i64)
    }

    /// The named value as a string.
    pub fn str(&self, name: &str) -> Result<&str, ConfigError> {
        let value =
            self.get(name).ok_or_else(|| ConfigError { name: name.to_owned(), problem: "missing".to_owned() })?;
        value
            .as_str()
            .ok_or_else(|| ConfigError { name: name.to_owned(), problem: format!("expected a string, got {value:?}") })
    }
}

impl<K: Into<Symbol>, V: Into<Value>> FromIterator<(K, V)> for Config {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut config = Config::new();
        for (name, value) in iter {
            config.insert(name, value);
        }
        config
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
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

#[cfg(test)]
mod tests {
    use super::{Config, Value};

    /// A config of up to six values is drawn, moved into its `Arc` and dropped for every trial.
    #[test]
    fn a_config_of_six_values_is_inline_and_small() {
        assert_eq!(std::mem::size_of::<Value>(), 16);
        assert!(std::mem::size_of::<Config>() <= 200, "{}", std::mem::size_of::<Config>());
        let config: Config = (0..6).map(|i| (format!("p{i}"), i)).collect();
        assert!(!config.0.spilled());
    }

    #[test]
    fn reads_like_a_sorted_map() {
        let mut c: Config =
            [("lr", Value::from(0.1)), ("act", "relu".into()), ("depth", 3.into())].into_iter().collect();
        assert_eq!(c.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["act", "depth", "lr"]);
        assert_eq!((c.f64("lr"), c.i64("depth"), c.str("act")), (Ok(0.1), Ok(3), Ok("relu")));
        assert_eq!(c.get("l"), None);
        assert_eq!(c.insert("depth", 4), Some(Value::Int(3)));
        assert_eq!(c.remove("act"), Some(Value::from("relu")));
        assert_eq!(c.to_string(), r#"{"depth":4,"lr":0.1}"#);
        assert_eq!(format!("{c:?}"), r#"{"depth": Int(4), "lr": Float(0.1)}"#);
        // Many values: searched by bisection, in the same order.
        let many: Config = (0..20).rev().map(|i| (format!("p{i:02}"), i)).collect();
        assert_eq!(
            many.iter().map(|(k, _)| k.to_owned()).collect::<Vec<_>>(),
            (0..20).map(|i| format!("p{i:02}")).collect::<Vec<_>>()
        );
        assert!((0..20).all(|i| many.i64(&format!("p{i:02}")) == Ok(i)));
        let json = serde_json::to_string(&many).unwrap();
        assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), many);
        assert_eq!(serde_json::from_str::<Config>(r#"{"a":1,"a":2}"#).unwrap().i64("a"), Ok(2));
    }
}
