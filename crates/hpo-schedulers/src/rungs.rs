//! Resource levels shared by the multi-fidelity schedulers.

use hpo_core::pareto::rank_order;
use hpo_core::{Config, Context, Decision, Domain, SetupError, TrialId, Value};

/// ASHA's rung levels: round(grace * eta^k) for k = 0, 1, ... while below `max_t`.
pub fn geometric_levels(grace: f64, eta: f64, max_t: f64) -> Vec<f64> {
    let mut levels: Vec<f64> = Vec::new();
    for k in 0.. {
        let level = (grace * eta.powi(k)).round();
        if level >= max_t {
            break;
        }
        if levels.last() != Some(&level) {
            levels.push(level);
        }
    }
    levels
}

/// Successive halving's levels (d2l): r_min * eta^k for k = 0..=K with
/// K = floor(log(r_max/r_min) / log(eta)), and r_max appended when the last falls short.
pub fn halving_levels(r_min: f64, r_max: f64, eta: f64) -> Vec<f64> {
    let k_max = ((r_max / r_min).ln() / eta.ln() + 1e-9).floor() as i32;
    let mut levels: Vec<f64> = (0..=k_max).map(|k| r_min * eta.powi(k)).collect();
    if levels.last().is_some_and(|&l| l < r_max) {
        levels.push(r_max);
    }
    levels
}

/// The maximum resource: given explicitly, or else the largest value the config key
/// `max_resource_attr` can take in the search space.
pub fn max_resource(name: &str, explicit: Option<f64>, ctx: &Context) -> Result<f64, SetupError> {
    if let Some(max_t) = explicit {
        return Ok(max_t);
    }
    let attr = ctx
        .max_resource_attr
        .as_deref()
        .ok_or_else(|| SetupError(format!("{name} needs `max_t`, or a `max_resource_attr` naming a config key")))?;
    let max = match ctx.space.get(attr) {
        Some(Domain::Constant(v)) => v.as_f64(),
        Some(Domain::RandInt { high, .. } | Domain::LogRandInt { high, .. }) => Some(*high as f64),
        Some(Domain::Uniform { high, .. } | Domain::LogUniform { high, .. }) => Some(*high),
        Some(Domain::FinRange { high, .. } | Domain::LogFinRange { high, .. }) => Some(*high),
        Some(Domain::Choice(values) | Domain::Ordinal(values)) => {
            values.iter().filter_map(Value::as_f64).reduce(f64::max)
        }
        None => None,
    };
    max.ok_or_else(|| {
        SetupError(format!("{name}: `max_resource_attr` `{attr}` is not a numeric parameter of the space"))
    })
}

/// Refuses several objectives and constraints, for a scheduler that compares trials by one
/// number.
pub fn one_objective(name: &str, ctx: &Context) -> Result<(), SetupError> {
    if ctx.ranks_by_pareto() {
        return Err(SetupError(format!(
            "{name} compares trials by one objective, without constraints; with several objectives or \
             constraints use fifo, asha, successive_halving or hyperband (any searcher)"
        )));
    }
    Ok(())
}

/// Checks common multi-fidelity settings.
pub fn check_eta(name: &str, eta: f64) -> Result<(), SetupError> {
    if eta.is_finite() && eta > 1.0 {
        Ok(())
    } else {
        Err(SetupError(format!("{name}: reduction factor must be > 1, got {eta}")))
    }
}

/// The config with `max_resource_attr` (if any) set to `level`, so the trial trains that far.
pub fn with_level(mut config: Config, max_resource_attr: Option<&str>, level: f64) -> Config {
    if let Some(attr) = max_resource_attr {
        let value = match config.get(attr) {
            Some(Value::Float(_)) => Value::Float(level),
            _ => Value::Int(level.round() as i64),
        };
        config.insert(attr, value);
    }
    config
}

