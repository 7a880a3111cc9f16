//! The simulator backend: replays a blackbox's learning curves on a simulated clock.
//!
//! A trial started at time t reports its epoch-k metrics at t + elapsed(k) (minus the elapsed
//! time of the epoch it resumes from); events with equal times come out in the order they
//! were scheduled; stopping a trial drops its future events; a paused trial resumed later
//! continues from the next epoch, its time counted from the resume. Decisions are
//! synchronous, as on the thread backend. Same seed, same run, bit for bit.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use hpo_core::{
    Backend, BackendError, Decision, Event, EventKind, Metrics, Symbol, TotalF64, TrialId, TrialStart, async_trait,
    derive_seed,
};
use rustc_hash::FxHashMap;

use crate::blackbox::{Blackbox, Curve};

/// What a simulated run measured about itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimStats {
    /// Simulated worker-seconds spent running trials.
    pub busy_time: f64,
    /// Reports replayed, by the trials that ended or were stopped or paused.
    pub reports: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Pending {
    Report,
    Complete,
    Stop,
    Pause,
    Fail,
}

/// A queued event: (time, scheduling order, trial, the trial's run generation, what).
type Queued = (TotalF64, u64, TrialId, u32, Pending);

struct SimTrial {
    curve: Box<dyn Curve>,
    /// The last epoch reported.
    epoch: u32,
    /// The epoch the trial may train to (its `max_resource_attr`).
    limit: u32,
    /// Simulated time at which the current run segment began, the curve's elapsed time at
    /// the epoch it began from, and that epoch.
    origin: f64,
    base_elapsed: f64,
    base_epoch: u32,
    /// Bumped when the trial is stopped or paused, so queued events of the old run are dropped.
    generation: u32,
    /// Whether the trial waits for the decision on each report ([`TrialStart::await_decisions`]);
    /// if not, its next epoch is queued as it reports.
    await_decisions: bool,
    failure: Option<String>,
}

/// Runs trials on a simulated clock from a blackbox.
pub struct SimulatorBackend {
    blackbox: Arc<dyn Blackbox>,
    /// (index into the blackbox's metrics, name) of each reported metric; the names are
    /// shared by every report.
    reported: Vec<(usize, Symbol)>,
    resource_attr: Symbol,
    max_resource_attr: Option<String>,
    seed: u64,
    time: f64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    trials: FxHashMap<TrialId, SimTrial>,
    scratch: Vec<f64>,
    charge_decision_time: bool,
    returned_at: Option<Instant>,
    stats: Arc<Mutex<SimStats>>,
}

impl SimulatorBackend {
    /// Replays `blackbox`, reporting `metrics` (names of the blackbox's metrics) and the
    /// resource; a trial trains up to its config's `max_resource_attr` value, if any.
    pub fn new(
        blackbox: Arc<dyn Blackbox>,
        metrics: &[&str],
        max_resource_attr: Option<&str>,
        seed: u64,
    ) -> Result<SimulatorBackend, crate::Error> {
        let info = blackbox.info();
        let reported = metrics
            .iter()
            .map(|m| {
                info.metric_index(m)
                    .map(|i| (i, Symbol::new(m)))
                    .ok_or_else(|| crate::Error::Setting(format!("blackbox `{}` has no metric `{m}`", info.name)))
            })
            .collect::<Result<_, _>>()?;
        Ok(SimulatorBackend {
            scratch: vec![0.0; info.metrics.len()],
            resource_attr: Symbol::new(&info.resource_attr),
            blackbox,
            reported,
            max_resource_attr: max_resource_attr.map(str::to_owned),
            seed,
            time: 0.0,
            seq: 0,
            queue: BinaryHeap::new(),
            trials: FxHashMap::default(),
            charge_decision_time: false,
            returned_at: None,
            stats: Arc::default(),
        })
    }

    /// Adds the tuner's own decision time (wall clock) to the simulated clock, so slow
    /// methods pay for their slowness.
    pub fn charge_decision_time(mut self, yes: bool) -> Self {
        self.charge_decision_time = yes;
        self
    }

    /// A handle on the run's statistics, readable after the tuner consumed the backend.
    pub fn stats(&self) -> Arc<Mutex<SimStats>> {
        Arc::clone(&self.stats)
    }

    fn push(&mut self, time: f64, trial_id: TrialId, generation: u32, what: Pending) {
        self.seq += 1;
        self.queue.push(Reverse((TotalF64(time), self.seq, trial_id, generation, what)));
    }

    /// Queues the trial's next epoch, or its completion once it reached its limit.
    fn schedule_next(&mut self, trial_id: TrialId) {
        let Some(trial) = self.trials.get_mut(&trial_id) else { return };
        let generation = trial.generation;
        let next = trial.epoch + 1;
        if next > trial.limit {
            let now = self.time;
            self.push(now, trial_id, generation, Pending::Complete);
            return;
        }
        match trial.curve.at(next, &mut self.scratch) {
            Some(elapsed) => {
                let at = trial.origin + (elapsed - trial.base_elapsed).max(0.0);
                self.push(at, trial_id, generation, Pending::Report);
            }
            None => {
                trial.failure = Some(format!("the blackbox has no epoch {next} for this config"));
                let now = self.time;
                self.push(now, trial_id, generation, Pending::Fail);
            }
        }
    }

