//! Built-in searchers and schedulers. Each is a named, serializable type: the name after
//! `type =` in an experiment file's `[searcher]` or `[scheduler]` table.
//!
//! | name | kind | what it does |
//! | --- | --- | --- |
//! | `random` | searcher | independent samples; `points_to_evaluate` first |
//! | `grid` | searcher | every grid point once, then done |
//! | `fifo` | scheduler | runs every trial to its end; configs from its searcher |

mod fifo;
mod grid;
mod random;

pub use fifo::Fifo;
pub use grid::GridSearcher;
pub use random::RandomSearcher;

/// Makes sure the registrations of this crate are linked into a binary that only names
/// them in experiment files (the linker may otherwise drop an unreferenced crate).
pub fn register() {}
