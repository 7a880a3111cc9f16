//! The C ABI between host and plugin library. Every call passes UTF-8 protocol messages as
//! bytes; a buffer a plugin returns is freed by the plugin (`hpo_plugin_free`), never by the
//! host's allocator.
//!
//! | symbol | signature |
//! | --- | --- |
//! | `hpo_plugin_protocol` | `extern "C" fn() -> u32` (the protocol version) |
//! | `hpo_plugin_create` | `extern "C" fn() -> *mut c_void` (a scheduler session) |
//! | `hpo_plugin_call` | `extern "C" fn(*mut c_void, *const u8, usize) -> Buffer` (one request line in, one answer line out) |
//! | `hpo_plugin_free` | `extern "C" fn(Buffer)` |
//! | `hpo_plugin_destroy` | `extern "C" fn(*mut c_void)` |

use std::ffi::c_void;

/// Bytes owned by the side that allocated them.
#[repr(C)]
#[derive(Debug)]
pub struct Buffer {
    /// The first byte (null for no bytes).
    pub ptr: *mut u8,
    /// Bytes in use.
    pub len: usize,
    /// Bytes allocated (to give the allocation back as it was made).
    pub cap: usize,
}

/// `hpo_plugin_protocol`: the protocol version the plugin speaks.
pub type ProtocolFn = unsafe extern "C" fn() -> u32;
/// `hpo_plugin_create`: a new session (null if none could be made).
pub type CreateFn = unsafe extern "C" fn() -> *mut c_void;
/// `hpo_plugin_call`: one request line in, one answer line out (freed with `FreeFn`).
pub type CallFn = unsafe extern "C" fn(*mut c_void, *const u8, usize) -> Buffer;
/// `hpo_plugin_free`: gives an answer buffer back to the plugin's allocator.
pub type FreeFn = unsafe extern "C" fn(Buffer);
/// `hpo_plugin_destroy`: ends a session.
pub type DestroyFn = unsafe extern "C" fn(*mut c_void);