/// The decision for a trial that reached the maximum resource: one whose config limits its
/// training (`max_resource_attr`) ends by itself there and completes; any other is stopped.
pub fn at_max_resource(resource: f64, max_t: f64, limited_by_config: bool) -> Decision {
    if resource <= max_t && limited_by_config { Decision::Continue } else { Decision::Stop }
}

/// A rung that ranks its trials by several objectives and constraints ([`rank_order`]:
/// constrained non-dominated sorting, then crowding distance), for when one number does not
/// order them. The rule for going on is the one-objective rule on positions: an entry is in
/// the top q of n entries when its position (0 for the best) is at most q (n - 1), as a
/// value is when at most the q-quantile; a rung of fewer than 2 entries never cuts.
#[derive(Default)]
pub struct ParetoRung {
    ids: Vec<TrialId>,
    points: Vec<Vec<f64>>,
    violations: Vec<f64>,
    /// Each entry's position in the ranking; empty when an insert made it stale.
    positions: Vec<usize>,
}

impl ParetoRung {
    /// Records a trial's objectives (to minimize) and violation; returns its entry.
    pub fn insert(&mut self, id: TrialId, objectives: &[f64], violation: f64) -> usize {
        self.ids.push(id);
        self.points.push(objectives.to_vec());
        self.violations.push(violation);
        self.positions.clear();
        self.ids.len() - 1
    }

    /// Entries recorded.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The trial of an entry.
    pub fn id(&self, entry: usize) -> TrialId {
        self.ids[entry]
    }

    /// The entry's position in the ranking, 0 for the best.
    pub fn position(&mut self, entry: usize) -> usize {
        if self.positions.len() != self.ids.len() {
            self.positions = vec![0; self.ids.len()];
            for (position, i) in rank_order(&self.points, &self.violations).into_iter().enumerate() {
                self.positions[i] = position;
            }
        }
        self.positions[entry]
    }

    /// Whether the entry ranks in the top `q` of the rung.
    pub fn in_top(&mut self, entry: usize, q: f64) -> bool {
        let n = self.ids.len();
        n < 2 || self.position(entry) as f64 <= q * (n - 1) as f64 + 1e-9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_by_hand() {
        assert_eq!(geometric_levels(1.0, 3.0, 27.0), [1.0, 3.0, 9.0]);
        assert_eq!(geometric_levels(1.0, 3.0, 100.0), [1.0, 3.0, 9.0, 27.0, 81.0]);
        assert_eq!(geometric_levels(2.0, 2.0, 10.0), [2.0, 4.0, 8.0]);
        assert_eq!(halving_levels(2.0, 10.0, 2.0), [2.0, 4.0, 8.0, 10.0]);
        assert_eq!(halving_levels(1.0, 27.0, 3.0), [1.0, 3.0, 9.0, 27.0]);
    }

    #[test]
    fn a_pareto_rung_keeps_the_top_third_by_rank() {
        let mut rung = ParetoRung::default();
        let q = 1.0 / 3.0;
        let a = rung.insert(0, &[0.5, 0.5], 0.0);
        assert!(rung.in_top(a, q), "alone, never cut");
        // (0.6, 0.6) is dominated: position 1 of 2 > 1/3.
        let b = rung.insert(1, &[0.6, 0.6], 0.0);
        assert!(!rung.in_top(b, q));
        // (0.1, 0.9) and (0.9, 0.1) join the front as its two ends: positions 0 and 1, then
        // (0.5, 0.5) at 2 (distance 2), the dominated one at 3. Of 4, positions <= 1 go on.
        let c = rung.insert(2, &[0.1, 0.9], 0.0);
        let d = rung.insert(3, &[0.9, 0.1], 0.0);
        assert_eq!([a, b, c, d].map(|e| rung.position(e)), [2, 3, 0, 1]);
        assert_eq!([a, b, c, d].map(|e| rung.in_top(e, q)), [false, false, true, true]);
        // An infeasible point that would dominate all ranks last.
        let e = rung.insert(4, &[0.0, 0.0], 1.0);
        assert_eq!(rung.position(e), 4);
        assert_eq!(rung.id(e), 4);
    }
}
