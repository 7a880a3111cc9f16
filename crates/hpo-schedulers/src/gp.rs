//! A Gaussian process over the [0,1]^d encoding: Matern-5/2 kernel with one lengthscale per
//! dimension (ARD), a constant mean and Gaussian noise. Hyperparameters are fitted by
//! maximizing the marginal likelihood plus weak priors (MAP) with L-BFGS from a few starts.
//! Targets are standardized by the caller.

use std::cell::RefCell;

use argmin::core::{CostFunction, Error, Executor, Gradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::{Mat, Par};

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

/// The data a GP is fitted on: encoded points, standardized targets, the squared
/// differences of every pair per dimension (they do not change while fitting), and the
/// buffers every evaluation reuses.
pub(crate) struct Data<'a> {
    x: &'a [Vec<f64>],
    y: &'a [f64],
    /// Pairs `(a, b)` with `a > b`, column by column (`b = 0`: `a = 1..n`, then `b = 1`, …),
    /// the order of the kernel matrix's lower triangle: (x_a − x_b)² per dimension.
    sq: Vec<f64>,
    work: RefCell<Work>,
}

/// Buffers allocated once per fit: a fit evaluates the objective dozens of times, and fresh
/// n×n matrices each time cost more in page faults than the arithmetic does.
struct Work {
    /// The kernel matrix, factored in place into its Cholesky factor (lower triangle).
    factor: Mat<f64>,
    inverse: Mat<f64>,
    alpha: Mat<f64>,
    /// Per pair: the scaled distance r and e^(−√5 r).
    r: Vec<f64>,
    e: Vec<f64>,
    stack: MemBuffer,
}

impl<'a> Data<'a> {
    pub fn new(x: &'a [Vec<f64>], y: &'a [f64]) -> Self {
        let (n, dims) = (x.len(), x.first().map_or(0, Vec::len));
        let pairs = n * n.saturating_sub(1) / 2;
        let mut sq = Vec::with_capacity(pairs * dims);
        for b in 0..n {
            for a in b + 1..n {
                sq.extend(x[a].iter().zip(&x[b]).map(|(u, v)| (u - v) * (u - v)));
            }
        }
        let scratch = llt::factor::cholesky_in_place_scratch::<f64>(n, Par::Seq, Default::default())
            .or(llt::inverse::inverse_scratch::<f64>(n, Par::Seq));
        let work = Work {
            factor: Mat::zeros(n, n),
            inverse: Mat::zeros(n, n),
            alpha: Mat::zeros(n, 1),
            r: vec![0.0; pairs],
            e: vec![0.0; pairs],
            stack: MemBuffer::new(scratch),
        };
        Data { x, y, sq, work: RefCell::new(work) }
    }

    fn dims(&self) -> usize {
        self.x.first().map_or(0, Vec::len)
    }

