//! Several objectives at once: Pareto dominance (with Deb's constrained dominance),
//! non-dominated sorting, crowding distance, hypervolume, and outcome constraints. Every
//! objective is to be minimized here (a maximized metric enters negated, as
//! [`crate::Objective`] does).

use std::fmt;

use crate::types::Metrics;

/// An outcome constraint on a reported metric, `latency_ms <= 20`: a trial whose report
/// breaks it is infeasible (recorded, never on the front). Serialized as its text.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Constraint {
    /// The metric constrained.
    pub metric: String,
    /// Whether the metric must stay at most (`<=`) or at least (`>=`) the bound.
    pub at_most: bool,
    /// The bound.
    pub bound: f64,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, if self.at_most { "<=" } else { ">=" }, self.bound)
    }
}

impl TryFrom<String> for Constraint {
    type Error = String;
    fn try_from(text: String) -> Result<Constraint, String> {
        Constraint::parse(&text)
    }
}

impl From<Constraint> for String {
    fn from(constraint: Constraint) -> String {
        constraint.to_string()
    }
}

impl Constraint {
    /// Parses `metric <= bound` or `metric >= bound`.
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let expected = || format!("`{text}`: expected a metric, <= or >=, and a number, as `latency_ms <= 20`");
        let (at, at_most) = match (text.find("<="), text.find(">=")) {
            (Some(at), None) => (at, true),
            (None, Some(at)) => (at, false),
            _ => return Err(expected()),
        };
        let metric = text[..at].trim();
        let bound: f64 = text[at + 2..].trim().parse().map_err(|_| expected())?;
        if metric.is_empty() || metric.contains(char::is_whitespace) || !bound.is_finite() {
            return Err(expected());
        }
        Ok(Constraint { metric: metric.to_owned(), at_most, bound })
    }

    /// By how much a report breaks the constraint (0 if it holds; infinite if the metric is
    /// missing or not finite).
    pub fn violation(&self, metrics: &Metrics) -> f64 {
        match metrics.get(&self.metric) {
            Some(v) if v.is_finite() => {
                if self.at_most {
                    (v - self.bound).max(0.0)
                } else {
                    (self.bound - v).max(0.0)
                }
            }
            _ => f64::INFINITY,
        }
    }
}

/// Whether `a` dominates `b`: no worse in every objective and better in one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        better |= x < y;
    }
    better
}

/// Deb's constrained dominance: a feasible point (violation 0) dominates an infeasible one,
/// of two infeasible points the one violating less dominates, and two feasible points
/// compare by [`dominates`]. `violation` is the total amount by which the constraints are
/// broken (0 when all hold).
pub fn constrained_dominates(a: &[f64], a_violation: f64, b: &[f64], b_violation: f64) -> bool {
    match (a_violation > 0.0, b_violation > 0.0) {
        (false, true) => true,
        (true, false) => false,
        (true, true) => a_violation < b_violation,
        (false, false) => dominates(a, b),
    }
}

