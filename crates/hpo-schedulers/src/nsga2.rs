//! NSGA-II (Deb et al., 2002) as a searcher: a genetic algorithm over the search space that
//! keeps the best trials by constrained non-dominated sorting and crowding distance.

use std::collections::{BTreeMap, BTreeSet};

use hpo_core::pareto::rank_order;
use hpo_core::{Config, Context, Domain, HpoRng, Report, Searcher, SetupError, Space, TrialId, Value, derive_rng};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::random::Suggested;

/// NSGA-II, asynchronous (steady state): each suggestion is one child, bred from the current
/// population, so that it keeps any number of workers busy.
///
/// - The first `population_size` suggestions are random.
/// - The population is the `population_size` best of itself and the trials with a result
///   since the last suggestion, each by its latest report, ranked by
///   [`hpo_core::pareto::rank_order`]: Deb's constrained non-dominated sorting (feasible
///   fronts first, then the infeasible by violation), ties in a front broken by crowding
///   distance. Keeping the best of parents and children alike is NSGA-II's elitism; a trial
///   that drops out is forgotten (until it reports again), so a suggestion costs the same
///   after a hundred trials or a million.
/// - Each parent is the better-ranked of two members drawn at random (binary tournament).
/// - With probability `crossover_prob` the child mixes its parents: simulated binary
///   crossover (SBX, `crossover_eta`) of each numeric parameter in its [0, 1] encoding,
///   the parameter taken whole from either parent for a choice; else it copies one parent.
/// - Mutation: each parameter with probability `mutation_prob` (default 1 / the number of
///   parameters) moves by polynomial mutation (`mutation_eta`) or, for a choice, is drawn
///   anew.
///
/// Conditional parameters are bred in dependency order: crossed when active in both
/// parents, taken from the one parent where only it has them, drawn when neither has. A
/// child that a `forbid` clause rules out, or on a finite space one suggested before, is
/// bred again (a random config after 20 tries, a new one if it can be found).
/// Inside a multi-fidelity scheduler a trial counts by its latest report. With one
/// objective it is a plain genetic algorithm.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nsga2 {
    /// Members of the population; the first this many suggestions are random.
    #[serde(default = "default_population")]
    pub population_size: usize,
    /// The chance that a child mixes its parents rather than copying one.
    #[serde(default = "default_crossover_prob")]
    pub crossover_prob: f64,
    /// SBX's distribution index: larger keeps children nearer their parents.
    #[serde(default = "default_crossover_eta")]
    pub crossover_eta: f64,
    /// Each parameter's chance to mutate; by default 1 / the number of parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_prob: Option<f64>,
    /// Polynomial mutation's distribution index.
    #[serde(default = "default_mutation_eta")]
    pub mutation_eta: f64,
    #[serde(skip)]
    state: Option<State>,
}

fn default_population() -> usize {
    20
}
fn default_crossover_prob() -> f64 {
    0.9
}
fn default_crossover_eta() -> f64 {
    15.0
}
fn default_mutation_eta() -> f64 {
    20.0
}

impl Default for Nsga2 {
    fn default() -> Self {
        Nsga2 {
            population_size: default_population(),
            crossover_prob: default_crossover_prob(),
            crossover_eta: default_crossover_eta(),
            mutation_prob: None,
            mutation_eta: default_mutation_eta(),
            state: None,
        }
    }
}

#[derive(Clone, Debug)]
struct State {
    space: Space,
    rng: HpoRng,
    mutation_prob: f64,
    /// The configs of the population.
    configs: BTreeMap<TrialId, Config>,
    /// The latest objectives and violation of the population and of the trials that
    /// reported since the last selection (`fresh`).
    results: BTreeMap<TrialId, (Vec<f64>, f64)>,
    fresh: BTreeSet<TrialId>,
    /// Best first.
    population: Vec<TrialId>,
    /// On a finite space, every config suggested (a repeat would be wasted).
    seen: Option<Suggested>,
    suggested: usize,
}

