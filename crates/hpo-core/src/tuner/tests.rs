#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
//! The dispatcher, driven directly: a scripted scheduler, events in, journal entries and
//! actions out; and the loop around it with a scripted backend.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hpo_space::{Config, Space, Value};
use serde::{Deserialize, Serialize};

use super::dispatcher::{Actions, Dispatcher};
use super::*;
use crate::journal::{Entry, read_journal};
use crate::traits::{Event, EventKind, TrialStart};
use crate::types::{Decision, Mode, Objective, Report, Suggestion};

/// What the scheduler was told, in order.
type Calls = Arc<Mutex<Vec<String>>>;

/// A scheduler that suggests and decides from a script, and records what it is told.
#[derive(Default, Serialize, Deserialize)]
struct Scripted {
    #[serde(skip)]
    suggestions: VecDeque<Suggestion>,
    #[serde(skip)]
    decisions: VecDeque<Decision>,
    #[serde(skip)]
    calls: Calls,
}

#[typetag::serde(name = "scripted-for-tuner-tests")]
impl Scheduler for Scripted {
    fn init(&mut self, _ctx: &Context) -> Result<(), SetupError> {
        Ok(())
    }

    fn suggest(&mut self, _trial_id: TrialId) -> crate::Suggestion {
        self.suggestions.pop_front().unwrap_or(Suggestion::Wait)
    }

    fn on_report(&mut self, report: &Report<'_>) -> Decision {
        self.calls.lock().unwrap().push(format!("report {}", report.trial_id));
        self.decisions.pop_front().unwrap_or(Decision::Continue)
    }

    fn on_complete(&mut self, trial_id: TrialId) {
        self.calls.lock().unwrap().push(format!("complete {trial_id}"));
    }

    fn on_fail(&mut self, trial_id: TrialId) {
        self.calls.lock().unwrap().push(format!("fail {trial_id}"));
    }
}

fn config(x: f64) -> Config {
    let mut config = Config::new();
    config.insert("x", Value::Float(x));
    config
}

fn start(x: f64) -> Suggestion {
    Suggestion::start(config(x))
}

fn context() -> Context {
    Context {
        resource_attr: Some("epoch".into()),
        ..Context::new(Space::builder().uniform("x", 0.0, 1.0).build().unwrap(), Objective::new("loss", Mode::Min), 0)
    }
}

/// A dispatcher with `workers` workers over a scripted scheduler, journaling into `dir`.
struct Harness {
    dispatcher: Dispatcher,
    calls: Calls,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(workers: usize, suggestions: Vec<Suggestion>, decisions: Vec<Decision>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let calls = Calls::default();
        let scheduler =
            Scripted { suggestions: suggestions.into(), decisions: decisions.into(), calls: Arc::clone(&calls) };
        let mut dispatcher = Dispatcher::new(context(), Box::new(scheduler));
        dispatcher.workers = workers;
        dispatcher.journal = Some(Journal::create(&path, "test", serde_json::json!({})).unwrap());
        Harness { dispatcher, calls, path, _dir: dir }
    }

    fn event(&mut self, trial_id: TrialId, kind: EventKind) -> Result<(), TunerError> {
        self.dispatcher.handle(Event { time: 1.0, trial_id, kind })
    }

    fn report(&mut self, trial_id: TrialId, loss: f64) {
        let metrics = [("epoch".to_owned(), 1.0), ("loss".to_owned(), loss)].into();
        self.event(trial_id, EventKind::Report(metrics)).unwrap();
    }

    fn actions(&mut self) -> Actions {
        self.dispatcher.take_actions()
    }

