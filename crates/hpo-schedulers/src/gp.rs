//! A Gaussian process over the [0,1]^d encoding: Matern-5/2 kernel with one lengthscale per
//! dimension (ARD), a constant mean and Gaussian noise. Hyperparameters are fitted by
//! maximizing the marginal likelihood plus weak priors (MAP) with L-BFGS from a few starts.
//! Targets are standardized by the caller.

use std::cell::RefCell;

use argmin::core::{CostFunction, Error, Executor, Gradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use faer::linalg::solvers::{DenseSolveCore, Llt, Solve};
use faer::{Mat, Par, Side};

const SQRT5: f64 = 2.236_067_977_499_79;

/// Hyperparameters, flat for the optimizer: `[ln ℓ_1 .. ln ℓ_d, ln σ², ln σ_n², mean]`.
pub(crate) type Theta = Vec<f64>;

/// Box bounds of one hyperparameter (log scale except the mean).
struct Bounds {
    low: f64,
    high: f64,
}

fn bounds(dims: usize, i: usize) -> Bounds {
    match i {
        _ if i < dims => Bounds { low: 0.01f64.ln(), high: 20f64.ln() },
        _ if i == dims => Bounds { low: 0.01f64.ln(), high: 100f64.ln() },
        _ if i == dims + 1 => Bounds { low: 1e-4f64.ln(), high: 2f64.ln() },
        _ => Bounds { low: -5.0, high: 5.0 },
    }
}

/// Negative log prior and its gradient: Gamma(3, 6) on lengthscales (BoTorch's default for
/// inputs in [0,1]), log-normal(0, 1) on the signal variance, Gamma(1.1, 0.05) on the noise
/// variance, normal(0, 1) on the mean (targets are standardized).
fn neg_log_prior(theta: &[f64], grad: &mut [f64]) -> f64 {
    let dims = theta.len() - 3;
    let mut value = 0.0;
    for (i, (&t, g)) in theta.iter().zip(grad.iter_mut()).enumerate() {
        let (v, d) = match i {
            _ if i < dims => (-2.0 * t + 6.0 * t.exp(), -2.0 + 6.0 * t.exp()),
            _ if i == dims => (0.5 * t * t, t),
            _ if i == dims + 1 => (-0.1 * t + 0.05 * t.exp(), -0.1 + 0.05 * t.exp()),
            _ => (0.5 * t * t, t),
        };
        value += v;
        *g += d;
    }
    value
}

/// Where the optimizer starts when nothing is known: lengthscale 0.5, unit signal, little noise.
pub(crate) fn default_theta(dims: usize) -> Theta {
    let mut theta = vec![0.5f64.ln(); dims];
    theta.extend([0.0, 1e-3f64.ln(), 0.0]);
    theta
}

/// The optimizer searches an unbounded `z`; each hyperparameter is `low + (high − low) ·
/// sigmoid(z)`, smooth and always inside its box.
fn to_theta(z: &[f64]) -> (Theta, Vec<f64>) {
    let dims = z.len() - 3;
    z.iter()
        .enumerate()
        .map(|(i, &z)| {
            let b = bounds(dims, i);
            let s = 1.0 / (1.0 + (-z).exp());
            (b.low + (b.high - b.low) * s, (b.high - b.low) * s * (1.0 - s))
        })
        .unzip()
}

fn to_z(theta: &[f64]) -> Vec<f64> {
    let dims = theta.len() - 3;
    theta
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let b = bounds(dims, i);
            let s = ((t - b.low) / (b.high - b.low)).clamp(1e-6, 1.0 - 1e-6);
            (s / (1.0 - s)).ln()
        })
        .collect()
}

/// Matern-5/2 of the scaled distance `r`, without the signal variance.
fn matern(r: f64) -> f64 {
    (1.0 + SQRT5 * r + 5.0 / 3.0 * r * r) * (-SQRT5 * r).exp()
}

