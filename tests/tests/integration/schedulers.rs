#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! Multi-fidelity schedulers pinned to hand-computed expectations, driven through the
//! `Scheduler` trait exactly as the tuner drives them.

use std::collections::{HashMap, HashSet};

use hpo_core::{Config, Context, Decision, Metrics, Mode, Objective, Report, Scheduler, Space, Suggestion, TrialId};
use hpo_schedulers::{Asha, Hyperband, MedianStopping, Pbt, SuccessiveHalving, Variant};

fn ctx(max_epochs: i64, seed: u64) -> Context {
    Context {
        resource_attr: Some("epoch".into()),
        max_resource_attr: Some("epochs".into()),
        ..Context::new(
            Space::builder().uniform("x", 0.0, 1.0).constant("epochs", max_epochs).build().unwrap(),
            Objective::new("loss", Mode::Min),
            seed,
        )
    }
}

fn report(s: &mut dyn Scheduler, trial_id: TrialId, config: &Config, resource: f64, objective: f64) -> Decision {
    let objectives = std::slice::from_ref(&objective);
    s.on_report(&Report { trial_id, config, metrics: &Metrics::new(), resource, objective, objectives, violation: 0.0 })
}

fn start(s: &mut dyn Scheduler, trial_id: TrialId) -> Config {
    match s.suggest(trial_id) {
        Suggestion::Start { config, .. } => config,
        other => panic!("expected a start for trial {trial_id}, got {other:?}"),
    }
}

#[test]
fn median_stopping_by_hand() {
    let mut s = MedianStopping::new(1.0, 1, 1.0);
    s.init(&ctx(10, 0)).unwrap();
    let configs: Vec<Config> = (0..3).map(|i| start(&mut s, i)).collect();
    assert_eq!(report(&mut s, 0, &configs[0], 1.0, 2.0), Decision::Continue);
    assert_eq!(report(&mut s, 1, &configs[1], 1.0, 1.0), Decision::Continue);
    assert_eq!(report(&mut s, 2, &configs[2], 1.0, 5.0), Decision::Stop);
}

#[test]
fn asha_stopping_rung_with_eta_2() {
    let mut s = Asha::new(Variant::Stopping, 1.0, 2.0, Some(8.0));
    s.init(&ctx(8, 0)).unwrap();
    assert_eq!(s.levels(), [1.0, 2.0, 4.0]);
    let configs: Vec<Config> = (0..3).map(|i| start(&mut s, i)).collect();
    assert_eq!(report(&mut s, 0, &configs[0], 1.0, 2.0), Decision::Continue, "first: a rung of 1 never cuts");
    assert_eq!(report(&mut s, 1, &configs[1], 1.0, 0.0), Decision::Continue);
    assert_eq!(report(&mut s, 2, &configs[2], 1.0, 3.0), Decision::Stop);
    // between rungs nothing is decided; at max_t a trial whose config limits it ends by
    // itself (and completes), past max_t it is stopped
    assert_eq!(report(&mut s, 1, &configs[1], 1.5, 9.0), Decision::Continue);
    assert_eq!(report(&mut s, 1, &configs[1], 8.0, 0.0), Decision::Continue);
    assert_eq!(report(&mut s, 1, &configs[1], 9.0, 0.0), Decision::Stop);
    let mut unlimited = Asha::new(Variant::Stopping, 1.0, 2.0, Some(8.0));
    let mut c = ctx(8, 0);
    c.max_resource_attr = None;
    unlimited.init(&c).unwrap();
    let c0 = start(&mut unlimited, 0);
    assert_eq!(report(&mut unlimited, 0, &c0, 8.0, 0.0), Decision::Stop);
}

#[test]
fn asha_levels_from_max_resource_attr() {
    let mut s = Asha::new(Variant::Stopping, 1.0, 3.0, None);
    s.init(&ctx(27, 0)).unwrap();
    assert_eq!(s.levels(), [1.0, 3.0, 9.0]);
    let mut s = Asha::new(Variant::Stopping, 1.0, 3.0, None);
    s.init(&ctx(100, 0)).unwrap();
    assert_eq!(s.levels(), [1.0, 3.0, 9.0, 27.0, 81.0]);
    let mut no_max = Asha::new(Variant::Stopping, 1.0, 3.0, None);
    let mut c = ctx(27, 0);
    c.max_resource_attr = None;
    assert!(no_max.init(&c).unwrap_err().to_string().contains("needs `max_t`"));
}

