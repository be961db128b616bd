//! One HTTP stream as its filter sees it: headers, bodies, metrics, callouts and wake-ups go to Envoy
//! at once; answering locally, resuming and resetting are deferred until the filter's hook returns,
//! because Envoy runs other hooks of the same stream inside those calls.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

use crate::abi;
use crate::config::{Counter, Histogram, update};
use crate::filter::{HttpFilter, HttpFilterConfig};
use crate::http::{CalloutError, CalloutId, Direction, HeaderMap, Headers, LocalResponse};
use crate::scheduler::Waker;

/// Our object for one stream, behind Envoy's `filter_module_ptr`.
pub(crate) struct StreamSlot {
    pub(crate) config: Arc<dyn HttpFilterConfig>,
    pub(crate) filter: RefCell<Box<dyn HttpFilter>>,
    pub(crate) state: Cell<StreamState>,
    pub(crate) waker: RefCell<Option<Waker>>,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StreamState {
    /// A response hook has run: a local answer can no longer replace the response.
    pub(crate) response_started: bool,
    /// We answered locally: the response hooks that follow carry our own answer.
    pub(crate) local_reply_sent: bool,
    /// A hook failed: the filter is never called again and nothing more is forwarded.
    pub(crate) failed: bool,
}

impl StreamSlot {
    pub(crate) fn new(config: Arc<dyn HttpFilterConfig>, filter: Box<dyn HttpFilter>) -> Self {
        StreamSlot {
            config,
            filter: RefCell::new(filter),
            state: Cell::new(StreamState::default()),
            waker: RefCell::new(None),
        }
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut StreamState)) {
        let mut state = self.state.get();
        change(&mut state);
        self.state.set(state);
    }
}

/// What the filter asked for during a hook, done once it returned.
#[derive(Default)]
struct Effects {
    end: Option<End>,
    resume_request: bool,
    resume_response: bool,
}

enum End {
    Respond(LocalResponse),
    Reset,
}

/// The stream a filter hook runs for.
pub struct Stream<'a> {
    envoy: abi::FilterEnvoyPtr,
    slot: &'a StreamSlot,
    effects: Effects,
}

impl<'a> Stream<'a> {
    pub(crate) fn new(envoy: abi::FilterEnvoyPtr, slot: &'a StreamSlot) -> Self {
        Stream {
            envoy,
            slot,
            effects: Effects::default(),
        }
    }

    // ---- headers and trailers ------------------------------------------------------------------

