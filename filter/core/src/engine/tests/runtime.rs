//! The runtime between exchanges: audit shipping while the control plane comes and goes, the Sync
//! stream, the configuration.

use intentgate_proto::v1::{self, sync_request, sync_update};
use prost::Message as _;
use serde_json::json;

use super::*;

fn allowed(proxy: &mut Proxy, id: u64) {
    let token = token("agent-a", &["read_*"], None);
    let client = proxy.exchange(
        Request::post(Some(&token), tools_call(id, "read_a", json!({}))),
        Upstream::result(id),
    );
    assert!(!client.local);
}

fn small_buffer() -> Proxy {
    let extra = json!({"control_plane": {"cluster": "cp", "audit_buffer_events": 3, "audit_batch_events": 2}});
    Proxy::new(&config(json!({}), extra))
}

fn ids_of(batch: &v1::AuditBatch) -> Vec<String> {
    batch.events.iter().map(|e| e.id.clone()).collect()
}

#[test]
fn audit_events_wait_for_the_control_plane_and_are_delivered_once() {
    let mut proxy = small_buffer();
    for id in 0..3 {
        allowed(&mut proxy, id);
    }
    proxy.tick();
    let (call, first) = proxy.host.last_grpc::<v1::AuditBatch>(Rpc::IngestAudit);
    assert_eq!(first.events.len(), 2, "batches of audit_batch_events");
    // No answer (the control plane is away): the batch goes back, nothing is lost.
    assert!(proxy.rt.on_call_answer(&mut proxy.host, call, 14, &[]));
    proxy.tick();
    let (call, again) = proxy.host.last_grpc::<v1::AuditBatch>(Rpc::IngestAudit);
    assert_eq!(ids_of(&again), ids_of(&first), "the same events, in order");
    // Stored: the next tick sends the rest.
    let ack = v1::AuditAck {
        stored_ids: ids_of(&again),
        rejected_ids: vec![],
    };
    assert!(
        proxy
            .rt
            .on_call_answer(&mut proxy.host, call, 0, &ack.encode_to_vec())
    );
    proxy.tick();
    let (_, rest) = proxy.host.last_grpc::<v1::AuditBatch>(Rpc::IngestAudit);
    assert_eq!(rest.events.len(), 1);
    assert!(!ids_of(&first).contains(&rest.events[0].id));
}

#[test]
fn a_full_audit_buffer_drops_and_counts_and_the_count_reaches_the_control_plane() {
    let mut proxy = small_buffer();
    proxy.host.refuse_callouts = true;
    for id in 0..5 {
        allowed(&mut proxy, id);
    }
    proxy.tick();
    assert_eq!(proxy.stats["intentgate.audit.dropped"], 2);
    assert_eq!(proxy.stats["intentgate.audit.events"], 3);
    proxy.host.refuse_callouts = false;
    proxy.tick();
    let (call, batch) = proxy.host.last_grpc::<v1::AuditBatch>(Rpc::IngestAudit);
    assert_eq!(batch.dropped, 2);
    // Unacknowledged: the drop count is reported again with the next batch.
    proxy.rt.on_call_answer(&mut proxy.host, call, 13, &[]);
    proxy.tick();
    let (_, batch) = proxy.host.last_grpc::<v1::AuditBatch>(Rpc::IngestAudit);
    assert_eq!(batch.dropped, 2);
}

fn snapshot(version: u64, policy: &[u8]) -> v1::SyncUpdate {
    v1::SyncUpdate {
        version,
        kind: Some(sync_update::Kind::Snapshot(v1::Snapshot {
            keys: vec![v1::SigningKey {
                kid: issuer().kid().to_owned(),
                public_key: issuer().public().to_bytes().to_vec(),
            }],
            tenants: vec![v1::TenantState {
                tenant: TENANT.into(),
                policy_bytecode: policy.to_vec(),
                ..Default::default()
            }],
            revocations: vec![],
        })),
    }
}

