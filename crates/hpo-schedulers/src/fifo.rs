use hpo_core::{Context, Decision, Report, Scheduler, Searcher, SetupError, Suggestion, TrialId};
use serde::{Deserialize, Serialize};

use crate::RandomSearcher;
use crate::forward::{WithSearcher, searcher_events};

/// First in, first out: starts whatever its searcher suggests and runs every trial to its
/// end. With the random searcher this is (asynchronous) random search.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fifo {
    /// Where configs come from.
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

impl Fifo {
    /// FIFO over `searcher`.
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

    fn interrupts_trials(&self) -> bool {
        false
    }

    searcher_events!();
}

impl WithSearcher for Fifo {
    fn searcher(&mut self) -> &mut dyn Searcher {
        self.searcher.as_mut()
    }

    fn decide(&mut self, _report: &Report<'_>) -> Option<Decision> {
        Some(Decision::Continue)
    }
}
