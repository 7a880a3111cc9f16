//! Parameter importance by PED-ANOVA (Watanabe, Bansal and Hutter, 2023): how differently a
//! parameter is distributed among the best trials than among all of them.
//!
//! For each parameter, two densities over its values are estimated: one from the top
//! `quantile` of trials (at least two, ties included), one from every trial with a result.
//! The parameter's importance is the Pearson divergence of the first from the second,
//! Σ p_all(v) (p_top(v) / p_all(v) − 1)², and the importances are then scaled to sum to 1.
//! A parameter the best trials share a narrow range of scores high; one whose values among
//! the best trials look like all trials scores near 0. This is Optuna's
//! `PedAnovaImportanceEvaluator` with its defaults (quantile 0.1, densities over the trials
//! observed, the "local" space), computed in one pass over the trials.
//!
//! Densities are taken over cells. A numeric parameter's encoding (linear, or logarithmic
//! for log domains) is cut into `min(values, 50)` equal cells, so a finite domain of at most
//! 50 values has one cell per value; the density over the cells is a mixture of Gaussians
//! discretized and truncated to the cells, one per occupied cell weighted by its count, with
//! Scott's rule for the width (in cells, at least 0.3), and a wide prior (centered, as wide as
//! the domain, weight 1). A `choice` has one cell per value: counts plus a uniform prior of
//! weight 1. Constants are left out.
//!
//! A conditional parameter (`when`) is measured over the trials where it was active, and its
//! divergence is weighted by the fraction of the top trials in which it was: a parameter the
//! best trials rarely use does not rank high on the few of them that did (one active in
//! fewer than two of them scores 0, as the top needs two trials at least).

use hpo_space::{Config, Domain, Space};

use crate::results::ExperimentResults;

/// The importance of each parameter, most important first (ties by name).
#[derive(Clone, Debug, PartialEq)]
pub struct Importances {
    /// Trials with a result, that the densities over all trials come from.
    pub trials: usize,
    /// Trials in the top quantile.
    pub top_trials: usize,
    /// Per parameter: its importance, summing to 1 over all.
    pub params: Vec<(String, f64)>,
}

/// Why importances cannot be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImportanceError {
    /// Fewer than 3 trials have a result: the top and the rest cannot be told apart.
    #[error("importance needs at least 3 trials with a result, this experiment has {0}")]
    TooFewTrials(usize),
    /// Every parameter is a constant.
    #[error("the search space has no parameter to rank (only constants)")]
    NothingTuned,
    /// The quantile is not in (0, 1).
    #[error("the top quantile must lie strictly between 0 and 1, got {0}")]
    Quantile(f64),
    /// The journal's header holds no search space that parses.
    #[error("the search space in the journal's header: {0}")]
    Space(String),
}

/// Optuna's default: the importance of reaching the best tenth.
pub const DEFAULT_QUANTILE: f64 = 0.1;
/// Cells a numeric parameter is cut into, at most.
const MAX_CELLS: usize = 50;
/// The narrowest kernel, in cells: 1.64 widths (90% of its mass) within half a cell.
const MIN_WIDTH: f64 = 0.5 / 1.64;
/// Keeps both densities away from 0 in the ratio.
const FLOOR: f64 = 1e-12;

/// PED-ANOVA importances of an experiment's parameters: its space from the journal's header,
/// each trial by its best value and the config it had then.
pub fn of_results(results: &ExperimentResults, quantile: f64) -> Result<Importances, ImportanceError> {
    let space = Space::from_json(&results.spec["space"]).map_err(|e| ImportanceError::Space(e.to_string()))?;
    let trials = results.trials.iter().filter_map(|t| Some((t.config_of_best(), t.best_objective?)));
    ped_anova(&space, trials, quantile)
}

