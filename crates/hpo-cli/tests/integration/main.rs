//! Integration tests of the `hpo` binary, run as a user runs it: one test binary (one link,
//! one process to start), a module per area.

mod common;

mod cli;
mod conditional;
mod dashboard;
mod faults;
mod objectives;
mod plugins;
mod process;
mod resume;
mod schedulers;
mod simulate;
mod slurm;