#[test]
fn asha_stopping_in_max_mode_uses_the_upper_quantile() {
    // The tuner hands schedulers to-minimize values: accuracies 0.9, 0.5, 0.8 arrive as
    // -0.9, -0.5, -0.8. With q = 1/3 the cut-off is the 2/3-quantile of the accuracies.
    let mut s = Asha::new(Variant::Stopping, 1.0, 3.0, Some(27.0));
    s.init(&ctx(27, 0)).unwrap();
    let configs: Vec<Config> = (0..3).map(|i| start(&mut s, i)).collect();
    assert_eq!(report(&mut s, 0, &configs[0], 1.0, -0.9), Decision::Continue);
    assert_eq!(report(&mut s, 1, &configs[1], 1.0, -0.5), Decision::Stop); // cut-off -0.7667
    // accuracies [0.5, 0.8, 0.9]: the 2/3-quantile is 0.8333, and 0.8 falls short of it
    assert_eq!(report(&mut s, 2, &configs[2], 1.0, -0.8), Decision::Stop);
    let c3 = start(&mut s, 3);
    assert_eq!(report(&mut s, 3, &c3, 1.0, -0.85), Decision::Continue);
}

#[test]
fn asha_promotion_pauses_and_resumes_the_best() {
    let mut s = Asha::new(Variant::Promotion, 1.0, 3.0, None);
    s.init(&ctx(9, 0)).unwrap();
    assert_eq!(s.levels(), [1.0, 3.0]);
    let c0 = start(&mut s, 0);
    assert_eq!(c0.i64("epochs").unwrap(), 1, "new trials train to the first rung");
    assert_eq!(report(&mut s, 0, &c0, 1.0, 0.5), Decision::Pause);
    // one value at the rung: no cut-off yet, so a new trial starts
    let c1 = start(&mut s, 1);
    assert_eq!(report(&mut s, 1, &c1, 1.0, 0.2), Decision::Pause);
    // cut-off of [0.2, 0.5] at q = 1/3 is 0.3: trial 1 (0.2) is promoted to epochs 3
    match s.suggest(2) {
        Suggestion::Resume { trial_id, config } => {
            assert_eq!(trial_id, 1);
            assert_eq!(config.i64("epochs").unwrap(), 3);
        }
        other => panic!("expected trial 1 resumed, got {other:?}"),
    }
    // trial 0 (0.5) does not beat the cut-off: a new config instead
    let c2 = start(&mut s, 2);
    // trial 1 restarts from scratch: its epoch-1 report is not recorded twice
    assert_eq!(report(&mut s, 1, &c1, 1.0, 0.2), Decision::Continue);
    assert_eq!(report(&mut s, 1, &c1, 2.0, 0.15), Decision::Continue);
    assert_eq!(report(&mut s, 1, &c1, 3.0, 0.1), Decision::Pause);
    assert_eq!(report(&mut s, 2, &c2, 1.0, 0.9), Decision::Pause);
    // rung 3 holds one value (no cut-off); rung 1's cut-off of [0.2, 0.5, 0.9] is 0.4667 and
    // its best waiting trial is 0 (0.5) > cut-off: nothing to promote
    assert!(matches!(s.suggest(3), Suggestion::Start { .. }));
}

#[test]
fn asha_brackets_drawn_in_proportion_to_hyperband_counts() {
    let mut s = Asha::new(Variant::Stopping, 1.0, 3.0, Some(27.0));
    s.brackets = 3;
    s.init(&ctx(27, 7)).unwrap();
    // Brackets start at levels 1, 3, 9 with weights 27 : 12 : 6. Even trials report 0 and
    // odd ones a huge value at resource 1: only a trial of bracket 0 is judged there, and
    // with half the rung at 0 an odd trial of bracket 0 is always stopped.
    let mut judged_at_1 = 0;
    let n: u64 = 4000;
    for id in 0..n {
        let c = start(&mut s, id);
        let value = if id % 2 == 0 { 0.0 } else { 1e9 };
        if report(&mut s, id, &c, 1.0, value) == Decision::Stop {
            judged_at_1 += 1;
        }
    }
    let share = f64::from(judged_at_1) / (n / 2) as f64;
    assert!((share - 27.0 / 45.0).abs() < 0.04, "bracket 0 share {share}, expected 0.6");
}