    /// The journal so far, one short line per entry after the header.
    fn journal(&mut self) -> Vec<String> {
        self.dispatcher.flush().unwrap();
        read_journal(&self.path).unwrap()[1..]
            .iter()
            .map(|entry| match entry {
                Entry::Start { trial, .. } => format!("start {trial}"),
                Entry::Resume { trial, config, .. } => format!("resume {trial} x={}", config.f64("x").unwrap()),
                Entry::Report { trial, decision, .. } => format!("report {trial} {}", decision.as_str()),
                Entry::Complete { trial, no_report, .. } => format!("complete {trial} no_report={no_report}"),
                Entry::Fail { trial, error, .. } => format!("fail {trial}: {error}"),
                Entry::Stopped { trial, .. } => format!("stopped {trial}"),
                Entry::Paused { trial, .. } => format!("paused {trial}"),
                Entry::Preempted { trial, .. } => format!("preempted {trial}"),
                Entry::End { reason, .. } => format!("end {reason}"),
                Entry::Continued { workers, .. } => format!("continued workers={workers}"),
                Entry::Ending { reason, .. } => format!("ending {reason}"),
                Entry::Experiment { .. } => "experiment".into(),
            })
            .collect()
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn progress(&self) -> (usize, usize, usize, usize, usize) {
        let p = self.dispatcher.progress(0.0);
        (p.running, p.completed, p.paused, p.stopped, p.failed)
    }
}

fn starts(actions: &Actions) -> Vec<(TrialId, bool)> {
    actions.starts.iter().map(|s: &TrialStart| (s.trial_id, s.resume)).collect()
}

#[test]
fn trials_start_report_and_complete() {
    let mut h = Harness::new(2, vec![start(0.1), start(0.2), start(0.3)], vec![]);
    h.dispatcher.fill(0.0).unwrap();
    assert_eq!(starts(&h.actions()), [(0, false), (1, false)], "two workers, two starts");
    h.report(0, 0.5);
    h.event(0, EventKind::Completed).unwrap();
    assert_eq!(h.actions().decisions, [(0, Decision::Continue)]);
    assert_eq!(h.progress(), (1, 1, 0, 0, 0));
    h.dispatcher.fill(1.0).unwrap();
    assert_eq!(starts(&h.actions()), [(2, false)], "the freed worker takes the next trial");
    h.event(1, EventKind::Completed).unwrap();
    assert_eq!(
        h.journal(),
        [
            "start 0",
            "start 1",
            "report 0 CONTINUE",
            "complete 0 no_report=false",
            "start 2",
            "complete 1 no_report=true"
        ]
    );
    assert_eq!(h.calls(), ["report 0", "complete 0", "complete 1"]);
}

#[test]
fn events_a_hair_out_of_time_order_do_not_take_the_time_back() {
    let mut h = Harness::new(2, vec![start(0.1), start(0.2)], vec![]);
    h.dispatcher.fill(0.0).unwrap();
    let report = |loss: f64| EventKind::Report([("epoch", 1.0), ("loss", loss)].into());
    // Trial 1 read the clock later but sent first (two worker threads).
    h.dispatcher.handle(Event { time: 2.0, trial_id: 1, kind: report(0.5) }).unwrap();
    h.dispatcher.handle(Event { time: 1.5, trial_id: 0, kind: report(0.4) }).unwrap();
    h.dispatcher.flush().unwrap();
    let times: Vec<f64> = read_journal(&h.path).unwrap().iter().filter_map(Entry::time).collect();
    assert_eq!(times, [0.0, 0.0, 2.0, 2.0]);
    assert_eq!(h.dispatcher.finish(3.0).unwrap().trajectory, [(2.0, 0.5), (2.0, 0.4)]);
}

/// The class of the case above: many workers' reports and ends, each delivered up to a few
/// places behind its turn, for many seeds.
#[test]
fn the_time_of_events_delivered_out_of_order_never_goes_back() {
    use rand::RngExt;
    for seed in 0..50 {
        let mut rng = crate::derive_rng(seed, "out-of-order");
        let workers = rng.random_range(2..6);
        let mut h = Harness::new(workers, (0..workers).map(|i| start(0.1 * i as f64)).collect(), vec![]);
        h.dispatcher.fill(0.0).unwrap();
        // Each trial reports three epochs at increasing times, then completes.
        let mut events: Vec<(f64, Event)> = Vec::new();
        let mut time = 0.0;
        for epoch in 1..=3 {
            for trial_id in 0..workers as TrialId {
                time += rng.random_range(0.0..1.0);
                let metrics = [("epoch", f64::from(epoch)), ("loss", rng.random_range(0.0..1.0))].into();
                events.push((time, Event { time, trial_id, kind: EventKind::Report(metrics) }));
            }
        }
        for trial_id in 0..workers as TrialId {
            time += rng.random_range(0.0..1.0);
            events.push((time, Event { time, trial_id, kind: EventKind::Completed }));
        }
        // Delivered in the order of a time that lags by up to two events' spacing.
        for (key, _) in &mut events {
            *key += rng.random_range(0.0..2.0);
        }
        events.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, event) in events {
            h.dispatcher.handle(event).unwrap();
        }
        h.dispatcher.flush().unwrap();
        let times: Vec<f64> = read_journal(&h.path).unwrap().iter().filter_map(Entry::time).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "seed {seed}: journal times {times:?}");
        let trajectory = h.dispatcher.finish(time + 1.0).unwrap().trajectory;
        assert!(trajectory.windows(2).all(|w| w[0].0 <= w[1].0), "seed {seed}: {trajectory:?}");
    }
}

