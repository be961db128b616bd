//! Arbitrary bytes as an HTTP body: the JSON-RPC envelope, `tools/call` params, the plan of each
//! entry with and without a valid token, the error body of every refusal, and for every call the
//! pipeline runs to a decision, the remaining checks (intent, policy, budget) and its audit event.
#![no_main]

use std::sync::{Arc, LazyLock};

use intentgate_core::budget::MemoryBudget;
use intentgate_core::config::Gateway;
use intentgate_core::decision::{Denial, ErrorCode};
use intentgate_core::exchange::{self, Action, Env};
use intentgate_core::jsonrpc::{self, Entry};
use intentgate_core::pipeline::{Plan, RequestContext, plan, tool_call_event};
use intentgate_core::token::{TokenCache, VerifiedToken};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use serde_json::value::RawValue;

struct Fixture {
    gateway: Gateway,
    token: Arc<VerifiedToken>,
    ctx: RequestContext,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let gateway = intentgate_fuzz::gateway().expect("the fixture gateway compiles");
    let header = format!("Bearer {}", intentgate_fuzz::root_token());
    let token = gateway
        .authenticate(
            &mut TokenCache::new(1),
            Some(&header),
            None,
            intentgate_fuzz::NOW,
        )
        .expect("the fixture token authenticates");
    let ctx = RequestContext {
        http_method: "POST".into(),
        path: "/v1/mcp".into(),
        remote_ip: "127.0.0.1".into(),
        session_id: "fuzz".into(),
        now_ms: intentgate_fuzz::NOW * 1000,
        ..RequestContext::default()
    };
    Fixture {
        gateway,
        token,
        ctx,
    }
});

/// Every error body the gateway sends must be one valid JSON-RPC error object.
fn check_error_body(id: Option<&RawValue>, denial: &Denial) {
    let body = jsonrpc::error_body(id, denial);
    let value: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body}"));
    assert_eq!(value["jsonrpc"], "2.0");
    assert_eq!(value["error"]["code"], denial.code.code());
}

fn entry_id<'a>(entry: &Entry<'a>) -> Option<&'a RawValue> {
    match entry {
        Entry::Call(call) => call.id,
        Entry::Response { id } => Some(id),
        Entry::Invalid { id, .. } => *id,
    }
}

/// The filter's whole-request decision: whatever it forwards or answers must be JSON again.
fn check_exchange(fixture: &Fixture, data: &[u8]) {
    let auth: Result<Arc<VerifiedToken>, Denial> = Ok(Arc::clone(&fixture.token));
    let intent = fixture
        .gateway
        .builtin_intent(&fixture.token.tenant, Some("show invoice 7"));
    let budget = MemoryBudget::new();
    let mut next_id = || "01JEVENT000000000000000000".to_owned();
    let mut env = Env {
        gateway: &fixture.gateway,
        ctx: &fixture.ctx,
        auth: &auth,
        budget: &budget,
        next_id: &mut next_id,
        approvals: false,
        approved_rule: None,
    };
    let disposition = exchange::decide(&mut env, data, &intent);
    match &disposition.action {
        Action::Forward => {}
        Action::ForwardBody(body) => {
            let value: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
                panic!(
                    "reduced batch is not JSON ({e}): {}",
                    String::from_utf8_lossy(body)
                )
            });
            assert!(value.is_array(), "a reduced body is a batch");
        }
        Action::Respond { body, .. } if body.is_empty() => {}
        Action::Respond { body, .. } => {
            serde_json::from_str::<Value>(body)
                .unwrap_or_else(|e| panic!("local answer is not JSON ({e}): {body}"));
        }
    }
    for error in &disposition.response.local_errors {
        serde_json::from_str::<Value>(error)
            .unwrap_or_else(|e| panic!("local error is not JSON ({e}): {error}"));
    }
}

fuzz_target!(|data: &[u8]| {
    let fixture = &*FIXTURE;
    check_exchange(fixture, data);
    let message = match jsonrpc::parse(data) {
        Ok(message) => message,
        Err(denial) => {
            assert!(matches!(
                denial.code,
                ErrorCode::ParseError | ErrorCode::InvalidRequest
            ));
            check_error_body(None, &denial);
            return;
        }
    };
    let valid: Result<Arc<VerifiedToken>, Denial> = Ok(Arc::clone(&fixture.token));
    let refused: Result<Arc<VerifiedToken>, Denial> = Err(Denial::capability("fuzz: no token"));
    for entry in message.entries() {
        if let Entry::Call(call) = entry
            && let Ok(tool_call) = jsonrpc::tool_call(call)
        {
            assert!(!tool_call.name.is_empty());
            if let Some(args) = tool_call.arguments {
                assert!(
                    args.get().trim_start().starts_with('{'),
                    "arguments are an object"
                );
            }
        }
        let id = entry_id(entry);
        for auth in [&valid, &refused] {
            match plan(entry, auth) {
                Plan::Refuse(denial) => check_error_body(id, &denial),
                Plan::Evaluate(call) => {
                    let token = auth
                        .as_ref()
                        .expect("only an authenticated call is evaluated");
                    let intent = fixture
                        .gateway
                        .builtin_intent(&token.tenant, Some("show invoice 7"));
                    let verdict = fixture.gateway.decide_tool_call(
                        &fixture.ctx,
                        token,
                        &call,
                        &intent,
                        &MemoryBudget::new(),
                        None,
                    );
                    if let intentgate_core::decision::Verdict::Deny(denial) = &verdict {
                        check_error_body(id, denial);
                    }
                    let mut event = tool_call_event(
                        "01JEVENT000000000000000000".into(),
                        &fixture.ctx,
                        Some(token),
                        Some(&call),
                        &verdict,
                        &intent,
                    );
                    event.set_latency(0.5);
                    let canonical = event.canonical();
                    serde_json::from_str::<Value>(&canonical).expect("canonical audit JSON parses");
                }
                Plan::Forward | Plan::ForwardToolList => {}
            }
        }
    }
});