#[typetag::serde(name = "nsga2")]
impl Searcher for Nsga2 {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        let probability = |p: f64| (0.0..=1.0).contains(&p);
        let valid = self.population_size >= 2
            && probability(self.crossover_prob)
            && self.mutation_prob.is_none_or(probability)
            && self.crossover_eta >= 0.0
            && self.mutation_eta >= 0.0;
        if !valid {
            return Err(SetupError(format!(
                "nsga2: need population_size >= 2, crossover_prob and mutation_prob in [0, 1] and \
                 non-negative etas, got {}, {}, {:?}, {} and {}",
                self.population_size, self.crossover_prob, self.mutation_prob, self.crossover_eta, self.mutation_eta
            )));
        }
        let searched = ctx.space.params().filter(|(_, d)| !matches!(d, Domain::Constant(_))).count();
        self.state = Some(State {
            space: ctx.space.clone(),
            rng: derive_rng(ctx.seed, "searcher"),
            mutation_prob: self.mutation_prob.unwrap_or(1.0 / searched.max(1) as f64),
            configs: BTreeMap::new(),
            results: BTreeMap::new(),
            fresh: BTreeSet::new(),
            population: Vec::new(),
            seen: Suggested::of(&ctx.space),
            suggested: 0,
        });
        Ok(())
    }

    fn suggest(&mut self, _trial_id: TrialId) -> Option<Config> {
        let settings = self.settings();
        let state = self.state.as_mut()?;
        state.suggested += 1;
        state.select(self.population_size);
        let population = state.population.clone();
        if state.seen.as_ref().is_some_and(Suggested::all) {
            return None; // every config of the finite space was suggested
        }
        let breed = state.suggested > self.population_size && population.len() >= 2;
        // A child a forbid clause rules out, or (on a finite space) one suggested before, is
        // bred again; after 20 tries a random config takes its place, new if one is found.
        for attempt in 0..120 {
            let config = if breed && attempt < 20 {
                state.child(&population, &settings)
            } else {
                state.space.sample(&mut state.rng)
            };
            if !state.space.is_forbidden(&config) && state.is_new(&config) {
                return Some(config);
            }
        }
        // Nearly every config was suggested: the first one left, in grid order.
        match &mut state.seen {
            Some(seen) => {
                let config = seen.first_unseen(&state.space, 0)?;
                seen.is_new(&state.space, &config);
                Some(config)
            }
            None => Some(state.space.sample(&mut state.rng)),
        }
    }

    fn on_report(&mut self, report: &Report<'_>) {
        if let Some(state) = self.state.as_mut() {
            state.configs.entry(report.trial_id).or_insert_with(|| report.config.clone());
            state.results.insert(report.trial_id, (report.objectives.to_vec(), report.violation));
            state.fresh.insert(report.trial_id);
        }
    }
}

/// The breeding settings, apart from the state they act on.
struct Settings {
    crossover_prob: f64,
    crossover_eta: f64,
    mutation_eta: f64,
}

impl Nsga2 {
    fn settings(&self) -> Settings {
        Settings {
            crossover_prob: self.crossover_prob,
            crossover_eta: self.crossover_eta,
            mutation_eta: self.mutation_eta,
        }
    }
}

impl State {
    /// Whether `config` may be suggested (remembering it): always on a continuous space, the
    /// first time on a finite one.
    fn is_new(&mut self, config: &Config) -> bool {
        self.seen.as_mut().is_none_or(|seen| seen.is_new(&self.space, config))
    }

    /// Makes the population the `size` best of itself and the fresh results, and forgets
    /// the rest.
    fn select(&mut self, size: usize) {
        if self.fresh.is_empty() {
            return;
        }
        let mut candidates = std::mem::take(&mut self.fresh);
        candidates.extend(&self.population);
        let ids: Vec<TrialId> = candidates.into_iter().filter(|id| self.results.contains_key(id)).collect();
        let points: Vec<Vec<f64>> = ids.iter().map(|id| self.results[id].0.clone()).collect();
        let violations: Vec<f64> = ids.iter().map(|id| self.results[id].1).collect();
        self.population = rank_order(&points, &violations).into_iter().take(size).map(|i| ids[i]).collect();
        let kept: BTreeSet<TrialId> = self.population.iter().copied().collect();
        self.results.retain(|id, _| kept.contains(id));
        // A trial still running gets its config back with its first report.
        self.configs.retain(|id, _| kept.contains(id));
    }

