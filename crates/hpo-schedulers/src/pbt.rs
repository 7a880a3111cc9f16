use std::collections::VecDeque;

use hpo_core::{
    Config, Context, Decision, Domain, HpoRng, Report, Scheduler, Searcher, SetupError, Space, Suggestion, TrialId,
    Value, derive_rng,
};
use rand::RngExt;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::fifo::default_searcher;
use crate::forward::{WithSearcher, searcher_events, with_defaults};
use crate::rungs::{at_max_resource, max_resource, one_objective};

/// Population based training (Jaderberg et al., 2017).
///
/// The first `population_size` trials get configs from the searcher. Every
/// `perturbation_interval` of resource, a trial in the bottom `quantile_fraction` of the
/// population (by latest value) is stopped and replaced by a new trial that starts from the
/// checkpoint of a trial in the top fraction (exploit) with a perturbed config (explore: each
/// hyperparameter is resampled with `resample_probability`, else numeric ones are scaled by
/// 0.8 or 1.2 and ordered ones moved by one step). Trials are judged only once every living
/// member of the population has reported.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pbt {
    /// Trials alive at once.
    #[serde(default = "default_population")]
    pub population_size: usize,
    /// Trials are judged once per this much resource.
    #[serde(default = "crate::defaults::one")]
    pub perturbation_interval: f64,
    /// The bottom fraction copies the top fraction (exploit).
    #[serde(default = "crate::defaults::quarter")]
    pub quantile_fraction: f64,
    /// Chance that explore draws a value afresh instead of perturbing it.
    #[serde(default = "crate::defaults::quarter")]
    pub resample_probability: f64,
    /// The maximum resource; by default the largest value of `max_resource_attr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_t: Option<f64>,
    /// The hyperparameters explore may change (default: all but constants). Leave out those
    /// that shape the model (a copied checkpoint only fits the same architecture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutate: Option<Vec<String>>,
    /// Where the first population comes from.
    #[serde(default = "default_searcher")]
    pub searcher: Box<dyn Searcher>,
    #[serde(skip)]
    state: Option<State>,
}

fn default_population() -> usize {
    8
}
struct Member {
    config: Config,
    /// Latest value and the resource it was reported at.
    latest: Option<(f64, f64)>,
    /// The interval boundary this trial last passed (it is judged once per boundary).
    last_boundary: i64,
    alive: bool,
}

struct State {
    space: Space,
    mutate: Option<Vec<String>>,
    max_resource_attr: Option<String>,
    max_t: f64,
    members: FxHashMap<TrialId, Member>,
    started: usize,
    /// New trials to start: (config, trial whose checkpoint to copy).
    replacements: VecDeque<(Config, TrialId)>,
    rng: HpoRng,
}

impl Pbt {
    /// PBT with these settings, the rest at their defaults.
    pub fn new(population_size: usize, perturbation_interval: f64) -> Self {
        Pbt { population_size, perturbation_interval, ..with_defaults(serde_json::json!({})) }
    }
}

#[typetag::serde(name = "pbt")]
impl Scheduler for Pbt {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        one_objective("pbt", ctx)?;
        if self.population_size < 2
            || self.perturbation_interval.is_nan()
            || self.perturbation_interval <= 0.0
            || !(0.0..=0.5).contains(&self.quantile_fraction)
        {
            return Err(SetupError(format!(
                "pbt: need population_size >= 2, perturbation_interval > 0 and 0 <= quantile_fraction <= 0.5, got {}, {}, {}",
                self.population_size, self.perturbation_interval, self.quantile_fraction
            )));
        }
        let max_t = max_resource("pbt", self.max_t, ctx)?;
        if let Some(unknown) = self.mutate.iter().flatten().find(|n| ctx.space.get(n).is_none()) {
            return Err(SetupError(format!("pbt: `mutate` names `{unknown}`, which is not in the search space")));
        }
        self.state = Some(State {
            space: ctx.space.clone(),
            mutate: self.mutate.clone(),
            max_resource_attr: ctx.max_resource_attr.clone(),
            max_t,
            members: FxHashMap::default(),
            started: 0,
            replacements: VecDeque::new(),
            rng: derive_rng(ctx.seed, "scheduler"),
        });
        self.searcher.init(ctx)
    }

    fn suggest(&mut self, trial_id: TrialId) -> Suggestion {
        let Some(state) = self.state.as_mut() else {
            return Suggestion::Done;
        };
        let (config, checkpoint_from) = if let Some((config, from)) = state.replacements.pop_front() {
            (config, Some(from))
        } else if state.started < self.population_size {
            match self.searcher.suggest(trial_id) {
                Some(config) => (config, None),
                None => return Suggestion::Done,
            }
        } else {
            return if state.members.values().any(|m| m.alive) { Suggestion::Wait } else { Suggestion::Done };
        };
        state.started += 1;
        let last_boundary = checkpoint_from.and_then(|from| state.members.get(&from)).map_or(0, |m| m.last_boundary);
        state.members.insert(trial_id, Member { config: config.clone(), latest: None, last_boundary, alive: true });
        Suggestion::Start { config, checkpoint_from }
    }

    searcher_events!();
}

