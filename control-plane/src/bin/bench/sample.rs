//! The event the benchmarks store: a tool call shaped like the filter's, about 700 bytes of
//! canonical JSON, numbered so that each is distinct and findable (`bench-<n>`).

use intentgate_core::audit::{AuditEvent, EventKind};
use intentgate_core::decision::AuditDecision;
use serde_json::json;

pub fn event(tenant: &str, n: u64) -> AuditEvent {
    let decision = if n.is_multiple_of(7) {
        AuditDecision::Deny
    } else {
        AuditDecision::Allow
    };
    let ms = 1_781_444_520_000 + i64::try_from(n % 1_000_000_000).unwrap_or_default();
    let mut e = AuditEvent::new(format!("bench-{n:012}"), ms, EventKind::ToolCall, decision);
    let args = json!({"invoice_id": n, "vendor": "acme-supplies", "currency": "EUR", "note": "quarterly run"});
    e = e.with_tool("read_invoice", args.as_object());
    e.tenant = tenant.into();
    e.agent_id = "agent-finance-bot-7".into();
    e.session_id = "c0ffee00-1234-4abc-9def-000000000042".into();
    e.capability_token_id = "01J2ZK3Q4R5S6T7V8W9XAYBZC0".into();
    e.root_capability_token_id = "01J2ZK3Q4R5S6T7V8W9XAYBZC0".into();
    e.caveat_count = 2;
    e.intent_summary = "reconcile the March invoices for acme-supplies".into();
    e.latency_ms = 0.412;
    e.remote_ip = "10.20.30.40".into();
    e.upstream_status = 200;
    e.method = "tools/call".into();
    e.rule = "reads".into();
    e
}