#[test]
fn a_bad_suggestion_ends_the_run_with_an_error_and_journals_nothing() {
    let mut h = Harness::new(1, vec![start(7.0)], vec![]);
    let error = h.dispatcher.fill(0.0).unwrap_err();
    assert!(matches!(error, TunerError::BadSuggestion { trial_id: 0, .. }), "{error}");
    assert!(error.to_string().contains("for trial 0"), "{error}");

    for (resume, expected) in [(5, "never started"), (0, "still running")] {
        let resume = Suggestion::Resume { trial_id: resume, config: config(0.5) };
        let mut h = Harness::new(2, vec![start(0.5), resume], vec![]);
        let error = h.dispatcher.fill(0.0).unwrap_err().to_string();
        assert!(error.contains(expected), "{error}");
        assert_eq!(h.journal(), ["start 0"]);
    }

    let donor = Suggestion::Start { config: config(0.5), checkpoint_from: Some(3) };
    let mut h = Harness::new(1, vec![donor], vec![]);
    assert!(h.dispatcher.fill(0.0).unwrap_err().to_string().contains("checkpoint of trial 3"));
    assert_eq!(h.journal(), Vec::<String>::new());
}

#[test]
fn a_scheduler_that_waits_with_nothing_running_has_stalled() {
    let mut h = Harness::new(2, vec![start(0.1)], vec![]);
    h.dispatcher.fill(0.0).unwrap();
    assert_eq!(h.dispatcher.busy_workers(), 1, "waiting with a trial running is not stalling");
    h.event(0, EventKind::Completed).unwrap();
    h.dispatcher.fill(1.0).unwrap();
    assert_eq!(h.dispatcher.busy_workers(), 0);
    let summary = h.dispatcher.finish(2.0).unwrap();
    assert_eq!((summary.reason, summary.trials, summary.no_report), (EndReason::Stalled, 1, 1));
}

#[test]
fn events_for_unknown_or_ended_trials_are_errors_and_late_reports_are_ignored() {
    let mut h = Harness::new(1, vec![start(0.1)], vec![]);
    assert!(matches!(h.event(0, EventKind::Completed), Err(TunerError::UnknownTrial(0))));
    h.dispatcher.fill(0.0).unwrap();
    assert!(matches!(h.event(7, EventKind::Paused), Err(TunerError::UnknownTrial(7))));
    h.event(0, EventKind::Completed).unwrap();
    assert!(matches!(h.event(0, EventKind::Failed("late".into())), Err(TunerError::EndedTwice(0))));
    h.report(0, 0.1); // crossed the end: ignored
    assert_eq!(h.journal(), ["start 0", "complete 0 no_report=true"]);
    assert_eq!(h.calls(), ["complete 0"]);
}

