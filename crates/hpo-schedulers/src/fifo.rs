use hpo_core::{Context, Decision, Report, Scheduler, Searcher, SetupError, Suggestion, TrialId};
use serde::{Deserialize, Serialize};

use crate::RandomSearcher;

/// First in, first out: starts whatever its searcher suggests and runs every trial to its
/// end. With the random searcher this is (asynchronous) random search.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fifo {
    #[serde(default = "default_searcher")]
    pub searcher: Box<dyn Searcher>,
}

pub(crate) fn default_searcher() -> Box<dyn Searcher> {
    Box::new(RandomSearcher::default())
}

/// A new trial with the searcher's next config, or done when it has none.
pub(crate) fn start_or_done(searcher: &mut dyn Searcher, trial_id: TrialId) -> Suggestion {
    match searcher.suggest(trial_id) {
        Some(config) => Suggestion::start(config),
        None => Suggestion::Done,
    }
}

/// Passes `decision` through, telling the searcher when it stops or pauses the trial.
pub(crate) fn notify_stop(searcher: &mut dyn Searcher, trial_id: TrialId, decision: Decision) -> Decision {
    if decision != Decision::Continue {
        searcher.on_stop(trial_id);
    }
    decision
}

impl Fifo {
    pub fn new(searcher: Box<dyn Searcher>) -> Self {
        Fifo { searcher }
    }
}

impl Default for Fifo {
    fn default() -> Self {
        Fifo::new(default_searcher())
    }
}

#[typetag::serde(name = "fifo")]
impl Scheduler for Fifo {
    fn init(&mut self, ctx: &Context) -> Result<(), SetupError> {
        self.searcher.init(ctx)
    }

    fn suggest(&mut self, trial_id: TrialId) -> Suggestion {
        start_or_done(self.searcher.as_mut(), trial_id)
    }

    fn on_report(&mut self, report: &Report<'_>) -> Decision {
        self.searcher.on_report(report);
        Decision::Continue
    }

    fn on_complete(&mut self, trial_id: TrialId) {
        self.searcher.on_complete(trial_id);
    }

    fn on_fail(&mut self, trial_id: TrialId) {
        self.searcher.on_fail(trial_id);
    }
}
