//! Calls a policy escalates to a human: held, polled, approved, rejected, timed out, parked.

use intentgate_proto::v1::{self, approval_status::State};
use serde_json::json;

use super::*;

fn proxy(mode: &str, timeout_secs: u64) -> Proxy {
    let settings =
        json!({"settings": {"approval_mode": mode, "approval_timeout_secs": timeout_secs}});
    Proxy::new(&config(settings, control_plane()))
}

fn wire(id: u64) -> Request<'static> {
    Request::post(
        Some(&token("agent-w", &["wire_*", "read_*"], None)),
        tools_call(id, "wire_money", json!({"to": "x", "amount": 5})),
    )
}

fn created(proxy: &mut Proxy, flight: &mut Flight, id: &str) {
    let (call, request) = proxy
        .host
        .last_grpc::<v1::ApprovalRequest>(Rpc::CreateApproval);
    let event: Value = serde_json::from_str(&request.event_json).unwrap();
    assert_eq!(event["decision"], "escalate");
    assert_eq!(event["rule"], "wires");
    assert_eq!(
        request.arguments_json, r#"{"amount":5,"to":"x"}"#,
        "as sent"
    );
    proxy.grpc_answer(flight, call, &v1::ApprovalCreated { id: id.into() });
}

fn status(state: State) -> v1::ApprovalStatus {
    v1::ApprovalStatus {
        state: state as i32,
        decided_by: "joe".into(),
        reason: "looks fine".into(),
    }
}

#[test]
fn a_held_call_is_polled_until_approved_then_decided_again_and_forwarded() {
    let mut proxy = proxy("sync", 300);
    let mut flight = proxy.send(wire(1));
    created(&mut proxy, &mut flight, "ap-1");
    let (call, wait) = proxy
        .host
        .last_grpc::<v1::AwaitApprovalRequest>(Rpc::AwaitApproval);
    assert_eq!((wait.id.as_str(), wait.tenant.as_str()), ("ap-1", TENANT));
    // Still pending after a slice of waiting: asked again.
    proxy.grpc_answer(&mut flight, call, &status(State::Pending));
    assert!(matches!(flight.phase, Phase::Held));
    assert_eq!(proxy.host.grpc_calls(Rpc::AwaitApproval), 2);
    let (call, _) = proxy
        .host
        .last_grpc::<v1::AwaitApprovalRequest>(Rpc::AwaitApproval);
    proxy.grpc_answer(&mut flight, call, &status(State::Approved));
    let (call, used) = proxy
        .host
        .last_grpc::<v1::UseApprovalRequest>(Rpc::UseApproval);
    assert_eq!(
        (used.tool.as_str(), used.agent_id.as_str()),
        ("wire_money", "agent-w")
    );
    assert_eq!(
        used.arguments_sha256,
        crate::exchange::arguments_digest_of(&json!({"amount": 5, "to": "x"}))
    );
    let granted = v1::ApprovalUse {
        granted: true,
        escalating_rule: "wires".into(),
        ..Default::default()
    };
    proxy.grpc_answer(&mut flight, call, &granted);
    assert!(
        matches!(flight.phase, Phase::Forwarded),
        "{:?}",
        flight.phase
    );
    assert!(!proxy.finish(flight, Upstream::result(1)).local);
    proxy.tick();
    let (_, batch) = proxy.host.last_grpc::<v1::AuditBatch>(Rpc::IngestAudit);
    let decisions: Vec<Value> = batch
        .events
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.event_json).unwrap()["decision"].clone())
        .collect();
    assert_eq!(decisions, [json!("escalate"), json!("allow")]);
}

#[test]
fn a_rejected_call_is_denied_with_who_rejected_it() {
    let mut proxy = proxy("sync", 300);
    let mut flight = proxy.send(wire(1));
    created(&mut proxy, &mut flight, "ap-2");
    let (call, _) = proxy
        .host
        .last_grpc::<v1::AwaitApprovalRequest>(Rpc::AwaitApproval);
    proxy.grpc_answer(&mut flight, call, &status(State::Rejected));
    let client = proxy.finish(flight, Upstream::result(1));
    assert_eq!(client.error_code(), -32012);
    let reason = client.json()["error"]["data"]["reason"].clone();
    assert_eq!(reason, "approval ap-2 rejected by joe: looks fine");
}