/// The fronts of non-dominated sorting: the indices of the points no other dominates, then
/// those only the first front dominates, and so on; each front in index order. Two
/// objectives take O(n log n) (a sweep, each point placed by binary search over the fronts);
/// more take Deb et al.'s fast sort, O(m n²).
pub fn non_dominated_fronts(points: &[Vec<f64>]) -> Vec<Vec<usize>> {
    if points.iter().all(|p| p.len() == 2) {
        return two_objective_fronts(points);
    }
    let n = points.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominating: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            if dominates(&points[i], &points[j]) {
                dominating[i].push(j);
                dominated_by[j] += 1;
            } else if dominates(&points[j], &points[i]) {
                dominating[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut front: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    while !front.is_empty() {
        let mut next = Vec::new();
        for &i in &front {
            for &j in &dominating[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(std::mem::replace(&mut front, next));
    }
    fronts
}

/// Non-dominated sorting of points of two objectives. Swept in order of the first objective
/// (then the second), a point can only be dominated by points already placed, and a front's
/// member most likely to dominate it is its latest (the smallest second objective so far);
/// if a front does not dominate it, no later front does. So each point goes to the first
/// front whose latest member does not dominate it, found by binary search.
fn two_objective_fronts(points: &[Vec<f64>]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| points[a][0].total_cmp(&points[b][0]).then(points[a][1].total_cmp(&points[b][1])));
    let mut fronts: Vec<Vec<usize>> = Vec::new();
    for i in order {
        let k =
            fronts.partition_point(|front| front.last().is_some_and(|&latest| dominates(&points[latest], &points[i])));
        match fronts.get_mut(k) {
            Some(front) => front.push(i),
            None => fronts.push(vec![i]),
        }
    }
    for front in &mut fronts {
        front.sort_unstable();
    }
    fronts
}

/// The crowding distance of each point of `front` (indices into `points`), in its order:
/// per objective, the gap between its two neighbours along that objective over the
/// objective's range on the front, summed; the points at either end of an objective are
/// infinitely far (they are always kept).
pub fn crowding_distances(points: &[Vec<f64>], front: &[usize]) -> Vec<f64> {
    let mut distance = vec![0.0; front.len()];
    let objectives = front.first().map_or(0, |&i| points[i].len());
    // One objective at a time: its values over the front.
    for column in (0..objectives).map(|m| front.iter().map(|&i| points[i][m]).collect::<Vec<f64>>()) {
        let mut order: Vec<usize> = (0..front.len()).collect();
        order.sort_by(|&a, &b| column[a].total_cmp(&column[b]).then(a.cmp(&b)));
        let (first, last) = (order[0], order[order.len() - 1]);
        distance[first] = f64::INFINITY;
        distance[last] = f64::INFINITY;
        let range = column[last] - column[first];
        if range <= 0.0 {
            continue;
        }
        for k in 1..order.len().saturating_sub(1) {
            distance[order[k]] += (column[order[k + 1]] - column[order[k - 1]]) / range;
        }
    }
    distance
}

/// The Pareto front of points arriving one at a time (all to minimize).
#[derive(Clone, Debug, Default)]
pub struct Front {
    members: Vec<Vec<f64>>,
}

impl Front {
    /// Takes `point` in unless a member dominates or equals it, dropping the members it
    /// dominates; whether it joined.
    pub fn offer(&mut self, point: &[f64]) -> bool {
        if self.members.iter().any(|m| m == point || dominates(m, point)) {
            return false;
        }
        self.members.retain(|m| !dominates(point, m));
        self.members.push(point.to_vec());
        true
    }

    /// The members, in the order they joined.
    pub fn members(&self) -> &[Vec<f64>] {
        &self.members
    }
}

/// The points ranked best first, as the schedulers rank a rung: by Deb's constrained
/// non-dominated sorting (the feasible points' fronts first, then the infeasible points by
/// violation), within a front by crowding distance, largest first (a front's extremes lead,
/// then its least crowded points), and then by index. With one objective and no violations
/// this is the order of the values.
pub fn rank_order(points: &[Vec<f64>], violations: &[f64]) -> Vec<usize> {
    let feasible: Vec<usize> = (0..points.len()).filter(|&i| violations[i] <= 0.0).collect();
    let feasible_points: Vec<Vec<f64>> = feasible.iter().map(|&i| points[i].clone()).collect();
    let mut order = Vec::with_capacity(points.len());
    for front in non_dominated_fronts(&feasible_points) {
        let distances = crowding_distances(&feasible_points, &front);
        let mut ranked: Vec<(f64, usize)> = distances.into_iter().zip(front.iter().map(|&k| feasible[k])).collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        order.extend(ranked.into_iter().map(|(_, i)| i));
    }
    let mut infeasible: Vec<usize> =
        (0..points.len()).filter(|&i| violations[i] > 0.0 || violations[i].is_nan()).collect();
    infeasible.sort_by(|&a, &b| violations[a].total_cmp(&violations[b]).then(a.cmp(&b)));
    order.extend(infeasible);
    order
}

/// The hypervolume `points` dominate up to `reference` (points not below the reference in
/// every objective add nothing): exact in any number of objectives by slicing along the last
/// one (Hypervolume by Slicing Objectives), down to an exact sweep in two.
pub fn hypervolume(points: &[Vec<f64>], reference: &[f64]) -> f64 {
    let inside: Vec<&[f64]> = points
        .iter()
        .map(Vec::as_slice)
        .filter(|p| p.len() == reference.len() && p.iter().zip(reference).all(|(x, r)| x < r))
        .collect();
    slice_volume(&inside, reference)
}

fn slice_volume(points: &[&[f64]], reference: &[f64]) -> f64 {
    let d = reference.len();
    if points.is_empty() || d == 0 {
        return 0.0;
    }
    if d == 1 {
        return reference[0] - points.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
    }
    if d == 2 {
        // Sorted by the first objective: each point adds the strip up to the lowest second
        // objective seen so far.
        let mut sorted: Vec<(f64, f64)> = points.iter().map(|p| (p[0], p[1])).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut volume = 0.0;
        let mut lowest = reference[1];
        for (x, y) in sorted {
            if y < lowest {
                volume += (reference[0] - x) * (lowest - y);
                lowest = y;
            }
        }
        return volume;
    }
    // Slices between consecutive values of the last objective: in each, the points at or
    // below its bottom span a (d-1)-dimensional volume, times the slice's depth.
    let mut sorted: Vec<&[f64]> = points.to_vec();
    sorted.sort_by(|a, b| a[d - 1].total_cmp(&b[d - 1]));
    let mut volume = 0.0;
    for k in 0..sorted.len() {
        let bottom = sorted[k][d - 1];
        let top = sorted.get(k + 1).map_or(reference[d - 1], |p| p[d - 1]);
        if top > bottom {
            let below: Vec<&[f64]> = sorted[..=k].iter().map(|p| &p[..d - 1]).collect();
            volume += (top - bottom) * slice_volume(&below, &reference[..d - 1]);
        }
    }
    volume
}

/// The reference point inferred from observed points: per objective, the worst (largest)
/// value plus a tenth of the objective's range (plus a tenth of the value's magnitude, or 1
/// if that is 0, when every point has the same value), so that the points at the edges of
/// the front add volume too.
pub fn reference_point(points: &[Vec<f64>]) -> Vec<f64> {
    let objectives = points.first().map_or(0, Vec::len);
    (0..objectives)
        .map(|m| {
            let (low, high) =
                points.iter().map(|p| p[m]).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(x), h.max(x)));
            let range = high - low;
            let margin = if range > 0.0 {
                0.1 * range
            } else if high != 0.0 {
                0.1 * high.abs()
            } else {
                1.0
            };
            high + margin
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn pts(list: &[&[f64]]) -> Vec<Vec<f64>> {
        list.iter().map(|p| p.to_vec()).collect()
    }

    #[test]
    fn constraints_parse_and_measure_their_violation() {
        let c = Constraint::parse(" latency_ms <= 20 ").unwrap();
        assert_eq!(c, Constraint { metric: "latency_ms".into(), at_most: true, bound: 20.0 });
        assert_eq!(c.to_string(), "latency_ms <= 20");
        let metrics = |v: f64| [("latency_ms".to_owned(), v)].into_iter().collect::<Metrics>();
        assert_eq!(c.violation(&metrics(12.0)), 0.0);
        assert_eq!(c.violation(&metrics(25.5)), 5.5);
        assert_eq!(c.violation(&Metrics::new()), f64::INFINITY);
        let at_least = Constraint::parse("accuracy>=0.9").unwrap();
        assert!((at_least.violation(&[("accuracy".to_owned(), 0.85)].into_iter().collect()) - 0.05).abs() < 1e-12);
        for bad in ["latency_ms < 20", "latency_ms <= fast", "<= 3", "a b <= 3", "x <= inf"] {
            assert!(Constraint::parse(bad).unwrap_err().contains("expected a metric, <= or >=, and a number"), "{bad}");
        }
    }

    #[test]
    fn dominance_and_constrained_dominance_by_hand() {
        assert!(dominates(&[1.0, 2.0], &[1.0, 3.0]));
        assert!(!dominates(&[1.0, 2.0], &[1.0, 2.0]), "equal points do not dominate");
        assert!(!dominates(&[1.0, 3.0], &[2.0, 2.0]) && !dominates(&[2.0, 2.0], &[1.0, 3.0]));
        // Feasible beats infeasible however good; less violation beats more; else Pareto.
        assert!(constrained_dominates(&[9.0, 9.0], 0.0, &[0.0, 0.0], 0.5));
        assert!(!constrained_dominates(&[0.0, 0.0], 0.5, &[9.0, 9.0], 0.0));
        assert!(constrained_dominates(&[9.0, 9.0], 0.1, &[0.0, 0.0], 0.5));
        assert!(!constrained_dominates(&[1.0, 3.0], 0.0, &[2.0, 2.0], 0.0));
    }

    #[test]
    fn non_dominated_fronts_by_hand() {
        // (1,4) (2,2) (4,1) are the first front; (3,3) is dominated by (2,2) only; (4,4) by
        // all of those; (5,5) by (4,4) too.
        let points = pts(&[&[4.0, 4.0], &[1.0, 4.0], &[3.0, 3.0], &[2.0, 2.0], &[5.0, 5.0], &[4.0, 1.0]]);
        assert_eq!(non_dominated_fronts(&points), vec![vec![1, 3, 5], vec![2], vec![0], vec![4]]);
        assert!(non_dominated_fronts(&[]).is_empty());
    }

    /// The two-objective sweep against the general sort (run here on the same points with a
    /// third, constant objective), on many ties and duplicates.
    #[test]
    fn the_two_objective_sweep_agrees_with_the_general_sort() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut next = || f64::from(rng.random_range(0..12u32));
        for n in [0, 1, 2, 5, 50, 300] {
            let points: Vec<Vec<f64>> = (0..n).map(|_| vec![next(), next()]).collect();
            let padded: Vec<Vec<f64>> = points.iter().map(|p| vec![p[0], p[1], 0.0]).collect();
            assert_eq!(non_dominated_fronts(&points), non_dominated_fronts(&padded), "{n} points");
        }
    }

    #[test]
    fn crowding_distance_by_hand() {
        // A front of (0,4) (1,2) (2,1) (4,0): ranges 4 and 4. (1,2): (2-0)/4 + (4-1)/4 = 1.25;
        // (2,1): (4-1)/4 + (2-0)/4 = 1.25; the ends are infinite.
        let points = pts(&[&[0.0, 4.0], &[1.0, 2.0], &[2.0, 1.0], &[4.0, 0.0]]);
        let d = crowding_distances(&points, &[0, 1, 2, 3]);
        assert_eq!(d[0], f64::INFINITY);
        assert_eq!(d[3], f64::INFINITY);
        assert!((d[1] - 1.25).abs() < 1e-12 && (d[2] - 1.25).abs() < 1e-12, "{d:?}");
    }

    #[test]
    fn a_front_keeps_what_nothing_dominates() {
        let mut front = Front::default();
        assert!(front.offer(&[2.0, 2.0]));
        assert!(!front.offer(&[2.0, 2.0]), "an equal point adds nothing");
        assert!(!front.offer(&[3.0, 2.0]), "dominated");
        assert!(front.offer(&[1.0, 3.0]));
        assert!(front.offer(&[1.0, 1.0]), "dominates both");
        assert_eq!(front.members(), [vec![1.0, 1.0]]);
    }

    #[test]
    fn rank_order_by_hand() {
        // Front 1: (1, 4), (2, 2), (4, 1); front 2: (2.5, 2.5); front 3: (3, 3); infeasible:
        // 6 (violation 0.1) before 5 (violation 0.5), though 5 would dominate everything.
        let points = pts(&[&[2.0, 2.0], &[3.0, 3.0], &[1.0, 4.0], &[4.0, 1.0], &[2.5, 2.5], &[0.0, 0.0], &[9.0, 9.0]]);
        let violations = [0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.1];
        // In front 1, (2, 2) has crowding distance (4 - 1) / 3 + (4 - 1) / 3 = 2; the ends
        // are infinitely far, lead, and tie, which the index breaks.
        assert_eq!(rank_order(&points, &violations), [2, 3, 0, 4, 1, 6, 5]);
        // One objective, feasible: the order of the values, ties by index.
        let single = pts(&[&[0.3], &[0.1], &[0.2], &[0.1]]);
        assert_eq!(rank_order(&single, &[0.0; 4]), [1, 3, 2, 0]);
    }

    #[test]
    fn hypervolume_by_hand() {
        // Two objectives, reference (4,4): (1,3) adds 3x1, (2,2) 2x1 more, (3,1) 1x1 more = 6;
        // a dominated point and one beyond the reference add nothing.
        let front = pts(&[&[1.0, 3.0], &[2.0, 2.0], &[3.0, 1.0]]);
        assert_eq!(hypervolume(&front, &[4.0, 4.0]), 6.0);
        let more = pts(&[&[1.0, 3.0], &[2.0, 2.0], &[3.0, 1.0], &[3.0, 3.0], &[5.0, 0.0]]);
        assert_eq!(hypervolume(&more, &[4.0, 4.0]), 6.0);
        // Three objectives, reference (2,2,2): (0,0,1) spans 2x2x1 = 4; (1,1,0) spans 1x1x2 = 2;
        // they share 1x1x1: 5.
        assert_eq!(hypervolume(&pts(&[&[0.0, 0.0, 1.0], &[1.0, 1.0, 0.0]]), &[2.0, 2.0, 2.0]), 5.0);
        // Four objectives: one point is a box; two disjoint-ish boxes by inclusion-exclusion:
        // (0,1,1,1) spans 2*1*1*1 = 2, (1,0,1,1) 1*2*1*1 = 2, common 1*1*1*1 = 1: 3.
        let four = pts(&[&[0.0, 1.0, 1.0, 1.0], &[1.0, 0.0, 1.0, 1.0]]);
        assert_eq!(hypervolume(&four, &[2.0; 4]), 3.0);
        assert_eq!(hypervolume(&[], &[1.0, 1.0]), 0.0);
    }

    /// Against inclusion-exclusion over every subset of 7 pseudo-random points, in 2 to 5
    /// objectives: the volume of a union of boxes is the alternating sum of the volumes of
    /// their intersections (the box of the componentwise largest corner).
    #[test]
    fn hypervolume_agrees_with_inclusion_exclusion() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut next = || rng.random::<f64>();
        for d in 2..=5 {
            let points: Vec<Vec<f64>> = (0..7).map(|_| (0..d).map(|_| next()).collect()).collect();
            let reference = vec![1.0; d];
            let mut expected = 0.0;
            for subset in 1u32..(1 << points.len()) {
                let corner: Vec<f64> = (0..d)
                    .map(|m| {
                        (0..points.len()).filter(|i| subset >> i & 1 == 1).map(|i| points[i][m]).fold(0.0, f64::max)
                    })
                    .collect();
                let volume: f64 = corner.iter().zip(&reference).map(|(c, r)| r - c).product();
                expected += if subset.count_ones() % 2 == 1 { volume } else { -volume };
            }
            let got = hypervolume(&points, &reference);
            assert!((got - expected).abs() < 1e-12, "{d} objectives: {got} against {expected}");
        }
    }

    #[test]
    fn the_reference_point_is_the_worst_plus_a_tenth_of_the_range() {
        let points = pts(&[&[0.0, 10.0], &[2.0, 5.0], &[1.0, 5.0]]);
        assert_eq!(reference_point(&points), vec![2.2, 10.5]);
        // One value only: a tenth of its magnitude, or 1 at 0.
        assert_eq!(reference_point(&pts(&[&[3.0, 0.0]])), vec![3.3, 1.0]);
    }
}
