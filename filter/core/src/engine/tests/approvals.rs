//! Calls a policy escalates to a human: held, polled, approved, rejected, timed out, abandoned, parked.

use intentgate_proto::v1::{self, approval_status::State};
use prost::Message as _;
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

/// The `EndApproval` calls made so far, decoded.
fn endings(proxy: &Proxy) -> Vec<(CallId, v1::EndApprovalRequest, Value)> {
    proxy
        .host
        .sent
        .iter()
        .filter_map(|(id, sent)| match sent {
            Sent::Grpc {
                rpc: Rpc::EndApproval,
                message,
            } => {
                let request = v1::EndApprovalRequest::decode(message.as_slice()).unwrap();
                let event = serde_json::from_str(&request.event_json).unwrap();
                Some((*id, request, event))
            }
            _ => None,
        })
        .collect()
}

/// The decisions of the audit batches shipped so far.
fn shipped_decisions(proxy: &Proxy) -> Vec<String> {
    proxy
        .host
        .sent
        .iter()
        .filter_map(|(_, sent)| match sent {
            Sent::Grpc {
                rpc: Rpc::IngestAudit,
                message,
            } => Some(v1::AuditBatch::decode(message.as_slice()).unwrap()),
            _ => None,
        })
        .flat_map(|batch| batch.events)
        .map(|e| {
            let event: Value = serde_json::from_str(&e.event_json).unwrap();
            event["decision"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn a_held_call_says_how_long_it_is_held_and_a_parked_one_that_it_is_not() {
    let mut proxy = proxy("sync", 60);
    let _held = proxy.send(wire(1));
    let (_, request) = proxy
        .host
        .last_grpc::<v1::ApprovalRequest>(Rpc::CreateApproval);
    assert_eq!(request.hold_ms, 60_000);
    let mut proxy = self::proxy("async", 60);
    let _parked = proxy.send(wire(1));
    let (_, request) = proxy
        .host
        .last_grpc::<v1::ApprovalRequest>(Rpc::CreateApproval);
    assert_eq!(request.hold_ms, 0);
}

#[test]
fn a_timed_out_hold_ends_its_approval_with_the_denial_it_answered() {
    let mut proxy = proxy("sync", 60);
    let mut flight = proxy.send(wire(1));
    created(&mut proxy, &mut flight, "ap-6");
    let (call, _) = proxy
        .host
        .last_grpc::<v1::AwaitApprovalRequest>(Rpc::AwaitApproval);
    proxy.advance_ms(60_000);
    proxy.grpc_answer(&mut flight, call, &status(State::Pending));
    let client = proxy.finish(flight, Upstream::result(1));
    assert_eq!(client.error_code(), -32012);
    proxy.tick();
    let told = endings(&proxy);
    assert_eq!(told.len(), 1);
    let (call, request, event) = &told[0];
    assert_eq!(
        (request.id.as_str(), request.tenant.as_str()),
        ("ap-6", TENANT)
    );
    assert_eq!(request.ending(), v1::end_approval_request::Ending::TimedOut);
    assert_eq!(event["decision"], "deny");
    assert_eq!(event["pending_id"], "ap-6");
    assert_eq!(event["error_code"], -32012);
    assert_eq!(event["reason"], "approval ap-6 was not decided within 60 s");
    assert_eq!(
        shipped_decisions(&proxy),
        ["escalate"],
        "the denial goes with the ending, not twice"
    );
    assert!(proxy.rt.on_call_answer(
        &mut proxy.host,
        *call,
        0,
        &v1::ApprovalEnded { ended: true }.encode_to_vec()
    ));
    proxy.tick();
    assert_eq!(endings(&proxy).len(), 1, "told once it is answered");
}

#[test]
fn a_client_leaving_a_held_call_abandons_its_approval_told_until_answered() {
    let mut proxy = proxy("sync", 300);
    let mut flight = proxy.send(wire(1));
    created(&mut proxy, &mut flight, "ap-7");
    let (waiting, _) = proxy
        .host
        .last_grpc::<v1::AwaitApprovalRequest>(Rpc::AwaitApproval);
    proxy.advance_ms(5_000);
    flight.stream.on_end(&proxy.rt);
    proxy.tick();
    let told = endings(&proxy);
    assert_eq!(told.len(), 1);
    let (call, request, event) = &told[0];
    assert_eq!(
        request.ending(),
        v1::end_approval_request::Ending::Abandoned
    );
    assert_eq!(event["decision"], "deny");
    assert_eq!(event["event"], "intentgate.tool_call");
    assert_eq!(event["pending_id"], "ap-7");
    assert_eq!(event["tool"], "wire_money");
    assert_eq!(event["agent_id"], "agent-w");
    assert_eq!(event["error_code"], 0, "nothing was answered");
    assert_eq!(
        event["reason"],
        "approval ap-7 abandoned: the client went away before it was decided"
    );
    assert!(!event["id"].as_str().unwrap().is_empty());
    assert_eq!(
        event["ts"],
        crate::time::rfc3339_millis((NOW_S + 5) * 1000),
        "stamped when told"
    );
    // The control plane is away: told again on the next tick, with the same event.
    assert!(proxy.rt.on_call_answer(&mut proxy.host, *call, 14, b""));
    proxy.tick();
    let again = endings(&proxy);
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].2, *event);
    // Refused for good: the event goes with the audit events instead.
    let (batch_call, batch) = proxy.host.last_grpc::<v1::AuditBatch>(Rpc::IngestAudit);
    let ack = v1::AuditAck {
        stored_ids: batch.events.iter().map(|e| e.id.clone()).collect(),
        ..Default::default()
    };
    assert!(
        proxy
            .rt
            .on_call_answer(&mut proxy.host, batch_call, 0, &ack.encode_to_vec())
    );
    assert!(proxy.rt.on_call_answer(&mut proxy.host, again[1].0, 5, b""));
    proxy.tick();
    assert_eq!(endings(&proxy).len(), 2);
    assert_eq!(shipped_decisions(&proxy), ["escalate", "deny"]);
    // A decision arriving for the stream that is gone changes nothing.
    assert!(!proxy.rt.on_call_answer(&mut proxy.host, waiting, 0, b""));
}

#[test]
fn an_approval_the_control_plane_ended_denies_the_held_call_without_telling_it_back() {
    let mut proxy = proxy("sync", 300);
    let mut flight = proxy.send(wire(1));
    created(&mut proxy, &mut flight, "ap-8");
    let (call, _) = proxy
        .host
        .last_grpc::<v1::AwaitApprovalRequest>(Rpc::AwaitApproval);
    let ended = v1::ApprovalStatus {
        state: State::Ended as i32,
        decided_by: String::new(),
        reason: "expired".into(),
    };
    proxy.grpc_answer(&mut flight, call, &ended);
    let client = proxy.finish(flight, Upstream::result(1));
    assert_eq!(client.error_code(), -32012);
    assert_eq!(
        client.json()["error"]["data"]["reason"],
        "approval ap-8 ended: expired"
    );
    proxy.tick();
    assert!(endings(&proxy).is_empty());
}

#[test]
fn endings_not_told_when_the_proxy_stops_are_written_with_the_audit_events() {
    let mut proxy = Proxy::new(&config(
        json!({"settings": {"approval_mode": "sync"}}),
        json!({"control_plane": {"cluster": "cp"}, "audit_log": true}),
    ));
    let mut flight = proxy.send(wire(1));
    created(&mut proxy, &mut flight, "ap-9");
    flight.stream.on_end(&proxy.rt);
    proxy.rt.stop(&mut proxy.host);
    let lines = proxy.audit_lines();
    let abandoned = lines
        .iter()
        .find(|e| e["pending_id"] == "ap-9" && e["decision"] == "deny");
    assert!(abandoned.is_some(), "{lines:?}");
}
