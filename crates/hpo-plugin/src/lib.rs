#![warn(missing_docs)]
//! Scheduler plugins: schedulers from outside the `hpo` binary, speaking the scheduler
//! protocol (`docs/protocol.md`) over one of two transports.
//!
//! - **Dynamic libraries**: a `cdylib` crate implements [`hpo_core::Scheduler`] and calls
//!   [`export_scheduler!`]. The boundary is a small C ABI passing protocol messages as bytes
//!   (see [`abi`]): no Rust trait objects cross it, so host and plugin may come from different
//!   compilers and allocators; the protocol version is checked at load; panics are caught
//!   inside the plugin and answered as errors; a loaded library is never unloaded.
//!   In an experiment file: `[scheduler] type = "plugin", path = "...", config = {...}`.
//! - **Processes** in any language reading requests on stdin and answering on stdout:
//!   `[scheduler] type = "process", command = [...], config = {...}`.
//!
//! Either way the host side is a [`RemoteScheduler`]: a bad single answer counts as `wait`
//! (or `continue`); a plugin that dies, hangs or keeps answering garbage fails the experiment
//! cleanly with an error naming it.

pub mod abi;
mod host;
pub mod sdk;

pub use host::{
    DylibTransport, PluginError, PluginScheduler, ProcessScheduler, ProcessTransport, RemoteScheduler, Transport,
    is_library_path,
};
