//! The raw dynamic-module ABI of Envoy 1.40: the C types, and the callbacks Envoy exports that this
//! crate calls. Written from the documented signatures of Envoy's
//! `source/extensions/dynamic_modules/abi/abi.h`; every callback name is checked against the symbols
//! the Envoy binary exports (see the tests), so a rename in a new Envoy fails a test, not a load.
//!
//! Enums Envoy hands back (results, reasons) are plain `u32`s here: a value this file does not know
//! must not become an invalid Rust enum. Enums we hand to Envoy are `#[repr(C)]` Rust enums.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void};

/// The ABI version this build speaks, returned from `envoy_dynamic_module_on_program_init`. Envoy
/// 1.40 expects exactly this string (it logs "Dynamic module ABI version v0.2.0 matched."); Envoy
/// 1.41 still loads it, with a "deprecated, recompile" warning.
pub const ABI_VERSION: &std::ffi::CStr = c"v0.2.0";

/// `DynamicModuleHttpFilterConfig*` in Envoy: one per filter configuration.
pub type ConfigEnvoyPtr = *mut c_void;
/// Our per-configuration object, as Envoy holds it.
pub type ConfigModulePtr = *const c_void;
/// `DynamicModuleHttpFilter*` in Envoy: one per HTTP stream.
pub type FilterEnvoyPtr = *mut c_void;
/// Our per-stream object, as Envoy holds it.
pub type FilterModulePtr = *const c_void;
/// Made by Envoy, owned (and deleted) by the module.
pub type SchedulerPtr = *mut c_void;
pub type ConfigSchedulerPtr = *mut c_void;

