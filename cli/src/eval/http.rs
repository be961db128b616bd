//! What the Envoy filter does with the whole request: [`exchange::decide`], the same function the
//! filter calls, run with its own budget so the per-entry results are not counted twice.

use std::time::Instant;

use intentgate_core::budget::MemoryBudget;
use intentgate_core::config::Gateway;
use intentgate_core::decision::Denial;
use intentgate_core::exchange::{self, Action, Env};
use intentgate_core::intent::IntentSource;
use intentgate_core::pipeline::RequestContext;
use intentgate_core::token::VerifiedToken;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::common::new_ulid;

pub fn decide(
    gateway: &Gateway,
    ctx: &RequestContext,
    auth: &Result<Arc<VerifiedToken>, Denial>,
    intent: &IntentSource,
    body: &[u8],
) -> Value {
    let budget = MemoryBudget::new();
    let started = Instant::now();
    let mut next_id = || new_ulid(ctx.now_ms).unwrap_or_default();
    let mut env = Env {
        gateway,
        ctx,
        auth,
        budget: &budget,
        next_id: &mut next_id,
        // The CLI has no approval service: an escalation is shown as the filter would answer alone.
        approvals: false,
        approved_rule: None,
    };
    let mut disposition = exchange::decide(&mut env, body, intent);
    disposition.stamp_latency(started.elapsed().as_secs_f64() * 1000.0);
    let mut tools_list_ids: Vec<Value> = disposition
        .response
        .tools_list_ids
        .iter()
        .map(|id| json_or_text(id.as_bytes()))
        .collect();
    tools_list_ids.sort_by_key(Value::to_string);
    let local_errors: Vec<Value> = disposition
        .response
        .local_errors
        .iter()
        .map(|e| json_or_text(e.as_bytes()))
        .collect();
    match disposition.action {
        Action::Forward => json!({
            "action": "forward",
            "forwarded_body": "as received",
            "local_errors": local_errors,
            "filter_tools_list_ids": tools_list_ids,
        }),
        Action::ForwardBody(reduced) => json!({
            "action": "forward",
            "forwarded_body": json_or_text(&reduced),
            "local_errors": local_errors,
            "filter_tools_list_ids": tools_list_ids,
        }),
        Action::Respond { status, body } => json!({
            "action": "respond",
            "status": status,
            "body": if body.is_empty() { Value::Null } else { json_or_text(body.as_bytes()) },
        }),
        // Not reached with `approvals: false` (escalations are denials); shown rather than hidden.
        Action::Escalate => json!({
            "action": "escalate",
            "escalations": disposition
                .escalations
                .iter()
                .map(|e| json!({"tool": e.tool, "rule": e.escalation.rule, "reason": e.escalation.reason}))
                .collect::<Vec<_>>(),
        }),
    }
}

/// Bodies are JSON; anything else is shown as text rather than lost.
fn json_or_text(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(bytes).into_owned()))
}
