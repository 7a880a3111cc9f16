//! The thread backend: runs a Rust function per trial on N worker threads of this process.
//!
//! Reports are synchronous: [`Reporter::report`] hands the metrics to the tuner and returns
//! once the scheduler has decided, with `Err(Interrupted)` when the trial is to stop or
//! pause, so a training loop written with `?` ends exactly where the scheduler said. Under a
//! scheduler that never stops or pauses trials (FIFO) it returns at once (unless the trial is
//! 256 reports ahead of the tuner: then it waits for the tuner to catch up), and a stop sent
//! later (the experiment ending) is returned by the next report.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering, fence};
use std::sync::{Arc, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use hpo_core::{
    Backend, BackendError, Config, Decision, Event, EventKind, Metrics, Symbol, TrialId, TrialStart, async_trait,
    derive_seed,
};
use rustc_hash::FxHashMap;
use tokio::sync::Notify;

use crate::checkpoint::first_checkpoint_dir;

/// What a trial function returns on failure: any error.
pub type TrialError = Box<dyn std::error::Error + Send + Sync>;

/// A trial function: trains with `trial.config`, reporting through `reporter`.
pub type TrialFn = dyn Fn(&TrialContext, &mut Reporter) -> Result<(), TrialError> + Send + Sync;

/// What a trial function knows about its trial.
#[derive(Clone, Debug)]
pub struct TrialContext {
    /// The trial's id.
    pub trial_id: TrialId,
    /// The trial's hyperparameters (shared with the tuner, read like a `Config`).
    pub config: Arc<Config>,
    /// A folder of this trial's own for checkpoints (kept across pause and resume), if the
    /// backend was given a trials folder. It exists when another trial's checkpoint was
    /// copied into it (PBT); otherwise create it when you first save
    /// (`std::fs::create_dir_all`), so a trial that saves nothing leaves no folder.
    pub checkpoint_dir: Option<PathBuf>,
    /// Whether the trial is being resumed after a pause.
    pub resume: bool,
    /// The resource reached before: by this trial before its pause, or by the trial whose
    /// checkpoint was copied into `checkpoint_dir`. `None` for a fresh start.
    pub resource_done: Option<f64>,
    /// A seed for the trial's own randomness, derived from the master seed and trial id.
    pub seed: u64,
}

/// Returned by [`Reporter::report`] when the scheduler stopped or paused the trial: let it
/// propagate with `?`; the backend knows it is not a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupted(pub Decision);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trial interrupted by the scheduler ({:?})", self.0)
    }
}

impl std::error::Error for Interrupted {}

const RUNNING: u8 = 0;
const AWAITING: u8 = 1;
const STOP: u8 = 2;
const PAUSE: u8 = 3;

/// The channel between the tuner and one trial's thread.
struct Control {
    state: AtomicU8,
    thread: OnceLock<Thread>,
}

impl Control {
    fn new() -> Control {
        Control { state: AtomicU8::new(RUNNING), thread: OnceLock::new() }
    }

    fn interrupted(state: u8) -> Option<Interrupted> {
        match state {
            STOP => Some(Interrupted(Decision::Stop)),
            PAUSE => Some(Interrupted(Decision::Pause)),
            _ => None,
        }
    }
}

/// A worker's way to the tuner: a ring of its own that the tuner takes events from without
/// ever blocking (while events come every few microseconds, it polls), and a bell the
/// workers ring only when the tuner said it sleeps. (A ring with one writer and one reader
/// hands an event over in about one cache line's move between cores, fewer than a channel
/// that any thread may use.)
struct ToTuner {
    events: rtrb::Producer<Event>,
    bell: Arc<Bell>,
}

#[derive(Default)]
struct Bell {
    /// Set by the tuner before it sleeps, and again checked for events after that.
    tuner_sleeps: AtomicBool,
    ring: Notify,
}

/// Events a worker sends before the tuner takes them: beyond these, the worker waits.
const EVENT_RING: usize = 256;

