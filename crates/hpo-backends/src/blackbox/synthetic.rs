//! Synthetic multi-fidelity functions with published formulas: Branin, Hartmann-3 and
//! Hartmann-6 with the fidelity terms of Kandasamy et al., "Multi-fidelity Bayesian
//! optimisation with continuous approximations" (ICML 2017). Fidelity z = epoch / max_epochs;
//! at z = 1 they are the classic functions (minima 0.397887, -3.86278 and -3.32237). Each
//! epoch costs 1 s.
//!
//! `branin-or-hartmann3` is a conditional space over two of them: a `function` choice, and
//! each function's own parameters active only when it is chosen. Only the Hartmann-3 branch
//! holds the optimum.
//!
//! `zdt1` has two objectives: ZDT1 (Zitzler, Deb and Thiele, 2000) in 6 dimensions,
//! f1 = x1 and f2 = g (1 - sqrt(f1 / g)) with g = 1 + 9 mean(x2..x6), its Pareto front
//! f2 = 1 - sqrt(f1) where x2..x6 = 0. At fidelity z, g gains (1 - z)(1 + 4 (x2 - 0.3)^2):
//! early epochs overstate f2, and most for configs far from x2 = 0.3, so that a low
//! fidelity ranks configs roughly but not exactly as the full one.

use hpo_core::{Config, Mode, Space};

use super::{Blackbox, BlackboxInfo, Curve};

const EPOCHS: u32 = 27;

/// The synthetic functions with a fidelity term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntheticFn {
    /// Branin-Hoo, 2 dimensions.
    Branin,
    /// Hartmann-3, 3 dimensions.
    Hartmann3,
    /// Hartmann-6, 6 dimensions.
    Hartmann6,
}

/// The Hartmann family: -sum_i alpha_i exp(-sum_j A_ij (x_j - P_ij)^2), with alpha_i lowered
/// by 0.1 (1 - z) at fidelity z.
fn hartmann<const D: usize>(a: &[[f64; D]; 4], p: &[[f64; D]; 4], x: &[f64], z: f64) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    -(0..4)
        .map(|i| {
            let alpha = ALPHA[i] - 0.1 * (1.0 - z);
            let inner: f64 = (0..D).map(|j| a[i][j] * (x[j] - p[i][j]).powi(2)).sum();
            alpha * (-inner).exp()
        })
        .sum::<f64>()
}