#[test]
fn the_sync_stream_subscribes_applies_acknowledges_and_reconnects() {
    let mut proxy = Proxy::new(&config(json!({}), control_plane()));
    proxy.tick();
    let (stream, Sent::Sync { first }) = proxy.host.sent.last().cloned().unwrap() else {
        panic!("no Sync stream")
    };
    let Some(sync_request::Kind::Subscribe(subscribe)) =
        v1::SyncRequest::decode(first.as_slice()).unwrap().kind
    else {
        panic!("not a subscription")
    };
    assert_eq!(subscribe.known_version, 0);
    assert!(subscribe.filter_id.starts_with("node-1/"));

    let deny_all = crate::policy::Policy::compile(
        "package intentgate.policy\nimport rego.v1\ndecision := {\"allow\": false, \"reason\": \"closed\", \"rule\": \"closed\"}",
    )
    .unwrap()
    .bytecode()
    .unwrap();
    let update = snapshot(5, &deny_all);
    proxy
        .rt
        .on_sync_message(&mut proxy.host, stream, &update.encode_to_vec());
    assert_eq!(proxy.rt.version(), 5);
    let Some((_, Sent::Sync { first: ack })) = proxy.host.sent.last().cloned() else {
        panic!()
    };
    let ack = v1::SyncRequest::decode(ack.as_slice()).unwrap();
    assert_eq!(
        ack.kind,
        Some(sync_request::Kind::Ack(v1::Ack { version: 5 }))
    );
    let token = token("agent-a", &["read_*"], None);
    let client = proxy.exchange(
        Request::post(Some(&token), tools_call(1, "read_a", json!({}))),
        Upstream::result(1),
    );
    assert_eq!(
        client.json()["error"]["data"]["rule"],
        "closed",
        "the pushed policy rules"
    );

    // An older snapshot is refused; the state stays.
    proxy.rt.on_sync_message(
        &mut proxy.host,
        stream,
        &snapshot(4, &deny_all).encode_to_vec(),
    );
    assert_eq!(proxy.rt.version(), 5);
    proxy.tick();
    assert_eq!(proxy.stats["intentgate.sync.rejected"], 1);
    assert_eq!(proxy.stats["intentgate.sync.version"], 5);

    // Closed: reconnect after the backoff, subscribing with the version held.
    proxy.rt.on_sync_close(&mut proxy.host, stream, 14);
    let opened = proxy
        .host
        .calls
        .iter()
        .filter(|c| **c == "open_sync")
        .count();
    proxy.tick();
    assert_eq!(
        proxy
            .host
            .calls
            .iter()
            .filter(|c| **c == "open_sync")
            .count(),
        opened,
        "not before the backoff"
    );
    proxy.advance_ms(100);
    proxy.tick();
    let Some((_, Sent::Sync { first })) = proxy.host.sent.last().cloned() else {
        panic!()
    };
    let Some(sync_request::Kind::Subscribe(again)) =
        v1::SyncRequest::decode(first.as_slice()).unwrap().kind
    else {
        panic!("not a subscription")
    };
    assert_eq!(again.known_version, 5);
}

#[test]
fn a_missed_update_resubscribes_at_once_without_waiting_for_the_tick() {
    let mut proxy = Proxy::new(&config(json!({}), control_plane()));
    proxy.tick();
    let (stream, _) = proxy.host.sent.last().cloned().unwrap();
    proxy
        .rt
        .on_sync_message(&mut proxy.host, stream, &snapshot(5, &[]).encode_to_vec());
    let subscriptions = |proxy: &Proxy| {
        proxy
            .host
            .calls
            .iter()
            .filter(|c| **c == "open_sync")
            .count()
    };
    let before = subscriptions(&proxy);

    // A delta made from a version this filter never held: no tick runs in between.
    let gap = v1::SyncUpdate {
        version: 9,
        kind: Some(sync_update::Kind::Delta(v1::Delta {
            base_version: 7,
            ..Default::default()
        })),
    };
    proxy
        .rt
        .on_sync_message(&mut proxy.host, stream, &gap.encode_to_vec());
    assert_eq!(
        subscriptions(&proxy),
        before + 1,
        "subscribed again at once"
    );
    let Some((_, Sent::Sync { first })) = proxy.host.sent.last().cloned() else {
        panic!("no new Sync stream")
    };
    let Some(sync_request::Kind::Subscribe(again)) =
        v1::SyncRequest::decode(first.as_slice()).unwrap().kind
    else {
        panic!("not a subscription")
    };
    assert_eq!(
        again.known_version, 5,
        "with the version held, not the gap's"
    );
    assert_eq!(proxy.rt.version(), 5);
}

