//! The hooks of one HTTP stream, on its worker thread.
#![allow(unsafe_code)]

use std::sync::Arc;

use super::{callout_answer, config_of, report_panic};
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
    if module.is_null() {
        return;
    }
    // SAFETY: made by `Box::into_raw` in `filter_new`; Envoy destroys each stream's filter once,
    // after its last hook.
    let slot = unsafe { Box::from_raw(module.cast::<StreamSlot>().cast_mut()) };
    if let Some(waker) = slot.waker.borrow_mut().take() {
        waker.close();
    }
    if let Err(panic) = barrier::catch(move || drop(slot)) {
        report_panic("dropping a stream's filter", &panic);
    }
}

/// Where in the stream a hook runs, which decides how a failure ends the stream.
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
        // No filter for this stream (its creation failed): nothing may pass.
        fail_without_filter(envoy, phase);
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

fn fail_without_filter(envoy: FilterEnvoyPtr, phase: Phase) {
    if phase == Phase::Request {
        stream::send_local_response(envoy, &LocalResponse::internal_error());
    } else {
        stream::reset_stream(envoy);
    }
}

const HEADERS: (HeadersAction, HeadersAction) = (HeadersAction::Stop, HeadersAction::Continue);
const BODY: (BodyAction, BodyAction) = (BodyAction::Hold, BodyAction::Continue);
const TRAILERS: (TrailersAction, TrailersAction) = (TrailersAction::Stop, TrailersAction::Continue);

/// # Safety
/// Called by Envoy on the stream's worker with the stream's pointers.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    end_of_stream: bool,
) -> abi::HeadersStatus {
    // SAFETY: Envoy's own pointers for this stream.
    let action = unsafe {
        stream_hook(
            "on_request_headers",
            envoy,
            module,
            Phase::Request,
            HEADERS,
            |f, s| f.on_request_headers(s, end_of_stream),
        )
    };
    headers_status(action)
}

/// # Safety
/// Called by Envoy on the stream's worker with the stream's pointers.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    end_of_stream: bool,
) -> abi::BodyStatus {
    // SAFETY: Envoy's own pointers for this stream.
    let action = unsafe {
        stream_hook(
            "on_request_body",
            envoy,
            module,
            Phase::Request,
            BODY,
            |f, s| f.on_request_body(s, end_of_stream),
        )
    };
    body_status(action)
}

/// # Safety
/// Called by Envoy on the stream's worker with the stream's pointers.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
) -> abi::TrailersStatus {
    // SAFETY: Envoy's own pointers for this stream.
    let action = unsafe {
        stream_hook(
            "on_request_trailers",
            envoy,
            module,
            Phase::Request,
            TRAILERS,
            |f, s| f.on_request_trailers(s),
        )
    };
    trailers_status(action)
}

/// # Safety
/// Called by Envoy on the stream's worker with the stream's pointers.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    end_of_stream: bool,
) -> abi::HeadersStatus {
    // SAFETY: Envoy's own pointers for this stream.
    let action = unsafe {
        stream_hook(
            "on_response_headers",
            envoy,
            module,
            Phase::Response,
            HEADERS,
            |f, s| f.on_response_headers(s, end_of_stream),
        )
    };
    headers_status(action)
}

/// # Safety
/// Called by Envoy on the stream's worker with the stream's pointers.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    end_of_stream: bool,
) -> abi::BodyStatus {
    // SAFETY: Envoy's own pointers for this stream.
    let action = unsafe {
        stream_hook(
            "on_response_body",
            envoy,
            module,
            Phase::Response,
            BODY,
            |f, s| f.on_response_body(s, end_of_stream),
        )
    };
    body_status(action)
}

/// # Safety
/// Called by Envoy on the stream's worker with the stream's pointers.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
) -> abi::TrailersStatus {
    // SAFETY: Envoy's own pointers for this stream.
    let action = unsafe {
        stream_hook(
            "on_response_trailers",
            envoy,
            module,
            Phase::Response,
            TRAILERS,
            |f, s| f.on_response_trailers(s),
        )
    };
    trailers_status(action)
}

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