    /// The better-ranked of two members drawn at random (`population` is best first).
    fn tournament(&mut self, population: &[TrialId]) -> TrialId {
        let a = self.rng.random_range(0..population.len());
        let b = self.rng.random_range(0..population.len());
        population[a.min(b)]
    }

    fn child(&mut self, population: &[TrialId], settings: &Settings) -> Config {
        let (a, b) = (self.tournament(population), self.tournament(population));
        let config = |id| self.configs.get(&id).cloned().unwrap_or_default();
        let (a, b) = (config(a), config(b));
        let cross = self.rng.random::<f64>() < settings.crossover_prob;
        let mut child = Config::new();
        let space = self.space.clone();
        for (name, domain) in space.params_in_order() {
            if !space.is_active(name, &child) {
                continue;
            }
            let value = match (a.get(name), b.get(name)) {
                (Some(x), Some(y)) if cross => self.cross(domain, x, y, settings.crossover_eta),
                (Some(x), Some(_)) => x.clone(),
                (Some(x), None) | (None, Some(x)) => x.clone(),
                (None, None) => domain.sample(&mut self.rng),
            };
            let value = if self.rng.random::<f64>() < self.mutation_prob {
                self.mutate(domain, &value, settings.mutation_eta)
            } else {
                value
            };
            child.insert(name, value);
        }
        child
    }

    /// SBX on a numeric parameter's [0, 1] encoding (each parameter crossed with probability
    /// 1/2, as usual); a choice is taken whole from either parent.
    fn cross(&mut self, domain: &Domain, x: &Value, y: &Value, eta: f64) -> Value {
        let pick = if self.rng.random::<bool>() { x } else { y };
        if !is_numeric(domain) || self.rng.random::<bool>() {
            return pick.clone();
        }
        let (p, q) = (encode(domain, x), encode(domain, y));
        let u: f64 = self.rng.random();
        let beta = if u <= 0.5 { (2.0 * u).powf(1.0 / (eta + 1.0)) } else { (0.5 / (1.0 - u)).powf(1.0 / (eta + 1.0)) };
        let sign = if self.rng.random::<bool>() { 1.0 } else { -1.0 };
        let c = 0.5 * ((p + q) + sign * beta * (q - p));
        domain.decode(&[c.clamp(0.0, 1.0)])
    }

    /// Polynomial mutation of a numeric parameter's [0, 1] encoding; a choice drawn anew.
    fn mutate(&mut self, domain: &Domain, value: &Value, eta: f64) -> Value {
        if !is_numeric(domain) {
            return domain.sample(&mut self.rng);
        }
        let u: f64 = self.rng.random();
        let delta = if u < 0.5 {
            (2.0 * u).powf(1.0 / (eta + 1.0)) - 1.0
        } else {
            1.0 - (2.0 * (1.0 - u)).powf(1.0 / (eta + 1.0))
        };
        domain.decode(&[(encode(domain, value) + delta).clamp(0.0, 1.0)])
    }
}

/// Whether the domain encodes as one coordinate in [0, 1] (not a choice's one-hot block, nor
/// a constant's nothing).
fn is_numeric(domain: &Domain) -> bool {
    domain.encoded_dim() == 1 && !matches!(domain, Domain::Choice(_))
}

