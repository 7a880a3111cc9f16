//! The plugin side: what [`export_scheduler!`](crate::export_scheduler) expands to.
#![allow(unsafe_code)] // the C ABI: raw pointers from the host, checked at each use below

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use hpo_core::{Scheduler, SchedulerServer};
use serde::de::DeserializeOwned;

use crate::abi::Buffer;

/// Exports a scheduler type from a `cdylib` as an hpo plugin. The type is built from the
/// `config` table of the experiment's `[scheduler]` (with serde), so it needs
/// `Deserialize` as well as [`hpo_core::Scheduler`]:
///
/// ```ignore
/// hpo_plugin::export_scheduler!(my_crate::TopK);
/// ```
#[macro_export]
macro_rules! export_scheduler {
    ($ty:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn hpo_plugin_protocol() -> u32 {
            $crate::sdk::protocol()
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn hpo_plugin_create() -> *mut ::std::ffi::c_void {
            $crate::sdk::create::<$ty>()
        }

        /// # Safety
        /// `session` comes from `hpo_plugin_create`; `request` points to `len` readable bytes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn hpo_plugin_call(
            session: *mut ::std::ffi::c_void,
            request: *const u8,
            len: usize,
        ) -> $crate::abi::Buffer {
            unsafe { $crate::sdk::call(session, request, len) }
        }

        /// # Safety
        /// `buffer` was returned by `hpo_plugin_call` and is freed once.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn hpo_plugin_free(buffer: $crate::abi::Buffer) {
            unsafe { $crate::sdk::free(buffer) }
        }

        /// # Safety
        /// `session` comes from `hpo_plugin_create` and is destroyed once.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn hpo_plugin_destroy(session: *mut ::std::ffi::c_void) {
            unsafe { $crate::sdk::destroy(session) }
        }
    };
}

/// The protocol version this SDK speaks.
pub fn protocol() -> u32 {
    hpo_core::PROTOCOL_VERSION
}

/// A protocol session serving `T`, built from `init`'s `scheduler` table.
pub fn create<T: Scheduler + DeserializeOwned + 'static>() -> *mut c_void {
    let server = SchedulerServer::with_factory(Box::new(|table| {
        let scheduler: T = serde_json::from_value(table).map_err(|e| hpo_core::SetupError(e.to_string()))?;
        Ok(Box::new(scheduler) as Box<dyn Scheduler>)
    }));
    Box::into_raw(Box::new(server)).cast()
}

/// Answers one request; a panic becomes an error answer and never crosses the boundary.
///
/// # Safety
/// `session` comes from [`create`]; `request` points to `len` readable bytes.
pub unsafe fn call(session: *mut c_void, request: *const u8, len: usize) -> Buffer {
    let answer = if session.is_null() || request.is_null() {
        r#"{"error":"the host passed a null pointer"}"#.to_owned()
    } else {
        // SAFETY: the host passes the session it created and a live request buffer.
        let server = unsafe { &mut *session.cast::<SchedulerServer>() };
        let bytes = unsafe { std::slice::from_raw_parts(request, len) };
        catch_unwind(AssertUnwindSafe(|| match std::str::from_utf8(bytes) {
            Ok(line) => server.handle_line(line).0,
            Err(_) => r#"{"error":"the request is not UTF-8"}"#.to_owned(),
        }))
        .unwrap_or_else(|payload| {
            let message = hpo_core::panic_message(payload.as_ref());
            serde_json::json!({ "error": format!("the plugin panicked: {message}") }).to_string()
        })
    };
    let mut bytes = std::mem::ManuallyDrop::new(answer.into_bytes());
    Buffer { ptr: bytes.as_mut_ptr(), len: bytes.len(), cap: bytes.capacity() }
}

/// Frees an answer buffer with the plugin's own allocator.
///
/// # Safety
/// `buffer` was returned by [`call`] and is freed once.
pub unsafe fn free(buffer: Buffer) {
    if !buffer.ptr.is_null() {
        // SAFETY: the parts come from a Vec this library leaked in `call`.
        drop(unsafe { Vec::from_raw_parts(buffer.ptr, buffer.len, buffer.cap) });
    }
}

/// Ends a session.
///
/// # Safety
/// `session` comes from [`create`] and is destroyed once.
pub unsafe fn destroy(session: *mut c_void) {
    if !session.is_null() {
        // SAFETY: the pointer comes from Box::into_raw in `create`.
        drop(unsafe { Box::from_raw(session.cast::<SchedulerServer>()) });
    }
}

#[cfg(test)]
mod tests {
    use hpo_core::{Context, Decision, Report, SetupError, Suggestion, TrialId};
    use serde::{Deserialize, Serialize};

    use super::*;

    /// A scheduler that panics when asked for a suggestion.
    #[derive(Serialize, Deserialize)]
    struct Panicky;

    #[typetag::serde(name = "panicky")]
    impl Scheduler for Panicky {
        fn init(&mut self, _: &Context) -> Result<(), SetupError> {
            Ok(())
        }
        fn suggest(&mut self, _: TrialId) -> Suggestion {
            panic!("out of ideas")
        }
        fn on_report(&mut self, _: &Report<'_>) -> Decision {
            Decision::Continue
        }
        fn on_complete(&mut self, _: TrialId) {}
        fn on_fail(&mut self, _: TrialId) {}
    }

    fn ask(session: *mut c_void, line: &str) -> String {
        // SAFETY: a live session and a live request buffer; the answer is freed once.
        unsafe {
            let buffer = call(session, line.as_ptr(), line.len());
            let answer = String::from_utf8_lossy(std::slice::from_raw_parts(buffer.ptr, buffer.len)).into_owned();
            free(buffer);
            answer
        }
    }

    #[test]
    fn a_panic_becomes_an_error_answer_and_the_session_goes_on() {
        let session = create::<Panicky>();
        let init = r#"{"op":"init","protocol":1,"space":{"x":{"uniform":[0,1]}},"metric":"loss","scheduler":null}"#;
        assert_eq!(ask(session, init), r#"{"name":"panicky","ok":true}"#);
        let answer = ask(session, r#"{"op":"suggest","trial_id":0}"#);
        assert!(answer.contains("the plugin panicked: out of ideas"), "{answer}");
        assert!(ask(session, r#"{"op":"close"}"#).contains("\"ok\":true"), "still serving");
        // SAFETY: created above, destroyed once.
        unsafe { destroy(session) };
    }
}
