//! Requests held for the intent extractor and for budget leases.

use intentgate_proto::v1;
use serde_json::json;

use super::*;

fn extractor_proxy() -> Proxy {
    let extra = json!({"intent_extractor": {"cluster": "extractor", "timeout_ms": 500}});
    Proxy::new(&config(json!({}), extra))
}

fn prompted(id: u64, tool: &str) -> Request<'static> {
    Request::post(
        Some(&token("agent-x", &["read_*", "delete_*"], None)),
        tools_call(id, tool, json!({})),
    )
    .header("x-intent-prompt", "show my invoices")
}

fn extractor_call(proxy: &Proxy) -> (CallId, Value) {
    let (id, sent) = proxy
        .host
        .sent
        .last()
        .expect("the extractor was called")
        .clone();
    let Sent::Http { cluster, body } = sent else {
        panic!("not an HTTP callout: {sent:?}")
    };
    assert_eq!(cluster, "extractor");
    (id, serde_json::from_slice(&body).unwrap())
}

fn intent_answer(allowed: &[&str]) -> Answer {
    let body = json!({"intent": {"summary": "invoices", "allowed_tools": allowed, "forbidden_tools": [], "confidence": 0.9}});
    Answer::Http {
        status: Some(200),
        body: serde_json::to_vec(&body).unwrap(),
    }
}

#[test]
fn the_extractor_decides_intent_and_its_answer_is_cached() {
    let mut proxy = extractor_proxy();
    let mut flight = proxy.send(prompted(1, "read_invoice"));
    assert!(matches!(flight.phase, Phase::Held));
    let (call, asked) = extractor_call(&proxy);
    assert_eq!(
        asked,
        json!({"prompt": "show my invoices", "agent_id": "agent-x"})
    );
    proxy.answer(&mut flight, call, intent_answer(&["read_*"]));
    assert!(matches!(flight.phase, Phase::Forwarded));
    assert!(!proxy.finish(flight, Upstream::result(1)).local);

    // Same agent and prompt: from the cache, no callout; a tool outside the intent is refused.
    let before = proxy.host.sent.len();
    let client = proxy.exchange(prompted(2, "delete_invoice"), Upstream::result(2));
    assert_eq!(proxy.host.sent.len(), before, "answered from the cache");
    assert_eq!(client.error_code(), -32011);
    proxy.tick();
    assert_eq!(proxy.audit_lines()[0]["intent_summary"], "invoices");
}

#[test]
fn an_extractor_timeout_or_bad_answer_fails_the_intent_check() {
    let failures = [
        Answer::Http {
            status: None,
            body: Vec::new(),
        },
        Answer::Http {
            status: Some(504),
            body: Vec::new(),
        },
        Answer::Http {
            status: Some(200),
            body: b"{\"intent\": 7}".to_vec(),
        },
        Answer::Http {
            status: Some(500),
            body: b"{}".to_vec(),
        },
    ];
    for failure in failures {
        let mut proxy = extractor_proxy();
        let mut flight = proxy.send(prompted(1, "read_invoice"));
        let (call, _) = extractor_call(&proxy);
        proxy.answer(&mut flight, call, failure.clone());
        let client = proxy.finish(flight, Upstream::result(1));
        assert!(client.local, "{failure:?}");
        assert_eq!(client.error_code(), -32011, "{failure:?}");
        // A failure is not cached: the next call asks again.
        let flight = proxy.send(prompted(2, "read_invoice"));
        assert!(matches!(flight.phase, Phase::Held), "{failure:?}");
    }
}

#[test]
fn an_extractor_that_cannot_be_called_fails_the_intent_check() {
    let mut proxy = extractor_proxy();
    proxy.host.refuse_callouts = true;
    let client = proxy.exchange(prompted(1, "read_invoice"), Upstream::result(1));
    assert_eq!(client.error_code(), -32011);
}

#[test]
fn an_answer_for_another_call_leaves_the_request_held() {
    let mut proxy = extractor_proxy();
    let mut flight = proxy.send(prompted(1, "read_invoice"));
    proxy.answer(&mut flight, 999, intent_answer(&["read_*"]));
    assert!(matches!(flight.phase, Phase::Held));
}

fn leased_proxy() -> Proxy {
    Proxy::new(&config(json!({}), control_plane()))
}