#[test]
fn a_trial_told_to_pause_that_completes_first_counts_as_paused() {
    let mut h = Harness::new(1, vec![start(0.1)], vec![Decision::Pause]);
    h.dispatcher.fill(0.0).unwrap();
    h.report(0, 0.5);
    assert_eq!(h.actions().decisions, [(0, Decision::Pause)]);
    assert_eq!(h.dispatcher.busy_workers(), 1, "pausing: still running");
    h.event(0, EventKind::Completed).unwrap();
    assert_eq!(h.progress(), (0, 0, 1, 0, 0));
    assert_eq!(h.journal(), ["start 0", "report 0 PAUSE", "paused 0"]);
    assert_eq!(h.calls(), ["report 0"], "a paused trial is not completed for the scheduler");
}

#[test]
fn a_resume_asked_while_the_pause_is_under_way_waits_for_it_and_holds_a_worker() {
    let resume = Suggestion::Resume { trial_id: 0, config: config(0.9) };
    let mut h = Harness::new(2, vec![start(0.1), Suggestion::Wait, resume, start(0.2)], vec![Decision::Pause]);
    h.dispatcher.fill(0.0).unwrap();
    h.actions();
    h.report(0, 0.5);
    h.dispatcher.fill(1.0).unwrap();
    let actions = h.actions();
    assert_eq!(starts(&actions), [], "the resume waits for the pause; its worker is held");
    assert_eq!(h.dispatcher.busy_workers(), 2);
    h.event(0, EventKind::Completed).unwrap(); // the pause raced completion
    assert_eq!(starts(&h.actions()), [(0, true)]);
    assert_eq!(h.dispatcher.busy_workers(), 1);
    h.dispatcher.fill(2.0).unwrap();
    assert_eq!(starts(&h.actions()), [(1, false)]);
    assert_eq!(h.journal(), ["start 0", "report 0 PAUSE", "paused 0", "resume 0 x=0.9", "start 1"]);
}

#[test]
fn a_pending_resume_of_a_trial_that_stopped_instead_frees_its_worker() {
    let resume = Suggestion::Resume { trial_id: 0, config: config(0.9) };
    let mut h = Harness::new(2, vec![start(0.1), Suggestion::Wait, resume], vec![Decision::Pause]);
    h.dispatcher.fill(0.0).unwrap();
    h.report(0, 0.5);
    h.dispatcher.fill(1.0).unwrap();
    h.event(0, EventKind::Stopped).unwrap();
    assert_eq!(h.dispatcher.busy_workers(), 0);
    assert_eq!(h.journal(), ["start 0", "report 0 PAUSE", "stopped 0"]);
}

#[test]
fn a_stop_crossing_a_final_report_is_the_last_word() {
    let mut h = Harness::new(2, vec![start(0.1), start(0.2)], vec![Decision::Continue]);
    h.dispatcher.fill(0.0).unwrap();
    h.actions();
    h.report(0, 0.5);
    h.dispatcher.end(EndReason::Interrupted, 1.0).unwrap();
    assert_eq!(
        h.actions().decisions,
        [(0, Decision::Continue), (0, Decision::Stop), (1, Decision::Stop)],
        "the stop comes after the decision already due"
    );
    h.report(1, 0.1); // its final report crossed the stop
    h.event(1, EventKind::Completed).unwrap();
    h.event(0, EventKind::Stopped).unwrap();
    assert_eq!(h.progress(), (0, 0, 0, 2, 0));
    h.dispatcher.fill(1.0).unwrap();
    assert_eq!(starts(&h.actions()), [], "no new trial after the end");
    assert_eq!(h.calls(), ["report 0"], "the late report never reached the scheduler");
    let summary = h.dispatcher.finish(2.0).unwrap();
    assert_eq!(summary.reason, EndReason::Interrupted);
    assert_eq!(summary.best.unwrap().trial_id, 0, "the late report is not the incumbent");
}

