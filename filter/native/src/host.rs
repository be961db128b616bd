//! The engine's [`Host`] inside a stream's hook ([`StreamHost`], which also carries out the engine's
//! steps on the stream), and what every host in Envoy's process shares: the clock and the log (off
//! any stream: `background::LinkedHost`). Every method is one call into Envoy or none, and
//! none blocks: a gRPC call a stream makes goes to the background thread, which answers later.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use intentgate_core::engine::settings::ControlPlaneConfig;
use intentgate_core::engine::{
    CallId, CounterError, Edit, Host, HttpCallout, Level, LocalAnswer, Rpc, Side, StepTarget,
    without_port,
};
use intentgate_core::intent::external::MAX_ANSWER_BYTES;
use intentgate_envoy_dm::log::{self, Level as EnvoyLevel};
use intentgate_envoy_dm::{
    CalloutFailure, CalloutId, CalloutResponse, Direction, HeaderMap, LocalResponse, Stream,
};

use crate::background::{self, Inbox};
use crate::counters;
use crate::process::Process;

const JSON: &str = "application/json";

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn envoy_level(level: Level) -> EnvoyLevel {
    match level {
        Level::Info => EnvoyLevel::Info,
        Level::Warn => EnvoyLevel::Warn,
        Level::Error => EnvoyLevel::Error,
        Level::Critical => EnvoyLevel::Critical,
    }
}

/// Envoy's log (its `dynamic_modules` logger), from any thread.
pub fn log(level: Level, message: &str) {
    log::log(envoy_level(level), message);
}

