//! The tree-structured Parzen estimator (Bergstra et al., 2011), as Optuna 5's default
//! `TPESampler` (multivariate, with its defaults).

use hpo_core::{Config, Context, Domain, HpoRng, Report, Searcher, SetupError, Space, TrialId, derive_rng};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::history::{History, Trial};
use crate::random::normal;

/// TPE: once `n_startup` results are in (random configs until then), split the results into
/// the best ones ("good": `min(ceil(0.1 n), 25)` of n, or the fraction `gamma` if set) and
/// the rest plus the trials still running ("bad"), model the density of each with a Parzen
/// estimator, and suggest the best of `n_candidates` samples from the good density by the
/// ratio good/bad.
///
/// The estimators are Optuna 5's multivariate ones: a mixture of one product kernel per
/// trial over every parameter, plus a prior kernel (Gaussian at the middle of each domain,
/// as wide as it). In the \[0,1\] encoding (log domains on their log scale) a kernel is a
/// truncated Gaussian whose width is the larger gap to its neighbours (the inner gap at
/// either end), clipped to \[1/min(100, n + 2), 1\]; for a `choice`, the observed category
/// gets one count over a prior spread evenly. Results of the bad side older than its 25
/// newest are weighted down linearly by age. Integers are modelled as continuous and
/// rounded (Optuna models their steps).
///
/// Results are kept per resource level; the model is fitted on the highest level with at
/// least `dims + 2` results, as BOHB does: inside Hyperband or ASHA it learns from the
/// highest rung with enough data, with `fifo` from the longest curves available.
///
/// In a conditional space the multivariate estimators cover the parameters that are always
/// active; each conditional parameter, once the values it depends on are chosen and make it
/// active, gets a univariate pair of estimators over the trials where it was active (split
/// by the same ranking), and the best of `n_candidates` draws by their ratio. A proposal
/// that a `forbid` clause rules out is replaced by a random config.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tpe {
    /// Random configs until this many results are in.
    #[serde(default = "default_startup")]
    pub n_startup: usize,
    /// Samples from the good density scored per suggestion.
    #[serde(default = "default_candidates")]
    pub n_candidates: usize,
    /// The fraction of results that counts as good; unset, `min(ceil(0.1 n), 25)` of n.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    #[serde(skip)]
    state: Option<State>,
}

fn default_startup() -> usize {
    10
}
fn default_candidates() -> usize {
    24
}

impl Default for Tpe {
    fn default() -> Self {
        Tpe { n_startup: default_startup(), n_candidates: default_candidates(), gamma: None, state: None }
    }
}

struct State {
    space: Space,
    rng: HpoRng,
    history: History,
    /// Where each always-active parameter sits in the encoding.
    blocks: Vec<Block>,
    /// Each conditional parameter with its place, in dependency order.
    conditional: Vec<(String, Block)>,
    scratch: Scratch,
    /// The same for each conditional parameter's own densities.
    conditional_scratch: Vec<Scratch>,
}

/// A parameter's place in the \[0,1\] encoding.
#[derive(Clone, Copy)]
enum Block {
    /// One coordinate (a numeric domain).
    Numeric(usize),
    /// A one-hot block of this many coordinates (a `choice`).
    Choice(usize, usize),
}

/// The always-active parameters' blocks, and the conditional ones' by name in dependency
/// order.
fn blocks(space: &Space) -> (Vec<Block>, Vec<(String, Block)>) {
    let mut offset = 0;
    let mut always = Vec::new();
    let mut conditional = Vec::new();
    for (name, domain) in space.params() {
        let dim = domain.encoded_dim();
        let block = match domain {
            Domain::Constant(_) => None,
            Domain::Choice(values) => Some(Block::Choice(offset, values.len())),
            _ => Some(Block::Numeric(offset)),
        };
        match (block, space.condition(name)) {
            (Some(block), None) => always.push(block),
            (Some(block), Some(_)) => conditional.push((name.to_owned(), block)),
            (None, _) => {}
        }
        offset += dim;
    }
    let order: Vec<&str> = space.params_in_order().map(|(name, _)| name).collect();
    conditional.sort_by_key(|(name, _)| order.iter().position(|n| n == name));
    (always, conditional)
}

impl Block {
    /// Its first coordinate.
    fn at(self) -> usize {
        match self {
            Block::Numeric(at) | Block::Choice(at, _) => at,
        }
    }

