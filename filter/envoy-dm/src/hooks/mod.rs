//! The event hooks Envoy resolves by name in the module (`envoy_dynamic_module_on_*`). Each turns
//! Envoy's pointers back into our objects, runs the module's code inside the panic barrier, and
//! fails the stream closed when that code panics.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void};
use std::sync::{Arc, OnceLock};

use crate::abi::{self, ConfigModulePtr};
use crate::barrier;
use crate::filter::{HttpFilterConfig, NewConfig};
use crate::http::{CalloutFailure, CalloutResponse};
use crate::log::{self, Level};
use crate::scheduler::Waker;
use crate::stream::copy_headers;

mod config;
mod stream;

static NEW_CONFIG: OnceLock<NewConfig> = OnceLock::new();

/// The body of `envoy_dynamic_module_on_program_init`, which [`crate::module!`] exports: remembers
/// how the module makes its configurations and tells Envoy which ABI it speaks.
pub fn program_init(new_config: NewConfig) -> *const c_char {
    // Envoy loads a module once per process; a second registration could only repeat the first.
    let _ = NEW_CONFIG.set(new_config);
    // Panics go to Envoy's log as one line, instead of stderr with a backtrace that would stall the
    // worker while it is symbolised. The hook is this module's own: every module has its own std.
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        log::log(
            Level::Error,
            &format!(
                "module panicked{place}: {}",
                barrier::payload_message(info.payload())
            ),
        );
    }));
    abi::ABI_VERSION.as_ptr()
}

/// Our object for one filter configuration, behind Envoy's `filter_config_module_ptr`.
struct ConfigSlot {
    config: Arc<dyn HttpFilterConfig>,
    waker: Option<Waker>,
}

fn report_panic(what: &str, message: &str) {
    log::log(Level::Error, &format!("{what} failed: {message}"));
}

/// Frees one of our objects Envoy is done with. Its waker goes quiet first, so that no thread reaches
/// it afterwards; then the module's own state is dropped inside the barrier.
///
/// # Safety
/// `ptr` is null or came from `Box::<T>::into_raw`, and is freed once.
unsafe fn destroy<T>(ptr: *const c_void, what: &str, waker: impl FnOnce(&T) -> Option<Waker>) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: the caller vouches that `ptr` is a boxed `T` nobody frees again.
    let slot = unsafe { Box::from_raw(ptr.cast::<T>().cast_mut()) };
    if let Some(waker) = waker(&slot) {
        waker.close();
    }
    if let Err(panic) = barrier::catch(move || drop(slot)) {
        report_panic(what, &panic);
    }
}

/// # Safety
/// `module` is a live configuration from `config_new`.
unsafe fn config_of<'a>(module: ConfigModulePtr) -> Option<&'a ConfigSlot> {
    // SAFETY: Envoy passes the pointer `config_new` returned until it calls `config_destroy`.
    unsafe { module.cast::<ConfigSlot>().as_ref() }
}

/// A callout's answer copied out of Envoy's arrays.
///
/// # Safety
/// The arrays are null or valid for their sizes during the call.
unsafe fn callout_answer(
    result: abi::CalloutResult,
    headers: *const abi::EnvoyHttpHeader,
    headers_size: usize,
    body_chunks: *const abi::EnvoyBuffer,
    body_chunks_size: usize,
) -> Result<CalloutResponse, CalloutFailure> {
    if result != abi::CALLOUT_SUCCESS {
        return Err(CalloutFailure::from_abi(result));
    }
    // SAFETY: the caller vouches for the arrays and the buffers they point to.
    unsafe {
        let headers = copy_headers(abi::items(headers, headers_size));
        let mut body = Vec::new();
        for chunk in abi::items(body_chunks, body_chunks_size) {
            body.extend_from_slice(abi::bytes(chunk.ptr, chunk.length));
        }
        Ok(CalloutResponse { headers, body })
    }
}