impl ToTuner {
    /// Sends the event, waiting while the ring is full (the tuner is behind); `Err` when the
    /// tuner is gone meanwhile. (A tuner that goes first tells every running trial to stop.)
    fn send(&mut self, mut event: Event) -> Result<(), ()> {
        while let Err(rtrb::PushError::Full(back)) = self.events.push(event) {
            event = back;
            self.bell.ring_if_asleep();
            let events = &self.events;
            let gone = wait_until(
                || {
                    let gone = events.is_abandoned();
                    (gone || !events.is_full()).then_some(gone)
                },
                Duration::from_millis(1),
            );
            if gone {
                return Err(());
            }
        }
        self.bell.ring_if_asleep();
        Ok(())
    }
}

impl Bell {
    /// Wakes the tuner if it sleeps. The fence orders what was sent before the look at
    /// `tuner_sleeps`, as the tuner orders its `tuner_sleeps` before its last look for
    /// events: either this sees it sleep, or it sees the event. A ring that finds nobody
    /// waiting is kept for the next sleep, which then only looks again.
    fn ring_if_asleep(&self) {
        fence(Ordering::SeqCst);
        if self.tuner_sleeps.load(Ordering::Relaxed) {
            self.ring.notify_one();
        }
    }
}

/// Hands a trial's metrics to the tuner and brings back the scheduler's decision.
pub struct Reporter {
    trial_id: TrialId,
    control: Arc<Control>,
    await_decisions: bool,
    to_tuner: ToTuner,
    clock: Instant,
}

impl Reporter {
    /// Reports metrics (e.g. `[("epoch", 3.0), ("val_loss", 0.2)]`) and waits for the
    /// decision: `Ok` to go on, `Err(Interrupted)` to end the trial now.
    pub fn report<K: AsRef<str>>(&mut self, metrics: impl IntoIterator<Item = (K, f64)>) -> Result<(), Interrupted> {
        let metrics: Metrics = metrics.into_iter().map(|(k, v)| (Symbol::new(k.as_ref()), v)).collect();
        let next = if self.await_decisions { AWAITING } else { RUNNING };
        if let Err(state) = self.control.state.compare_exchange(RUNNING, next, Ordering::AcqRel, Ordering::Acquire) {
            return Err(Control::interrupted(state).unwrap_or(Interrupted(Decision::Stop)));
        }
        let event = Event {
            time: self.clock.elapsed().as_secs_f64(),
            trial_id: self.trial_id,
            kind: EventKind::Report(metrics),
        };
        if self.to_tuner.send(event).is_err() {
            return Err(Interrupted(Decision::Stop)); // the tuner is gone
        }
        if !self.await_decisions {
            return Ok(());
        }
        let state = wait_while_awaiting(&self.control.state);
        Control::interrupted(state).map_or(Ok(()), Err)
    }

    /// Whether the trial has been asked to stop or pause (without reporting).
    pub fn interrupted(&self) -> bool {
        Control::interrupted(self.control.state.load(Ordering::Acquire)).is_some()
    }
}

/// Waits for the tuner's answer (it unparks the trial's thread when it decides).
fn wait_while_awaiting(state: &AtomicU8) -> u8 {
    let answer = || Some(state.load(Ordering::Acquire)).filter(|&s| s != AWAITING);
    wait_until(answer, Duration::from_millis(50))
}

/// Waits until `ready` gives an answer: polls for a while, then parks `nap` at a time (or
/// until unparked) and looks again.
fn wait_until<T>(mut ready: impl FnMut() -> Option<T>, nap: Duration) -> T {
    if let Some(x) = poll_briefly(&mut ready) {
        return x;
    }
    loop {
        thread::park_timeout(nap);
        if let Some(x) = ready() {
            return x;
        }
    }
}

/// Polls `ready` while an answer from another thread is likely to be on its way: spinning
/// for a few microseconds (a handoff between running threads takes well under one), then
/// yielding the core a number of times (the answering thread may need it), then `None`: block.
fn poll_briefly<T>(mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let mut spin_until = None; // the clock is read only if the answer takes a while
    loop {
        for _ in 0..64 {
            if let Some(x) = ready() {
                return Some(x);
            }
            std::hint::spin_loop();
        }
        let now = Instant::now();
        if now >= *spin_until.get_or_insert(now + SPIN) {
            break;
        }
    }
    for _ in 0..YIELDS_BEFORE_BLOCKING {
        if let Some(x) = ready() {
            return Some(x);
        }
        thread::yield_now();
    }
    ready()
}