    /// Its coordinates.
    fn range(self) -> std::ops::Range<usize> {
        match self {
            Block::Numeric(at) => at..at + 1,
            Block::Choice(at, k) => at..at + k,
        }
    }
}

/// One side's density: a mixture of product kernels, one per point and the prior (last).
/// Kept as arrays over the kernels, so that a density is a few tight loops, and refitted in
/// place for each suggestion: fresh arrays every time made the heap grow and shrink, and
/// the page faults cost a quarter of a suggestion at 1,000 results.
#[derive(Default)]
struct Parzen {
    /// Per kernel: its mixture weight.
    weights: Vec<f64>,
    /// Per kernel: the log of its weight plus the log normalizers of its truncated Gaussians.
    constant: Vec<f64>,
    numeric: Vec<Numeric>,
    /// Per `choice`: where it sits, its categories, and per kernel the log probability of
    /// each category.
    choice: Vec<(usize, usize, Vec<f64>)>,
    /// Scratch: per kernel, a running product of normalizers.
    product: Vec<f64>,
}

/// A numeric parameter's kernels: Gaussians truncated to \[0,1\].
#[derive(Default)]
struct Numeric {
    at: usize,
    mu: Vec<f64>,
    sigma: Vec<f64>,
    inv_sigma: Vec<f64>,
}

/// The normalizer of a Gaussian truncated to \[0,1\]. The truncated mass is only computed
/// near the ends (beyond 8.3 widths it is 1 to double precision).
fn norm(mu: f64, sigma: f64, inv_sigma: f64) -> f64 {
    let gauss = inv_sigma * 0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2;
    if mu > 8.3 * sigma && 1.0 - mu > 8.3 * sigma {
        return gauss;
    }
    gauss / (phi((1.0 - mu) * inv_sigma) - phi(-mu * inv_sigma)).max(1e-300)
}

/// Kernel widths for points in \[0,1\] as Optuna's: the larger gap to a neighbour (the
/// domain's ends count as neighbours), but the inner gap at either end, clipped to
/// \[1/min(100, n + 2), 1\].
fn widths(points: &[f64], widths: &mut Vec<f64>, sort: &mut SortScratch) {
    let n = points.len();
    let sorted = sort.sorted_in_unit_interval(points);
    let min = 1.0 / (n as f64 + 2.0).min(100.0);
    widths.clear();
    widths.resize(n, 0.0);
    for rank in 0..n {
        let x = sorted[rank].0;
        let left = if rank == 0 { x } else { x - sorted[rank - 1].0 };
        let right = if rank + 1 == n { 1.0 - x } else { sorted[rank + 1].0 - x };
        let width = match (n >= 2, rank == 0, rank + 1 == n) {
            (true, true, _) => right,
            (true, _, true) => left,
            _ => left.max(right),
        };
        widths[sorted[rank].1] = width.clamp(min, 1.0);
    }
}

/// The buffers of a bucket sort, kept from one suggestion to the next.
#[derive(Default)]
struct SortScratch {
    starts: Vec<usize>,
    next: Vec<usize>,
    sorted: Vec<(f64, usize)>,
}

impl SortScratch {
    /// `(value, index)` of points in \[0,1\] in ascending order, ties by index: a bucket
    /// sort (n buckets, each sorted by insertion, or by a comparison sort when crowded), as
    /// every suggestion sorts each parameter's points of both sides and a comparison sort
    /// took a good part of it.
    fn sorted_in_unit_interval(&mut self, points: &[f64]) -> &[(f64, usize)] {
        let n = points.len();
        let bucket = |x: f64| ((x.clamp(0.0, 1.0) * n as f64) as usize).min(n.saturating_sub(1));
        // Where each bucket starts, by counting.
        let starts = &mut self.starts;
        starts.clear();
        starts.resize(n + 1, 0);
        for &x in points {
            starts[bucket(x) + 1] += 1;
        }
        for b in 0..n {
            starts[b + 1] += starts[b];
        }
        self.next.clone_from(starts);
        self.sorted.clear();
        self.sorted.resize(n, (0.0, 0));
        for (i, &x) in points.iter().enumerate() {
            let b = bucket(x);
            self.sorted[self.next[b]] = (x, i);
            self.next[b] += 1;
        }
        // Points in [0,1]: their bits order as the numbers do; indices come in ascending order.
        let key = |p: &(f64, usize)| (p.0.to_bits(), p.1);
        for b in 0..n {
            let group = &mut self.sorted[self.starts[b]..self.starts[b + 1]];
            if group.len() > 16 {
                group.sort_unstable_by_key(key);
                continue;
            }
            for k in 1..group.len() {
                let mut j = k;
                while j > 0 && key(&group[j - 1]) > key(&group[j]) {
                    group.swap(j - 1, j);
                    j -= 1;
                }
            }
        }
        &self.sorted
    }
}

