//! The process-wide stop request (Ctrl-C, SIGTERM). A signal is process-wide, and so is this
//! flag: whoever takes the signal calls [`request`] at once, even while the tuner's thread is
//! blocked in a call that waits on something slow (a plugin process's answer). Such calls
//! check [`requested`] and give up waiting, and the tuner ends the experiment as
//! [`crate::EndReason::Interrupted`] once it sees the flag. The tuner's async waits are woken
//! by the future given to [`crate::Tuner::interrupt_on`].

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the process to stop; never undone.
pub fn request() {
    REQUESTED.store(true, Ordering::Relaxed);
}

/// Whether the process was asked to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}
