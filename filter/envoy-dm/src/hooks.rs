//! The event hooks Envoy resolves by name in the module (`envoy_dynamic_module_on_*`). Each turns
//! Envoy's pointers back into our objects, runs the module's code inside the panic barrier, and
//! fails the stream closed when that code panics.
#![allow(unsafe_code)]

use std::ffi::c_char;
use std::sync::{Arc, OnceLock};

use crate::abi::{self, ConfigEnvoyPtr, ConfigModulePtr, FilterEnvoyPtr, FilterModulePtr};
use crate::barrier::{self, FailClosed};
use crate::config::{ConfigHandle, ConfigInit};
use crate::filter::{
    BodyAction, HeadersAction, HttpFilter, HttpFilterConfig, NewConfig, TrailersAction,
};
use crate::http::{CalloutFailure, CalloutId, CalloutResponse, LocalResponse};
use crate::log::{self, Level};
use crate::scheduler::Waker;
use crate::stream::{self, Stream, StreamSlot};

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

// ---- configuration -----------------------------------------------------------------------------

/// # Safety
/// Called by Envoy on the main thread with a live configuration and buffers valid for the call.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy: ConfigEnvoyPtr,
    name: abi::EnvoyBuffer,
    config: abi::EnvoyBuffer,
) -> ConfigModulePtr {
    // SAFETY: Envoy's buffers are valid for the duration of this hook.
    let (name, config) = unsafe {
        (
            abi::bytes(name.ptr, name.length),
            abi::bytes(config.ptr, config.length),
        )
    };
    let name = String::from_utf8_lossy(name);
    let mut waker = None;
    let made = barrier::catch(|| {
        let new_config = NEW_CONFIG
            .get()
            .ok_or("the module registered no configuration constructor")?;
        let mut init = ConfigInit {
            envoy,
            waker: &mut waker,
        };
        new_config(&mut init, &name, config)
    });
    match made {
        Ok(Ok(config)) => {
            let slot = Box::new(ConfigSlot {
                config: Arc::from(config),
                waker,
            });
            Box::into_raw(slot).cast_const().cast()
        }
        Ok(Err(err)) => {
            log::log(
                Level::Error,
                &format!("filter configuration {name} rejected: {err}"),
            );
            waker.inspect(Waker::close);
            std::ptr::null()
        }
        Err(panic) => {
            report_panic("filter configuration", &panic);
            waker.inspect(Waker::close);
            std::ptr::null()
        }
    }
}

/// # Safety
/// `module` is null or came from `envoy_dynamic_module_on_http_filter_config_new`, destroyed once.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(module: ConfigModulePtr) {
    if module.is_null() {
        return;
    }
    // SAFETY: made by `Box::into_raw` in `config_new`; Envoy destroys each configuration once.
    let slot = unsafe { Box::from_raw(module.cast::<ConfigSlot>().cast_mut()) };
    // Wake-ups stop before the module's own state goes, so no thread reaches a dead configuration.
    if let Some(waker) = &slot.waker {
        waker.close();
    }
    if let Err(panic) = barrier::catch(move || drop(slot)) {
        report_panic("dropping a filter configuration", &panic);
    }
}

/// # Safety
/// `module` is a live configuration from `config_new`.
unsafe fn config_of<'a>(module: ConfigModulePtr) -> Option<&'a ConfigSlot> {
    // SAFETY: Envoy passes the pointer `config_new` returned until it calls `config_destroy`.
    unsafe { module.cast::<ConfigSlot>().as_ref() }
}

/// # Safety
/// Called by Envoy on the main thread with the configuration's pointers.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    envoy: ConfigEnvoyPtr,
    module: ConfigModulePtr,
    event: u64,
) {
    // SAFETY: Envoy passes this configuration's own pointer.
    let Some(slot) = (unsafe { config_of(module) }) else {
        return;
    };
    let handle = ConfigHandle { envoy };
    if let Err(panic) = barrier::catch(|| slot.config.on_scheduled(&handle, event)) {
        report_panic("configuration on_scheduled", &panic);
    }
}

/// # Safety
/// Called by Envoy on the main thread; headers and chunks are valid for the call.
#[unsafe(no_mangle)]
unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    envoy: ConfigEnvoyPtr,
    module: ConfigModulePtr,
    callout_id: u64,
    result: abi::CalloutResult,
    headers: *mut abi::EnvoyHttpHeader,
    headers_size: usize,
    body_chunks: *mut abi::EnvoyBuffer,
    body_chunks_size: usize,
) {
    // SAFETY: Envoy passes this configuration's own pointer.
    let Some(slot) = (unsafe { config_of(module) }) else {
        return;
    };
    let handle = ConfigHandle { envoy };
    let outcome = barrier::catch(|| {
        // SAFETY: Envoy's arrays are valid for the duration of this hook.
        let answer =
            unsafe { callout_answer(result, headers, headers_size, body_chunks, body_chunks_size) };
        slot.config
            .on_callout_done(&handle, CalloutId(callout_id), answer);
    });
    if let Err(panic) = outcome {
        report_panic("configuration on_callout_done", &panic);
    }
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
        let headers = stream::copy_headers(abi::items(headers, headers_size));
        let mut body = Vec::new();
        for chunk in abi::items(body_chunks, body_chunks_size) {
            body.extend_from_slice(abi::bytes(chunk.ptr, chunk.length));
        }
        Ok(CalloutResponse { headers, body })
    }
}

// ---- streams -----------------------------------------------------------------------------------

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
    if phase == Phase::Response {
        let state = slot.state.get();
        if state.local_reply_sent {
            // Our own answer passing on its way out.
            return go;
        }
        slot.update(|s| s.response_started = true);
    }
    if slot.state.get().failed {
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
