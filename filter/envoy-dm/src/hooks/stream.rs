//! The hooks of one HTTP stream, on its worker thread.
#![allow(unsafe_code)]

use std::sync::Arc;

use super::{callout_answer, config_of, destroy, report_panic};
use crate::abi::{self, ConfigModulePtr, FilterEnvoyPtr, FilterModulePtr};
use crate::barrier::{self, FailClosed};
use crate::filter::{BodyAction, HeadersAction, HttpFilter, TrailersAction};
use crate::http::{CalloutId, LocalResponse};
use crate::log::{self, Level};
use crate::stream::{self, Stream, StreamSlot};

/// # Safety
/// Called by Envoy on a worker with a live configuration from `config_new`.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    module: ConfigModulePtr,
    _envoy: FilterEnvoyPtr,
) -> FilterModulePtr {
    // SAFETY: Envoy passes this configuration's own pointer.
    let Some(config) = (unsafe { config_of(module) }) else {
        return std::ptr::null();
    };
    match barrier::catch(|| config.config.new_filter()) {
        Ok(filter) => {
            let slot = Box::new(StreamSlot::new(Arc::clone(&config.config), filter));
            Box::into_raw(slot).cast_const().cast()
        }
        Err(panic) => {
            // Envoy closes a stream whose filter could not be made.
            report_panic("new_filter", &panic);
            std::ptr::null()
        }
    }
}

/// # Safety
/// `module` is null or came from `envoy_dynamic_module_on_http_filter_new`, destroyed once.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: FilterModulePtr) {
    // SAFETY: made by `Box::into_raw` in `filter_new`; Envoy destroys each stream's filter once,
    // after its last hook.
    unsafe {
        destroy::<StreamSlot>(module, "dropping a stream's filter", |slot| {
            slot.waker.borrow_mut().take()
        });
    }
}

/// Where in the stream a hook runs: a response hook marks the response begun (a failure then resets
/// the stream instead of answering it), and once the stream is answered locally, request hooks hold
/// and response hooks let our answer out without calling the filter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Request,
    Response,
    /// Wake-ups and callout answers: wherever the stream is.
    Any,
}

/// Runs one stream hook of the module's filter. `stop` is what holds the stream and `go` what lets
/// it through; `run` gets the filter and the stream and says which it wants.
///
/// # Safety
/// `envoy` and `module` are the live pointers Envoy passes to a stream hook.
unsafe fn stream_hook<R: Copy>(
    hook: &str,
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    phase: Phase,
    (stop, go): (R, R),
    run: impl FnOnce(&mut dyn HttpFilter, &mut Stream<'_>) -> R,
) -> R {
    // SAFETY: Envoy passes the pointer `filter_new` returned until it calls `filter_destroy`.
    let Some(slot) = (unsafe { module.cast::<StreamSlot>().as_ref() }) else {
        // No filter for this stream (its creation failed): Envoy closes such streams; hold meanwhile.
        return stop;
    };
    let state = slot.state.get();
    match phase {
        // Our own answer passing on its way out.
        Phase::Response if state.local_reply_sent => return go,
        Phase::Response => slot.update(|s| s.response_started = true),
        // Answered already: nothing more of the request goes anywhere.
        Phase::Request if state.local_reply_sent => return stop,
        Phase::Request | Phase::Any => {}
    }
    if state.failed {
        return stop;
    }
    let outcome = barrier::catch(|| {
        let Ok(mut filter) = slot.filter.try_borrow_mut() else {
            return Err("re-entered while the filter was running".to_owned());
        };
        let mut stream = Stream::new(envoy, slot);
        let wanted = run(&mut **filter, &mut stream);
        drop(filter);
        Ok(if stream.apply() { stop } else { wanted })
    });
    match outcome {
        Ok(Ok(status)) => status,
        Ok(Err(problem)) | Err(problem) => {
            log::log(
                Level::Error,
                &format!("{hook} failed, the stream fails closed: {problem}"),
            );
            fail(envoy, slot);
            stop
        }
    }
}

/// Ends a stream whose hook failed, so that nothing more of it is forwarded.
fn fail(envoy: FilterEnvoyPtr, slot: &StreamSlot) {
    let state = slot.state.get();
    slot.update(|s| s.failed = true);
    match FailClosed::choose(state.response_started, state.local_reply_sent) {
        FailClosed::Respond => {
            let response = barrier::catch(|| slot.config.fail_closed_response())
                .unwrap_or_else(|_| LocalResponse::internal_error());
            slot.update(|s| s.local_reply_sent = true);
            stream::send_local_response(envoy, &response);
        }
        FailClosed::Reset => stream::reset_stream(envoy),
    }
}

// What holds a stream (first) and what lets it through, per event.
const HEADERS: (abi::HeadersStatus, abi::HeadersStatus) = (
    abi::HeadersStatus::StopIteration,
    abi::HeadersStatus::Continue,
);
const BODY: (abi::BodyStatus, abi::BodyStatus) = (
    abi::BodyStatus::StopIterationNoBuffer,
    abi::BodyStatus::Continue,
);
const TRAILERS: (abi::TrailersStatus, abi::TrailersStatus) = (
    abi::TrailersStatus::StopIteration,
    abi::TrailersStatus::Continue,
);

/// Exports the hook of one request or response event: the filter's method of the same name, run
/// by `stream_hook`, its answer turned into Envoy's status.
macro_rules! event_hook {
    ($symbol:ident, $method:ident, $phase:expr, $status:ty, $held:expr, $convert:ident $(, $eos:ident)?) => {
        /// # Safety
        /// Called by Envoy on the stream's worker with the stream's pointers.
        #[unsafe(no_mangle)]
        unsafe extern "C" fn $symbol(
            envoy: FilterEnvoyPtr,
            module: FilterModulePtr,
            $($eos: bool,)?
        ) -> $status {
            // SAFETY: Envoy's own pointers for this stream.
            unsafe {
                stream_hook(stringify!($method), envoy, module, $phase, $held, |f, s| {
                    $convert(f.$method(s $(, $eos)?))
                })
            }
        }
    };
}

event_hook!(
    envoy_dynamic_module_on_http_filter_request_headers,
    on_request_headers,
    Phase::Request,
    abi::HeadersStatus,
    HEADERS,
    headers_status,
    end_of_stream
);
event_hook!(
    envoy_dynamic_module_on_http_filter_request_body,
    on_request_body,
    Phase::Request,
    abi::BodyStatus,
    BODY,
    body_status,
    end_of_stream
);
event_hook!(
    envoy_dynamic_module_on_http_filter_request_trailers,
    on_request_trailers,
    Phase::Request,
    abi::TrailersStatus,
    TRAILERS,
    trailers_status
);
event_hook!(
    envoy_dynamic_module_on_http_filter_response_headers,
    on_response_headers,
    Phase::Response,
    abi::HeadersStatus,
    HEADERS,
    headers_status,
    end_of_stream
);
event_hook!(
    envoy_dynamic_module_on_http_filter_response_body,
    on_response_body,
    Phase::Response,
    abi::BodyStatus,
    BODY,
    body_status,
    end_of_stream
);
event_hook!(
    envoy_dynamic_module_on_http_filter_response_trailers,
    on_response_trailers,
    Phase::Response,
    abi::TrailersStatus,
    TRAILERS,
    trailers_status
);

/// # Safety
/// Called by Envoy on the stream's worker with the stream's pointers.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    event: u64,
) {
    // SAFETY: Envoy's own pointers for this stream.
    unsafe {
        stream_hook(
            "on_scheduled",
            envoy,
            module,
            Phase::Any,
            ((), ()),
            |f, s| f.on_scheduled(s, event),
        );
    }
}