/// Optuna's default weights of n points, oldest first: ones for up to 25, then a linear
/// ramp from 1/n for all but the 25 newest.
fn weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let first = 1.0 / n as f64;
    let step = if ramp > 1 { (1.0 - first) / (ramp - 1) as f64 } else { 0.0 };
    (0..ramp).map(|i| first + step * i as f64).chain(std::iter::repeat_n(1.0, 25)).collect()
}

impl Parzen {
    /// Fits the density of `points` (encoded, oldest first) with these weights, reusing the
    /// arrays of the last fit.
    fn fit(&mut self, points: &[&[f64]], point_weights: &[f64], blocks: &[Block], sort: &mut SortScratch) {
        let kernels = points.len() + 1;
        let total: f64 = point_weights.iter().sum::<f64>() + 1.0; // the prior weighs 1
        self.weights.clear();
        self.weights.extend(point_weights.iter().chain(std::iter::once(&1.0)).map(|w| w / total));
        // Per kernel, its weight times its normalizers, as a product (one logarithm per
        // kernel rather than one per parameter), taken into the log before it can underflow.
        let log_constant = &mut self.constant;
        log_constant.clear();
        log_constant.resize(kernels, 0.0);
        let product = &mut self.product;
        product.clone_from(&self.weights);
        let fold = |product: &mut [f64], log_constant: &mut [f64], all: bool| {
            for (p, c) in product.iter_mut().zip(log_constant.iter_mut()) {
                if all || *p < 1e-150 || *p > 1e150 {
                    *c += p.ln();
                    *p = 1.0;
                }
            }
        };
        let numeric_blocks = blocks.iter().filter(|b| matches!(b, Block::Numeric(_))).count();
        self.numeric.resize_with(numeric_blocks, Numeric::default);
        let mut numeric = self.numeric.iter_mut();
        let choice_blocks = blocks.len() - numeric_blocks;
        self.choice.resize_with(choice_blocks, || (0, 0, Vec::new()));
        let mut choice = self.choice.iter_mut();
        for &block in blocks {
            match block {
                Block::Numeric(at) => {
                    let Some(d) = numeric.next() else { break };
                    d.at = at;
                    d.mu.clear();
                    d.mu.extend(points.iter().map(|p| p[at]));
                    widths(&d.mu, &mut d.sigma, sort);
                    d.mu.push(0.5);
                    d.sigma.push(1.0);
                    d.inv_sigma.clear();
                    d.inv_sigma.extend(d.sigma.iter().map(|s| 1.0 / s));
                    for (p, ((&m, &s), &inv)) in product.iter_mut().zip(d.mu.iter().zip(&d.sigma).zip(&d.inv_sigma)) {
                        *p *= norm(m, s, inv);
                    }
                    fold(product, log_constant, false);
                }
                Block::Choice(at, k) => {
                    let Some((c_at, c_k, log_p)) = choice.next() else { break };
                    (*c_at, *c_k) = (at, k);
                    let prior = 1.0 / kernels as f64;
                    let total = 1.0 + prior * k as f64;
                    log_p.clear();
                    for p in points {
                        let observed = category(&p[at..at + k]);
                        log_p.extend((0..k).map(|c| ((prior + f64::from(c == observed)) / total).ln()));
                    }
                    log_p.extend(std::iter::repeat_n(-(k as f64).ln(), k));
                }
            }
        }
        fold(product, log_constant, true);
    }

    /// A point drawn from the mixture (encoded).
    fn sample(&self, rng: &mut HpoRng, dim: usize) -> Vec<f64> {
        let last = self.weights.len() - 1;
        let mut u = rng.random::<f64>();
        let kernel = self
            .weights
            .iter()
            .position(|w| {
                u -= w;
                u < 0.0
            })
            .unwrap_or(last);
        let mut x = vec![0.0; dim];
        for d in &self.numeric {
            let (mu, sigma) = (d.mu[kernel], d.sigma[kernel]);
            x[d.at] = (0..100)
                .map(|_| mu + sigma * normal(rng))
                .find(|v| (0.0..=1.0).contains(v))
                .unwrap_or_else(|| mu.clamp(0.0, 1.0));
        }
        for (at, k, log_p) in &self.choice {
            let mut u = rng.random::<f64>();
            let row = &log_p[kernel * k..(kernel + 1) * k];
            let c = row.iter().position(|lp| {
                u -= lp.exp();
                u < 0.0
            });
            x[at + c.unwrap_or(k - 1)] = 1.0;
        }
        x
    }

