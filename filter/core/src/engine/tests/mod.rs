//! The engine driven by a fake host: every path of an exchange, without a proxy. The fake keeps
//! the request and answer as a proxy would (header edits and body replacements applied), records
//! the callouts made, and counts every call into it — the host calls a real proxy would pay for.

mod approvals;
mod budgets;
mod calls;
mod exchanges;
mod resource;
mod routing;
mod runtime;
mod waits;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::{Value, json};

use super::settings::{ControlPlaneConfig, PluginConfig, Reach};
use super::*;
use crate::token::{Grant, IssuerKey, mint_for_audience};

pub const NOW_S: i64 = 1_781_444_520;
pub const TENANT: &str = "acme";

pub const POLICY: &str = r#"package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "no rule allows this tool", "rule": "default_deny"}
decision := {"allow": true, "rule": "reads"} if { startswith(input.tool, "read_") }
decision := {"allow": false, "escalate": true, "reason": "wires need a human", "rule": "wires"} if {
    startswith(input.tool, "wire_")
}
"#;

pub fn issuer() -> IssuerKey {
    IssuerKey::from_seed(&[7; 32])
}

/// A token of `agent` for `tools`, with `max_calls` when given.
pub fn token(agent: &str, tools: &[&str], max_calls: Option<u64>) -> String {
    token_for(agent, tools, max_calls, None)
}

/// [`token`], bound to the resource `audience` when given.
pub fn token_for(
    agent: &str,
    tools: &[&str],
    max_calls: Option<u64>,
    audience: Option<&str>,
) -> String {
    let grant = Grant {
        jti: format!("jti-{agent}"),
        issuer: "test".into(),
        subject: agent.into(),
        tenant: TENANT.into(),
        issued_at: NOW_S - 10,
        not_before: NOW_S - 10,
        expires_at: NOW_S + 3600,
        tools: Some(tools.iter().map(|t| t.to_string()).collect()),
        max_calls,
        step_up_at: None,
        memory_key: None,
    };
    mint_for_audience(&issuer(), &grant, audience, &[9; 32]).unwrap()
}