/// PED-ANOVA importances of `space`'s parameters over `trials`: each trial's config and its
/// value to minimize (non-finite values are left out).
pub fn ped_anova<'a>(
    space: &Space,
    trials: impl IntoIterator<Item = (&'a Config, f64)>,
    quantile: f64,
) -> Result<Importances, ImportanceError> {
    if !(quantile > 0.0 && quantile < 1.0) {
        return Err(ImportanceError::Quantile(quantile));
    }
    let trials: Vec<(&Config, f64)> = trials.into_iter().filter(|(_, v)| v.is_finite()).collect();
    if trials.len() < 3 {
        return Err(ImportanceError::TooFewTrials(trials.len()));
    }
    let top = top_quantile(&trials, quantile);
    let divergences: Vec<(String, f64)> = space
        .params()
        .filter_map(|(name, domain)| {
            let cells = Cells::of(domain)?;
            let count = |chosen: &mut dyn Iterator<Item = &Config>| {
                let mut counts = vec![0.0; cells.len()];
                for config in chosen {
                    if let Some(cell) = config.get(name).and_then(|v| cells.cell(domain, v)) {
                        counts[cell] += 1.0;
                    }
                }
                counts
            };
            let all = count(&mut trials.iter().map(|(c, _)| *c));
            let best = count(&mut top.iter().map(|&i| trials[i].0));
            // A conditional parameter counts by the share of the top trials it was active in,
            // and not at all in fewer than two (as the top itself needs two).
            let active_in_top = best.iter().sum::<f64>();
            let in_play = match space.condition(name) {
                None => 1.0,
                Some(_) if active_in_top < 2.0 => 0.0,
                Some(_) => active_in_top / top.len() as f64,
            };
            if in_play == 0.0 {
                return Some((name.to_owned(), 0.0));
            }
            Some((name.to_owned(), in_play * pearson_divergence(&cells.density(&best), &cells.density(&all))))
        })
        .collect();
    if divergences.is_empty() {
        return Err(ImportanceError::NothingTuned);
    }
    let total: f64 = divergences.iter().map(|(_, d)| d).sum();
    let share = 1.0 / divergences.len() as f64;
    let mut params: Vec<(String, f64)> =
        divergences.into_iter().map(|(name, d)| (name, if total > 0.0 { d / total } else { share })).collect();
    params.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Importances { trials: trials.len(), top_trials: top.len(), params })
}

/// Indices of the trials at or below the `quantile` cut-off value (the ceil(q·n)-th
/// smallest, and at least the second smallest).
fn top_quantile(trials: &[(&Config, f64)], quantile: f64) -> Vec<usize> {
    let mut values: Vec<f64> = trials.iter().map(|(_, v)| *v).collect();
    let n = values.len();
    let k = ((quantile * n as f64).ceil() as usize).clamp(2, n) - 1;
    let (_, &mut cutoff, _) = values.select_nth_unstable_by(k, f64::total_cmp);
    (0..n).filter(|&i| trials[i].1 <= cutoff).collect()
}

/// Σ local · (top / local − 1)².
fn pearson_divergence(top: &[f64], local: &[f64]) -> f64 {
    top.iter()
        .zip(local)
        .map(|(t, l)| {
            let (t, l) = (t + FLOOR, l + FLOOR);
            l * (t / l - 1.0).powi(2)
        })
        .sum()
}

/// How a parameter's values fall into cells.
enum Cells {
    /// `n` ordered cells of the encoding.
    Numeric(usize),
    /// One cell per value of a `choice`.
    Categorical(usize),
}

impl Cells {
    fn of(domain: &Domain) -> Option<Cells> {
        match domain {
            Domain::Constant(_) => None,
            Domain::Choice(values) => Some(Cells::Categorical(values.len())),
            _ => Some(Cells::Numeric(domain.cardinality().unwrap_or(MAX_CELLS).min(MAX_CELLS))),
        }
        .filter(|cells| cells.len() >= 2)
    }

    fn len(&self) -> usize {
        match *self {
            Cells::Numeric(n) | Cells::Categorical(n) => n,
        }
    }

    /// The cell of a value of `domain`; `None` for a value outside it.
    fn cell(&self, domain: &Domain, value: &hpo_space::Value) -> Option<usize> {
        domain.validate(value).ok()?;
        let mut encoded = Vec::with_capacity(self.len());
        domain.encode(value, &mut encoded);
        match *self {
            Cells::Categorical(_) => encoded.iter().position(|&x| x == 1.0), // one-hot
            Cells::Numeric(n) => Some(((encoded.first()? * n as f64).floor() as usize).min(n - 1)),
        }
    }

    /// The estimated density over the cells of values falling `counts` times in each.
    fn density(&self, counts: &[f64]) -> Vec<f64> {
        let total: f64 = counts.iter().sum();
        match *self {
            Cells::Categorical(k) => counts.iter().map(|c| (c + 1.0 / k as f64) / (total + 1.0)).collect(),
            Cells::Numeric(n) => {
                let width = scott_width(counts, total);
                let mut density = vec![0.0; n];
                let kernels = counts.iter().enumerate().filter(|(_, c)| **c > 0.0).map(|(i, c)| (i as f64, width, *c));
                let prior = ((n - 1) as f64 / 2.0, n as f64, 1.0);
                for (center, width, weight) in kernels.chain(std::iter::once(prior)) {
                    add_discretized_gaussian(&mut density, center, width, weight / (total + 1.0));
                }
                density
            }
        }
    }
}

