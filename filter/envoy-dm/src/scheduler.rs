//! Waking a stream (on its worker) or a configuration (on the main thread) from any thread.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::sync::{Arc, Mutex, PoisonError};

use crate::abi;

type Commit = unsafe extern "C" fn(*mut c_void, u64);
type Delete = unsafe extern "C" fn(*mut c_void);

/// An Envoy scheduler, owned by the module.
struct Scheduler {
    ptr: *mut c_void,
    commit: Commit,
    delete: Delete,
}

// SAFETY: Envoy's schedulers are made for other threads: `commit` posts to the owner's dispatcher
// and may be called from any thread; `delete` frees an object that only holds a weak reference and
// a dispatcher reference. Both go through the mutex in `Waker`, never concurrently.
unsafe impl Send for Scheduler {}

/// Asks Envoy to run the owner's `on_scheduled` hook with an event number, on the owner's thread.
/// Cheap to clone and usable from any thread. Once the owner (stream or configuration) is gone,
/// waking does nothing: the scheduler is deleted with its owner, so a late wake-up can never reach
/// a destroyed stream or a dispatcher that is shutting down.
#[derive(Clone)]
pub struct Waker {
    scheduler: Arc<Mutex<Option<Scheduler>>>,
}

impl Waker {
    /// # Safety
    /// `ptr` must be a live scheduler made by the `*_scheduler_new` callback that pairs with
    /// `commit` and `delete`, owned by nobody else.
    unsafe fn new(ptr: *mut c_void, commit: Commit, delete: Delete) -> Option<Waker> {
        (!ptr.is_null()).then(|| Waker {
            scheduler: Arc::new(Mutex::new(Some(Scheduler {
                ptr,
                commit,
                delete,
            }))),
        })
    }

    /// A waker for the stream `filter` (call on the stream's worker, inside a hook).
    pub(crate) fn for_stream(filter: abi::FilterEnvoyPtr) -> Option<Waker> {
        // SAFETY: `filter` is the live stream of the current hook; the result is a fresh scheduler
        // that this waker alone owns.
        unsafe {
            let ptr = abi::envoy_dynamic_module_callback_http_filter_scheduler_new(filter);
            Waker::new(
                ptr,
                abi::envoy_dynamic_module_callback_http_filter_scheduler_commit,
                abi::envoy_dynamic_module_callback_http_filter_scheduler_delete,
            )
        }
    }

    /// A waker for the configuration `config` (call on the main thread).
    pub(crate) fn for_config(config: abi::ConfigEnvoyPtr) -> Option<Waker> {
        // SAFETY: `config` is the live configuration Envoy handed to the current hook; the result is
        // a fresh scheduler that this waker alone owns.
        unsafe {
            let ptr = abi::envoy_dynamic_module_callback_http_filter_config_scheduler_new(config);
            Waker::new(
                ptr,
                abi::envoy_dynamic_module_callback_http_filter_config_scheduler_commit,
                abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete,
            )
        }
    }

    /// Schedules `on_scheduled(event)` on the owner's thread. False once the owner is gone.
    pub fn wake(&self, event: u64) -> bool {
        let guard = self
            .scheduler
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match guard.as_ref() {
            Some(scheduler) => {
                // SAFETY: the scheduler is live while it is in the mutex (`close` takes it out
                // before deleting it), and commit may be called from any thread.
                unsafe { (scheduler.commit)(scheduler.ptr, event) };
                true
            }
            None => false,
        }
    }

    /// Deletes the scheduler: called by the owner's destroy hook. Later wake-ups do nothing.
    pub(crate) fn close(&self) {
        let taken = self
            .scheduler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(scheduler) = taken {
            // SAFETY: taken out of the mutex, so no `wake` can use it any more; deleted once.
            unsafe { (scheduler.delete)(scheduler.ptr) };
        }
    }
}