#[test]
fn ending_drops_a_pending_resume() {
    let resume = Suggestion::Resume { trial_id: 0, config: config(0.9) };
    let mut h = Harness::new(2, vec![start(0.1), Suggestion::Wait, resume], vec![Decision::Pause]);
    h.dispatcher.fill(0.0).unwrap();
    h.report(0, 0.5);
    h.dispatcher.fill(1.0).unwrap();
    h.dispatcher.end(EndReason::MaxWallclock, 1.0).unwrap();
    h.event(0, EventKind::Paused).unwrap();
    assert_eq!(starts(&h.actions()), [(0, false)], "only the first start; no resume");
    assert_eq!(h.progress(), (0, 0, 1, 0, 0));
}

#[test]
fn a_report_without_the_metric_fails_the_trial_which_holds_its_worker_until_it_ends() {
    let mut h = Harness::new(1, vec![start(0.1)], vec![]);
    h.dispatcher.fill(0.0).unwrap();
    h.actions();
    h.event(0, EventKind::Report([("acc".to_owned(), 1.0)].into())).unwrap();
    assert_eq!(h.actions().decisions, [(0, Decision::Stop)]);
    assert_eq!(h.dispatcher.busy_workers(), 1, "the process still runs");
    assert_eq!(h.progress(), (1, 0, 0, 0, 1), "failed, and still holding its worker");
    h.event(0, EventKind::Stopped).unwrap();
    assert_eq!(h.actions().failures.len(), 1);
    assert_eq!(h.progress(), (0, 0, 0, 0, 1));
    assert_eq!(
        h.journal(),
        ["start 0", "report 0 STOP", "fail 0: report has no metric `loss` (it has: acc)"],
        "the failure is journaled where the trial ended"
    );
    assert_eq!(h.calls(), ["fail 0"]);
}

#[test]
fn criteria_end_the_run_and_failures_are_counted_from_the_table() {
    let mut h = Harness::new(2, vec![start(0.1), start(0.2)], vec![]);
    h.dispatcher.criteria = StopCriteria { max_failures: Some(2), ..StopCriteria::default() };
    h.dispatcher.fill(0.0).unwrap();
    h.event(0, EventKind::Failed("boom".into())).unwrap();
    h.dispatcher.check_criteria(1.0).unwrap();
    assert_eq!(h.dispatcher.progress(1.0).failed, 1);
    h.event(1, EventKind::Failed("boom".into())).unwrap();
    h.dispatcher.check_criteria(1.0).unwrap();
    assert_eq!(h.dispatcher.finish(1.0).unwrap().reason, EndReason::MaxFailures);
}

#[test]
fn going_on_after_the_driver_died_takes_up_every_trial_it_ran() {
    // Trial 0 runs (2 reports), 1 was told to stop, 2 to pause and then to resume, 3 failed
    // on a report without the metric: then the run died.
    let resume = Suggestion::Resume { trial_id: 2, config: config(0.9) };
    let decisions = vec![Decision::Continue, Decision::Continue, Decision::Stop, Decision::Pause];
    let suggestions = vec![start(0.1), start(0.2), start(0.3), start(0.4), Suggestion::Wait, resume];
    let mut h = Harness::new(5, suggestions, decisions);
    h.dispatcher.fill(0.0).unwrap();
    for (trial, epoch) in [(0, 1.0), (0, 2.0), (1, 1.0), (2, 1.0)] {
        let metrics = [("epoch".to_owned(), epoch), ("loss".to_owned(), 0.5)].into();
        h.event(trial, EventKind::Report(metrics)).unwrap();
    }
    h.event(3, EventKind::Report([("acc".to_owned(), 1.0)].into())).unwrap();
    h.dispatcher.fill(1.0).unwrap();
    assert_eq!(h.dispatcher.busy_workers(), 5, "2 holds a worker for its resume");
    h.actions();
    // Going on with 3 workers.
    h.dispatcher.relaunch_on_resume = true;
    h.dispatcher.go_on = Some((3, StopCriteria::default()));
    assert!(h.dispatcher.go_on_if_due(5.0).unwrap());
    let actions = h.actions();
    let launched: Vec<_> = actions.starts.iter().map(|s| (s.trial_id, s.resume, s.resource_done)).collect();
    assert_eq!(launched, [(0, true, Some(2.0)), (2, true, Some(1.0))], "0 relaunched; 2 resumed as asked");
    assert_eq!(actions.decisions, [], "nothing planned for the trials that died reaches the backend");
    assert_eq!(
        h.journal()[9..],
        [
            "continued workers=3",
            "resume 0 x=0.1",
            "stopped 1",
            "paused 2",
            "resume 2 x=0.9",
            "fail 3: report has no metric `loss` (it has: acc)"
        ]
    );
    assert_eq!(h.dispatcher.busy_workers(), 2);
    // Relaunched, trial 0 reports its first two epochs again: answered, not counted.
    for epoch in [1.0, 2.0, 3.0] {
        let metrics = [("epoch".to_owned(), epoch), ("loss".to_owned(), 0.4)].into();
        h.event(0, EventKind::Report(metrics)).unwrap();
    }
    let answers: Vec<_> = h.actions().decisions.iter().map(|(trial, d)| (*trial, *d)).collect();
    assert_eq!(answers, [(0, Decision::Continue); 3]);
    assert_eq!(h.journal().last().unwrap(), "report 0 CONTINUE");
    assert_eq!(h.journal().iter().filter(|l| *l == "report 0 CONTINUE").count(), 3, "epochs 1, 2 and 3 once each");
}