fn scaled_sq_dist(a: &[f64], b: &[f64], inv_ls2: &[f64]) -> f64 {
    a.iter().zip(b).zip(inv_ls2).map(|((x, y), w)| (x - y) * (x - y) * w).sum()
}

/// Cholesky of `k` with increasing jitter on the diagonal (1e-8 up to 1, on standardized
/// targets) when it is not numerically positive definite (duplicate points, tiny noise).
fn cholesky(mut k: Mat<f64>) -> Option<Llt<f64>> {
    let mut added = 0.0;
    for jitter in [0.0, 1e-8, 1e-6, 1e-4, 1e-2, 1.0] {
        for i in 0..k.nrows() {
            k[(i, i)] += jitter - added;
        }
        added = jitter;
        if let Ok(llt) = k.llt(Side::Lower) {
            return Some(llt);
        }
    }
    None
}

/// The data a GP is fitted on: encoded points, standardized targets, and the squared
/// differences of every pair per dimension (they do not change while fitting).
pub(crate) struct Data<'a> {
    x: &'a [Vec<f64>],
    y: &'a [f64],
    /// Row `a * (a - 1) / 2 + b` (for `b < a`) holds (x_a − x_b)² per dimension.
    sq: Vec<f64>,
}

impl<'a> Data<'a> {
    pub fn new(x: &'a [Vec<f64>], y: &'a [f64]) -> Self {
        let dims = x.first().map_or(0, Vec::len);
        let mut sq = Vec::with_capacity(x.len() * x.len().saturating_sub(1) / 2 * dims);
        for a in 0..x.len() {
            for b in 0..a {
                sq.extend(x[a].iter().zip(&x[b]).map(|(u, v)| (u - v) * (u - v)));
            }
        }
        Data { x, y, sq }
    }

    fn dims(&self) -> usize {
        self.x.first().map_or(0, Vec::len)
    }

    /// Each pair's scaled distance r (lower triangle, row by row) for inverse squared
    /// lengthscales `inv_ls2`.
    fn distances(&self, inv_ls2: &[f64]) -> Vec<f64> {
        self.sq
            .chunks_exact(inv_ls2.len().max(1))
            .map(|d| d.iter().zip(inv_ls2).map(|(a, b)| a * b).sum::<f64>().sqrt())
            .collect()
    }

    fn kernel_matrix(&self, theta: &[f64], r: &[f64]) -> Mat<f64> {
        let dims = theta.len() - 3;
        let (signal, noise) = (theta[dims].exp(), theta[dims + 1].exp());
        let n = self.x.len();
        let mut k = Mat::zeros(n, n);
        let mut pair = 0;
        for a in 0..n {
            k[(a, a)] = signal + noise;
            for b in 0..a {
                let v = signal * matern(r[pair]);
                k[(a, b)] = v;
                k[(b, a)] = v;
                pair += 1;
            }
        }
        k
    }