/// Runs a synchronous bracket scheduler as a single worker would: start or resume what it
/// suggests, report at the level it was given, until it waits.
fn run_trial(
    s: &mut dyn Scheduler,
    suggestion: Suggestion,
    values: &HashMap<TrialId, f64>,
    next_id: &mut TrialId,
) -> Option<(TrialId, i64, Decision)> {
    let (id, config) = match suggestion {
        Suggestion::Start { config, .. } => {
            *next_id += 1;
            (*next_id - 1, config)
        }
        Suggestion::Resume { trial_id, config } => (trial_id, config),
        _ => return None,
    };
    let level = config.i64("epochs").unwrap();
    let d = report(s, id, &config, level as f64, values[&id]);
    Some((id, level, d))
}

#[test]
fn d2l_successive_halving_round() {
    let mut s = SuccessiveHalving::new(2.0, Some(10.0), 2.0, 1);
    s.init(&ctx(10, 0)).unwrap();
    assert_eq!(s.shape(), vec![(8, 2.0), (4, 4.0), (2, 8.0), (1, 10.0)]);
    // trial i's value: the 8 trials rank 5, 2, 7, 0, 6, 1, 4, 3 (lower is better)
    let values: HashMap<TrialId, f64> =
        [5.0, 2.0, 7.0, 0.0, 6.0, 1.0, 4.0, 3.0].into_iter().enumerate().map(|(i, v)| (i as TrialId, v)).collect();
    let mut next = 0;
    let mut runs = Vec::new();
    for _ in 0..15 {
        let suggestion = s.suggest(next);
        runs.push(run_trial(&mut s, suggestion, &values, &mut next).unwrap());
    }
    let at = |level: i64| -> Vec<TrialId> {
        let mut ids: Vec<TrialId> = runs.iter().filter(|r| r.1 == level).map(|r| r.0).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(at(2), (0..8).collect::<Vec<_>>());
    assert_eq!(at(4), vec![1, 3, 5, 7], "the best half of 8: values 2, 0, 1, 3");
    assert_eq!(at(8), vec![3, 5]);
    assert_eq!(at(10), vec![3]);
    assert_eq!(runs.iter().map(|r| r.1).sum::<i64>(), 8 * 2 + 4 * 4 + 2 * 8 + 10, "58 epochs in all");
    assert!(runs.iter().filter(|r| r.1 < 10).all(|r| r.2 == Decision::Pause));
    assert_eq!(runs.last().unwrap().2, Decision::Continue, "the last run ends by itself at r_max");
}

#[test]
fn hyperband_geometric_brackets_after_init() {
    let mut s = Hyperband::new(1.0, 3.0, Some(27.0));
    s.init(&ctx(27, 0)).unwrap();
    assert_eq!(
        s.shapes(),
        [
            vec![(27, 1.0), (9, 3.0), (3, 9.0), (1, 27.0)],
            vec![(12, 3.0), (4, 9.0), (2, 27.0)],
            vec![(6, 9.0), (2, 27.0)],
            vec![(4, 27.0)],
        ]
    );
}

/// A tiny deterministic generator for the stress test.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn hyperband_random_stress_never_blocks_and_counts_add_up() {
    let mut s = Hyperband::new(1.0, 3.0, Some(27.0));
    s.init(&ctx(27, 3)).unwrap();
    let mut rng = Lcg(42);
    let mut running: HashMap<TrialId, Config> = HashMap::new();
    let mut paused: HashSet<TrialId> = HashSet::new();
    let mut next_id = 0;
    let workers = 5;
    let (mut failures, mut finished) = (0, 0);
    for step in 0..5000 {
        // ask for work while a worker is free
        while running.len() < workers {
            match s.suggest(next_id) {
                Suggestion::Start { config, .. } => {
                    running.insert(next_id, config);
                    next_id += 1;
                }
                Suggestion::Resume { trial_id, config } => {
                    assert!(paused.remove(&trial_id), "step {step}: resumed trial {trial_id} was not paused");
                    running.insert(trial_id, config);
                }
                other => panic!("step {step}: a bracket blocked: {other:?} with {} running", running.len()),
            }
        }
        assert_eq!(s.running(), running.len(), "step {step}: pending counts disagree");
        // answer one or more running trials, in random order
        for _ in 0..=(rng.next() % 3) {
            let mut ids: Vec<TrialId> = running.keys().copied().collect();
            ids.sort_unstable();
            let id = ids[(rng.next() % ids.len() as u64) as usize];
            let config = running.remove(&id).unwrap();
            if rng.next().is_multiple_of(10) {
                s.on_fail(id);
                failures += 1;
                continue;
            }
            let level = config.i64("epochs").unwrap() as f64;
            match report(&mut s, id, &config, level, (rng.next() % 1000) as f64) {
                Decision::Pause => {
                    paused.insert(id);
                }
                Decision::Continue if level == 27.0 => finished += 1,
                other => {
                    panic!("a report at the trial's level must pause it, or end it at the top: {other:?} at {level}")
                }
            }
        }
        assert!(s.open_brackets() <= 20, "step {step}: brackets pile up: {}", s.open_brackets());
    }
    assert!(failures > 100 && finished > 50, "failures {failures}, finished {finished}");
}