impl SyntheticFn {
    /// The function at point `x` and fidelity `z` in [0, 1].
    pub fn eval(self, x: &[f64], z: f64) -> f64 {
        match self {
            SyntheticFn::Branin => {
                use std::f64::consts::PI;
                let (x1, x2) = (x[0], x[1]);
                let b = 5.1 / (4.0 * PI * PI) - 0.01 * (1.0 - z);
                let c = 5.0 / PI - 0.1 * (1.0 - z);
                let t = 1.0 / (8.0 * PI) + 0.05 * (1.0 - z);
                (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
            }
            SyntheticFn::Hartmann3 => {
                const A: [[f64; 3]; 4] = [[3.0, 10.0, 30.0], [0.1, 10.0, 35.0], [3.0, 10.0, 30.0], [0.1, 10.0, 35.0]];
                const P: [[f64; 3]; 4] = [
                    [0.3689, 0.1170, 0.2673],
                    [0.4699, 0.4387, 0.7470],
                    [0.1091, 0.8732, 0.5547],
                    [0.0381, 0.5743, 0.8828],
                ];
                hartmann(&A, &P, x, z)
            }
            SyntheticFn::Hartmann6 => {
                const A: [[f64; 6]; 4] = [
                    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
                    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
                    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
                    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
                ];
                const P: [[f64; 6]; 4] = [
                    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
                    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
                    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
                    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
                ];
                hartmann(&A, &P, x, z)
            }
        }
    }

    fn names(self) -> Vec<String> {
        match self {
            SyntheticFn::Branin => vec!["x1".into(), "x2".into()],
            SyntheticFn::Hartmann3 => (1..=3).map(|i| format!("x{i}")).collect(),
            SyntheticFn::Hartmann6 => (1..=6).map(|i| format!("x{i}")).collect(),
        }
    }

    fn optimum(self) -> f64 {
        match self {
            SyntheticFn::Branin => 0.397887,
            SyntheticFn::Hartmann3 => -3.86278,
            SyntheticFn::Hartmann6 => -3.32237,
        }
    }

    /// Its space: Branin's published box, the unit cube for Hartmann.
    fn space(self) -> Space {
        match self {
            SyntheticFn::Branin => Space::builder().uniform("x1", -5.0, 10.0).uniform("x2", 0.0, 15.0).build(),
            f => f.names().into_iter().fold(Space::builder(), |b, name| b.uniform(name, 0.0, 1.0)).build(),
        }
        .unwrap_or_default()
    }
}

/// What a synthetic blackbox evaluates.
enum Shape {
    /// One function over its own parameters.
    One(SyntheticFn),
    /// `function` picks Branin (its parameters `branin_x1`, `branin_x2`) or Hartmann-3
    /// (`hartmann3_x1`, ...): a conditional space.
    BraninOrHartmann3,
    /// ZDT1 with a fidelity term: two objectives, `f1` and `f2`.
    Zdt1,
}

/// The two functions of `branin-or-hartmann3`, as the `function` parameter names them.
const BRANCHES: [(&str, SyntheticFn); 2] = [("branin", SyntheticFn::Branin), ("hartmann3", SyntheticFn::Hartmann3)];

/// A synthetic function as a blackbox reporting `objective` after each epoch.
pub struct Synthetic {
    shape: Shape,
    info: BlackboxInfo,
}

impl Synthetic {
    /// The blackbox of `f`.
    pub fn new(f: SyntheticFn) -> Self {
        let name = match f {
            SyntheticFn::Branin => "branin",
            SyntheticFn::Hartmann3 => "hartmann3",
            SyntheticFn::Hartmann6 => "hartmann6",
        };
        Synthetic::with(Shape::One(f), name, f.space())
    }

    /// `branin-or-hartmann3`: a `function` choice between Branin and Hartmann-3, each with its
    /// own parameters (`branin_x1`, ..., `hartmann3_x1`, ...), active only when chosen.
    pub fn branin_or_hartmann3() -> Self {
        let mut params = vec![(
            "function".to_owned(),
            hpo_core::Domain::Choice(BRANCHES.iter().map(|(n, _)| (*n).into()).collect()),
        )];
        let mut builder = Space::builder();
        for (branch, f) in BRANCHES {
            for (name, domain) in f.space().params() {
                let name = format!("{branch}_{name}");
                builder = builder.when(&name, format!("function == '{branch}'"));
                params.push((name, domain.clone()));
            }
        }
        let space =
            params.into_iter().fold(builder, |b, (name, domain)| b.param(name, domain)).build().unwrap_or_default();
        Synthetic::with(Shape::BraninOrHartmann3, "branin-or-hartmann3", space)
    }

    /// `zdt1`: ZDT1 in 6 dimensions with a fidelity term, reporting `f1` and `f2`.
    pub fn zdt1() -> Self {
        let space = (1..=6).fold(Space::builder(), |b, i| b.uniform(format!("x{i}"), 0.0, 1.0)).build();
        Synthetic::with(Shape::Zdt1, "zdt1", space.unwrap_or_default())
    }

