//! The one list of built-in methods: every searcher and scheduler type with what it does,
//! and the named combinations `hpo bench run --methods` compares. The CLI's help, `hpo list`
//! and the test that runs every method come from here.

use hpo_core::{Scheduler, SetupError};

/// Whether a type picks configs or runs trials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Picks configs (`[searcher]`).
    Searcher,
    /// Runs trials (`[scheduler]`).
    Scheduler,
}

/// A built-in searcher or scheduler type: the name after `type =` and what it does.
#[derive(Clone, Copy, Debug)]
pub struct BuiltinType {
    /// The name after `type =`.
    pub name: &'static str,
    /// Searcher or scheduler.
    pub kind: Kind,
    /// What it does, in one line.
    pub summary: &'static str,
}

/// Every built-in type.
pub const TYPES: &[BuiltinType] = &[
    BuiltinType { name: "random", kind: Kind::Searcher, summary: "independent samples; `points_to_evaluate` first" },
    BuiltinType { name: "grid", kind: Kind::Searcher, summary: "every grid point once, then done" },
    BuiltinType { name: "tpe", kind: Kind::Searcher, summary: "tree-structured Parzen estimator (model-based)" },
    BuiltinType {
        name: "bo",
        kind: Kind::Searcher,
        summary: "Gaussian-process Bayesian optimization with expected improvement",
    },
    BuiltinType {
        name: "nsga2",
        kind: Kind::Searcher,
        summary: "NSGA-II: a genetic algorithm ranking by non-dominated sorting (several objectives)",
    },
    BuiltinType {
        name: "fifo",
        kind: Kind::Scheduler,
        summary: "runs every trial to its end; configs from its searcher",
    },
    BuiltinType { name: "successive_halving", kind: Kind::Scheduler, summary: "synchronous successive halving (d2l)" },
    BuiltinType { name: "hyperband", kind: Kind::Scheduler, summary: "synchronous Hyperband" },
    BuiltinType {
        name: "asha",
        kind: Kind::Scheduler,
        summary: "asynchronous successive halving, stopping or promotion; asynchronous Hyperband with `brackets > 1`",
    },
    BuiltinType { name: "median_stopping", kind: Kind::Scheduler, summary: "the median stopping rule" },
    BuiltinType { name: "pbt", kind: Kind::Scheduler, summary: "population based training" },
];

/// A named method: a `[scheduler]` table (with its searcher), settings not given at their
/// defaults.
#[derive(Clone, Copy, Debug)]
pub struct Method {
    /// The name `--methods` takes.
    pub name: &'static str,
    /// What it does, in one line.
    pub summary: &'static str,
    /// The scheduler table as JSON.
    pub table: &'static str,
}

/// Every named method, in the order `hpo list` shows them.
pub const METHODS: &[Method] = &[
    Method { name: "random", summary: "random search, every trial to its end", table: r#"{"type": "fifo"}"# },
    Method {
        name: "asha",
        summary: "ASHA, stopping variant",
        table: r#"{"type": "asha", "variant": "stopping", "grace_period": 1, "reduction_factor": 3}"#,
    },
    Method {
        name: "asha-promotion",
        summary: "ASHA, promotion variant (pause and resume)",
        table: r#"{"type": "asha", "variant": "promotion", "grace_period": 1, "reduction_factor": 3}"#,
    },
    Method {
        name: "hyperband",
        summary: "synchronous Hyperband",
        table: r#"{"type": "hyperband", "grace_period": 1, "reduction_factor": 3}"#,
    },
    Method {
        name: "sh",
        summary: "synchronous successive halving",
        table: r#"{"type": "successive_halving", "r_min": 1, "eta": 3}"#,
    },
    Method { name: "median", summary: "the median stopping rule", table: r#"{"type": "median_stopping"}"# },
    Method { name: "pbt", summary: "population based training", table: r#"{"type": "pbt"}"# },
    Method {
        name: "tpe",
        summary: "TPE, every trial to its end",
        table: r#"{"type": "fifo", "searcher": {"type": "tpe"}}"#,
    },
    Method {
        name: "bohb",
        summary: "Hyperband with TPE (BOHB-style)",
        table: r#"{"type": "hyperband", "grace_period": 1, "reduction_factor": 3, "searcher": {"type": "tpe"}}"#,
    },
    Method {
        name: "bo",
        summary: "GP Bayesian optimization, every trial to its end",
        table: r#"{"type": "fifo", "searcher": {"type": "bo"}}"#,
    },
    Method {
        name: "mobster",
        summary: "ASHA with GP Bayesian optimization (MOBSTER-style)",
        table: r#"{"type": "asha", "variant": "stopping", "grace_period": 1, "reduction_factor": 3, "searcher": {"type": "bo"}}"#,
    },
    Method {
        name: "nsga2",
        summary: "NSGA-II, every trial to its end",
        table: r#"{"type": "fifo", "searcher": {"type": "nsga2"}}"#,
    },
    Method {
        name: "asha-nsga2",
        summary: "ASHA with NSGA-II",
        table: r#"{"type": "asha", "variant": "stopping", "grace_period": 1, "reduction_factor": 3, "searcher": {"type": "nsga2"}}"#,
    },
];

impl Method {
    /// The method by name.
    pub fn named(name: &str) -> Option<&'static Method> {
        METHODS.iter().find(|m| m.name == name)
    }

    /// The scheduler table as a JSON value.
    pub fn table(&self) -> serde_json::Value {
        serde_json::from_str(self.table).unwrap_or(serde_json::Value::Null)
    }

    /// A fresh scheduler of this method.
    pub fn build(&self) -> Result<Box<dyn Scheduler>, SetupError> {
        serde_json::from_str(self.table).map_err(|e| SetupError(format!("method `{}`: {e}", self.name)))
    }

    /// The names of every method, comma-separated (for help texts and errors).
    pub fn names() -> String {
        METHODS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_method_builds_and_names_are_unique() {
        for method in METHODS {
            method.build().unwrap();
            assert_eq!(Method::named(method.name).unwrap().name, method.name);
        }
        let mut names: Vec<&str> = TYPES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TYPES.len());
    }

    #[test]
    fn every_type_is_registered_under_its_name() {
        for t in TYPES {
            let mut table = serde_json::json!({ "type": t.name });
            if t.name == "successive_halving" {
                table["r_min"] = 1.into(); // its one setting without a default
            }
            let registered = match t.kind {
                Kind::Scheduler => serde_json::from_value::<Box<dyn Scheduler>>(table).is_ok(),
                Kind::Searcher => serde_json::from_value::<Box<dyn hpo_core::Searcher>>(table).is_ok(),
            };
            assert!(registered, "{}", t.name);
        }
    }
}