/// How long a thread waiting for another spins before it yields.
const SPIN: Duration = Duration::from_micros(5);

/// How often a thread waiting for another yields its core before it blocks. Answers usually
/// come within microseconds, sooner than a blocked thread could be woken.
const YIELDS_BEFORE_BLOCKING: u32 = 100;

struct Job {
    context: TrialContext,
    control: Arc<Control>,
    await_decisions: bool,
    /// A checkpoint folder to copy into the trial's own before it starts (PBT's exploit).
    copy_from: Option<PathBuf>,
}

/// Address space a worker thread takes: its stack (Rust's default, 2 MiB) and a margin for
/// its guard page, signal stack and thread-local data.
const THREAD_ADDRESS_SPACE: u64 = 2 * 1024 * 1024 + 256 * 1024;
/// Address space kept for everything else once the workers run (allocations, the runtime).
const ADDRESS_SPACE_RESERVE: u64 = 64 * 1024 * 1024;

/// Refuses `workers` threads that the process's address-space limit (`ulimit -v`) cannot
/// hold. Near the limit, a thread may start and then fail to map its signal stack, which the
/// standard library can only report by panicking inside it: so the sum is checked first.
fn check_address_space(workers: usize) -> Result<(), BackendError> {
    use nix::sys::resource::{Resource, getrlimit};
    let Ok((limit, _)) = getrlimit(Resource::RLIMIT_AS) else { return Ok(()) };
    // The current size, from Linux's /proc (elsewhere nothing is checked).
    let Some(used) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
    // 4 KiB pages: larger ones only make the check lenient
    else {
        return Ok(());
    };
    let needed = workers as u64 * THREAD_ADDRESS_SPACE;
    let free = limit.saturating_sub(used).saturating_sub(ADDRESS_SPACE_RESERVE);
    if limit != nix::sys::resource::RLIM_INFINITY && needed > free {
        return Err(BackendError(format!(
            "cannot start worker threads: {workers} need about {} MB of address space and this process's limit \
             (ulimit -v) leaves about {} MB",
            needed >> 20,
            free >> 20
        )));
    }
    Ok(())
}

/// Runs trial functions on worker threads.
pub struct ThreadBackend {
    jobs: Option<crossbeam_channel::Sender<Job>>,
    /// Each worker's events.
    events: Vec<rtrb::Consumer<Event>>,
    bell: Arc<Bell>,
    controls: FxHashMap<TrialId, Arc<Control>>,
    /// Controls of ended trials, to be used again: one allocated here and freed on a worker's
    /// thread would cost both threads' allocators.
    spare_controls: Vec<Arc<Control>>,
    clock: Instant,
    trials_dir: Option<PathBuf>,
    seed: u64,
}

impl ThreadBackend {
    /// `workers` threads running `trial_fn`. Give the tuner the same number of workers. A
    /// thread the system will not start is an error (and the ones started end again).
    pub fn new(
        workers: usize,
        trial_fn: impl Fn(&TrialContext, &mut Reporter) -> Result<(), TrialError> + Send + Sync + 'static,
    ) -> Result<ThreadBackend, BackendError> {
        check_address_space(workers.max(1))?;
        let trial_fn: Arc<TrialFn> = Arc::new(trial_fn);
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job>();
        let bell = Arc::new(Bell::default());
        let clock = Instant::now();
        let mut events = Vec::new();
        for i in 0..workers.max(1) {
            let jobs = job_rx.clone();
            let (event_tx, event_rx) = rtrb::RingBuffer::new(EVENT_RING);
            let to_tuner = ToTuner { events: event_tx, bell: Arc::clone(&bell) };
            let trial_fn = Arc::clone(&trial_fn);
            thread::Builder::new()
                .name(format!("hpo-worker-{i}"))
                .spawn(move || worker(&jobs, to_tuner, &*trial_fn, clock))
                .map_err(|e| BackendError(format!("cannot start worker thread {} of {workers}: {e}", i + 1)))?;
            events.push(event_rx);
        }
        Ok(ThreadBackend {
            jobs: Some(job_tx),
            events,
            bell,
            controls: FxHashMap::default(),
            spare_controls: Vec::new(),
            clock,
            trials_dir: None,
            seed: 0,
        })
    }

