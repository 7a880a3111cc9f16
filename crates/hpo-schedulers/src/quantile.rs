//! Quantiles with linear interpolation (numpy's default), kept up to date in O(log n) per
//! new value, so a rung's cut-off never needs a scan of the rung.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use hpo_core::TotalF64;

/// The q-quantile of sorted values with linear interpolation, as `numpy.quantile`.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let h = q.clamp(0.0, 1.0) * last as f64;
    let (i, frac) = (h.floor() as usize, h - h.floor());
    // No interpolation at an exact position: `x + 0 * (inf - x)` would be NaN.
    Some(if i >= last {
        sorted[last]
    } else if frac == 0.0 {
        sorted[i]
    } else {
        sorted[i] + frac * (sorted[i + 1] - sorted[i])
    })
}

/// The q-quantile of a growing multiset of values, for a fixed q.
///
/// Two heaps split the values at position floor(q (n-1)): `lower` holds that many plus one
/// smallest values (max on top), `upper` the rest (min on top); the quantile interpolates
/// between the two tops.
#[derive(Clone, Debug)]
pub struct RunningQuantile {
    q: f64,
    lower: BinaryHeap<TotalF64>,
    upper: BinaryHeap<Reverse<TotalF64>>,
}

impl RunningQuantile {
    /// The q-quantile of no values yet.
    pub fn new(q: f64) -> Self {
        RunningQuantile { q: q.clamp(0.0, 1.0), lower: BinaryHeap::new(), upper: BinaryHeap::new() }
    }

    /// Its q.
    pub fn q(&self) -> f64 {
        self.q
    }

    /// Values inserted.
    pub fn len(&self) -> usize {
        self.lower.len() + self.upper.len()
    }

    /// Whether no value was inserted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a value, in O(log n).
    pub fn insert(&mut self, x: f64) {
        match self.lower.peek() {
            Some(top) if x > top.0 => self.upper.push(Reverse(TotalF64(x))),
            _ => self.lower.push(TotalF64(x)),
        }
        let target = self.split(self.len()) + 1;
        if self.lower.len() > target {
            if let Some(top) = self.lower.pop() {
                self.upper.push(Reverse(top));
            }
        } else if self.lower.len() < target
            && let Some(Reverse(top)) = self.upper.pop()
        {
            self.lower.push(top);
        }
    }

    fn split(&self, n: usize) -> usize {
        (self.q * n.saturating_sub(1) as f64).floor() as usize
    }

    /// The q-quantile, or `None` while there are fewer than `min_values` values.
    pub fn value(&self, min_values: usize) -> Option<f64> {
        let n = self.len();
        if n < min_values.max(1) {
            return None;
        }
        let low = self.lower.peek()?.0;
        let h = self.q * (n - 1) as f64;
        let frac = h - h.floor();
        match self.upper.peek() {
            Some(Reverse(high)) if frac > 0.0 => Some(low + frac * (high.0 - low)),
            _ => Some(low),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_position_next_to_infinity_is_not_nan() {
        let sorted = [1.0, 2.0, f64::INFINITY];
        assert_eq!(quantile(&sorted, 0.5), Some(2.0));
        assert_eq!(quantile(&sorted, 0.25), Some(1.5));
        assert_eq!(quantile(&sorted, 0.75), Some(f64::INFINITY));
    }

    fn running(values: &[f64], q: f64) -> Option<f64> {
        let mut r = RunningQuantile::new(q);
        values.iter().for_each(|&v| r.insert(v));
        r.value(2)
    }

    #[test]
    fn cutoffs_by_hand() {
        let q = 1.0 / 3.0;
        assert!((running(&[1.0, 2.0], q).unwrap() - 4.0 / 3.0).abs() < 1e-12);
        assert!((running(&[1.0, 2.0, 5.0], q).unwrap() - 5.0 / 3.0).abs() < 1e-12);
        assert!((running(&[1.0, 1.5, 2.0, 5.0], q).unwrap() - 1.5).abs() < 1e-12);
        assert!((running(&[5.0, 2.0, 1.5, 1.0], q).unwrap() - 1.5).abs() < 1e-12, "order does not matter");
        assert_eq!(running(&[1.0], q), None, "fewer than 2 values never cut");
    }

    #[test]
    fn matches_sorting_on_random_data() {
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for q in [0.0, 0.1, 1.0 / 3.0, 0.5, 0.81, 1.0] {
            let mut r = RunningQuantile::new(q);
            let mut all = Vec::new();
            for _ in 0..300 {
                let x = (next() * 20.0).round() / 4.0; // many ties
                r.insert(x);
                all.push(x);
                let mut sorted = all.clone();
                sorted.sort_by(f64::total_cmp);
                let expected = quantile(&sorted, q).unwrap();
                assert!((r.value(1).unwrap() - expected).abs() < 1e-9, "q={q} n={}", all.len());
            }
        }
    }
}