    /// Negative log marginal likelihood plus negative log prior, and its gradient.
    pub fn objective(&self, theta: &[f64]) -> Option<(f64, Vec<f64>)> {
        let dims = theta.len() - 3;
        let n = self.x.len();
        let (signal, noise, mean) = (theta[dims].exp(), theta[dims + 1].exp(), theta[dims + 2]);
        let inv_ls2: Vec<f64> = theta[..dims].iter().map(|l| (-2.0 * l).exp()).collect();
        let r = self.distances(&inv_ls2);
        let llt = cholesky(self.kernel_matrix(theta, &r))?;
        let residual: Vec<f64> = self.y.iter().map(|y| y - mean).collect();
        let mut alpha = Mat::from_fn(n, 1, |i, _| residual[i]);
        llt.solve_in_place(alpha.as_mut());
        let alpha: Vec<f64> = alpha.col_as_slice(0).to_vec();
        let fit: f64 = residual.iter().zip(&alpha).map(|(r, a)| r * a).sum();
        let log_det: f64 = (0..n).map(|i| llt.L()[(i, i)].ln()).sum();
        let mut value = 0.5 * fit + log_det + 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();

        // d/dθ = ½ tr(W dK/dθ) with W = K⁻¹ − ααᵀ; pairs count twice, which cancels the ½.
        let inverse = llt.inverse();
        let mut grad = vec![0.0; theta.len()];
        let (mut trace_w, mut signal_part, mut pair) = (0.0, 0.0, 0);
        for a in 0..n {
            let column = inverse.col_as_slice(a); // symmetric: column a is row a
            let w_aa = column[a] - alpha[a] * alpha[a];
            trace_w += w_aa;
            signal_part += 0.5 * w_aa * signal;
            for b in 0..a {
                let w_ab = column[b] - alpha[a] * alpha[b];
                let r = r[pair];
                let e = (-SQRT5 * r).exp();
                signal_part += w_ab * signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r * r) * e;
                // dk/d ln ℓ_j = σ² 5/3 (1 + √5 r) e^(−√5 r) Δ_j² / ℓ_j²
                let common = w_ab * signal * 5.0 / 3.0 * (1.0 + SQRT5 * r) * e;
                let sq = &self.sq[pair * dims..(pair + 1) * dims];
                for ((g, d2), w) in grad[..dims].iter_mut().zip(sq).zip(&inv_ls2) {
                    *g += common * d2 * w;
                }
                pair += 1;
            }
        }
        grad[dims] = signal_part;
        grad[dims + 1] = 0.5 * noise * trace_w;
        grad[dims + 2] = -alpha.iter().sum::<f64>();
        value += neg_log_prior(theta, &mut grad);
        Some((value, grad))
    }
}

/// The optimizer's view, in `z` (see [`to_theta`]). The optimizer asks for cost and
/// gradient at the same point separately: one evaluation answers both.
struct Problem<'a> {
    data: &'a Data<'a>,
    last: RefCell<Option<Evaluation>>,
}

struct Evaluation {
    z: Vec<f64>,
    value: f64,
    grad: Vec<f64>,
}

impl Problem<'_> {
    fn eval(&self, z: &[f64]) -> Result<(f64, Vec<f64>), Error> {
        if let Some(last) = &*self.last.borrow()
            && last.z == z
        {
            return Ok((last.value, last.grad.clone()));
        }
        let (theta, slope) = to_theta(z);
        let (value, mut grad) =
            self.data.objective(&theta).ok_or_else(|| Error::msg("kernel matrix not positive definite"))?;
        for (g, d) in grad.iter_mut().zip(slope) {
            *g *= d;
        }
        *self.last.borrow_mut() = Some(Evaluation { z: z.to_vec(), value, grad: grad.clone() });
        Ok((value, grad))
    }
}

// By reference, so that the start's evaluation and the cache serve every run.
impl CostFunction for &Problem<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, z: &Self::Param) -> Result<f64, Error> {
        Ok(self.eval(z)?.0)
    }
}

impl Gradient for &Problem<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, z: &Self::Param) -> Result<Vec<f64>, Error> {
        Ok(self.eval(z)?.1)
    }
}

/// The MAP hyperparameters found by L-BFGS (at most `iters` iterations) from the best of
/// `starts`: the starts are screened by their cost, one Cholesky factorization each, and
/// only the best is optimized; the best start itself when the run fails.
pub(crate) fn fit(data: &Data<'_>, starts: &[Theta], iters: u64) -> Theta {
    let problem = Problem { data, last: RefCell::new(None) };
    let screened = starts
        .iter()
        .map(|theta| to_z(theta))
        .filter_map(|z| problem.eval(&z).ok().map(|(cost, _)| (cost, z)))
        .filter(|(cost, _)| cost.is_finite())
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let Some((start_cost, start)) = screened else { return default_theta(data.dims()) };
    let mut best = (start_cost, start.clone());
    let solver =
        LBFGS::new(MoreThuenteLineSearch::new(), 7).with_tolerance_grad(1e-3).and_then(|s| s.with_tolerance_cost(1e-4));
    if let Ok(solver) = solver
        && let Ok(mut result) = Executor::new(&problem, solver).configure(|s| s.param(start).max_iters(iters)).run()
    {
        let cost = result.state.get_best_cost();
        if let Some(z) = result.state.take_best_param()
            && cost.is_finite()
            && cost < best.0
        {
            best = (cost, z);
        }
    }
    to_theta(&best.1).0
}