fn lease(id: &str, granted: u64, used: u64) -> v1::LeaseResponse {
    v1::LeaseResponse {
        lease_id: id.into(),
        granted,
        used,
        ttl_ms: 10_000,
    }
}

#[test]
fn a_budgeted_call_waits_for_its_lease_then_uses_it_until_it_expires() {
    let mut proxy = leased_proxy();
    let token = token("agent-l", &["read_*"], Some(10));
    let mut flight = proxy.send(Request::post(
        Some(&token),
        tools_call(1, "read_a", json!({})),
    ));
    assert!(matches!(flight.phase, Phase::Held));
    let (call, asked) = proxy.host.last_grpc::<v1::LeaseRequest>(Rpc::LeaseBudget);
    assert_eq!(asked.counter, "calls/jti-agent-l");
    assert_eq!(
        (asked.limit, asked.want, asked.tenant.as_str()),
        (10, 4, TENANT)
    );
    proxy.grpc_answer(&mut flight, call, &lease("L1", 2, 2));
    assert!(!proxy.finish(flight, Upstream::result(1)).local);
    // The second call takes the lease's other call: no callout.
    let client = proxy.exchange(
        Request::post(Some(&token), tools_call(2, "read_a", json!({}))),
        Upstream::result(2),
    );
    assert!(!client.local);
    assert_eq!(proxy.host.grpc_calls(Rpc::LeaseBudget), 1);
    // The third needs a new lease.
    let flight = proxy.send(Request::post(
        Some(&token),
        tools_call(3, "read_a", json!({})),
    ));
    assert!(matches!(flight.phase, Phase::Held));
    assert_eq!(proxy.host.grpc_calls(Rpc::LeaseBudget), 2);
}

#[test]
fn an_expired_lease_is_given_back_with_its_unused_calls_on_the_tick() {
    let mut proxy = leased_proxy();
    let token = token("agent-e", &["read_*"], Some(10));
    let mut flight = proxy.send(Request::post(
        Some(&token),
        tools_call(1, "read_a", json!({})),
    ));
    let (call, _) = proxy.host.last_grpc::<v1::LeaseRequest>(Rpc::LeaseBudget);
    proxy.grpc_answer(&mut flight, call, &lease("L9", 4, 4));
    proxy.finish(flight, Upstream::result(1));
    proxy.advance_ms(10_001);
    proxy.tick();
    let (_, giveback) = proxy.host.last_grpc::<v1::LeaseRequest>(Rpc::LeaseBudget);
    assert_eq!(giveback.returning_lease_id, "L9");
    assert_eq!(giveback.returning_unused, 3);
    // An expired lease is not used: the next call asks again.
    let flight = proxy.send(Request::post(
        Some(&token),
        tools_call(2, "read_a", json!({})),
    ));
    assert!(matches!(flight.phase, Phase::Held));
}

#[test]
fn a_spent_budget_or_an_unanswered_lease_refuses_with_32013() {
    let mut proxy = leased_proxy();
    let token = token("agent-s", &["read_*"], Some(3));
    let mut flight = proxy.send(Request::post(
        Some(&token),
        tools_call(1, "read_a", json!({})),
    ));
    let (call, _) = proxy.host.last_grpc::<v1::LeaseRequest>(Rpc::LeaseBudget);
    proxy.grpc_answer(&mut flight, call, &lease("", 0, 3));
    let client = proxy.finish(flight, Upstream::result(1));
    assert_eq!(client.error_code(), -32013);
    assert_eq!(client.json()["error"]["data"]["used"], 3);

    let other = token_for_failure();
    let mut flight = proxy.send(Request::post(
        Some(&other),
        tools_call(2, "read_a", json!({})),
    ));
    let (call, _) = proxy.host.last_grpc::<v1::LeaseRequest>(Rpc::LeaseBudget);
    proxy.answer(
        &mut flight,
        call,
        Answer::Grpc {
            status: 14,
            message: Vec::new(),
        },
    );
    let client = proxy.finish(flight, Upstream::result(2));
    assert_eq!(client.error_code(), -32013, "fails closed without a lease");
}

fn token_for_failure() -> String {
    token("agent-f", &["read_*"], Some(3))
}
