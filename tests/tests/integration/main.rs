//! Workspace integration tests: hpo used through its public API, as a user would. One test
//! binary, a module per area.

mod common;

mod experiment;
mod readme;
mod schedulers;
mod searchers;
mod simulator;
mod tuner;