#[test]
fn a_preempted_trial_is_launched_again_and_is_no_failure() {
    let mut h = Harness::new(2, vec![start(0.1), start(0.2)], vec![]);
    h.dispatcher.criteria = StopCriteria { max_failures: Some(1), ..StopCriteria::default() };
    h.dispatcher.fill(0.0).unwrap();
    h.actions();
    h.report(0, 0.5);
    h.event(0, EventKind::Preempted).unwrap();
    h.dispatcher.check_criteria(1.0).unwrap();
    let again: Vec<_> = h.actions().starts.iter().map(|s| (s.trial_id, s.resume, s.resource_done, s.launch)).collect();
    assert_eq!(again, [(0, true, Some(1.0), 2)], "from its checkpoint, as its second launch");
    assert_eq!(h.progress(), (2, 0, 0, 0, 0), "running again; nothing failed");
    h.dispatcher.end(EndReason::MaxWallclock, 2.0).unwrap();
    h.event(1, EventKind::Preempted).unwrap();
    assert_eq!(starts(&h.actions()), [], "not launched again once the experiment ends");
    assert_eq!(
        h.journal(),
        [
            "start 0",
            "start 1",
            "report 0 CONTINUE",
            "preempted 0",
            "resume 0 x=0.1",
            "ending max_wallclock",
            "stopped 1"
        ]
    );
}

/// A backend that plays batches of events and records what it was asked to do.
#[derive(Default)]
struct ScriptedBackend {
    /// Batches it has at once (`events_so_far`), one per call, before those it waits for.
    at_once: VecDeque<Vec<Event>>,
    batches: VecDeque<Vec<Event>>,
    calls: Calls,
    /// A start that never returns (a cluster's scheduler that does not answer).
    hang_on_start: Option<TrialId>,
}

