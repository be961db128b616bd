//! What one decision of `make bench`'s gateway request costs inside the engine, in ns per call:
//! building the policy input, evaluating the policy, the checks after the token
//! (`Gateway::decide_tool_call`), and the whole exchange as a host drives it. Not a test: run it
//! with `cargo run --profile native -p intentgate-core --example decision_cost [iterations]`, and
//! profile it with `perf record -g` on the same binary.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use intentgate_core::budget::MemoryBudget;
use intentgate_core::config::Gateway;
use intentgate_core::engine::{
    CallId, CounterError, Host, HttpCallout, Level, Rpc, Runtime, Stream,
    settings::ControlPlaneConfig,
};
use intentgate_core::intent::IntentSource;
use intentgate_core::jsonrpc::{self, Entry};
use intentgate_core::pipeline::{self, RequestContext, policy_headers};
use intentgate_core::policy::{CapabilityInput, PolicyInput, RequestInput, empty_args};
use intentgate_core::token::{self, Grant, IssuerKey, PublicKeys, mint};

const POLICY: &str = include_str!("../../../envoy/demo-policy.rego");
const BODY: &str = r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hello"}}}"#;
const TENANT: &str = "bench";
const NOW_S: u64 = 1_781_444_520;

/// A proxy that answers at once: the engine's own cost, none of a proxy's.
struct Proxy {
    clock_ns: u64,
    headers: Vec<(String, String)>,
    counters: HashMap<String, (u64, u64)>,
}

impl Host for Proxy {
    fn now_ns(&mut self) -> u64 {
        self.clock_ns += 1_000;
        self.clock_ns
    }
    fn log(&mut self, _level: Level, _message: &str) {}
    fn log_level(&mut self) -> Level {
        Level::Warn
    }
    fn request_headers(&mut self) -> Result<Vec<(String, String)>, String> {
        Ok(self.headers.clone())
    }
    fn source_address(&mut self) -> String {
        "127.0.0.1".into()
    }
    fn request_body(&mut self, size: usize) -> Option<Vec<u8>> {
        BODY.as_bytes().get(..size).map(<[u8]>::to_vec)
    }
    fn response_header(&mut self, name: &str) -> Option<String> {
        (name == ":status").then(|| "200".into())
    }
    fn response_body(&mut self, _size: usize) -> Option<Vec<u8>> {
        None
    }
    fn update_counter(
        &mut self,
        key: &str,
        window: u64,
        step: &mut dyn FnMut(Option<u64>) -> Option<u64>,
    ) -> Result<(), CounterError> {
        let current = self
            .counters
            .get(key)
            .filter(|(w, _)| *w == window)
            .map(|(_, n)| *n);
        if let Some(next) = step(current) {
            self.counters.insert(key.to_owned(), (window, next));
        }
        Ok(())
    }
    fn http_callout(&mut self, _callout: &HttpCallout<'_>) -> Option<CallId> {
        None
    }
    fn grpc_call(
        &mut self,
        _to: &ControlPlaneConfig,
        _rpc: Rpc,
        _message: &[u8],
        _timeout_ms: u64,
    ) -> Option<CallId> {
        None
    }
    fn open_sync(&mut self, _to: &ControlPlaneConfig, _first: &[u8]) -> Option<CallId> {
        None
    }
    fn send_sync(&mut self, _stream: CallId, _message: &[u8]) -> bool {
        false
    }
    fn close_sync(&mut self, _stream: CallId) {}
}

fn report(label: &str, iterations: u32, run: impl FnMut()) {
    let mut run = run;
    for _ in 0..iterations / 10 {
        run();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        run();
    }
    let ns = start.elapsed().as_nanos() / u128::from(iterations);
    println!("{label:<44} {ns:>8} ns/call");
}

