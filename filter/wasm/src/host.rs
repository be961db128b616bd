//! The engine's [`Host`] on proxy-wasm: every method is one call into Envoy, and a host error
//! becomes a value, never a panic (the SDK's trait helpers `unwrap()` host results, and a panic
//! would poison the VM for every request).

use std::time::{Duration, UNIX_EPOCH};

use intentgate_core::engine::settings::ControlPlaneConfig;
use intentgate_core::engine::{
    CallId, CounterError, Edit, Host, HttpCallout, Level, LocalAnswer, Rpc, Side, StepTarget,
    without_port,
};
use intentgate_core::intent::external::MAX_ANSWER_BYTES;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType};

use crate::counters;

/// The control plane's gRPC service, as Envoy's `grpc_service.envoy_grpc.cluster_name`.
const SERVICE: &str = "intentgate.v1.FilterSync";
const JSON: &str = "application/json";

/// Envoy, as the engine sees it.
pub struct Envoy;

fn proxy_level(level: Level) -> LogLevel {
    match level {
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Error => LogLevel::Error,
        Level::Critical => LogLevel::Critical,
    }
}

pub fn log(level: Level, message: &str) {
    let _ = hostcalls::log(proxy_level(level), message);
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

fn metadata(config: &ControlPlaneConfig) -> Option<String> {
    config.metadata()
}

fn grpc_metadata(value: Option<&str>) -> Vec<(&str, &[u8])> {
    value.map_or_else(Vec::new, |v| vec![("authorization", v.as_bytes())])
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl Host for Envoy {
    fn now_ns(&mut self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn log(&mut self, level: Level, message: &str) {
        log(level, message);
    }

    fn log_level(&mut self) -> Level {
        match raw::log_level() {
            Some(3) => Level::Warn,
            Some(4) => Level::Error,
            // Critical, or "off" (6), which no level gets through.
            Some(5..) => Level::Critical,
            _ => Level::Info,
        }
    }

    /// Envoy passes bytes 0x80–0xFF through in values, and the SDK's string variants `unwrap()`
    /// their UTF-8 decoding: one such header would panic and poison the VM. (Names are tokens,
    /// ASCII by the codecs' rules.)
    fn request_headers(&mut self) -> Result<Vec<(String, String)>, String> {
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| match String::from_utf8(value) {
                Ok(value) => Ok((name, value)),
                Err(_) => Err(name),
            })
            .collect()
    }

    fn source_address(&mut self) -> String {
        hostcalls::get_property(vec!["source", "address"])
            .ok()
            .flatten()
            .map(|bytes| without_port(&lossy(bytes)).to_owned())
            .unwrap_or_default()
    }

    fn request_body(&mut self, size: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
            .ok()
            .flatten()
    }

    fn response_header(&mut self, name: &str) -> Option<String> {
        hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
            .ok()
            .flatten()
            .map(lossy)
    }

    fn response_body(&mut self, size: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
            .ok()
            .flatten()
    }

    fn update_counter(
        &mut self,
        key: &str,
        window: u64,
        step: &mut dyn FnMut(Option<u64>) -> Option<u64>,
    ) -> Result<(), CounterError> {
        counters::update(key, window, step).map_err(|e| CounterError(e.to_string()))
    }

    fn http_callout(&mut self, callout: &HttpCallout<'_>) -> Option<CallId> {
        let headers = vec![
            (":method", "POST"),
            (":path", callout.path),
            (":authority", callout.authority),
            ("content-type", JSON),
        ];
        hostcalls::dispatch_http_call(
            callout.cluster,
            headers,
            Some(callout.body),
            vec![],
            Duration::from_millis(callout.timeout_ms),
        )
        .ok()
    }

    fn grpc_call(
        &mut self,
        to: &ControlPlaneConfig,
        rpc: Rpc,
        message: &[u8],
        timeout_ms: u64,
    ) -> Option<CallId> {
        let authorization = metadata(to);
        hostcalls::dispatch_grpc_call(
            &to.cluster,
            SERVICE,
            rpc.name(),
            grpc_metadata(authorization.as_deref()),
            Some(message),
            Duration::from_millis(timeout_ms),
        )
        .ok()
    }

    fn open_sync(&mut self, to: &ControlPlaneConfig, first: &[u8]) -> Option<CallId> {
        let authorization = metadata(to);
        let stream = hostcalls::open_grpc_stream(
            &to.cluster,
            SERVICE,
            "Sync",
            grpc_metadata(authorization.as_deref()),
        )
        .ok()?;
        if self.send_sync(stream, first) {
            Some(stream)
        } else {
            self.close_sync(stream);
            None
        }
    }

    fn send_sync(&mut self, stream: CallId, message: &[u8]) -> bool {
        hostcalls::send_grpc_stream_message(stream, Some(message), false).is_ok()
    }

    fn close_sync(&mut self, stream: CallId) {
        let _ = hostcalls::cancel_grpc_stream(stream);
    }
}

/// A step's calls on the current stream.
impl StepTarget for Envoy {
    fn edit(&mut self, edit: &Edit) -> bool {
        match edit {
            Edit::Header { side, name, value } => {
                let map = match side {
                    Side::Request => MapType::HttpRequestHeaders,
                    Side::Response => MapType::HttpResponseHeaders,
                };
                match value {
                    Some(value) => hostcalls::set_map_value(map, name, Some(value)).is_ok(),
                    None => hostcalls::remove_map_value(map, name).is_ok(),
                }
            }
            Edit::Body { side, size, body } => {
                let buffer = match side {
                    Side::Request => BufferType::HttpRequestBody,
                    Side::Response => BufferType::HttpResponseBody,
                };
                hostcalls::set_buffer(buffer, 0, *size, body).is_ok()
            }
        }
    }

    fn respond(&mut self, answer: &LocalAnswer) {
        respond(answer);
    }

    fn resume_request(&mut self) {
        let _ = hostcalls::resume_http_request();
    }

    fn log(&mut self, level: Level, message: &str) {
        log(level, message);
    }
}

/// A local answer; when Envoy refuses it, the stream is reset rather than let through.
pub fn respond(answer: &LocalAnswer) {
    let mut headers: Vec<(&str, &str)> = answer
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    if !answer.body.is_empty() {
        headers.push(("content-type", JSON));
    }
    if hostcalls::send_http_response(
        u32::from(answer.status),
        headers,
        Some(answer.body.as_bytes()),
    )
    .is_err()
    {
        let _ = hostcalls::reset_http_request();
    }
}

pub fn http_call_answer(body_size: usize) -> (Option<u16>, Vec<u8>) {
    let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| lossy(s).parse().ok());
    let body = hostcalls::get_buffer(
        BufferType::HttpCallResponseBody,
        0,
        body_size.min(MAX_ANSWER_BYTES + 1),
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    (status, body)
}

pub fn grpc_message(size: usize) -> Vec<u8> {
    if size == 0 {
        return Vec::new();
    }
    hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub fn plugin_configuration() -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .ok()
        .flatten()
}

pub fn set_tick_period(period: Duration) {
    let _ = hostcalls::set_tick_period(period);
}

/// Envoy's node id, naming this filter to the control plane.
pub fn node_id() -> String {
    hostcalls::get_property(vec!["node", "id"])
        .ok()
        .flatten()
        .map(lossy)
        .unwrap_or_default()
}

/// 32 bytes of the host's randomness, read once per VM to seed its ids.
pub fn seed() -> [u8; 32] {
    let mut out = [0u8; 32];
    if getrandom::fill(&mut out).is_err() {
        // WASI random_get failing would be a host fault; the clock keeps VMs apart.
        let t = Envoy.now_ns().to_le_bytes();
        for (i, b) in out.iter_mut().enumerate() {
            *b = t.get(i % t.len()).copied().unwrap_or(0) ^ (i as u8);
        }
    }
    out
}