impl WithSearcher for Pbt {
    fn searcher(&mut self) -> &mut dyn Searcher {
        self.searcher.as_mut()
    }

    fn decide(&mut self, report: &Report<'_>) -> Option<Decision> {
        Some(self.rule(report))
    }

    fn ended(&mut self, trial_id: TrialId, _failed: bool) {
        self.mark_dead(trial_id);
    }
}

impl Pbt {
    /// PBT's rule for a report: exploit and explore at interval boundaries.
    fn rule(&mut self, report: &Report<'_>) -> Decision {
        let interval = self.perturbation_interval;
        let Some(state) = self.state.as_mut() else {
            return Decision::Continue;
        };
        let Some(member) = state.members.get_mut(&report.trial_id) else {
            return Decision::Continue;
        };
        member.latest = Some((report.objective, report.resource));
        if report.resource >= state.max_t {
            member.alive = false;
            return at_max_resource(report.resource, state.max_t, state.max_resource_attr.is_some());
        }
        let boundary = (report.resource / interval).floor() as i64;
        if boundary <= member.last_boundary {
            return Decision::Continue;
        }
        member.last_boundary = boundary;
        // Rank the living population by latest value (ties: lower id first).
        let alive = state.members.values().filter(|m| m.alive).count();
        let mut ranked: Vec<(f64, TrialId)> = state
            .members
            .iter()
            .filter(|(_, m)| m.alive)
            .filter_map(|(id, m)| m.latest.map(|(v, _)| (v, *id)))
            .collect();
        // Judge only against a population that has fully reported.
        if ranked.len() < 2 || ranked.len() < alive {
            return Decision::Continue;
        }
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let cut = ((ranked.len() as f64 * self.quantile_fraction).ceil() as usize).max(1);
        let position = ranked.iter().position(|(_, id)| *id == report.trial_id).unwrap_or(0);
        if position < ranked.len() - cut {
            return Decision::Continue;
        }
        let donor = ranked[state.rng.random_range(0..cut)].1;
        if donor == report.trial_id {
            return Decision::Continue;
        }
        let donor_config = state.members[&donor].config.clone();
        let config = state.explore(&donor_config, self.resample_probability);
        state.replacements.push_back((config, donor));
        if let Some(m) = state.members.get_mut(&report.trial_id) {
            m.alive = false;
        }
        Decision::Stop
    }

    fn mark_dead(&mut self, trial_id: TrialId) {
        if let Some(m) = self.state.as_mut().and_then(|s| s.members.get_mut(&trial_id)) {
            m.alive = false;
        }
    }
}

impl State {
    /// Perturbs the chosen hyperparameters of `config` (never constants or the resource key).
    /// In a conditional space a parameter the new values make inactive is dropped, one they
    /// make active is drawn afresh, and a forbidden result is explored again (at most 100
    /// times, else `config` is kept).
    fn explore(&mut self, config: &Config, resample_probability: f64) -> Config {
        for _ in 0..100 {
            let explored = self.explore_once(config, resample_probability);
            if !self.space.is_forbidden(&explored) {
                return explored;
            }
        }
        config.clone()
    }

    fn explore_once(&mut self, config: &Config, resample_probability: f64) -> Config {
        let mut out = config.clone();
        for (name, domain) in self.space.params_in_order() {
            if !self.space.is_active(name, &out) {
                out.remove(name);
                continue;
            }
            let Some(current) = config.get(name) else {
                out.insert(name, domain.sample(&mut self.rng));
                continue;
            };
            let chosen = self.mutate.as_ref().is_none_or(|m| m.iter().any(|n| n == name));
            if !chosen || matches!(domain, Domain::Constant(_)) || self.max_resource_attr.as_deref() == Some(name) {
                continue;
            }
            let value = if self.rng.random::<f64>() < resample_probability || matches!(domain, Domain::Choice(_)) {
                domain.sample(&mut self.rng)
            } else {
                let factor = if self.rng.random::<bool>() { 1.2 } else { 0.8 };
                perturb(domain, current, factor)
            };
            out.insert(name, value);
        }
        out
    }
}

/// Scales a numeric value (clamped to its domain), or moves an ordered value one step.
fn perturb(domain: &Domain, value: &Value, factor: f64) -> Value {
    let mut coords = Vec::new();
    domain.encode(value, &mut coords);
    match *domain {
        Domain::Uniform { low, high } | Domain::LogUniform { low, high } => {
            Value::Float((value.as_f64().unwrap_or(low) * factor).clamp(low, high))
        }
        Domain::RandInt { low, high } | Domain::LogRandInt { low, high } => {
            let x = value.as_i64().unwrap_or(low) as f64 * factor;
            Value::Int((x.round() as i64).clamp(low, high))
        }
        _ => {
            // Ordered finite domains: one position up or down.
            let n = domain.cardinality().unwrap_or(1) as f64;
            let u = coords.first().copied().unwrap_or(0.5) + if factor > 1.0 { 1.0 / n } else { -1.0 / n };
            domain.decode(&[u])
        }
    }
}
