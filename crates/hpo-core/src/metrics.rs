//! [`Metrics`]: the numbers of one report, by name.

use std::fmt;

use hpo_space::{Symbol, SymbolMap};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// The metrics of one report, by name (e.g. `epoch`, `val_loss`), in the order of their
/// names, as a `BTreeMap<String, f64>` keeps them.
///
/// Made for the tuner's hot path, where every report is built, read and dropped: up to four
/// metrics are held inline, and their names are interned ([`Symbol`]s), so such a report
/// costs no allocation.
#[derive(Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Metrics(SymbolMap<f64, 4>);

impl Metrics {
    /// No metrics.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// The value of the metric `name`, if reported.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    /// Sets the metric `name` to `value`; the value it had, if any.
    pub fn insert(&mut self, name: impl Into<Symbol>, value: f64) -> Option<f64> {
        self.0.insert(name.into(), value)
    }

    /// (name, value) of every metric, by name.
    pub fn iter(&self) -> Iter<'_> {
        self.0.entries().iter().map(|(name, value)| (&**name, *value))
    }

    /// The names of the metrics, in order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.0.entries().iter().map(|(name, _)| &**name)
    }

    /// How many metrics there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<Symbol>> FromIterator<(K, f64)> for Metrics {
    fn from_iter<I: IntoIterator<Item = (K, f64)>>(iter: I) -> Metrics {
        let mut metrics = Metrics::new();
        for (name, value) in iter {
            metrics.insert(name, value);
        }
        metrics
    }
}

impl<K: Into<Symbol>, const N: usize> From<[(K, f64); N]> for Metrics {
    fn from(metrics: [(K, f64); N]) -> Metrics {
        metrics.into_iter().collect()
    }
}

/// The iterator of [`Metrics::iter`].
pub type Iter<'a> = std::iter::Map<std::slice::Iter<'a, (Symbol, f64)>, fn(&'a (Symbol, f64)) -> (&'a str, f64)>;

impl<'a> IntoIterator for &'a Metrics {
    type Item = (&'a str, f64);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for Metrics {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Metrics, D::Error> {
        struct MetricsVisitor;
        impl<'de> Visitor<'de> for MetricsVisitor {
            type Value = Metrics;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from metric names to numbers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metrics, A::Error> {
                let mut metrics = Metrics::new();
                // `null` is NaN: JSON has no NaN, and serde_json writes it as `null`.
                while let Some((name, value)) = map.next_entry::<Symbol, Option<f64>>()? {
                    metrics.insert(name, value.unwrap_or(f64::NAN));
                }
                Ok(metrics)
            }
        }
        deserializer.deserialize_map(MetricsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    /// Every report is moved several times on its way through the tuner: past 128 bytes an
    /// event is copied by a call to `memmove`, which took a seventh of a simulation's time.
    #[test]
    fn a_report_of_four_metrics_is_small() {
        assert_eq!(std::mem::size_of::<Metrics>(), 104);
        assert!(std::mem::size_of::<crate::Event>() <= 128, "{}", std::mem::size_of::<crate::Event>());
    }

    #[test]
    fn reads_like_a_sorted_map() {
        let mut m: Metrics =
            [("loss", 0.5), ("epoch", 1.0), ("acc", 0.9), ("lr", 0.1), ("time", 3.0)].into_iter().collect();
        assert_eq!(m.names().collect::<Vec<_>>(), ["acc", "epoch", "loss", "lr", "time"]);
        assert_eq!(m.get("loss"), Some(0.5));
        assert_eq!(m.get("los"), None);
        assert_eq!(m.insert("loss", 0.25), Some(0.5));
        assert_eq!((m.len(), m.get("loss")), (5, Some(0.25)));
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"acc":0.9,"epoch":1.0,"loss":0.25,"lr":0.1,"time":3.0}"#);
        assert_eq!(serde_json::from_str::<Metrics>(&json).unwrap(), m);
        let nan = serde_json::from_str::<Metrics>(r#"{"loss":null}"#).unwrap();
        assert!(nan.get("loss").is_some_and(f64::is_nan));
        assert_eq!(serde_json::to_string(&nan).unwrap(), r#"{"loss":null}"#);
        assert_eq!(format!("{:?}", Metrics::from_iter([("b", 2.0), ("a", 1.0)])), r#"{"a": 1.0, "b": 2.0}"#);
    }
}