/// The plugin configuration: one tenant with [`POLICY`], plus `extra` top-level fields.
pub fn config(tenant_extra: Value, extra: Value) -> Vec<u8> {
    let mut tenant = json!({"policy": {"rego": POLICY}});
    tenant
        .as_object_mut()
        .unwrap()
        .extend(tenant_extra.as_object().cloned().unwrap_or_default());
    let mut config = json!({
        "gateway": {
            "keys": [{"public_key": issuer().public_base64()}],
            "tenants": {TENANT: tenant},
        }
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    serde_json::to_vec(&config).unwrap()
}

pub fn control_plane() -> Value {
    json!({"control_plane": {"cluster": "cp", "lease_slice": 4, "audit_buffer_events": 100}})
}

/// A callout the engine made.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Http { cluster: String, body: Vec<u8> },
    Grpc { rpc: Rpc, message: Vec<u8> },
    Sync { first: Vec<u8> },
}

/// Counters every fake host of one "proxy" shares, as Envoy's shared data is shared by its workers.
pub type SharedCounters = Rc<RefCell<HashMap<String, (u64, u64)>>>;

#[derive(Debug, Default)]
pub struct Fake {
    pub clock_ns: u64,
    pub request: Vec<(String, String)>,
    /// A request header whose value is not UTF-8.
    pub undecodable: Option<String>,
    pub request_body: Vec<u8>,
    pub response: Vec<(String, String)>,
    pub response_body: Vec<u8>,
    pub counters: SharedCounters,
    pub sent: Vec<(CallId, Sent)>,
    pub logs: Vec<(Level, String)>,
    pub log_level: Option<Level>,
    /// Callouts are refused (the proxy cannot dispatch them).
    pub refuse_callouts: bool,
    /// Calls into the host, by name.
    pub calls: Vec<&'static str>,
    next_call: CallId,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: Option<&String>) {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    if let Some(value) = value {
        headers.push((name.to_owned(), value.clone()));
    }
}

impl Fake {
    pub fn new() -> Self {
        Fake {
            clock_ns: u64::try_from(NOW_S).unwrap() * 1_000_000_000,
            next_call: 1,
            ..Fake::default()
        }
    }

    fn call(&mut self, name: &'static str) {
        self.calls.push(name);
    }

    fn dispatch(&mut self, sent: Sent) -> Option<CallId> {
        if self.refuse_callouts {
            return None;
        }
        let id = self.next_call;
        self.next_call += 1;
        self.sent.push((id, sent));
        Some(id)
    }

    /// Carries out a step as a proxy would, counting its calls: each edit, a local answer.
    pub fn apply(&mut self, step: &Step) {
        for edit in &step.edits {
            self.call("edit");
            match edit {
                Edit::Header { side, name, value } => {
                    let headers = match side {
                        Side::Request => &mut self.request,
                        Side::Response => &mut self.response,
                    };
                    set_header(headers, name, value.as_ref());
                }
                Edit::Body { side, size, body } => {
                    let buffer = match side {
                        Side::Request => &mut self.request_body,
                        Side::Response => &mut self.response_body,
                    };
                    assert_eq!(*size, buffer.len(), "a replacement covers the whole body");
                    *buffer = body.clone();
                }
            }
        }
        if let Outcome::Respond(_) = step.outcome {
            self.call("send_response");
        }
    }

    /// The last callout made, decoded as `M`.
    pub fn last_grpc<M: prost::Message + Default>(&self, rpc: Rpc) -> (CallId, M) {
        self.sent
            .iter()
            .rev()
            .find_map(|(id, sent)| match sent {
                Sent::Grpc { rpc: r, message } if *r == rpc => {
                    Some((*id, M::decode(message.as_slice()).unwrap()))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {rpc:?} call was made: {:?}", self.sent))
    }

    pub fn grpc_calls(&self, rpc: Rpc) -> usize {
        self.sent
            .iter()
            .filter(|(_, s)| matches!(s, Sent::Grpc { rpc: r, .. } if *r == rpc))
            .count()
    }
}

impl Host for Fake {
    fn now_ns(&mut self) -> u64 {
        self.call("now");
        self.clock_ns
    }

    fn log(&mut self, level: Level, message: &str) {
        self.call("log");
        self.logs.push((level, message.to_owned()));
    }

    fn log_level(&mut self) -> Level {
        self.call("log_level");
        self.log_level.unwrap_or(Level::Info)
    }

    fn request_headers(&mut self) -> Result<Vec<(String, String)>, String> {
        self.call("request_headers");
        match &self.undecodable {
            Some(name) => Err(name.clone()),
            None => Ok(self.request.clone()),
        }
    }

    fn source_address(&mut self) -> String {
        self.call("source_address");
        "10.1.2.3".into()
    }

    fn request_body(&mut self, size: usize) -> Option<Vec<u8>> {
        self.call("request_body");
        self.request_body.get(..size).map(<[u8]>::to_vec)
    }

    fn response_header(&mut self, name: &str) -> Option<String> {
        self.call("response_header");
        header(&self.response, name).cloned()
    }

    fn response_body(&mut self, size: usize) -> Option<Vec<u8>> {
        self.call("response_body");
        self.response_body.get(..size).map(<[u8]>::to_vec)
    }

    fn update_counter(
        &mut self,
        key: &str,
        window: u64,
        step: &mut dyn FnMut(Option<u64>) -> Option<u64>,
    ) -> Result<(), CounterError> {
        // A compare-and-swap is a read and a write.
        self.call("shared_get");
        let mut counters = self.counters.borrow_mut();
        let stored = counters.get(key).copied();
        let seen = stored.filter(|(w, _)| *w == window).map(|(_, n)| n);
        if let Some(next) = step(seen) {
            self.calls.push("shared_set");
            counters.insert(key.to_owned(), (window, next));
        }
        Ok(())
    }

    fn http_callout(&mut self, callout: &HttpCallout<'_>) -> Option<CallId> {
        self.call("http_callout");
        self.dispatch(Sent::Http {
            cluster: callout.cluster.to_owned(),
            body: callout.body.to_vec(),
        })
    }

    fn grpc_call(
        &mut self,
        to: &ControlPlaneConfig,
        rpc: Rpc,
        message: &[u8],
        _timeout_ms: u64,
    ) -> Option<CallId> {
        self.call("grpc_call");
        assert_eq!(to.cluster, "cp");
        self.dispatch(Sent::Grpc {
            rpc,
            message: message.to_vec(),
        })
    }

    fn open_sync(&mut self, _to: &ControlPlaneConfig, first: &[u8]) -> Option<CallId> {
        self.call("open_sync");
        self.dispatch(Sent::Sync {
            first: first.to_vec(),
        })
    }

    fn send_sync(&mut self, _stream: CallId, message: &[u8]) -> bool {
        self.call("send_sync");
        self.sent.push((
            0,
            Sent::Sync {
                first: message.to_vec(),
            },
        ));
        true
    }

    fn close_sync(&mut self, _stream: CallId) {
        self.call("close_sync");
    }
}

/// The tool server's answer in a test.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The answer ends with trailers rather than with its last data frame.
    pub trailers: bool,
    /// An empty body still comes as a data frame after the headers (a chunked answer).
    pub chunked: bool,
}

impl Upstream {
    pub fn json(body: Value) -> Self {
        Upstream {
            status: 200,
            content_type: "application/json",
            body: serde_json::to_vec(&body).unwrap(),
            trailers: false,
            chunked: false,
        }
    }

    pub fn result(id: u64) -> Self {
        Self::json(json!({"jsonrpc": "2.0", "id": id, "result": {"content": []}}))
    }

    pub fn bodyless(status: u16) -> Self {
        Upstream {
            status,
            content_type: "",
            body: Vec::new(),
            trailers: false,
            chunked: false,
        }
    }

    /// An empty answer whose end comes in a data frame after the headers, as Express sends a 202.
    pub fn chunked(status: u16) -> Self {
        Upstream {
            chunked: true,
            ..Self::bodyless(status)
        }
    }
}

/// What the client got.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub status: u16,
    pub body: Vec<u8>,
    /// Whether the gateway answered itself.
    pub local: bool,
}

impl Client {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn error_code(&self) -> i64 {
        self.json()["error"]["code"].as_i64().unwrap_or(0)
    }
}

/// Where an exchange is.
#[derive(Debug)]
pub enum Phase {
    /// Answered by the gateway.
    Answered(LocalAnswer),
    /// Held: waiting for callouts.
    Held,
    /// On its way to the upstream.
    Forwarded,
}

/// One exchange in flight.
pub struct Flight {
    pub stream: Stream,
    pub phase: Phase,
}

/// One Envoy worker: a runtime and its host.
pub struct Proxy {
    pub rt: Arc<Runtime>,
    pub host: Fake,
    /// Stats handed over on ticks: counters summed, last gauge, samples.
    pub stats: HashMap<&'static str, u64>,
}

pub struct Request<'a> {
    pub method: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Vec<u8>,
    /// The body ends with trailers rather than with its last data frame.
    pub trailers: bool,
    /// The body arrives in this many chunks.
    pub chunks: usize,
}

impl<'a> Request<'a> {
    pub fn post(token: Option<&str>, body: Value) -> Self {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(token) = token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        Request {
            method: "POST",
            headers,
            body: serde_json::to_vec(&body).unwrap(),
            trailers: false,
            chunks: 1,
        }
    }

    pub fn header(mut self, name: &'a str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

pub fn tools_call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

impl Proxy {
    pub fn new(config: &[u8]) -> Self {
        Self::sharing(config, SharedCounters::default())
    }

    /// A worker of the same proxy as the one whose counters are `counters`.
    pub fn sharing(config: &[u8], counters: SharedCounters) -> Self {
        let mut host = Fake::new();
        host.counters = counters;
        let rt = Runtime::configure(config, "node-1", [5; 32], &mut host).unwrap();
        host.calls.clear();
        Proxy {
            rt: Arc::new(rt),
            host,
            stats: HashMap::new(),
        }
    }

    pub fn standalone() -> Self {
        Self::new(&config(json!({}), json!({})))
    }

    /// Sends a request's headers and body; stops where the engine holds or answers it.
    pub fn send(&mut self, request: Request<'_>) -> Flight {
        let length = request.body.len();
        self.host.request = vec![(":method".into(), request.method.into())];
        if request.headers.iter().all(|(name, _)| *name != ":path") {
            self.host.request.push((":path".into(), "/v1/mcp".into()));
        }
        if length > 0 {
            self.host
                .request
                .push(("content-length".into(), length.to_string()));
        }
        for (name, value) in request.headers {
            self.host.request.push((name.into(), value));
        }
        self.host.request_body = request.body;
        let mut stream = Stream::new(&self.rt);
        let step = stream.on_request_headers(&self.rt, &mut self.host, length == 0);
        let mut flight = Flight {
            stream,
            phase: Phase::Held,
        };
        // Headers held (or let go) until the body comes: only a local answer ends the exchange.
        if !self.settle(&mut flight, step, false) && matches!(flight.phase, Phase::Answered(_))
            || length == 0
        {
            return flight;
        }
        let chunks = request.chunks.max(1);
        for chunk in 1..=chunks {
            let size = length * chunk / chunks;
            let last = chunk == chunks && !request.trailers;
            let step = flight
                .stream
                .on_request_body(&self.rt, &mut self.host, size, last);
            if !self.settle(&mut flight, step, false)
                && (last || matches!(flight.phase, Phase::Answered(_)))
            {
                return flight;
            }
        }
        if request.trailers {
            let step = flight.stream.on_request_trailers(&self.rt, &mut self.host);
            self.settle(&mut flight, step, false);
        }
        flight
    }

    /// Applies a step; `false` when the exchange is answered or held.
    fn settle(&mut self, flight: &mut Flight, step: Step, resume: bool) -> bool {
        self.host.apply(&step);
        match step.outcome {
            Outcome::Respond(answer) => {
                flight.phase = Phase::Answered(answer);
                false
            }
            Outcome::Pause => {
                flight.phase = Phase::Held;
                false
            }
            Outcome::Continue => {
                if resume {
                    self.host.call("resume");
                }
                flight.phase = Phase::Forwarded;
                true
            }
        }
    }

    /// A callout's answer arrives for a held exchange.
    pub fn answer(&mut self, flight: &mut Flight, call: CallId, answer: Answer) {
        let step = flight
            .stream
            .on_answer(&self.rt, &mut self.host, call, answer);
        self.settle(flight, step, true);
    }

    pub fn grpc_answer(
        &mut self,
        flight: &mut Flight,
        call: CallId,
        message: &impl prost::Message,
    ) {
        self.answer(
            flight,
            call,
            Answer::Grpc {
                status: 0,
                message: message.encode_to_vec(),
            },
        );
    }

    /// The request's bytes as the upstream got them, and its headers.
    pub fn upstream_request(&self) -> (Vec<(String, String)>, Value) {
        (
            self.host.request.clone(),
            serde_json::from_slice(&self.host.request_body).unwrap_or(Value::Null),
        )
    }

    /// Finishes the exchange: the upstream answers when the request reached it, and the stream ends.
    pub fn finish(&mut self, mut flight: Flight, upstream: Upstream) -> Client {
        let client = match std::mem::replace(&mut flight.phase, Phase::Held) {
            Phase::Answered(answer) => Client {
                status: answer.status,
                body: answer.body.into_bytes(),
                local: true,
            },
            Phase::Held => panic!("the exchange is still held"),
            Phase::Forwarded => self.upstream_answers(&mut flight, upstream),
        };
        flight.stream.on_end(&self.rt);
        client
    }

    fn upstream_answers(&mut self, flight: &mut Flight, upstream: Upstream) -> Client {
        self.host.response = vec![(":status".into(), upstream.status.to_string())];
        if !upstream.content_type.is_empty() {
            self.host
                .response
                .push(("content-type".into(), upstream.content_type.into()));
        }
        self.host.response_body = upstream.body.clone();
        let bodyless = upstream.body.is_empty() && !upstream.chunked;
        let step = flight
            .stream
            .on_response_headers(&self.rt, &mut self.host, bodyless);
        self.host.apply(&step);
        if let Outcome::Respond(answer) = step.outcome {
            return Client {
                status: answer.status,
                body: answer.body.into_bytes(),
                local: true,
            };
        }
        if !bodyless {
            let size = upstream.body.len();
            let step =
                flight
                    .stream
                    .on_response_body(&self.rt, &mut self.host, size, !upstream.trailers);
            self.host.apply(&step);
            if upstream.trailers {
                let step = flight.stream.on_response_trailers(&self.rt, &mut self.host);
                self.host.apply(&step);
            }
        }
        let status = header(&self.host.response, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Client {
            status,
            body: self.host.response_body.clone(),
            local: false,
        }
    }

    /// One whole exchange.
    pub fn exchange(&mut self, request: Request<'_>, upstream: Upstream) -> Client {
        let flight = self.send(request);
        self.finish(flight, upstream)
    }

    /// The runtime's tick; the stats it hands over are kept.
    pub fn tick(&mut self) {
        for delta in self.rt.tick(&mut self.host) {
            match delta {
                metrics::Delta::Add(metric, n) => {
                    *self.stats.entry(metric.name()).or_default() += n;
                }
                metrics::Delta::Set(metric, n) | metrics::Delta::Record(metric, n) => {
                    self.stats.insert(metric.name(), n);
                }
            }
        }
    }

    /// The audit events the last ticks wrote to the log.
    pub fn audit_lines(&self) -> Vec<Value> {
        self.host
            .logs
            .iter()
            .flat_map(|(_, text)| text.lines())
            .filter_map(|line| line.strip_prefix("intentgate-audit "))
            .map(|json| serde_json::from_str(json).unwrap())
            .collect()
    }

    pub fn advance_ms(&mut self, ms: u64) {
        self.host.clock_ns += ms * 1_000_000;
    }
}