    fn end_segment(&mut self, trial_id: TrialId) {
        if let Some(trial) = self.trials.get(&trial_id)
            && let Ok(mut stats) = self.stats.lock()
        {
            // Counted per segment rather than per report: a lock per report costs more than
            // making the report.
            stats.busy_time += self.time - trial.origin;
            stats.reports += u64::from(trial.epoch - trial.base_epoch);
        }
    }
}

#[async_trait]
impl Backend for SimulatorBackend {
    async fn start(&mut self, trial: TrialStart) -> Result<(), BackendError> {
        let id = trial.trial_id;
        let max = self.blackbox.info().max_resource;
        let limit = self
            .max_resource_attr
            .as_deref()
            .and_then(|attr| trial.config.f64(attr).ok())
            .map_or(max, |l| (l.round().max(0.0) as u32).min(max));
        let done = trial.resource_done.map_or(0, |r| r.round().max(0.0) as u32);
        if trial.resume
            && let Some(existing) = self.trials.get_mut(&id)
        {
            existing.limit = limit;
            existing.origin = self.time;
            existing.base_epoch = existing.epoch;
            existing.await_decisions = trial.await_decisions;
            existing.base_elapsed = if existing.epoch == 0 {
                0.0
            } else {
                existing.curve.at(existing.epoch, &mut self.scratch).unwrap_or(0.0)
            };
            existing.generation += 1;
            self.schedule_next(id);
            return Ok(());
        }
        let seed = derive_seed(self.seed, "simulator").wrapping_add(id);
        match self.blackbox.curve(&trial.config, seed) {
            Ok(curve) => {
                // A trial started from another's checkpoint (PBT) continues at its epoch.
                let base_elapsed = if done == 0 { 0.0 } else { curve.at(done, &mut self.scratch).unwrap_or(0.0) };
                self.trials.insert(
                    id,
                    SimTrial {
                        curve,
                        epoch: done,
                        limit,
                        origin: self.time,
                        base_elapsed,
                        base_epoch: done,
                        generation: 0,
                        await_decisions: trial.await_decisions,
                        failure: None,
                    },
                );
                self.schedule_next(id);
            }
            Err(e) => {
                let curve: Box<dyn Curve> = Box::new(NoCurve);
                self.trials.insert(
                    id,
                    SimTrial {
                        curve,
                        epoch: 0,
                        limit,
                        origin: self.time,
                        base_elapsed: 0.0,
                        base_epoch: 0,
                        generation: 0,
                        await_decisions: trial.await_decisions,
                        failure: Some(e.to_string()),
                    },
                );
                let now = self.time;
                self.push(now, id, 0, Pending::Fail);
            }
        }
        Ok(())
    }

    async fn decide(&mut self, trial_id: TrialId, decision: Decision) -> Result<(), BackendError> {
        let Some(trial) = self.trials.get_mut(&trial_id) else { return Ok(()) };
        match decision {
            Decision::Continue if trial.await_decisions => self.schedule_next(trial_id),
            Decision::Continue => {} // it went on as it reported
            Decision::Stop | Decision::Pause => {
                trial.generation += 1;
                let generation = trial.generation;
                let what = if decision == Decision::Stop { Pending::Stop } else { Pending::Pause };
                let now = self.time;
                self.push(now, trial_id, generation, what);
            }
        }
        Ok(())
    }

    async fn next_events(&mut self, out: &mut Vec<Event>) -> Result<(), BackendError> {
        if self.charge_decision_time
            && let Some(at) = self.returned_at
        {
            self.time += at.elapsed().as_secs_f64();
        }
        loop {
            let Reverse((TotalF64(time), _, trial_id, generation, what)) =
                self.queue.pop().ok_or_else(|| BackendError("the simulation has no trial to run".into()))?;
            let Some(trial) = self.trials.get_mut(&trial_id) else { continue };
            if trial.generation != generation {
                continue; // the trial was stopped or paused since this was queued
            }
            self.time = self.time.max(time);
            let kind = match what {
                Pending::Report => {
                    trial.epoch += 1;
                    trial.curve.at(trial.epoch, &mut self.scratch);
                    let mut metrics = Metrics::new();
                    metrics.insert(self.resource_attr.clone(), f64::from(trial.epoch));
                    for (i, name) in &self.reported {
                        metrics.insert(name.clone(), self.scratch[*i]);
                    }
                    EventKind::Report(metrics)
                }
                Pending::Complete => EventKind::Completed,
                Pending::Stop => EventKind::Stopped,
                Pending::Pause => EventKind::Paused,
                Pending::Fail => EventKind::Failed(trial.failure.take().unwrap_or_default()),
            };
            let report = matches!(kind, EventKind::Report(_));
            let goes_on = report && !trial.await_decisions;
            if !report {
                self.end_segment(trial_id);
                if let Some(trial) = self.trials.get_mut(&trial_id) {
                    trial.generation += 1;
                }
            }
            out.push(Event { time: self.time, trial_id, kind });
            if goes_on {
                self.schedule_next(trial_id);
            }
            if self.charge_decision_time {
                self.returned_at = Some(Instant::now());
            }
            return Ok(());
        }
    }

    fn now(&self) -> f64 {
        self.time
    }

    fn simulated(&self) -> bool {
        true
    }
}

struct NoCurve;
impl Curve for NoCurve {
    fn at(&self, _: u32, _: &mut [f64]) -> Option<f64> {
        None
    }
}