    /// Gives every trial a checkpoint folder `<dir>/<trial_id>/checkpoints`.
    pub fn trials_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.trials_dir = Some(dir.into());
        self
    }

    /// The master seed from which each trial's own seed is derived.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Takes the events sent so far, in time order; `Err` when every worker has exited.
    fn drain(&mut self, out: &mut Vec<Event>) -> Result<(), BackendError> {
        let before = out.len();
        let (mut exited, mut senders) = (0, 0);
        for events in &mut self.events {
            // Looked at before the events, so that none sent before the worker exited is missed.
            exited += usize::from(events.is_abandoned());
            let had = out.len();
            while let Ok(event) = events.pop() {
                if !matches!(event.kind, EventKind::Report(_))
                    && let Some(control) = self.controls.remove(&event.trial_id)
                {
                    self.spare_controls.push(control);
                }
                out.push(event);
            }
            senders += usize::from(out.len() > had);
        }
        if senders > 1 {
            // Each worker's events are in order; those of several, merged by time (stable).
            out[before..].sort_by(|a, b| a.time.total_cmp(&b.time));
        }
        if exited == self.events.len() && out.len() == before {
            return Err(BackendError("every worker thread has exited".into()));
        }
        Ok(())
    }

    /// A control for a new trial: that of an ended trial if there is one (its worker let go
    /// of it before saying the trial ended).
    fn new_control(&mut self) -> Arc<Control> {
        if let Some(mut spare) = self.spare_controls.pop()
            && let Some(control) = Arc::get_mut(&mut spare)
        {
            *control = Control::new();
            return spare;
        }
        Arc::new(Control::new())
    }
}

fn worker(jobs: &crossbeam_channel::Receiver<Job>, to_tuner: ToTuner, trial_fn: &TrialFn, clock: Instant) {
    // Rung once `run_jobs` has dropped this worker's ring (even by a panic): a tuner asleep
    // must learn that the worker may have exited.
    let _ring = RingOnDrop(Arc::clone(&to_tuner.bell));
    run_jobs(jobs, to_tuner, trial_fn, clock);
}

fn run_jobs(jobs: &crossbeam_channel::Receiver<Job>, to_tuner: ToTuner, trial_fn: &TrialFn, clock: Instant) {
    // The reporter's control between trials, so that the tuner can use a trial's again.
    let no_trial = Arc::new(Control::new());
    // One reporter per worker, handed from trial to trial.
    let mut reporter =
        Reporter { trial_id: 0, control: Arc::clone(&no_trial), await_decisions: false, to_tuner, clock };
    while let Some(Job { context, control, await_decisions, copy_from }) = next_job(jobs) {
        if await_decisions {
            let _ = control.thread.set(thread::current()); // to be woken by the decision
        }
        let trial_id = context.trial_id;
        (reporter.trial_id, reporter.control, reporter.await_decisions) = (trial_id, control, await_decisions);
        // Only a copy needs the folder now; a trial creates it when it first saves.
        let prepared = match &context.checkpoint_dir {
            Some(dir) if !context.resume => first_checkpoint_dir(dir, copy_from.as_deref()).map_err(TrialError::from),
            _ => Ok(()),
        };
        let outcome = prepared.and_then(|()| {
            catch_unwind(AssertUnwindSafe(|| trial_fn(&context, &mut reporter)))
                .unwrap_or_else(|p| Err(panic_message(&*p).into()))
        });
        reporter.control = Arc::clone(&no_trial);
        let kind = match outcome {
            Ok(()) => EventKind::Completed,
            Err(e) => match e.downcast_ref::<Interrupted>() {
                Some(Interrupted(Decision::Pause)) => EventKind::Paused,
                Some(_) => EventKind::Stopped,
                None => EventKind::Failed(e.to_string()),
            },
        };
        let event = Event { time: clock.elapsed().as_secs_f64(), trial_id, kind };
        if reporter.to_tuner.send(event).is_err() {
            return;
        }
    }
}

/// Rings the bell when dropped.
struct RingOnDrop(Arc<Bell>);

impl Drop for RingOnDrop {
    fn drop(&mut self) {
        self.0.ring.notify_one();
    }
}

