//! Every call into Envoy, wrapped so that a host error becomes a value, never a panic: the SDK's
//! trait helpers `unwrap()` host results, and a panic would poison the VM for every request.

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};

pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// The level audit lines are written at: info, or Envoy's log level for wasm when that is higher,
/// so an Envoy run at `--log-level warning` still prints every audit line instead of dropping them.
pub fn audit_log_level() -> LogLevel {
    match raw::log_level() {
        Some(3) => LogLevel::Warn,
        Some(4) => LogLevel::Error,
        // Critical, or "off" (6), which no level gets through.
        Some(5..) => LogLevel::Critical,
        _ => LogLevel::Info,
    }
}

/// Read directly: the SDK's `get_log_level` panics on a status it does not expect and writes
/// Envoy's value into an enum that has no "off" (spdlog's 6), which would be undefined behaviour.
#[allow(unsafe_code)]
mod raw {
    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        fn proxy_get_log_level(level: *mut u32) -> u32;
    }

    /// Envoy's spdlog level for wasm (0 trace .. 5 critical, 6 off); `None` if the host refused.
    pub fn log_level() -> Option<u32> {
        let mut level = 0u32;
        // SAFETY: the host writes one u32 through a pointer to a live, aligned u32; status 0 is Ok.
        let status = unsafe { proxy_get_log_level(&mut level) };
        (status == 0).then_some(level)
    }
}

pub fn now_ns() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub fn now_ms() -> i64 {
    i64::try_from(now_ns() / 1_000_000).unwrap_or(i64::MAX)
}

pub fn plugin_configuration() -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .ok()
        .flatten()
}

/// The request's headers, or `Err` naming the first whose value is not UTF-8. Envoy passes bytes
/// 0x80–0xFF through in values, and the SDK's string variants `unwrap()` their UTF-8 decoding: one
/// such header would panic and poison the VM. (Names are tokens, ASCII by the codecs' rules.)
pub fn request_headers() -> Result<Vec<(String, String)>, String> {
    hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| match String::from_utf8(value) {
            Ok(value) => Ok((name, value)),
            Err(_) => Err(name),
        })
        .collect()
}

pub fn set_request_header(name: &str, value: Option<&str>) {
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value);
}

pub fn remove_request_header(name: &str) {
    let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
}

/// One response header; a value that is not UTF-8 is decoded lossily (see [`request_headers`]).
pub fn response_header(name: &str) -> Option<String> {
    map_value(MapType::HttpResponseHeaders, name)
}

fn map_value(map: MapType, name: &str) -> Option<String> {
    hostcalls::get_map_value_bytes(map, name)
        .ok()
        .flatten()
        .map(|value| String::from_utf8_lossy(&value).into_owned())
}

pub fn set_response_header(name: &str, value: Option<&str>) {
    let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value);
}

pub fn remove_response_header(name: &str) {
    let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, name);
}

pub fn body(kind: BufferType, size: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(kind, 0, size).ok().flatten()
}

pub fn replace_body(kind: BufferType, old_size: usize, value: &[u8]) -> bool {
    hostcalls::set_buffer(kind, 0, old_size, value).is_ok()
}

/// A local answer. `false` when Envoy refused it; the caller then resets the stream.
pub fn send_response(
    status: u32,
    content_type: Option<&str>,
    body: &[u8],
    extra: &[(&str, &str)],
) -> bool {
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(2 + extra.len());
    if let Some(ct) = content_type {
        headers.push(("content-type", ct));
    }
    headers.extend_from_slice(extra);
    hostcalls::send_http_response(status, headers, Some(body)).is_ok()
}

pub fn reset_request() {
    let _ = hostcalls::reset_http_request();
}

pub fn resume_request() {
    let _ = hostcalls::resume_http_request();
}

/// The downstream peer's address, without the port.
pub fn source_ip() -> String {
    let Some(bytes) = hostcalls::get_property(vec!["source", "address"])
        .ok()
        .flatten()
    else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    match text.rsplit_once(':') {
        // "[::1]:5000" or "127.0.0.1:5000"
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        _ => text.into_owned(),
    }
}

pub fn shared_get(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Status> {
    hostcalls::get_shared_data(key)
}

pub fn shared_set(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
    hostcalls::set_shared_data(key, Some(value), cas)
}

pub fn dispatch_http_call(
    cluster: &str,
    headers: Vec<(&str, &str)>,
    body: &[u8],
    timeout: Duration,
) -> Result<u32, Status> {
    hostcalls::dispatch_http_call(cluster, headers, Some(body), vec![], timeout)
}

pub fn http_call_response_status() -> Option<u16> {
    map_value(MapType::HttpCallResponseHeaders, ":status").and_then(|s| s.parse().ok())
}

pub fn http_call_response_body(size: usize) -> Vec<u8> {
    hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    hostcalls::define_metric(kind, name).ok()
}

pub fn increment_metric(id: u32) {
    let _ = hostcalls::increment_metric(id, 1);
}

pub fn record_metric(id: u32, value: u64) {
    let _ = hostcalls::record_metric(id, value);
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if getrandom::fill(&mut out).is_err() {
        // WASI random_get failing would be a host fault; mix the clock in so ids stay distinct.
        let t = now_ns().to_le_bytes();
        for (i, b) in out.iter_mut().enumerate() {
            *b = t.get(i % t.len()).copied().unwrap_or(0) ^ (i as u8);
        }
    }
    out
}

/// The control plane's gRPC service, as Envoy's `grpc_service.envoy_grpc.cluster_name`.
pub const SERVICE: &str = "intentgate.v1.FilterSync";

fn metadata(authorization: Option<&str>) -> Vec<(&str, &[u8])> {
    authorization.map_or_else(Vec::new, |value| vec![("authorization", value.as_bytes())])
}

pub fn open_grpc_stream(
    cluster: &str,
    method: &str,
    authorization: Option<&str>,
) -> Result<u32, Status> {
    hostcalls::open_grpc_stream(cluster, SERVICE, method, metadata(authorization))
}

pub fn send_grpc_stream_message(token: u32, message: &[u8]) -> bool {
    hostcalls::send_grpc_stream_message(token, Some(message), false).is_ok()
}

pub fn dispatch_grpc_call(
    cluster: &str,
    method: &str,
    message: &[u8],
    timeout: Duration,
    authorization: Option<&str>,
) -> Result<u32, Status> {
    hostcalls::dispatch_grpc_call(
        cluster,
        SERVICE,
        method,
        metadata(authorization),
        Some(message),
        timeout,
    )
}

pub fn grpc_message(size: usize) -> Vec<u8> {
    hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub fn set_tick_period(period: Duration) {
    let _ = hostcalls::set_tick_period(period);
}

pub fn register_queue(name: &str) -> Option<u32> {
    hostcalls::register_shared_queue(name).ok()
}

pub fn enqueue(queue: u32, value: &[u8]) -> bool {
    hostcalls::enqueue_shared_queue(queue, Some(value)).is_ok()
}

pub fn dequeue(queue: u32) -> Option<Vec<u8>> {
    hostcalls::dequeue_shared_queue(queue).ok().flatten()
}

/// Envoy's node id, naming this filter to the control plane.
pub fn node_id() -> String {
    hostcalls::get_property(vec!["node", "id"])
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "envoy".into())
}

pub fn cancel_grpc_stream(token: u32) {
    let _ = hostcalls::cancel_grpc_stream(token);
}
