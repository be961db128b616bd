use super::*;
use crate::decision::{AuditDecision, Denial};
use serde_json::{Map, Value, json};

fn sample() -> AuditEvent {
    let args: Map<String, Value> =
        serde_json::from_value(json!({"invoice_id": 7, "api_key": "sk-live-1"})).unwrap();
    let mut event = AuditEvent::new(
        "01J0000000000000000000000A".into(),
        1_781_444_520_123,
        EventKind::ToolCall,
        AuditDecision::Deny,
    )
    .with_tool("read_invoice", Some(&args))
    .with_denial(&Denial::policy(
        "outside business hours",
        Some("hours".into()),
    ));
    event.tenant = "acme-corp".into();
    event.agent_id = "agent-finance-bot-7".into();
    event.latency_ms = 0.042;
    event
}

#[test]
fn canonical_event_test_vector() {
    let event = sample();
    let canonical = event.canonical();
    assert_eq!(
        canonical,
        concat!(
            r#"{"agent_id":"agent-finance-bot-7","arg_keys":["api_key","invoice_id"],"#,
            r#""arg_values":{"api_key":"[redacted]","invoice_id":7},"capability_token_id":"","#,
            r#""caveat_count":0,"check":"policy","decided_by":"","decision":"deny","#,
            r#""elevation_id":"","error_code":-32012,"event":"intentgate.tool_call","#,
            r#""id":"01J0000000000000000000000A","intent_summary":"","latency_ms":0.042,"#,
            r#""method":"","pending_id":"","reason":"outside business hours","remote_ip":"","#,
            r#""requires_step_up":false,"root_capability_token_id":"","rule":"hours","#,
            r#""schema_version":"v4","session_id":"","tenant":"acme-corp","tool":"read_invoice","#,
            r#""ts":"2026-06-14T13:42:00.123Z","upstream_status":0}"#
        )
    );
    // Computed independently: sha256(b"\0" * 32 + canonical) in Python.
    let first = link(&GENESIS, canonical.as_bytes());
    assert_eq!(
        hex::encode(first),
        "46a2f514b077c318ab88543a6d4987726271f30245d9de4ad57e4cc63ca8af50"
    );
}

#[test]
fn event_round_trips_through_its_json() {
    let event = sample();
    let text = serde_json::to_string(&event).unwrap();
    let back: AuditEvent = serde_json::from_str(&text).unwrap();
    assert_eq!(back, event);
    assert_eq!(back.canonical(), event.canonical());
}

#[test]
fn any_field_change_changes_the_hash() {
    let base = link(&GENESIS, sample().canonical().as_bytes());
    let mut edited = sample();
    edited.decision = AuditDecision::Allow;
    assert_ne!(link(&GENESIS, edited.canonical().as_bytes()), base);
    let mut edited = sample();
    edited.latency_ms = 0.043;
    assert_ne!(link(&GENESIS, edited.canonical().as_bytes()), base);
    assert_ne!(link(&[1; 32], sample().canonical().as_bytes()), base);
}

#[test]
fn arguments_are_redacted_and_bounded() {
    let long = "x".repeat(MAX_ARG_STRING + 10);
    let args: Map<String, Value> = serde_json::from_value(json!({
        "Password": "hunter2",
        "nested": {"auth": {"client_secret": "s"}, "ok": 1},
        "note": long,
    }))
    .unwrap();
    let kept = redact_args(&args);
    assert_eq!(kept["Password"], "[redacted]");
    assert_eq!(kept["nested"]["auth"]["client_secret"], "[redacted]");
    assert_eq!(kept["nested"]["ok"], 1);
    assert_eq!(
        kept["note"].as_str().unwrap().chars().count(),
        MAX_ARG_STRING + 1
    );

    let mut many = Map::new();
    for i in 0..100 {
        many.insert(format!("k{i:03}"), Value::from("y".repeat(200)));
    }
    let kept = redact_args(&many);
    assert!(serde_json::to_string(&kept).unwrap().len() < MAX_ARG_BYTES + 2000);
    assert_eq!(kept["k099"], "[omitted]");
}