    /// A copy of a whole header map: two calls into Envoy, however many headers.
    pub fn headers(&self, map: HeaderMap) -> Headers {
        // SAFETY: `envoy` is the live stream of the current hook.
        let count = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers_size(self.envoy, map.abi())
        };
        if count == 0 {
            return Headers::default();
        }
        let mut raw = vec![abi::EnvoyHttpHeader::EMPTY; count];
        // SAFETY: `raw` has room for the `count` headers Envoy just reported.
        let filled = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers(
                self.envoy,
                map.abi(),
                raw.as_mut_ptr(),
            )
        };
        if filled {
            // SAFETY: Envoy filled `raw` with pointers valid until the end of this hook.
            unsafe { copy_headers(&raw) }
        } else {
            Headers::default()
        }
    }

    /// The first value of one header (`name` lowercase).
    pub fn header(&self, map: HeaderMap, name: &str) -> Option<Vec<u8>> {
        let mut value = abi::EnvoyBuffer::EMPTY;
        // SAFETY: `name` lives across the call; `value` is a valid out-pointer; no count wanted.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_http_get_header(
                self.envoy,
                map.abi(),
                abi::ModuleBuffer::of(name.as_bytes()),
                &mut value,
                0,
                std::ptr::null_mut(),
            )
        };
        // SAFETY: a non-null value points into Envoy's header map, valid during this hook.
        (found && !value.ptr.is_null())
            .then(|| unsafe { abi::bytes(value.ptr, value.length) }.to_vec())
    }

    /// Replaces every value of `name` with `value`.
    pub fn set_header(&mut self, map: HeaderMap, name: &str, value: &[u8]) -> bool {
        // SAFETY: both buffers live across the call; Envoy copies them.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.envoy,
                map.abi(),
                abi::ModuleBuffer::of(name.as_bytes()),
                abi::ModuleBuffer::of(value),
            )
        }
    }

    /// Adds a value of `name`, keeping the ones there.
    pub fn add_header(&mut self, map: HeaderMap, name: &str, value: &[u8]) -> bool {
        // SAFETY: both buffers live across the call; Envoy copies them.
        unsafe {
            abi::envoy_dynamic_module_callback_http_add_header(
                self.envoy,
                map.abi(),
                abi::ModuleBuffer::of(name.as_bytes()),
                abi::ModuleBuffer::of(value),
            )
        }
    }

    pub fn remove_header(&mut self, map: HeaderMap, name: &str) -> bool {
        // SAFETY: `name` lives across the call; a null value means "remove".
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.envoy,
                map.abi(),
                abi::ModuleBuffer::of(name.as_bytes()),
                abi::ModuleBuffer::NULL,
            )
        }
    }

    /// The downstream peer's address as Envoy prints it (`127.0.0.1:5000`, `[::1]:5000`).
    pub fn source_address(&self) -> Option<Vec<u8>> {
        let mut value = abi::EnvoyBuffer::EMPTY;
        // SAFETY: `envoy` is the live stream of the current hook; `value` is a valid out-pointer.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.envoy,
                abi::AttributeId::SourceAddress,
                &mut value,
            )
        };
        // SAFETY: a non-null value points into Envoy's stream info, valid during this hook.
        (found && !value.ptr.is_null())
            .then(|| unsafe { abi::bytes(value.ptr, value.length) }.to_vec())
    }

    // ---- bodies ----------------------------------------------------------------------------------

    /// The length of the body so far (what [`Stream::body`] would return), without copying it.
    pub fn body_len(&self, direction: Direction) -> usize {
        let (buffered, received) = body_types(direction);
        // SAFETY: `envoy` is the live stream of the current hook.
        let size = |body_type| unsafe {
            abi::envoy_dynamic_module_callback_http_get_body_size(self.envoy, body_type)
        };
        let mut len = size(buffered);
        if !self.received_is_buffered(direction) {
            len += size(received);
        }
        len
    }

    /// The body so far: what Envoy buffered for this filter, then the chunk of the current body
    /// hook (at the end of the stream Envoy has already moved that chunk into the buffer).
    pub fn body(&self, direction: Direction) -> Vec<u8> {
        let (buffered, received) = body_types(direction);
        let mut body = Vec::new();
        self.read_chunks(buffered, &mut body);
        if !self.received_is_buffered(direction) {
            self.read_chunks(received, &mut body);
        }
        body
    }

    /// Drops the body so far.
    pub fn drain_body(&mut self, direction: Direction) {
        let (buffered, received) = body_types(direction);
        self.drain(buffered);
        if !self.received_is_buffered(direction) {
            self.drain(received);
        }
    }

    /// Replaces the body so far with `body`. Envoy does not touch `content-length`: set it, or remove
    /// it, yourself. False if Envoy has no body to replace.
    pub fn replace_body(&mut self, direction: Direction, body: &[u8]) -> bool {
        self.drain_body(direction);
        let (buffered, received) = body_types(direction);
        // SAFETY: `body` lives across the call; Envoy copies it.
        unsafe {
            abi::envoy_dynamic_module_callback_http_append_body(
                self.envoy,
                buffered,
                abi::ModuleBuffer::of(body),
            ) || abi::envoy_dynamic_module_callback_http_append_body(
                self.envoy,
                received,
                abi::ModuleBuffer::of(body),
            )
        }
    }

    fn received_is_buffered(&self, direction: Direction) -> bool {
        // SAFETY: `envoy` is the live stream of the current hook.
        unsafe {
            match direction {
                Direction::Request => {
                    abi::envoy_dynamic_module_callback_http_received_buffered_request_body(
                        self.envoy,
                    )
                }
                Direction::Response => {
                    abi::envoy_dynamic_module_callback_http_received_buffered_response_body(
                        self.envoy,
                    )
                }
            }
        }
    }

    fn read_chunks(&self, body_type: abi::BodyType, into: &mut Vec<u8>) {
        // SAFETY: `envoy` is the live stream of the current hook.
        let count = unsafe {
            abi::envoy_dynamic_module_callback_http_get_body_chunks_size(self.envoy, body_type)
        };
        if count == 0 {
            return;
        }
        let mut chunks = vec![abi::EnvoyBuffer::EMPTY; count];
        // SAFETY: `chunks` has room for the `count` chunks Envoy just reported.
        let filled = unsafe {
            abi::envoy_dynamic_module_callback_http_get_body_chunks(
                self.envoy,
                body_type,
                chunks.as_mut_ptr(),
            )
        };
        if filled {
            for chunk in &chunks {
                // SAFETY: Envoy's chunk pointers are valid until the end of this hook.
                into.extend_from_slice(unsafe { abi::bytes(chunk.ptr, chunk.length) });
            }
        }
    }

    fn drain(&mut self, body_type: abi::BodyType) {
        // SAFETY: `envoy` is the live stream of the current hook; draining at most what is there.
        unsafe {
            let size = abi::envoy_dynamic_module_callback_http_get_body_size(self.envoy, body_type);
            if size > 0 {
                abi::envoy_dynamic_module_callback_http_drain_body(self.envoy, body_type, size);
            }
        }
    }

    // ---- the stream's course (deferred until the hook returns) -----------------------------------

    /// Answers with `response` instead of forwarding; nothing more of the stream goes upstream.
    pub fn respond(&mut self, response: LocalResponse) {
        self.effects.end = Some(End::Respond(response));
    }

    /// Resets the stream (when answering is no longer possible).
    pub fn reset(&mut self) {
        self.effects.end = Some(End::Reset);
    }

    /// Lets a held request go on (after a hook returned `Stop` or `Buffer`).
    pub fn resume_request(&mut self) {
        self.effects.resume_request = true;
    }

    /// Lets a held response go on.
    pub fn resume_response(&mut self) {
        self.effects.resume_response = true;
    }

    /// Does what the hook asked for. True if the stream is ended (answered, reset, or failed), so the
    /// hook must not let anything through. Once a stream is answered or failed, its course is settled
    /// and later requests are ignored.
    pub(crate) fn apply(self) -> bool {
        let Stream {
            envoy,
            slot,
            effects,
        } = self;
        let state = slot.state.get();
        if state.failed || state.local_reply_sent {
            return true;
        }
        match effects.end {
            Some(End::Respond(response)) => {
                slot.update(|s| s.local_reply_sent = true);
                send_local_response(envoy, &response);
                true
            }
            Some(End::Reset) => {
                reset_stream(envoy);
                true
            }
            None => {
                // SAFETY: `envoy` is the live stream of the current hook; Envoy ignores a resume of
                // a stream that is not paused.
                unsafe {
                    if effects.resume_request {
                        abi::envoy_dynamic_module_callback_http_filter_continue_decoding(envoy);
                    }
                    if effects.resume_response {
                        abi::envoy_dynamic_module_callback_http_filter_continue_encoding(envoy);
                    }
                }
                false
            }
        }
    }

    // ---- wake-ups, callouts, metrics -------------------------------------------------------------

    /// Wakes this stream's `on_scheduled` on its worker, from any thread (one per stream).
    pub fn waker(&mut self) -> Option<Waker> {
        let mut waker = self.slot.waker.borrow_mut();
        if waker.is_none() {
            *waker = Waker::for_stream(self.envoy);
        }
        waker.clone()
    }

    /// An HTTP request to an Envoy cluster; the answer comes to this filter's `on_callout_done`
    /// (never inside this call). `headers` must carry `:method`, `:path` and `host`.
    pub fn callout(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout: Duration,
    ) -> Result<CalloutId, CalloutError> {
        let call = abi::envoy_dynamic_module_callback_http_filter_http_callout;
        callout(self.envoy, cluster, headers, body, timeout, call)
    }

    pub fn increment(&mut self, counter: Counter, by: u64) {
        let increment = abi::envoy_dynamic_module_callback_http_filter_increment_counter;
        update(self.envoy, counter.0, by, increment);
    }

    pub fn record(&mut self, histogram: Histogram, value: u64) {
        let record = abi::envoy_dynamic_module_callback_http_filter_record_histogram_value;
        update(self.envoy, histogram.0, value, record);
    }
}