    fn with(shape: Shape, name: &str, space: Space) -> Self {
        let metrics: Vec<(String, Mode)> = match shape {
            Shape::Zdt1 => vec![("f1".into(), Mode::Min), ("f2".into(), Mode::Min)],
            _ => vec![("objective".into(), Mode::Min)],
        };
        let default_metric = metrics[0].0.clone();
        Synthetic {
            shape,
            info: BlackboxInfo {
                name: name.into(),
                space,
                resource_attr: "epoch".into(),
                max_resource: EPOCHS,
                metrics,
                default_metric,
            },
        }
    }
}

struct SyntheticCurve {
    f: SyntheticFn,
    x: Vec<f64>,
}

impl Curve for SyntheticCurve {
    fn at(&self, epoch: u32, out: &mut [f64]) -> Option<f64> {
        if epoch == 0 || epoch > EPOCHS {
            return None;
        }
        out[0] = self.f.eval(&self.x, f64::from(epoch) / f64::from(EPOCHS));
        Some(f64::from(epoch))
    }
}

/// ZDT1 at fidelity z: (f1, f2).
pub fn zdt1(x: &[f64], z: f64) -> (f64, f64) {
    let f1 = x[0];
    let g =
        1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64 + (1.0 - z) * (1.0 + 4.0 * (x[1] - 0.3).powi(2));
    (f1, g * (1.0 - (f1 / g).sqrt()))
}

struct Zdt1Curve {
    x: Vec<f64>,
}

impl Curve for Zdt1Curve {
    fn at(&self, epoch: u32, out: &mut [f64]) -> Option<f64> {
        if epoch == 0 || epoch > EPOCHS {
            return None;
        }
        (out[0], out[1]) = zdt1(&self.x, f64::from(epoch) / f64::from(EPOCHS));
        Some(f64::from(epoch))
    }
}

impl Blackbox for Synthetic {
    fn info(&self) -> &BlackboxInfo {
        &self.info
    }

    fn curve(&self, config: &Config, _seed: u64) -> Result<Box<dyn Curve>, crate::Error> {
        let bad = |e: hpo_core::ConfigError| crate::Error::Config(e.to_string());
        let (f, prefix) = match self.shape {
            Shape::Zdt1 => {
                let x = (1..=6).map(|i| config.f64(&format!("x{i}")).map_err(bad)).collect::<Result<_, _>>()?;
                return Ok(Box::new(Zdt1Curve { x }));
            }
            Shape::One(f) => (f, String::new()),
            Shape::BraninOrHartmann3 => {
                let chosen = config.str("function").map_err(bad)?;
                let (branch, f) = BRANCHES.iter().find(|(n, _)| *n == chosen).ok_or_else(|| {
                    crate::Error::Config(format!("`function` must be \"branin\" or \"hartmann3\", got {chosen:?}"))
                })?;
                (*f, format!("{branch}_"))
            }
        };
        let x = f.names().iter().map(|n| config.f64(&format!("{prefix}{n}")).map_err(bad)).collect::<Result<_, _>>()?;
        Ok(Box::new(SyntheticCurve { f, x }))
    }

    fn optimum(&self, _metric: &str) -> Option<f64> {
        Some(match self.shape {
            Shape::One(f) => f.optimum(),
            Shape::BraninOrHartmann3 => SyntheticFn::Hartmann3.optimum(),
            Shape::Zdt1 => 0.0, // f1 and f2 each reach 0 at an end of the front
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_minima_at_full_fidelity() {
        let b = SyntheticFn::Branin;
        for x in [[-std::f64::consts::PI, 12.275], [std::f64::consts::PI, 2.275], [9.42478, 2.475]] {
            assert!((b.eval(&x, 1.0) - 0.397887).abs() < 1e-5);
        }
        let h = SyntheticFn::Hartmann6.eval(&[0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573], 1.0);
        assert!((h - -3.32237).abs() < 1e-4, "{h}");
        let h3 = SyntheticFn::Hartmann3.eval(&[0.114614, 0.555649, 0.852547], 1.0);
        assert!((h3 - -3.86278).abs() < 1e-4, "{h3}");
        // lower fidelity is a different (biased) function
        assert!((b.eval(&[std::f64::consts::PI, 2.275], 0.0) - 0.397887).abs() > 0.01);
    }

    #[test]
    fn zdt1_by_hand() {
        // On the front (x2..x6 = 0): f2 = 1 - sqrt(f1).
        assert_eq!(zdt1(&[0.25, 0.0, 0.0, 0.0, 0.0, 0.0], 1.0), (0.25, 0.5));
        // g = 1 + 9 * 0.5 = 5.5 at full fidelity; at z = 0, 5.5 + 1 + 4 * 0.04 = 6.66.
        let (_, f2) = zdt1(&[0.0, 0.5, 0.5, 0.5, 0.5, 0.5], 1.0);
        assert!((f2 - 5.5).abs() < 1e-12);
        let (_, f2) = zdt1(&[0.0, 0.5, 0.5, 0.5, 0.5, 0.5], 0.0);
        assert!((f2 - 6.66).abs() < 1e-12);
    }
}