    /// Factors the kernel matrix of hyperparameters `theta` into `work.factor`, with
    /// increasing jitter on the diagonal (1e-8 up to 1, on standardized targets) when it is
    /// not numerically positive definite (duplicate points, tiny noise); false if it never is.
    fn factor_kernel(&self, theta: &[f64], work: &mut Work) -> bool {
        let dims = theta.len() - 3;
        let (signal, noise) = (theta[dims].exp(), theta[dims + 1].exp());
        let inv_ls2: Vec<f64> = theta[..dims].iter().map(|l| (-2.0 * l).exp()).collect();
        for ((d, r), e) in self.sq.chunks_exact(dims.max(1)).zip(&mut work.r).zip(&mut work.e) {
            *r = d.iter().zip(&inv_ls2).map(|(a, b)| a * b).sum::<f64>().sqrt();
            *e = (-SQRT5 * *r).exp();
        }
        let n = self.x.len();
        for jitter in [0.0, 1e-8, 1e-6, 1e-4, 1e-2, 1.0] {
            let mut pair = 0;
            for b in 0..n {
                let column = work.factor.col_as_slice_mut(b);
                column[b] = signal + noise + jitter;
                for value in &mut column[b + 1..] {
                    let r = work.r[pair];
                    *value = signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r * r) * work.e[pair];
                    pair += 1;
                }
            }
            let stack = MemStack::new(&mut work.stack);
            if llt::factor::cholesky_in_place(
                work.factor.as_mut(),
                Default::default(),
                Par::Seq,
                stack,
                Default::default(),
            )
            .is_ok()
            {
                for b in 1..n {
                    work.factor.col_as_slice_mut(b)[..b].fill(0.0);
                }
                return true;
            }
        }
        false
    }

    /// Negative log marginal likelihood plus negative log prior, and its gradient.
    pub fn objective(&self, theta: &[f64]) -> Option<(f64, Vec<f64>)> {
        let work = &mut *self.work.borrow_mut();
        if !self.factor_kernel(theta, work) {
            return None;
        }
        let dims = theta.len() - 3;
        let n = self.x.len();
        let (signal, noise, mean) = (theta[dims].exp(), theta[dims + 1].exp(), theta[dims + 2]);
        let inv_ls2: Vec<f64> = theta[..dims].iter().map(|l| (-2.0 * l).exp()).collect();
        let residual: Vec<f64> = self.y.iter().map(|y| y - mean).collect();
        work.alpha.col_as_slice_mut(0).copy_from_slice(&residual);
        let Work { factor, inverse, alpha, r, e, stack } = work;
        llt::solve::solve_in_place(factor.as_ref(), alpha.as_mut(), Par::Seq, MemStack::new(stack));
        let alpha = alpha.col_as_slice(0);
        let fit: f64 = residual.iter().zip(alpha).map(|(r, a)| r * a).sum();
        let log_det: f64 = (0..n).map(|i| factor[(i, i)].ln()).sum();
        let mut value = 0.5 * fit + log_det + 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();

        // d/dθ = ½ tr(W dK/dθ) with W = K⁻¹ − ααᵀ; pairs count twice, which cancels the ½.
        // The inverse's lower triangle is filled, pairs are read in its column order.
        llt::inverse::inverse(inverse.as_mut(), factor.as_ref(), Par::Seq, MemStack::new(stack));
        let mut grad = vec![0.0; theta.len()];
        let (mut trace_w, mut signal_part, mut pair) = (0.0, 0.0, 0);
        for b in 0..n {
            let column = inverse.col_as_slice(b);
            let w_bb = column[b] - alpha[b] * alpha[b];
            trace_w += w_bb;
            signal_part += 0.5 * w_bb * signal;
            for a in b + 1..n {
                let w_ab = column[a] - alpha[a] * alpha[b];
                let (r, e) = (r[pair], e[pair]);
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
    /// The kernel matrix's Cholesky factor L (lower triangular).
    factor: Mat<f64>,
    alpha: Mat<f64>,
}

impl Posterior {
    /// Conditions the GP with hyperparameters `theta` on `x` and (standardized) `y`.
    pub fn new(x: Vec<Vec<f64>>, y: &[f64], theta: &[f64]) -> Option<Posterior> {
        let dims = theta.len() - 3;
        let data = Data::new(&x, y);
        if !data.factor_kernel(theta, &mut data.work.borrow_mut()) {
            return None;
        }
        let mean = theta[dims + 2];
        let Work { factor, mut alpha, mut stack, .. } = data.work.into_inner();
        alpha.col_as_slice_mut(0).iter_mut().zip(y).for_each(|(a, y)| *a = y - mean);
        llt::solve::solve_in_place(factor.as_ref(), alpha.as_mut(), Par::Seq, MemStack::new(&mut stack));
        let inv_ls2 = theta[..dims].iter().map(|l| (-2.0 * l).exp()).collect();
        Some(Posterior { x, inv_ls2, signal: theta[dims].exp(), mean, factor, alpha })
    }

    /// Predictive mean and variance of the latent function at each point.
    pub fn predict(&self, points: &[Vec<f64>]) -> Vec<(f64, f64)> {
        let (n, m) = (self.x.len(), points.len());
        let mut k = Mat::from_fn(n, m, |a, b| {
            self.signal * matern(scaled_sq_dist(&self.x[a], &points[b], &self.inv_ls2).sqrt())
        });
        let means: Vec<f64> =
            (0..m).map(|b| self.mean + (0..n).map(|a| k[(a, b)] * self.alpha[(a, 0)]).sum::<f64>()).collect();
        faer::linalg::triangular_solve::solve_lower_triangular_in_place(self.factor.as_ref(), k.as_mut(), Par::Seq);
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
        // Three identical points without noise: the kernel matrix is all ones, rank one.
        // With 1e-8 on the diagonal the second pivot of ones + εI is (1 + ε) − 1/(1 + ε) ≈ 2ε.
        let x = vec![vec![0.3]; 3];
        let data = Data::new(&x, &[0.0; 3]);
        let theta = vec![0.5f64.ln(), 0.0, -700.0, 0.0];
        let work = &mut data.work.borrow_mut();
        assert!(data.factor_kernel(&theta, work), "jitter makes it positive definite");
        assert!((work.factor[(0, 0)] - (1.0f64 + 1e-8).sqrt()).abs() < 1e-12);
        assert!((work.factor[(1, 1)].powi(2) - 2e-8).abs() < 1e-10, "{}", work.factor[(1, 1)]);
        assert_eq!(work.factor[(0, 1)], 0.0, "the upper triangle is zero");
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