/// Bytes owned by Envoy, valid until the end of the current hook.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const EMPTY: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// Bytes owned by the module, lent to Envoy for the duration of one call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ModuleBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl ModuleBuffer {
    /// A null buffer: "no value" (e.g. `set_header` with it removes the header).
    pub const NULL: ModuleBuffer = ModuleBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    pub fn of(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: bytes.as_ptr().cast(),
            length: bytes.len(),
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EnvoyHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

impl EnvoyHttpHeader {
    pub const EMPTY: EnvoyHttpHeader = EnvoyHttpHeader {
        key_ptr: std::ptr::null(),
        key_length: 0,
        value_ptr: std::ptr::null(),
        value_length: 0,
    };
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ModuleHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

impl ModuleHttpHeader {
    pub fn of(name: &[u8], value: &[u8]) -> ModuleHttpHeader {
        ModuleHttpHeader {
            key_ptr: name.as_ptr().cast(),
            key_length: name.len(),
            value_ptr: value.as_ptr().cast(),
            value_length: value.len(),
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderType {
    RequestHeader,
    RequestTrailer,
    ResponseHeader,
    ResponseTrailer,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    ReceivedRequestBody,
    BufferedRequestBody,
    ReceivedResponseBody,
    BufferedResponseBody,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
    Off,
}

/// `envoy_dynamic_module_type_http_filter_stream_reset_reason`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamResetReason {
    LocalReset,
    LocalRefusedStreamReset,
}

// What the HTTP event hooks return (Envoy's FilterHeadersStatus, FilterDataStatus,
// FilterTrailersStatus), with the values the ABI gives them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadersStatus {
    Continue,
    StopIteration,
    ContinueAndDontEndStream,
    StopAllIterationAndBuffer,
    StopAllIterationAndWatermark,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyStatus {
    Continue,
    StopIterationAndBuffer,
    StopIterationAndWatermark,
    StopIterationNoBuffer,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrailersStatus {
    Continue,
    StopIteration,
}

/// `envoy_dynamic_module_type_attribute_id`: the stream attributes this crate reads, with the
/// values the ABI gives them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttributeId {
    /// `source.address`: the downstream peer, `ip:port`.
    SourceAddress = 24,
}

/// `envoy_dynamic_module_type_http_callout_init_result`, as Envoy returns it.
pub type CalloutInitResult = u32;
pub const CALLOUT_INIT_SUCCESS: CalloutInitResult = 0;
pub const CALLOUT_INIT_MISSING_REQUIRED_HEADERS: CalloutInitResult = 1;
pub const CALLOUT_INIT_CLUSTER_NOT_FOUND: CalloutInitResult = 2;
pub const CALLOUT_INIT_DUPLICATE_CALLOUT_ID: CalloutInitResult = 3;
pub const CALLOUT_INIT_CANNOT_CREATE_REQUEST: CalloutInitResult = 4;

/// `envoy_dynamic_module_type_http_callout_result`, as Envoy passes it to the done hooks.
pub type CalloutResult = u32;
pub const CALLOUT_SUCCESS: CalloutResult = 0;
pub const CALLOUT_RESET: CalloutResult = 1;
pub const CALLOUT_EXCEED_RESPONSE_BUFFER_LIMIT: CalloutResult = 2;

/// `envoy_dynamic_module_type_http_stream_reset_reason` (streamable callouts).
pub type HttpStreamResetReason = u32;

/// `envoy_dynamic_module_type_metrics_result`, as Envoy returns it.
pub type MetricsResult = u32;
pub const METRICS_SUCCESS: MetricsResult = 0;
pub const METRICS_NOT_FOUND: MetricsResult = 1;
pub const METRICS_INVALID_LABELS: MetricsResult = 2;
pub const METRICS_FROZEN: MetricsResult = 3;

/// Declares the callbacks and lists their names in [`DECLARED_CALLBACKS`].
macro_rules! callbacks {
    ($( fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?; )*) => {
        unsafe extern "C" {
            $( pub fn $name($($arg: $ty),*) $(-> $ret)?; )*
        }

        /// Every Envoy callback declared here, by symbol name.
        pub const DECLARED_CALLBACKS: &[&str] = &[$(stringify!($name)),*];
    };
}

callbacks! {
    // Logging, under Envoy's `dynamic_modules` logger.
    fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;

    // The server, on the main thread: `--mode validate` only checks configurations.
    fn envoy_dynamic_module_callback_is_validation_mode() -> bool;

    // Headers and trailers of the stream.
    fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        result_headers: *mut EnvoyHttpHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        result_buffer: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_add_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    // The stream's attributes (Envoy's attribute vocabulary), valid until the end of the hook.
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        attribute_id: AttributeId,
        result: *mut EnvoyBuffer,
    ) -> bool;

    // Request and response bodies: what arrived in this hook, and what is buffered.
    fn envoy_dynamic_module_callback_http_get_body_size(
        filter: FilterEnvoyPtr,
        body_type: BodyType,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_received_buffered_request_body(
        filter: FilterEnvoyPtr,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_received_buffered_response_body(
        filter: FilterEnvoyPtr,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: FilterEnvoyPtr,
        body_type: BodyType,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoyPtr,
        body_type: BodyType,
        result_buffer_vector: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_append_body(
        filter: FilterEnvoyPtr,
        body_type: BodyType,
        data: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_drain_body(
        filter: FilterEnvoyPtr,
        body_type: BodyType,
        number_of_bytes: usize,
    ) -> bool;

    // The stream's course: answer locally, go on after a pause, reset.
    fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status_code: u32,
        headers_vector: *mut ModuleHttpHeader,
        headers_vector_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: FilterEnvoyPtr);
    fn envoy_dynamic_module_callback_http_filter_continue_encoding(filter: FilterEnvoyPtr);
    fn envoy_dynamic_module_callback_http_filter_reset_stream(
        filter: FilterEnvoyPtr,
        reason: StreamResetReason,
        details: ModuleBuffer,
    );

    // Schedulers: another thread asks for a hook on the stream's worker, or on the main thread.
    fn envoy_dynamic_module_callback_http_filter_scheduler_new(
        filter: FilterEnvoyPtr,
    ) -> SchedulerPtr;
    fn envoy_dynamic_module_callback_http_filter_scheduler_commit(
        scheduler: SchedulerPtr,
        event_id: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler: SchedulerPtr);
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: ConfigEnvoyPtr,
    ) -> ConfigSchedulerPtr;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: ConfigSchedulerPtr,
        event_id: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
        scheduler: ConfigSchedulerPtr,
    );

    // HTTP callouts to an Envoy cluster, from a stream or from the configuration (main thread).
    fn envoy_dynamic_module_callback_http_filter_http_callout(
        filter: FilterEnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> CalloutInitResult;
    fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: ConfigEnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> CalloutInitResult;

    // Metrics: defined while the configuration is created, then counted per stream or per config.
    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        counter_id_ptr: *mut usize,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        histogram_id_ptr: *mut usize,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        gauge_id_ptr: *mut usize,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_record_histogram_value(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
}

/// Builds a slice from a pointer and length Envoy handed over; empty for null or zero length.
///
/// # Safety
/// Unless null, `ptr` must point to `len` readable bytes that stay valid for `'a` (Envoy guarantees
/// this until the end of the current hook).
pub unsafe fn bytes<'a>(ptr: *const c_char, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: non-null, and the caller vouches for `len` bytes living for `'a`.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
}

/// Same as [`bytes`] for an array of `T` (headers, body chunks).
///
/// # Safety
/// Unless null, `ptr` must point to `len` initialised `T`s that stay valid for `'a`.
pub unsafe fn items<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: non-null, and the caller vouches for `len` values living for `'a`.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

#[cfg(test)]
mod tests;