    /// The log density at `x`, with `terms` as scratch space.
    fn log_density(&self, x: &[f64], terms: &mut Vec<f64>) -> f64 {
        terms.clear();
        terms.extend_from_slice(&self.constant);
        for d in &self.numeric {
            let xd = x[d.at];
            for ((t, mu), inv) in terms.iter_mut().zip(&d.mu).zip(&d.inv_sigma) {
                let z = (xd - mu) * inv;
                *t -= 0.5 * z * z;
            }
        }
        for (at, k, log_p) in &self.choice {
            let c = category(&x[*at..at + k]);
            for (t, row) in terms.iter_mut().zip(log_p.chunks_exact(*k)) {
                *t += row[c];
            }
        }
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Kernels e^40 times below the largest add nothing at double precision.
        let sum: f64 = terms.iter().filter(|&&t| t > max - 40.0).map(|t| (t - max).exp()).sum();
        max + sum.ln()
    }
}

fn encoded<'a>(trials: &[&'a Trial]) -> Vec<&'a [f64]> {
    trials.iter().map(|t| t.encoded.as_slice()).collect()
}

/// The category of a one-hot block.
fn category(one_hot: &[f64]) -> usize {
    one_hot.iter().position(|&x| x > 0.5).unwrap_or(0)
}

fn phi(z: f64) -> f64 {
    0.5 * (1.0 + libm::erf(z / std::f64::consts::SQRT_2))
}

impl State {
    fn propose(&mut self, gamma: Option<f64>, n_candidates: usize) -> Option<Config> {
        self.history.scalarize(&mut self.rng);
        let level = self.history.training_level_in_trial_order()?;
        let results = &level.results;
        let n = results.len();
        let n_good = match gamma {
            Some(fraction) => (n as f64 * fraction).ceil() as usize,
            None => (n as f64 * 0.1).ceil().min(25.0) as usize,
        };
        let n_good = n_good.clamp(1, n - 1);
        // The n_good best (ties to the older), found without sorting every result.
        let mut ranked: Vec<usize> = (0..n).collect();
        ranked.select_nth_unstable_by(n_good - 1, |&a, &b| results[a].0.total_cmp(&results[b].0).then(a.cmp(&b)));
        let mut is_good = vec![false; n];
        for &i in &ranked[..n_good] {
            is_good[i] = true;
        }
        // Both sides oldest first; the trials still running count as bad (Optuna's constant
        // liar), so that parallel workers spread out. Results and running trials both come in
        // id order: merged, not sorted.
        let (mut good, mut bad) = (Vec::with_capacity(n_good), Vec::with_capacity(n - n_good));
        let mut pending = self.history.pending(level.resource).peekable();
        for ((_, trial), &is_good) in results.iter().zip(&is_good) {
            bad.extend(std::iter::from_fn(|| pending.next_if(|p| p.id < trial.id)));
            if is_good { good.push(*trial) } else { bad.push(*trial) }
        }
        bad.extend(pending);
        // One fit, then the candidates drawn from it, best first, until one is allowed and
        // (on a finite space) new; up to 20 rounds of candidates. Refitting for each round,
        // and a round for each repeat, made most of a multi-fidelity run's time.
        let dim = self.space.encoded_dim();
        self.scratch.fit(&good, &bad, &self.blocks);
        let mut chosen = None;
        // A conditional parameter's densities are fitted once, when first needed.
        let mut fitted = vec![false; self.conditional.len()];
        'rounds: for _ in 0..20 {
            for mut x in self.scratch.ranked(dim, n_candidates, &mut self.rng) {
                for (k, (name, block)) in self.conditional.iter().enumerate() {
                    if !self.space.is_active(name, &self.space.decode(&x)) {
                        continue;
                    }
                    let scratch = &mut self.conditional_scratch[k];
                    if !std::mem::replace(&mut fitted[k], true) {
                        let active = |t: &&Trial| t.encoded[block.at()] != Space::INACTIVE;
                        let good: Vec<&Trial> = good.iter().copied().filter(active).collect();
                        let bad: Vec<&Trial> = bad.iter().copied().filter(active).collect();
                        scratch.fit(&good, &bad, &[*block]);
                    }
                    let Some(best) = scratch.ranked(x.len(), n_candidates, &mut self.rng).into_iter().next() else {
                        continue;
                    };
                    x[block.range()].copy_from_slice(&best[block.range()]);
                }
                let config = self.space.decode(&x);
                if !self.space.is_forbidden(&config) && self.history.is_unseen(&config) {
                    chosen = Some(config);
                    break 'rounds;
                }
            }
        }
        let config = chosen?;
        self.history.is_new(&config); // remembered as suggested
        Some(config)
    }
}