#[test]
fn an_invalid_configuration_is_refused() {
    let mut host = Fake::new();
    for bad in [
        br#"{"gateway": {}, "surprise": 1}"#.to_vec(),
        br#"{"gateway": {"keys": [{"public_key": "nope"}]}}"#.to_vec(),
        serde_json::to_vec(&json!({"gateway": {"tenants": {"t": {"policy": {"rego": "package x\ndecision := {"}}}}}))
            .unwrap(),
    ] {
        assert!(Runtime::configure(&bad, "n", [1; 32], &mut host).is_err());
    }
}

#[test]
fn stopping_writes_what_waits() {
    let mut proxy = Proxy::standalone();
    allowed(&mut proxy, 1);
    proxy.rt.stop(&mut proxy.host);
    assert_eq!(proxy.audit_lines().len(), 1);
}

#[test]
fn one_runtime_serves_exchanges_on_several_threads() {
    fn shared<T: Send + Sync>(_: &T) {}
    let proxy = Proxy::standalone();
    shared(&*proxy.rt);
    let runtime = Arc::clone(&proxy.rt);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let runtime = Arc::clone(&runtime);
            std::thread::spawn(move || {
                let _ = Stream::new(&runtime);
                runtime.gateway().keys.len()
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), 1);
    }
}

#[test]
fn each_host_requires_its_way_to_the_control_plane() {
    let settings = |control_plane: serde_json::Value| -> PluginConfig {
        serde_json::from_value(json!({"gateway": {}, "control_plane": control_plane})).unwrap()
    };
    let cluster_only = settings(json!({"cluster": "cp"}));
    assert_eq!(cluster_only.check_reach(Reach::Cluster), Ok(()));
    let refused = cluster_only.check_reach(Reach::Address).unwrap_err();
    assert!(refused.contains("control_plane.address"), "{refused}");
    let address_only = settings(json!({"address": "http://127.0.0.1:8082"}));
    assert_eq!(address_only.check_reach(Reach::Address), Ok(()));
    assert!(address_only.check_reach(Reach::Cluster).is_err());
    let both = settings(
        json!({"cluster": "cp", "address": "http://cp:8082", "tls": {"ca_file": "/ca.pem"}}),
    );
    assert_eq!(both.check_reach(Reach::Cluster), Ok(()));
    assert_eq!(both.check_reach(Reach::Address), Ok(()));
    let standalone: PluginConfig = serde_json::from_value(json!({"gateway": {}})).unwrap();
    assert_eq!(standalone.check_reach(Reach::Address), Ok(()));
}

#[test]
fn a_token_file_is_for_the_native_module_and_excludes_an_inline_token() {
    let settings = |control_plane: serde_json::Value| -> PluginConfig {
        serde_json::from_value(json!({"gateway": {}, "control_plane": control_plane})).unwrap()
    };
    let from_file =
        settings(json!({"cluster": "cp", "address": "http://cp:8082", "token_file": "/etc/token"}));
    assert_eq!(from_file.check_reach(Reach::Address), Ok(()));
    let wasm = from_file.check_reach(Reach::Cluster).unwrap_err();
    assert!(
        wasm.contains("token_file") && wasm.contains("credential_injector"),
        "{wasm}"
    );
    let both =
        settings(json!({"address": "http://cp:8082", "token": "t", "token_file": "/etc/token"}));
    let refused = both.check_reach(Reach::Address).unwrap_err();
    assert!(refused.contains("exclusive"), "{refused}");
    let empty = settings(json!({"address": "http://cp:8082", "token_file": ""}));
    assert!(
        empty
            .check_reach(Reach::Address)
            .unwrap_err()
            .contains("token_file is empty")
    );
}
