//! How many calls into the proxy one allowed `tools/call` costs. Each is a crossing of the wasm
//! boundary (or of the native ABI); in Envoy's V8 the ones that return data cost microseconds. The
//! limit is 8, in standalone and in control-plane mode, for every exchange of a steady stream,
//! sampled ones included; README lists the calls.

use intentgate_proto::v1;
use serde_json::json;

use super::*;

const LIMIT: usize = 8;

/// The calls of one allowed `tools/call`, from its headers to the stream's end.
fn one_call(proxy: &mut Proxy, token: &str, id: u64) -> Vec<&'static str> {
    proxy.host.calls.clear();
    let request = Request::post(
        Some(token),
        tools_call(id, "read_invoice", json!({"n": id})),
    )
    .header("mcp-session-id", "s-1");
    let flight = proxy.send(request);
    assert!(
        matches!(flight.phase, Phase::Forwarded),
        "call {id} was not forwarded at once: {:?}",
        flight.phase
    );
    let client = proxy.finish(flight, Upstream::result(id));
    assert!(!client.local);
    std::mem::take(&mut proxy.host.calls)
}

fn assert_within_limit(proxy: &mut Proxy, token: &str, first: u64) {
    // Enough exchanges to include sampled ones.
    for id in first..first + 2 * SAMPLE_EVERY {
        let calls = one_call(proxy, token, id);
        assert!(
            calls.len() <= LIMIT,
            "call {id} made {} host calls (limit {LIMIT}): {calls:?}",
            calls.len()
        );
    }
}

#[test]
fn an_allowed_call_makes_at_most_eight_host_calls_standalone() {
    let mut proxy = Proxy::standalone();
    let token = token("agent-calls", &["read_*"], Some(1_000_000));
    // The first call verifies the token and reserves a block of its budget.
    let first = one_call(&mut proxy, &token, 1);
    assert!(first.contains(&"shared_set"), "{first:?}");
    let steady = one_call(&mut proxy, &token, 2);
    assert_eq!(
        steady,
        [
            "request_headers",
            "edit",
            "request_body",
            "now",
            "source_address",
            "now",
            "response_header"
        ],
        "the calls README lists"
    );
    assert_within_limit(&mut proxy, &token, 3);
    proxy.tick();
    assert_eq!(
        proxy.audit_lines().len(),
        2 + 2 * SAMPLE_EVERY as usize,
        "every call audited"
    );
}

#[test]
fn an_allowed_call_makes_at_most_eight_host_calls_with_a_control_plane() {
    let mut proxy = Proxy::new(&config(json!({}), control_plane()));
    let token = token("agent-calls", &["read_*"], Some(1_000_000));
    // The first call waits for a lease of its budget.
    proxy.host.calls.clear();
    let mut flight = proxy.send(Request::post(
        Some(&token),
        tools_call(1, "read_invoice", json!({})),
    ));
    let (call, request) = proxy.host.last_grpc::<v1::LeaseRequest>(Rpc::LeaseBudget);
    assert_eq!(request.want, 4, "the configured slice");
    let grant = v1::LeaseResponse {
        lease_id: "L1".into(),
        granted: 64,
        used: 64,
        ttl_ms: 10_000,
    };
    proxy.grpc_answer(&mut flight, call, &grant);
    assert!(!proxy.finish(flight, Upstream::result(1)).local);
    assert_within_limit(&mut proxy, &token, 2);
    assert_eq!(
        proxy.host.grpc_calls(Rpc::LeaseBudget),
        1,
        "one lease served them all"
    );
    // The audit events go to the control plane on the tick, in one batch.
    proxy.tick();
    let (_, batch) = proxy.host.last_grpc::<v1::AuditBatch>(Rpc::IngestAudit);
    assert_eq!(batch.events.len(), 1 + 2 * SAMPLE_EVERY as usize);
}