/// The best of `n_candidates` draws from the good side's density over `blocks` by the ratio
/// of the good side's density to the bad side's (each side may be empty: its prior remains).
/// The two sides' densities, with the buffers they are fitted and evaluated in, kept from
/// one suggestion to the next (see [`Parzen`]).
#[derive(Default)]
struct Scratch {
    good: Parzen,
    bad: Parzen,
    sort: SortScratch,
    terms: Vec<f64>,
}

impl Scratch {
    /// Fits both sides on the parameters of `blocks`.
    fn fit(&mut self, good: &[&Trial], bad: &[&Trial], blocks: &[Block]) {
        self.good.fit(&encoded(good), &weights(good.len()), blocks, &mut self.sort);
        self.bad.fit(&encoded(bad), &weights(bad.len()), blocks, &mut self.sort);
    }

    /// `n_candidates` points drawn from the good side, by density ratio, highest first (of
    /// equal ratios the later drawn first).
    fn ranked(&mut self, dim: usize, n_candidates: usize, rng: &mut HpoRng) -> Vec<Vec<f64>> {
        let Scratch { good, bad, terms, .. } = self;
        let mut scored: Vec<(f64, usize, Vec<f64>)> = (0..n_candidates)
            .map(|i| {
                let x = good.sample(rng, dim);
                (good.log_density(&x, terms) - bad.log_density(&x, terms), i, x)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
        scored.into_iter().map(|(_, _, x)| x).collect()
    }
}

#[typetag::serde(name = "tpe")]
impl Searcher for Tpe {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        if self.gamma.is_some_and(|g| !(0.0 < g && g < 1.0)) || self.n_candidates == 0 {
            return Err(SetupError(format!(
                "tpe: need 0 < gamma < 1 and n_candidates >= 1, got {:?} and {}",
                self.gamma, self.n_candidates
            )));
        }
        let (blocks, conditional) = blocks(&ctx.space);
        let conditional_scratch = conditional.iter().map(|_| Scratch::default()).collect();
        self.state = Some(State {
            space: ctx.space.clone(),
            rng: derive_rng(ctx.seed, "searcher"),
            history: History::new(ctx, "tpe"),
            blocks,
            conditional,
            scratch: Scratch::default(),
            conditional_scratch,
        });
        Ok(())
    }

    fn suggest(&mut self, trial_id: TrialId) -> Option<Config> {
        let state = self.state.as_mut()?;
        let model = state.history.most_results() >= self.n_startup;
        // On a finite space a repeat is wasted: draw again (model first, then at random).
        let proposal = if model { state.propose(self.gamma, self.n_candidates) } else { None };
        let config = proposal.or_else(|| {
            (0..180).map(|_| state.space.sample(&mut state.rng)).find(|config| state.history.is_new(config))
        });
        if let Some(config) = config {
            state.history.started(trial_id, &config);
            return Some(config);
        }
        // Random draws keep repeating: the finite space is nearly used up.
        let config = state.history.unseen(&mut state.rng)?;
        state.history.is_new(&config);
        state.history.started(trial_id, &config);
        Some(config)
    }

    fn on_report(&mut self, report: &Report<'_>) {
        if let Some(state) = self.state.as_mut() {
            state.history.record(report);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn widths_of(points: &[f64]) -> Vec<f64> {
        let mut out = Vec::new();
        widths(points, &mut out, &mut SortScratch::default());
        out
    }

    fn parzen(points: &[&[f64]], point_weights: &[f64], blocks: &[Block]) -> Parzen {
        let mut parzen = Parzen::default();
        parzen.fit(points, point_weights, blocks, &mut SortScratch::default());
        parzen
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn widths_are_the_larger_gap_but_the_inner_one_at_the_ends_clipped() {
        // Sorted 0.1, 0.4, 0.5; clipped to [1/5, 1]: 0.1 takes its inner gap 0.3 (not the
        // 0.1 to the end), 0.4 the larger of 0.3 and 0.1, 0.5 its inner gap 0.1, clipped.
        assert!(close(&widths_of(&[0.4, 0.1, 0.5]), &[0.3, 0.3, 0.2]));
        // The bucket sort agrees with a comparison sort, ties by index, on spread, crowded
        // and tied points.
        let mut rng = derive_rng(1, "test");
        for n in [0, 1, 2, 7, 100, 1000] {
            let spread: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
            let crowded: Vec<f64> = (0..n).map(|_| 0.5 + 1e-6 * rng.random::<f64>()).collect();
            let tied: Vec<f64> = (0..n).map(|_| f64::from(rng.random_range(0..4u8)) / 3.0).collect();
            for points in [spread, crowded, tied] {
                let mut expected: Vec<(f64, usize)> = points.iter().copied().zip(0..).collect();
                expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                assert_eq!(SortScratch::default().sorted_in_unit_interval(&points), expected);
            }
        }
        // One point: the larger gap to the ends, clipped to [1/3, 1].
        assert!(close(&widths_of(&[0.3]), &[0.7]));
        assert!(close(&widths_of(&[0.99]), &[0.99]));
    }

    #[test]
    fn weights_ramp_up_for_all_but_the_25_newest() {
        assert_eq!(weights(3), vec![1.0; 3]);
        assert!(close(&weights(26)[..1], &[1.0 / 26.0]));
        let w = weights(30);
        assert!(close(&w[..5], &[1.0 / 30.0, 0.275, 0.516_666_666_666_666_7, 0.758_333_333_333_333_4, 1.0]));
        assert_eq!(&w[5..], &[1.0; 25][..]);
    }

    /// The density of a truncated Gaussian on [0,1], written out.
    fn truncated(x: f64, mu: f64, sigma: f64) -> f64 {
        let mass = phi((1.0 - mu) / sigma) - phi(-mu / sigma);
        (-0.5 * ((x - mu) / sigma).powi(2)).exp() / (sigma * (2.0 * std::f64::consts::PI).sqrt() * mass)
    }

    #[test]
    fn the_density_is_the_mixture_of_the_points_and_the_prior() {
        // Points (0.2, 0.7) and (0.6, 0.1) in 2 dims, equal weights, and the prior at the
        // middle, as wide as the domain: three kernels of weight 1/3.
        let blocks = [Block::Numeric(0), Block::Numeric(1)];
        let p = parzen(&[&[0.2, 0.7], &[0.6, 0.1]], &[1.0, 1.0], &blocks);
        // Widths, clipped to [1/4, 1]: dim 0 sorted 0.2, 0.6: both 0.4; dim 1 sorted 0.1, 0.7: both 0.6.
        let x = [0.3, 0.5];
        let expected = (truncated(0.3, 0.2, 0.4) * truncated(0.5, 0.7, 0.6)
            + truncated(0.3, 0.6, 0.4) * truncated(0.5, 0.1, 0.6)
            + truncated(0.3, 0.5, 1.0) * truncated(0.5, 0.5, 1.0))
            / 3.0;
        let got = p.log_density(&x, &mut Vec::new()).exp();
        assert!((got - expected).abs() < 1e-12 * expected, "{got} vs {expected}");
    }

    #[test]
    fn a_choice_kernel_puts_one_count_on_its_category_over_an_even_prior() {
        // One point with the second of 3 categories: its kernel gives it (1 + 1/2) / (1 +
        // 3/2) and the others (1/2) / (1 + 3/2); the prior kernel 1/3 each; weights 1/2.
        let p = parzen(&[&[0.0, 1.0, 0.0]], &[1.0], &[Block::Choice(0, 3)]);
        let density = |one_hot: [f64; 3]| p.log_density(&one_hot, &mut Vec::new()).exp();
        assert!((density([0.0, 1.0, 0.0]) - (0.5 * 0.6 + 0.5 / 3.0)).abs() < 1e-12);
        assert!((density([1.0, 0.0, 0.0]) - (0.5 * 0.2 + 0.5 / 3.0)).abs() < 1e-12);
    }
}