/// # Safety
/// Called by Envoy on the stream's worker; headers and chunks are valid for the call.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    callout_id: u64,
    result: abi::CalloutResult,
    headers: *mut abi::EnvoyHttpHeader,
    headers_size: usize,
    body_chunks: *mut abi::EnvoyBuffer,
    body_chunks_size: usize,
) {
    // SAFETY: Envoy's own pointers for this stream; its arrays are valid during this hook.
    unsafe {
        stream_hook(
            "on_callout_done",
            envoy,
            module,
            Phase::Any,
            ((), ()),
            |f, s| {
                let answer =
                    callout_answer(result, headers, headers_size, body_chunks, body_chunks_size);
                f.on_callout_done(s, CalloutId(callout_id), answer)
            },
        );
    }
}

/// # Safety
/// Called by Envoy on the stream's worker with the stream's pointers.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
) {
    // SAFETY: Envoy passes the pointer `filter_new` returned until it calls `filter_destroy`.
    let Some(slot) = (unsafe { module.cast::<StreamSlot>().as_ref() }) else {
        return;
    };
    if slot.state.get().failed {
        return;
    }
    // The stream is over: whatever the filter asks of its course now is moot, so it is not applied.
    let outcome = barrier::catch(|| {
        let mut filter = slot.filter.try_borrow_mut().ok()?;
        filter.on_stream_complete(&mut Stream::new(envoy, slot));
        Some(())
    });
    if let Err(panic) = outcome {
        report_panic("on_stream_complete", &panic);
        slot.update(|s| s.failed = true);
    }
}

fn headers_status(action: HeadersAction) -> abi::HeadersStatus {
    match action {
        HeadersAction::Continue => abi::HeadersStatus::Continue,
        HeadersAction::Stop => abi::HeadersStatus::StopIteration,
    }
}

fn body_status(action: BodyAction) -> abi::BodyStatus {
    match action {
        BodyAction::Continue => abi::BodyStatus::Continue,
        BodyAction::Buffer => abi::BodyStatus::StopIterationAndBuffer,
        BodyAction::Hold => abi::BodyStatus::StopIterationNoBuffer,
    }
}

fn trailers_status(action: TrailersAction) -> abi::TrailersStatus {
    match action {
        TrailersAction::Continue => abi::TrailersStatus::Continue,
        TrailersAction::Stop => abi::TrailersStatus::StopIteration,
    }
}

// ---- hooks Envoy requires but this layer has no use for ----------------------------------------
// Streamed callouts are not offered, so their hooks never fire; watermarks only reach terminal
// filters, and these modules sit before the router.

#[unsafe(no_mangle)]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
    _headers: *mut abi::EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
    _data: *const abi::EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
    _trailers: *mut abi::EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

#[unsafe(no_mangle)]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
) {
}

#[unsafe(no_mangle)]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
    _reason: abi::HttpStreamResetReason,
) {
}

#[unsafe(no_mangle)]
extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
) {
}

#[unsafe(no_mangle)]
extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
) {
}