/// A GP conditioned on its data, ready to predict.
pub(crate) struct Posterior {
    x: Vec<Vec<f64>>,
    inv_ls2: Vec<f64>,
    signal: f64,
    mean: f64,
    llt: Llt<f64>,
    alpha: Mat<f64>,
}

impl Posterior {
    /// Conditions the GP with hyperparameters `theta` on `x` and (standardized) `y`.
    pub fn new(x: Vec<Vec<f64>>, y: &[f64], theta: &[f64]) -> Option<Posterior> {
        let dims = theta.len() - 3;
        let data = Data::new(&x, y);
        let inv_ls2: Vec<f64> = theta[..dims].iter().map(|l| (-2.0 * l).exp()).collect();
        let llt = cholesky(data.kernel_matrix(theta, &data.distances(&inv_ls2)))?;
        let mean = theta[dims + 2];
        let mut alpha = Mat::from_fn(y.len(), 1, |i, _| y[i] - mean);
        llt.solve_in_place(alpha.as_mut());
        Some(Posterior { x, inv_ls2, signal: theta[dims].exp(), mean, llt, alpha })
    }

    /// Predictive mean and variance of the latent function at each point.
    pub fn predict(&self, points: &[Vec<f64>]) -> Vec<(f64, f64)> {
        let (n, m) = (self.x.len(), points.len());
        let mut k = Mat::from_fn(n, m, |a, b| {
            self.signal * matern(scaled_sq_dist(&self.x[a], &points[b], &self.inv_ls2).sqrt())
        });
        let means: Vec<f64> =
            (0..m).map(|b| self.mean + (0..n).map(|a| k[(a, b)] * self.alpha[(a, 0)]).sum::<f64>()).collect();
        faer::linalg::triangular_solve::solve_lower_triangular_in_place(self.llt.L(), k.as_mut(), Par::Seq);
        (0..m)
            .map(|b| {
                let explained: f64 = (0..n).map(|a| k[(a, b)] * k[(a, b)]).sum();
                (means[b], (self.signal - explained).max(1e-12))
            })
            .collect()
    }
}