#[test]
fn pbt_replaces_the_bottom_with_explored_copies_of_the_top() {
    let mut s = Pbt::new(4, 2.0);
    s.init(&ctx(20, 1)).unwrap();
    let configs: Vec<Config> = (0..4).map(|i| start(&mut s, i)).collect();
    assert!(matches!(s.suggest(4), Suggestion::Wait), "the population is full");
    // at resource 2, trials report 0.1, 0.2, 0.3, 0.9: trial 3 is in the bottom quarter
    for (i, v) in [0.1, 0.2, 0.3].into_iter().enumerate() {
        assert_eq!(report(&mut s, i as TrialId, &configs[i], 2.0, v), Decision::Continue);
    }
    assert_eq!(report(&mut s, 3, &configs[3], 2.0, 0.9), Decision::Stop);
    match s.suggest(4) {
        Suggestion::Start { config, checkpoint_from } => {
            assert_eq!(checkpoint_from, Some(0), "exploit: the top quarter is trial 0");
            assert_ne!(config.f64("x").unwrap(), configs[0].f64("x").unwrap(), "explore: the config is perturbed");
            assert_eq!(config.i64("epochs").unwrap(), 20);
        }
        other => panic!("expected a replacement, got {other:?}"),
    }
}

/// PBT's explore step on a conditional space with a forbidden combination: across many
/// exploits, every replacement holds exactly its active parameters and none is forbidden.
#[test]
fn pbt_explores_within_a_conditional_space() {
    let space = crate::searchers::conditional_space();
    let mut s = Pbt::new(4, 1.0);
    let ctx = Context { space: space.clone(), ..ctx(100, 3) };
    s.init(&ctx).unwrap();
    let mut members: Vec<(TrialId, Config)> = (0..4).map(|i| (i, start(&mut s, i))).collect();
    let mut next: TrialId = 4;
    let mut replaced = 0;
    for resource in 1..=40 {
        for k in 0..members.len() {
            let (id, config) = members[k].clone();
            // The last member is always the worst: it is replaced by an explored copy.
            let value = if k == members.len() - 1 { 10.0 } else { k as f64 };
            if report(&mut s, id, &config, f64::from(resource), value) == Decision::Stop {
                let config = start(&mut s, next);
                space.validate_except(&config, Some("epochs")).unwrap_or_else(|e| panic!("{config}: {e}"));
                members[k] = (next, config);
                next += 1;
                replaced += 1;
            }
        }
    }
    assert!(replaced >= 20, "{replaced} replacements");
}