fn main() -> Result<(), String> {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let only = std::env::args().nth(2);
    let key = IssuerKey::from_seed(&[7; 32]);
    let now = i64::try_from(NOW_S).map_err(|e| e.to_string())?;
    let grant = Grant {
        jti: "bench-jti".into(),
        issuer: "bench".into(),
        subject: "bench-agent".into(),
        tenant: TENANT.into(),
        issued_at: now - 10,
        not_before: now - 10,
        expires_at: now + 3600,
        tools: Some(vec!["echo".into(), "get-*".into()]),
        max_calls: Some(1_000_000_000_000),
        step_up_at: None,
        memory_key: None,
    };
    let token_text = mint(&key, &grant, &[9; 32]).map_err(|e| e.to_string())?;
    let plugin = serde_json::json!({
        "gateway": {
            "keys": [{"public_key": key.public_base64()}],
            "tenants": {TENANT: {"policy": {"rego": POLICY}}},
        }
    });
    let headers: Vec<(String, String)> = [
        (":authority", "127.0.0.1:10000"),
        (":path", "/v1/mcp"),
        (":method", "POST"),
        (":scheme", "http"),
        ("content-length", &BODY.len().to_string()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("authorization", &format!("Bearer {token_text}")),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "0f0e0d0c-0b0a-0908-0706-050403020100"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();

    // The policy check's parts, on the values the engine builds for this request.
    let runtime_gateway: Arc<Gateway> = {
        let mut proxy = Proxy {
            clock_ns: NOW_S * 1_000_000_000,
            headers: headers.clone(),
            counters: HashMap::new(),
        };
        Runtime::configure(plugin.to_string().as_bytes(), "bench", [1; 32], &mut proxy)?.gateway()
    };
    let keys: &PublicKeys = &runtime_gateway.keys;
    let verified = token::verify(&token_text, keys).map_err(|e| e.to_string())?;
    let tenant = runtime_gateway
        .tenant(TENANT)
        .ok_or("the tenant is configured")?;
    let policy = tenant.policy.as_ref().ok_or("the tenant has a policy")?;
    let message = jsonrpc::parse(BODY.as_bytes()).map_err(|d| d.reason)?;
    let Some(Entry::Call(call)) = message.entries().first() else {
        return Err("the body is one call".into());
    };
    let call = jsonrpc::tool_call(call).map_err(|d| d.reason)?;
    let ctx = RequestContext {
        http_method: "POST".into(),
        path: "/v1/mcp".into(),
        remote_ip: "127.0.0.1".into(),
        session_id: String::new(),
        headers: policy_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        memory_provenance: None,
        now_ms: now * 1000,
    };
    let input = PolicyInput {
        method: "tools/call",
        tool: &call.name,
        args: call.arguments.unwrap_or(empty_args()),
        agent_id: &verified.subject,
        tenant: &verified.tenant,
        capability: CapabilityInput::of(&verified),
        intent: None,
        request: RequestInput {
            method: &ctx.http_method,
            path: &ctx.path,
            remote_ip: &ctx.remote_ip,
            headers: &ctx.headers,
        },
        now,
    };
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if run("input") {
        report(
            "policy input built (PolicyInput::to_value)",
            iterations,
            || {
                black_box(input.to_value(verified.policy_view.as_ref()).ok());
            },
        );
    }
    if run("evaluate") {
        let ready = input.to_value(verified.policy_view.as_ref())?;
        report(
            "policy evaluated, input ready (Policy::evaluate)",
            iterations,
            || {
                black_box(policy.evaluate(ready.clone()));
            },
        );
    }
    if run("policy") {
        report(
            "policy check (pipeline::evaluate_policy)",
            iterations,
            || {
                black_box(pipeline::evaluate_policy(
                    &ctx,
                    &verified,
                    tenant,
                    &call,
                    &IntentSource::NotDeclared,
                ));
            },
        );
    }
    let budget = MemoryBudget::default();
    if run("checks") {
        report(
            "checks after the token (decide_tool_call)",
            iterations,
            || {
                black_box(runtime_gateway.decide_tool_call(
                    &ctx,
                    &verified,
                    &call,
                    &IntentSource::NotDeclared,
                    &budget,
                    None,
                ));
            },
        );
    }

    // The whole exchange, as a host drives it: headers, body, upstream status, end; audit lines
    // written on a tick every 1,000 exchanges as a 100 ms tick would at ~10k requests/s.
    let mut proxy = Proxy {
        clock_ns: NOW_S * 1_000_000_000,
        headers,
        counters: HashMap::new(),
    };
    let rt = Runtime::configure(plugin.to_string().as_bytes(), "bench", [1; 32], &mut proxy)?;
    let mut exchanges = 0u32;
    if run("exchange") {
        report(
            "whole exchange (Stream, headers to end)",
            iterations,
            || {
                let mut stream = Stream::new(&rt);
                black_box(stream.on_request_headers(&rt, &mut proxy, false));
                black_box(stream.on_request_body(&rt, &mut proxy, BODY.len(), true));
                black_box(stream.on_response_headers(&rt, &mut proxy, false));
                stream.on_end(&rt);
                exchanges += 1;
                if exchanges.is_multiple_of(1_000) {
                    black_box(rt.tick(&mut proxy));
                }
            },
        );
    }
    Ok(())
}