/// Starts a callout through a stream or a configuration (both pointers are `void*` to the ABI).
type Callout = unsafe extern "C" fn(
    *mut c_void,
    *mut u64,
    abi::ModuleBuffer,
    *mut abi::ModuleHttpHeader,
    usize,
    abi::ModuleBuffer,
    u64,
) -> abi::CalloutInitResult;

pub(crate) fn callout(
    owner: *mut c_void,
    cluster: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    timeout: Duration,
    call: Callout,
) -> Result<CalloutId, CalloutError> {
    let mut abi_headers = module_headers(headers);
    let mut id = 0;
    // SAFETY: `owner` is the live stream or configuration of the current hook, matching `call`;
    // every buffer lives across the call (Envoy copies them); `id` is a valid out-pointer.
    let result = unsafe {
        call(
            owner,
            &mut id,
            abi::ModuleBuffer::of(cluster.as_bytes()),
            abi_headers.as_mut_ptr(),
            abi_headers.len(),
            abi::ModuleBuffer::of(body),
            millis(timeout),
        )
    };
    CalloutError::check(result).map(|()| CalloutId(id))
}

fn body_types(direction: Direction) -> (abi::BodyType, abi::BodyType) {
    match direction {
        Direction::Request => (
            abi::BodyType::BufferedRequestBody,
            abi::BodyType::ReceivedRequestBody,
        ),
        Direction::Response => (
            abi::BodyType::BufferedResponseBody,
            abi::BodyType::ReceivedResponseBody,
        ),
    }
}