/// Scott's rule over cell indices: 1.059 · min(IQR / 1.34, sd) · n^(−1/5), at least
/// [`MIN_WIDTH`].
fn scott_width(counts: &[f64], total: f64) -> f64 {
    let mean = counts.iter().enumerate().map(|(i, c)| i as f64 * c).sum::<f64>() / total;
    let var =
        counts.iter().enumerate().map(|(i, c)| c * (i as f64 - mean).powi(2)).sum::<f64>() / (total - 1.0).max(1.0);
    // Quartiles: the first cell whose cumulative count reaches a quarter, and three quarters.
    let quantile_cell = |q: f64| {
        let mut seen = 0.0;
        counts.iter().position(|c| {
            seen += c;
            seen >= q * total
        })
    };
    let iqr = match (quantile_cell(0.25), quantile_cell(0.75)) {
        (Some(q1), Some(q3)) => (q3 - q1) as f64,
        _ => 0.0,
    };
    (1.059 * (iqr / 1.34).min(var.sqrt()) * total.powf(-0.2)).max(MIN_WIDTH)
}

/// Adds `weight` times a Gaussian discretized to the cells (each cell the mass within half
/// a cell of its index) and truncated to them.
fn add_discretized_gaussian(density: &mut [f64], center: f64, width: f64, weight: f64) {
    let cdf = |x: f64| 0.5 * (1.0 + libm::erf((x - center) / (width * std::f64::consts::SQRT_2)));
    let n = density.len() as f64;
    let mass = cdf(n - 0.5) - cdf(-0.5);
    if mass <= 0.0 {
        return;
    }
    for (i, d) in density.iter_mut().enumerate() {
        let i = i as f64;
        *d += weight * (cdf(i + 0.5) - cdf(i - 0.5)) / mass;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpo_space::Value;

    #[test]
    fn divergence_of_a_choice_by_hand() {
        // Ten trials, five "a" and five "b"; the two best are both "a".
        // All: ((5 + 0.5) / 11, (5 + 0.5) / 11) = (1/2, 1/2). Top two: ((2 + 0.5) / 3, 0.5 / 3)
        // = (5/6, 1/6). Divergence: 1/2 (5/3 − 1)² + 1/2 (1/3 − 1)² = 4/9.
        let cells = Cells::Categorical(2);
        let (all, top) = (cells.density(&[5.0, 5.0]), cells.density(&[2.0, 0.0]));
        assert!((all[0] - 0.5).abs() < 1e-15 && (top[0] - 5.0 / 6.0).abs() < 1e-15);
        assert!((pearson_divergence(&top, &all) - 4.0 / 9.0).abs() < 1e-9);
    }

    /// `opt` is "x" or "y", `m` (two values) exists only with "y". Twenty trials: "y" with
    /// m = 0 scores 0, 1, "y" with m = 1 scores 2, 3, "x" the rest (4 to 19). The top tenth
    /// (two trials) both have m = 0: m's divergence, over the four trials where it is active,
    /// as the choice above: all (2, 2) -> (1/2, 1/2), top (2, 0) -> (5/6, 1/6), 4/9; it is in
    /// play in all of the top, weight 1. opt: all (16 "x", 4 "y") -> (16.5/21, 4.5/21), top
    /// (0, 2) -> (1/6, 5/6). With the "x" trials best instead, m is in play in none of the
    /// top, and scores 0.
    #[test]
    fn a_conditional_parameter_counts_where_it_was_active_by_hand() {
        let space =
            Space::builder().choice("opt", ["x", "y"]).choice("m", [0, 1]).when("m", "opt == 'y'").build().unwrap();
        let config = |opt: &str, m: Option<i64>| {
            let mut c = Config::new();
            c.insert("opt", opt);
            if let Some(m) = m {
                c.insert("m", m);
            }
            c
        };
        let mut trials: Vec<(Config, f64)> = vec![
            (config("y", Some(0)), 0.0),
            (config("y", Some(0)), 1.0),
            (config("y", Some(1)), 2.0),
            (config("y", Some(1)), 3.0),
        ];
        trials.extend((4..20).map(|v| (config("x", None), f64::from(v))));
        let importances = ped_anova(&space, trials.iter().map(|(c, v)| (c, *v)), 0.1).unwrap();
        let d_m = 4.0 / 9.0;
        let (all, top) = ([16.5 / 21.0, 4.5 / 21.0], [1.0 / 6.0, 5.0 / 6.0]);
        let d_opt = pearson_divergence(&top, &all);
        let share = |name: &str| importances.params.iter().find(|(n, _)| n == name).unwrap().1;
        assert!((share("m") - d_m / (d_m + d_opt)).abs() < 1e-9, "{importances:?}");

        // The "x" trials best: m is active in none of the top two.
        for (c, v) in &mut trials {
            if c.get("m").is_some() {
                *v += 100.0;
            }
        }
        let importances = ped_anova(&space, trials.iter().map(|(c, v)| (c, *v)), 0.1).unwrap();
        assert_eq!(importances.params[1], ("m".to_owned(), 0.0));
    }

    #[test]
    fn scott_width_by_hand() {
        // Cells 0..4 once each: mean 2, sd √(10/4), IQR: cells 1 (cumulative 2 ≥ 1.25) to 3
        // (4 ≥ 3.75) = 2, 2 / 1.34 = 1.4925 < 1.5811; width 1.059 · 1.4925 · 5^(−0.2).
        let width = scott_width(&[1.0; 5], 5.0);
        assert!((width - 1.059 * (2.0 / 1.34) * 5f64.powf(-0.2)).abs() < 1e-12, "{width}");
        // All in one cell: no spread, the narrowest width.
        assert_eq!(scott_width(&[0.0, 7.0, 0.0], 7.0), MIN_WIDTH);
    }

    #[test]
    fn densities_sum_to_one() {
        let cells = Cells::Numeric(50);
        let mut counts = vec![0.0; 50];
        counts[3] = 4.0;
        counts[40] = 1.0;
        let sum: f64 = cells.density(&counts).iter().sum();
        assert!((sum - 1.0).abs() < 1e-12, "{sum}");
    }

    #[test]
    fn top_quantile_keeps_ties_and_at_least_two() {
        let config = Config::new();
        let trials: Vec<(&Config, f64)> = [5.0, 1.0, 3.0, 1.0, 9.0].iter().map(|&v| (&config, v)).collect();
        assert_eq!(top_quantile(&trials, 0.1), vec![1, 3], "ceil(0.5) = 1, raised to 2: the two 1.0s");
        let trials: Vec<(&Config, f64)> = [2.0, 1.0, 3.0, 4.0].iter().map(|&v| (&config, v)).collect();
        assert_eq!(top_quantile(&trials, 0.5), vec![0, 1]);
    }

    #[test]
    fn a_linear_function_ranks_its_parameters_and_an_unused_one_last() {
        // f(x, y, z) = 10 x + y on a 20 x 20 x 20 grid walked in a scrambled order: x matters
        // most, y some, z not at all.
        let space = Space::builder().uniform("x", 0.0, 1.0).uniform("y", 0.0, 1.0).uniform("z", 0.0, 1.0).build();
        let space = space.expect("space");
        let configs: Vec<(Config, f64)> = (0..8000usize)
            .map(|i| {
                let j = (i * 2741) % 8000; // 2741 is prime to 8000: every point once
                let (x, y, z) = ((j % 20) as f64 / 19.0, (j / 20 % 20) as f64 / 19.0, (j / 400) as f64 / 19.0);
                let config =
                    Config::from_iter([("x", Value::Float(x)), ("y", Value::Float(y)), ("z", Value::Float(z))]);
                (config, 10.0 * x + y)
            })
            .collect();
        let result = ped_anova(&space, configs.iter().map(|(c, v)| (c, *v)), DEFAULT_QUANTILE).expect("importances");
        let names: Vec<&str> = result.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x", "y", "z"], "{:?}", result.params);
        let z = result.params[2].1;
        assert!(z < 0.01, "z is unused: {z}");
        assert!((result.params.iter().map(|(_, v)| v).sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(result.trials == 8000 && result.top_trials >= 800, "{} {}", result.trials, result.top_trials);
    }

    #[test]
    fn too_few_trials_and_bad_quantiles_are_refused() {
        let space = Space::builder().uniform("x", 0.0, 1.0).build().expect("space");
        let config = Config::from_iter([("x", Value::Float(0.5))]);
        let two = [(&config, 1.0), (&config, f64::NAN), (&config, 2.0)];
        assert_eq!(ped_anova(&space, two, 0.1), Err(ImportanceError::TooFewTrials(2)));
        assert_eq!(ped_anova(&space, [(&config, 1.0); 3], 1.0), Err(ImportanceError::Quantile(1.0)));
        let constant = Space::builder().constant("c", 1).build().expect("space");
        assert_eq!(ped_anova(&constant, [(&config, 1.0); 3], 0.1), Err(ImportanceError::NothingTuned));
    }
}