#[test]
fn an_undecided_call_times_out_at_the_tenants_deadline() {
    let mut proxy = proxy("sync", 60);
    let mut flight = proxy.send(wire(1));
    created(&mut proxy, &mut flight, "ap-3");
    let (call, wait) = proxy
        .host
        .last_grpc::<v1::AwaitApprovalRequest>(Rpc::AwaitApproval);
    assert_eq!(wait.wait_ms, 30_000, "one slice at a time");
    proxy.advance_ms(60_000);
    proxy.grpc_answer(&mut flight, call, &status(State::Pending));
    let client = proxy.finish(flight, Upstream::result(1));
    assert_eq!(client.error_code(), -32012);
    let reason = client.json()["error"]["data"]["reason"].clone();
    assert_eq!(reason, "approval ap-3 was not decided within 60 s");
}

#[test]
fn an_asynchronous_tenant_gets_32019_and_the_retry_with_the_approval_goes_through_once() {
    let mut proxy = proxy("async", 300);
    let mut flight = proxy.send(wire(7));
    created(&mut proxy, &mut flight, "ap-4");
    let client = proxy.finish(flight, Upstream::result(7));
    assert_eq!(client.error_code(), -32019);
    assert_eq!(client.json()["error"]["data"]["pending_id"], "ap-4");

    let mut retry = proxy.send(wire(8).header("x-intentgate-approval-id", "ap-4"));
    let (call, used) = proxy
        .host
        .last_grpc::<v1::UseApprovalRequest>(Rpc::UseApproval);
    assert_eq!(used.id, "ap-4");
    let refused = v1::ApprovalUse {
        granted: false,
        refusal: "already used".into(),
        ..Default::default()
    };
    proxy.grpc_answer(&mut retry, call, &refused);
    let client = proxy.finish(retry, Upstream::result(8));
    assert_eq!(client.error_code(), -32012);
    assert!(
        client.json()["error"]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
}

#[test]
fn an_approval_service_that_cannot_be_reached_denies_the_call() {
    let mut proxy = proxy("sync", 300);
    proxy.host.refuse_callouts = true;
    let client = proxy.exchange(wire(1), Upstream::result(1));
    assert_eq!(client.error_code(), -32012);
    proxy.tick();
    proxy.host.refuse_callouts = false;
    proxy.tick();
    let (_, batch) = proxy.host.last_grpc::<v1::AuditBatch>(Rpc::IngestAudit);
    let event: Value = serde_json::from_str(&batch.events[0].event_json).unwrap();
    assert_eq!(
        event["decision"], "deny",
        "the audit says what the caller got"
    );
}

#[test]
fn a_batch_parks_its_escalations_with_32019() {
    let mut proxy = proxy("sync", 300);
    let batch = json!([
        tools_call(1, "wire_money", json!({})),
        tools_call(2, "read_a", json!({})),
    ]);
    let mut flight = proxy.send(Request::post(
        Some(&token("agent-w", &["wire_*", "read_*"], None)),
        batch,
    ));
    let (call, _) = proxy
        .host
        .last_grpc::<v1::ApprovalRequest>(Rpc::CreateApproval);
    proxy.grpc_answer(
        &mut flight,
        call,
        &v1::ApprovalCreated { id: "ap-5".into() },
    );
    assert!(matches!(flight.phase, Phase::Forwarded));
    assert_eq!(
        proxy.upstream_request().1,
        json!([tools_call(2, "read_a", json!({}))])
    );
    let client = proxy.finish(
        flight,
        Upstream::json(json!([{"jsonrpc": "2.0", "id": 2, "result": {}}])),
    );
    assert_eq!(client.json()[1]["error"]["code"], -32019);
}