/// Expected improvement below `best` of a Gaussian with this mean and variance.
pub(crate) fn expected_improvement(mean: f64, var: f64, best: f64) -> f64 {
    let sd = var.sqrt();
    let z = (best - mean) / sd;
    let cdf = 0.5 * (1.0 + libm::erf(z / std::f64::consts::SQRT_2));
    let pdf = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    ((best - mean) * cdf + sd * pdf).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> (Vec<Vec<f64>>, Vec<f64>) {
        let x = vec![vec![0.1, 0.2], vec![0.4, 0.9], vec![0.8, 0.3], vec![0.5, 0.5], vec![0.0, 1.0]];
        let y = vec![0.3, -1.2, 0.8, 0.1, 0.0];
        (x, y)
    }

    #[test]
    fn matern_matches_hand_computed_values() {
        assert_eq!(matern(0.0), 1.0);
        // r = 1: (1 + √5 + 5/3) e^(−√5) = 4.902734644 × 0.106878241 = 0.523994...
        assert!((matern(1.0) - 0.523_994_108_5).abs() < 1e-9, "{}", matern(1.0));
    }

    #[test]
    fn jitter_rescues_a_singular_kernel_matrix() {
        // Three identical points without noise: rank one.
        let k = Mat::from_fn(3, 3, |_, _| 1.0);
        let llt = cholesky(k).expect("jitter makes it positive definite");
        assert!((llt.L()[(0, 0)] - (1.0f64 + 1e-8).sqrt()).abs() < 1e-3);
    }

    #[test]
    fn posterior_of_one_point_by_hand() {
        // ℓ = 0.5, σ² = 2, σ_n² = 0.5, mean 0.1; one observation y = 1 at x = 0.2.
        // At x* = 0.7: r = 0.5 / 0.5 = 1, k = 2 matern(1) = 1.0479882, and
        // mean = 0.1 + k (1 − 0.1) / 2.5, variance = 2 − k² / 2.5.
        let theta = vec![0.5f64.ln(), 2f64.ln(), 0.5f64.ln(), 0.1];
        let posterior = Posterior::new(vec![vec![0.2]], &[1.0], &theta).expect("pd");
        let (mean, var) = posterior.predict(&[vec![0.7]])[0];
        let k = 2.0 * 0.523_994_108_83;
        assert!((mean - (0.1 + k * 0.9 / 2.5)).abs() < 1e-9, "{mean}");
        assert!((var - (2.0 - k * k / 2.5)).abs() < 1e-9, "{var}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (x, y) = data();
        let data = Data::new(&x, &y);
        let theta = vec![-0.7, 0.2, 0.3, -3.0, 0.1];
        let (_, grad) = data.objective(&theta).expect("positive definite");
        for i in 0..theta.len() {
            let h = 1e-5;
            let (mut up, mut down) = (theta.clone(), theta.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (data.objective(&up).expect("pd").0 - data.objective(&down).expect("pd").0) / (2.0 * h);
            assert!((numeric - grad[i]).abs() < 1e-4 * (1.0 + numeric.abs()), "θ{i}: {numeric} vs {}", grad[i]);
        }
    }

    #[test]
    fn fitting_lowers_the_objective_and_interpolates_smooth_data() {
        let x: Vec<Vec<f64>> = (0..12).map(|i| vec![i as f64 / 11.0]).collect();
        let y: Vec<f64> = x.iter().map(|p| (6.0 * p[0]).sin()).collect();
        let data = Data::new(&x, &y);
        let start = default_theta(1);
        let theta = fit(&data, std::slice::from_ref(&start), 50);
        assert!(data.objective(&theta).expect("pd").0 < data.objective(&start).expect("pd").0);
        let posterior = Posterior::new(x.clone(), &y, &theta).expect("pd");
        let (mean, var) = posterior.predict(&[vec![0.3]])[0];
        let truth = (6.0f64 * 0.3).sin();
        assert!((mean - truth).abs() < 0.05 && var < 0.01, "mean {mean} truth {truth} var {var}");
    }

    #[test]
    fn degenerate_data_still_conditions() {
        // A single point, duplicates with different values, and constant targets.
        let cases: Vec<(Vec<Vec<f64>>, Vec<f64>)> = vec![
            (vec![vec![0.3, 0.3]], vec![0.0]),
            (vec![vec![0.3, 0.3]; 4], vec![1.0, -1.0, 1.0, -1.0]),
            (vec![vec![0.1, 0.1], vec![0.9, 0.2], vec![0.5, 0.7]], vec![0.0; 3]),
        ];
        for (x, y) in cases {
            let theta = fit(&Data::new(&x, &y), &[default_theta(2)], 30);
            assert!(theta.iter().all(|t| t.is_finite()));
            let posterior = Posterior::new(x, &y, &theta).expect("conditions");
            let (mean, var) = posterior.predict(&[vec![0.2, 0.8]])[0];
            assert!(mean.is_finite() && var > 0.0);
        }
    }

    #[test]
    fn expected_improvement_matches_the_closed_form() {
        // best − μ = 0, σ = 1: EI = φ(0) = 0.39894228.
        assert!((expected_improvement(0.0, 1.0, 0.0) - 0.398_942_280_4).abs() < 1e-9);
        // Far above best with a tiny variance: no improvement.
        assert!(expected_improvement(5.0, 1e-6, 0.0) < 1e-12);
    }
}