fn encode(domain: &Domain, value: &Value) -> f64 {
    let mut out = Vec::with_capacity(1);
    domain.encode(value, &mut out);
    out.first().copied().unwrap_or(0.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpo_core::{Metrics, Mode, Objective};
    use rand::RngExt;

    #[test]
    fn the_population_is_the_best_ranked_and_children_stay_in_the_space() {
        let space = Space::builder()
            .uniform("x", 0.0, 1.0)
            .randint("n", 1, 4)
            .choice("kind", ["a", "b"])
            .uniform("extra", 0.0, 1.0)
            .when("extra", "kind == 'b'")
            .build()
            .expect("space");
        let objectives = vec![Objective::new("f1", Mode::Min), Objective::new("f2", Mode::Min)];
        let ctx = Context { objectives, ..Context::new(space.clone(), Objective::new("f1", Mode::Min), 3) };
        let mut nsga = Nsga2 { population_size: 4, ..Nsga2::default() };
        nsga.init(&ctx).expect("init");
        let metrics = Metrics::new();
        // Trials 0-5: two on the front, (0, 1) and (1, 0); one infeasible that would
        // dominate all; the rest dominated.
        let scores = [([0.0, 1.0], 0.0), ([1.0, 0.0], 0.0), ([0.0, 0.0], 2.0), ([0.5, 0.6], 0.0), ([0.9, 0.9], 0.0)];
        for (id, (objectives, violation)) in scores.iter().enumerate() {
            let config = nsga.suggest(id as TrialId).expect("a config");
            let objective = objectives[0];
            let report = Report {
                trial_id: id as TrialId,
                config: &config,
                metrics: &metrics,
                resource: 1.0,
                objective,
                objectives,
                violation: *violation,
            };
            nsga.on_report(&report);
        }
        let state = nsga.state.as_mut().expect("state");
        state.select(4);
        assert_eq!(state.population, [0, 1, 3, 4], "the front (ends first), then the dominated, not the infeasible");
        assert_eq!(state.results.len(), 4, "the infeasible trial is forgotten");
        for id in 5..500 {
            let config = nsga.suggest(id).expect("a child");
            space.validate(&config).expect("a valid config");
        }
    }

    #[test]
    fn on_a_finite_space_no_config_comes_twice() {
        // Finite spaces of every kind of finite domain, sizes drawn at random, and a
        // conditional one: each config comes once, then the searcher is done.
        let mut rng = derive_rng(5, "spaces");
        let mut spaces: Vec<Space> = (0..12)
            .map(|_| {
                let k = rng.random_range(2..5usize);
                Space::builder()
                    .choice("kind", (0..k).map(|c| format!("k{c}")))
                    .randint("n", 1, rng.random_range(2..5i64))
                    .ordinal("width", [16, 32, 64].into_iter().take(rng.random_range(2..4usize)))
                    .finrange("rate", 0.0, 1.0, rng.random_range(2..4usize))
                    .build()
                    .expect("space")
            })
            .collect();
        let conditional = Space::builder()
            .choice("optimizer", ["adam", "sgd"])
            .ordinal("momentum", [0.0, 0.9])
            .when("momentum", "optimizer == 'sgd'")
            .randint("layers", 1, 3)
            .build()
            .expect("space");
        spaces.push(conditional);
        let metrics = Metrics::new();
        for (seed, space) in spaces.into_iter().enumerate() {
            let size = space.every_config().expect("finite").len();
            let mut nsga = Nsga2 { population_size: 2, ..Nsga2::default() };
            nsga.init(&Context::new(space.clone(), Objective::new("f", Mode::Min), seed as u64)).expect("init");
            let mut seen = Vec::new();
            for id in 0..size as TrialId {
                let config = nsga.suggest(id).expect("a config");
                space.validate(&config).expect("a valid config");
                let objective = rng.random::<f64>();
                let objectives = std::slice::from_ref(&objective);
                let (resource, violation) = (1.0, 0.0);
                nsga.on_report(&Report {
                    trial_id: id,
                    config: &config,
                    metrics: &metrics,
                    resource,
                    objective,
                    objectives,
                    violation,
                });
                assert!(!seen.contains(&config), "{config:?} twice in a space of {size}");
                seen.push(config);
            }
            assert!(nsga.suggest(size as TrialId).is_none(), "all {size} configs were suggested");
        }
    }
}