/// The tuner sleeping on the bell, until dropped.
struct Asleep<'a>(&'a Bell);

impl<'a> Asleep<'a> {
    fn new(bell: &'a Bell) -> Asleep<'a> {
        bell.tuner_sleeps.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst); // before the tuner's last look for events: see `Bell::ring_if_asleep`
        Asleep(bell)
    }
}

impl Drop for Asleep<'_> {
    fn drop(&mut self) {
        self.0.tuner_sleeps.store(false, Ordering::Relaxed);
    }
}

/// The next trial to run, or `None` when the backend is gone. Polls with yields for a
/// while before blocking: when trials take microseconds, the next one arrives sooner than a
/// sleeping thread could be woken.
fn next_job(jobs: &crossbeam_channel::Receiver<Job>) -> Option<Job> {
    match poll_briefly(|| match jobs.try_recv() {
        Err(crossbeam_channel::TryRecvError::Empty) => None,
        received => Some(received.ok()),
    }) {
        Some(job) => job,
        None => jobs.recv().ok(),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    format!("the trial function panicked: {}", hpo_core::panic_message(payload))
}

#[async_trait]
impl Backend for ThreadBackend {
    async fn start(&mut self, trial: TrialStart) -> Result<(), BackendError> {
        let control = self.new_control();
        self.controls.insert(trial.trial_id, Arc::clone(&control));
        let context = TrialContext {
            trial_id: trial.trial_id,
            checkpoint_dir: self.checkpoint_dir(trial.trial_id),
            config: trial.config,
            resume: trial.resume,
            resource_done: trial.resource_done,
            seed: derive_seed(self.seed, "trial").wrapping_add(trial.trial_id),
        };
        let jobs = self.jobs.as_ref().ok_or_else(|| BackendError("the thread backend is shut down".into()))?;
        let copy_from = trial.checkpoint_from.and_then(|from| self.checkpoint_dir(from));
        jobs.send(Job { context, control, await_decisions: trial.await_decisions, copy_from })
            .map_err(|_| BackendError("every worker thread has exited".into()))
    }

    async fn decide(&mut self, trial_id: TrialId, decision: Decision) -> Result<(), BackendError> {
        if let Some(control) = self.controls.get(&trial_id) {
            match decision {
                // Only a trial waiting for its answer goes on (and is woken): one that did not
                // wait is running.
                Decision::Continue => {
                    if control.state.compare_exchange(AWAITING, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_err() {
                        return Ok(());
                    }
                }
                Decision::Stop => control.state.store(STOP, Ordering::Release),
                Decision::Pause => control.state.store(PAUSE, Ordering::Release),
            }
            if let Some(thread) = control.thread.get() {
                thread.unpark();
            }
        }
        Ok(())
    }

    async fn next_events(&mut self, out: &mut Vec<Event>) -> Result<(), BackendError> {
        let before = out.len();
        // Trials of a few microseconds answer before a thread could go to sleep and wake up:
        // poll briefly before sleeping.
        let polled = poll_briefly(|| match self.drain(out) {
            Ok(()) if out.len() == before => None,
            done => Some(done),
        });
        if let Some(done) = polled {
            return done;
        }
        let bell = Arc::clone(&self.bell);
        let _awake_again = Asleep::new(&bell); // also when this future is dropped
        loop {
            self.drain(out)?; // a last look, after saying it sleeps
            if out.len() > before {
                return Ok(());
            }
            bell.ring.notified().await;
        }
    }

    fn events_so_far(&mut self, out: &mut Vec<Event>) -> Result<(), BackendError> {
        self.drain(out)
    }

    fn now(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    fn runs_in_process(&self) -> bool {
        true
    }

    fn checkpoint_dir(&self, trial_id: TrialId) -> Option<PathBuf> {
        self.trials_dir.as_ref().map(|d| d.join(trial_id.to_string()).join("checkpoints"))
    }
}

impl Drop for ThreadBackend {
    /// Asks every trial still running to stop and lets the workers exit.
    fn drop(&mut self) {
        for control in self.controls.values() {
            control.state.store(STOP, Ordering::Release);
            if let Some(thread) = control.thread.get() {
                thread.unpark();
            }
        }
        self.jobs = None;
    }
}