/// The lowest level Envoy prints: audit lines are written at least at it.
pub fn log_level() -> Level {
    [Level::Info, Level::Warn, Level::Error]
        .into_iter()
        .find(|level| log::enabled(envoy_level(*level)))
        .unwrap_or(Level::Critical)
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// What a stream called out for and waits on: the extractor's callouts (Envoy's ids to the
/// engine's) and, once it made a gRPC call, the inbox the background thread answers into.
#[derive(Default)]
pub struct Calls {
    callouts: Vec<(CalloutId, CallId)>,
    pub inbox: Option<Arc<Inbox>>,
}

impl Calls {
    /// The engine's id and answer for one of this stream's callouts; `None` if it is not one.
    pub fn callout_answer(
        &mut self,
        id: CalloutId,
        result: Result<CalloutResponse, CalloutFailure>,
    ) -> Option<(CallId, intentgate_core::engine::Answer)> {
        let index = self
            .callouts
            .iter()
            .position(|(callout, _)| *callout == id)?;
        let (_, call) = self.callouts.swap_remove(index);
        let answer = match result {
            Ok(response) => {
                let status = response.status();
                let mut body = response.body;
                body.truncate(MAX_ANSWER_BYTES + 1);
                intentgate_core::engine::Answer::Http { status, body }
            }
            Err(_) => intentgate_core::engine::Answer::Http {
                status: None,
                body: Vec::new(),
            },
        };
        Some((call, answer))
    }
}

/// Envoy inside one stream's hook.
pub struct StreamHost<'h, 's> {
    pub stream: &'h mut Stream<'s>,
    pub calls: &'h mut Calls,
    pub process: &'h Arc<Process>,
}

fn map_of(side: Side) -> HeaderMap {
    match side {
        Side::Request => HeaderMap::RequestHeaders,
        Side::Response => HeaderMap::ResponseHeaders,
    }
}

fn direction(side: Side) -> Direction {
    match side {
        Side::Request => Direction::Request,
        Side::Response => Direction::Response,
    }
}

/// The answer Envoy sends for a [`LocalAnswer`].
pub fn local_response(answer: &LocalAnswer) -> LocalResponse {
    let mut response = LocalResponse::new(answer.status, answer.body.as_bytes())
        .details("intentgate_local_answer");
    for (name, value) in &answer.headers {
        response = response.header(name, value.as_str());
    }
    if !answer.body.is_empty() {
        response = response.header("content-type", JSON);
    }
    response
}

impl Host for StreamHost<'_, '_> {
    fn now_ns(&mut self) -> u64 {
        now_ns()
    }

    fn log(&mut self, level: Level, message: &str) {
        log(level, message);
    }

    fn log_level(&mut self) -> Level {
        log_level()
    }

    /// Envoy passes bytes 0x80–0xFF through in values: such a header is named, not decoded lossily.
    fn request_headers(&mut self) -> Result<Vec<(String, String)>, String> {
        self.stream
            .headers(HeaderMap::RequestHeaders)
            .iter()
            .map(|(name, value)| match std::str::from_utf8(value) {
                Ok(value) => Ok((name.to_owned(), value.to_owned())),
                Err(_) => Err(name.to_owned()),
            })
            .collect()
    }

    fn source_address(&mut self) -> String {
        self.stream
            .source_address()
            .map(|bytes| without_port(&lossy(bytes)).to_owned())
            .unwrap_or_default()
    }

    fn request_body(&mut self, size: usize) -> Option<Vec<u8>> {
        let mut body = self.stream.body(Direction::Request);
        body.truncate(size);
        Some(body)
    }

    fn response_header(&mut self, name: &str) -> Option<String> {
        self.stream
            .header(HeaderMap::ResponseHeaders, name)
            .map(lossy)
    }

    fn response_body(&mut self, size: usize) -> Option<Vec<u8>> {
        let mut body = self.stream.body(Direction::Response);
        body.truncate(size);
        Some(body)
    }

    fn update_counter(
        &mut self,
        key: &str,
        window: u64,
        step: &mut dyn FnMut(Option<u64>) -> Option<u64>,
    ) -> Result<(), CounterError> {
        counters::update(key, window, step)
    }

    fn http_callout(&mut self, callout: &HttpCallout<'_>) -> Option<CallId> {
        let headers: [(&str, &[u8]); 4] = [
            (":method", b"POST"),
            (":path", callout.path.as_bytes()),
            ("host", callout.authority.as_bytes()),
            ("content-type", JSON.as_bytes()),
        ];
        let timeout = Duration::from_millis(callout.timeout_ms);
        let id = self
            .stream
            .callout(callout.cluster, &headers, callout.body, timeout)
            .ok()?;
        let call = background::next_call_id();
        self.calls.callouts.push((id, call));
        Some(call)
    }

    /// Handed to the background thread; its answer comes back on this stream's worker.
    fn grpc_call(
        &mut self,
        _to: &ControlPlaneConfig,
        rpc: Rpc,
        message: &[u8],
        timeout_ms: u64,
    ) -> Option<CallId> {
        let inbox = match &self.calls.inbox {
            Some(inbox) => Arc::clone(inbox),
            None => {
                let inbox = Arc::new(Inbox::new(self.stream.waker()?));
                self.calls.inbox = Some(Arc::clone(&inbox));
                inbox
            }
        };
        background::call_for_stream(self.process, inbox, rpc, message, timeout_ms)
    }

    fn open_sync(&mut self, _to: &ControlPlaneConfig, _first: &[u8]) -> Option<CallId> {
        None
    }

    fn send_sync(&mut self, _stream: CallId, _message: &[u8]) -> bool {
        false
    }

    fn close_sync(&mut self, _stream: CallId) {}
}

impl StepTarget for StreamHost<'_, '_> {
    fn edit(&mut self, edit: &Edit) -> bool {
        match edit {
            Edit::Header {
                side,
                name,
                value: Some(value),
            } => self
                .stream
                .set_header(map_of(*side), name, value.as_bytes()),
            Edit::Header {
                side,
                name,
                value: None,
            } => self.stream.remove_header(map_of(*side), name),
            Edit::Body { side, body, .. } => self.stream.replace_body(direction(*side), body),
        }
    }

    fn respond(&mut self, answer: &LocalAnswer) {
        self.stream.respond(local_response(answer));
    }

    fn resume_request(&mut self) {
        self.stream.resume_request();
    }

    fn log(&mut self, level: Level, message: &str) {
        log(level, message);
    }
}