/// Answers the stream locally. Mark the stream's `local_reply_sent` first: Envoy may run its response
/// hooks inside this call.
pub(crate) fn send_local_response(envoy: abi::FilterEnvoyPtr, response: &LocalResponse) {
    let headers: Vec<(&str, &[u8])> = response
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_slice()))
        .collect();
    let mut abi_headers = module_headers(&headers);
    // SAFETY: `envoy` is the live stream of the current hook; every buffer lives across the call.
    unsafe {
        abi::envoy_dynamic_module_callback_http_send_response(
            envoy,
            u32::from(response.status),
            abi_headers.as_mut_ptr(),
            abi_headers.len(),
            abi::ModuleBuffer::of(&response.body),
            abi::ModuleBuffer::of(response.details.as_bytes()),
        );
    }
}

pub(crate) fn reset_stream(envoy: abi::FilterEnvoyPtr) {
    // SAFETY: `envoy` is the live stream of the current hook; the details buffer is static.
    unsafe {
        abi::envoy_dynamic_module_callback_http_filter_reset_stream(
            envoy,
            abi::StreamResetReason::LocalReset,
            abi::ModuleBuffer::of(b"dynamic_module_failed_closed"),
        );
    }
}

/// Header views for one call into Envoy; they borrow from `headers`.
fn module_headers(headers: &[(&str, &[u8])]) -> Vec<abi::ModuleHttpHeader> {
    headers
        .iter()
        .map(|(name, value)| abi::ModuleHttpHeader::of(name.as_bytes(), value))
        .collect()
}

/// Copies headers Envoy lent us.
///
/// # Safety
/// Every pointer in `raw` must be valid for its length (or null) for the duration of the call.
pub(crate) unsafe fn copy_headers(raw: &[abi::EnvoyHttpHeader]) -> Headers {
    let entries = raw
        .iter()
        .map(|h| {
            // SAFETY: the caller vouches for the pointers.
            let (name, value) = unsafe {
                (
                    abi::bytes(h.key_ptr, h.key_length),
                    abi::bytes(h.value_ptr, h.value_length),
                )
            };
            (String::from_utf8_lossy(name).into_owned(), value.to_vec())
        })
        .collect();
    Headers::new(entries)
}

/// A timeout in whole milliseconds, saturating.
fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}