#[async_trait]
impl Backend for ScriptedBackend {
    async fn start(&mut self, trial: TrialStart) -> Result<(), BackendError> {
        self.calls.lock().unwrap().push(format!("start {}", trial.trial_id));
        if self.hang_on_start == Some(trial.trial_id) {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn decide(&mut self, trial_id: TrialId, decision: Decision) -> Result<(), BackendError> {
        self.calls.lock().unwrap().push(format!("{} {trial_id}", decision.as_str()));
        Ok(())
    }

    async fn next_events(&mut self, out: &mut Vec<Event>) -> Result<(), BackendError> {
        match self.batches.pop_front() {
            Some(batch) => out.extend(batch),
            None => std::future::pending().await,
        }
        Ok(())
    }

    fn events_so_far(&mut self, out: &mut Vec<Event>) -> Result<(), BackendError> {
        out.extend(self.at_once.pop_front().unwrap_or_default());
        Ok(())
    }

    fn now(&self) -> f64 {
        0.0
    }
}

fn report(trial_id: TrialId) -> Event {
    Event { time: 0.0, trial_id, kind: EventKind::Report([("loss".to_owned(), 1.0)].into()) }
}

fn completed(trial_id: TrialId) -> Event {
    Event { time: 0.0, trial_id, kind: EventKind::Completed }
}

#[test]
fn events_the_backend_has_at_once_come_before_those_it_waits_for() {
    // Trial 0's events are there at once, trial 1's end only by waiting: a tuner that waited
    // first would take trial 1's end before trial 1 started.
    let backend = ScriptedBackend {
        at_once: [vec![report(0), completed(0)]].into(),
        batches: [vec![completed(1)]].into(),
        ..ScriptedBackend::default()
    };
    let scheduler = Scripted { suggestions: [start(0.1), start(0.2)].into(), ..Scripted::default() };
    let tuner = Tuner::new(context(), Box::new(scheduler), Box::new(backend));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let summary = runtime.block_on(tuner.run()).unwrap();
    assert_eq!((summary.reason, summary.completed), (EndReason::Stalled, 2));
}

#[test]
fn the_loop_carries_out_decisions_before_starts_and_ends_when_no_trial_runs() {
    let backend_calls = Calls::default();
    let backend = ScriptedBackend {
        batches: [vec![report(0), completed(0)], vec![completed(1)]].into(),
        calls: Arc::clone(&backend_calls),
        ..ScriptedBackend::default()
    };
    let scheduler = Scripted { suggestions: [start(0.1), start(0.2)].into(), ..Scripted::default() };
    let tuner = Tuner::new(context(), Box::new(scheduler), Box::new(backend));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let summary = runtime.block_on(tuner.run()).unwrap();
    assert_eq!(*backend_calls.lock().unwrap(), ["start 0", "CONTINUE 0", "start 1"]);
    assert_eq!((summary.reason, summary.completed), (EndReason::Stalled, 2));
}

#[test]
fn the_loop_stops_every_trial_on_interrupt() {
    let backend_calls = Calls::default();
    let stopped = Event { time: 0.0, trial_id: 0, kind: EventKind::Stopped };
    let backend =
        ScriptedBackend { batches: [vec![stopped]].into(), calls: Arc::clone(&backend_calls), ..Default::default() };
    let scheduler = Scripted { suggestions: [start(0.1)].into(), ..Scripted::default() };
    let tuner = Tuner::new(context(), Box::new(scheduler), Box::new(backend)).interrupt_on(async {});
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let summary = runtime.block_on(tuner.run()).unwrap();
    assert_eq!(*backend_calls.lock().unwrap(), ["start 0", "STOP 0"]);
    assert_eq!((summary.reason, summary.stopped), (EndReason::Interrupted, 1));
}

#[test]
fn an_interrupt_is_honoured_while_a_backend_call_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let backend_calls = Calls::default();
    let stopped = Event { time: 0.0, trial_id: 0, kind: EventKind::Stopped };
    let backend = ScriptedBackend {
        batches: [vec![stopped]].into(),
        calls: Arc::clone(&backend_calls),
        hang_on_start: Some(1),
        ..ScriptedBackend::default()
    };
    let scheduler = Scripted { suggestions: [start(0.1), start(0.2)].into(), ..Scripted::default() };
    let tuner = Tuner::new(context(), Box::new(scheduler), Box::new(backend))
        .workers(2)
        .journal(Journal::create(&path, "test", serde_json::json!({})).unwrap())
        .interrupt_on(async { tokio::time::sleep(std::time::Duration::from_millis(50)).await });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let summary = runtime.block_on(tuner.run()).unwrap();
    assert_eq!(*backend_calls.lock().unwrap(), ["start 0", "start 1", "STOP 0"]);
    assert_eq!((summary.reason, summary.stopped, summary.failed), (EndReason::Interrupted, 1, 1));
    let entries = read_journal(&path).unwrap();
    assert!(
        entries.iter().any(|e| matches!(e, Entry::Fail { trial: 1, error, .. } if error.contains("not started"))),
        "{entries:?}"
    );
}
