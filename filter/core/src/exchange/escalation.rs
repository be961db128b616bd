//! Calls a policy escalated to a human (SPEC §4). The host creates an approval for each (the control
//! plane keeps them), then either holds a lone call until a human decides, or answers -32019 with the
//! approval id at once ([`Disposition::park`]) so the agent retries with `X-IntentGate-Approval-Id`.
//! An approval binds to the tenant, agent, tool and [`arguments_digest`] of one call.

use std::sync::Arc;

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::{Action, Disposition, Env};
use crate::audit::{AuditEvent, canonical_json};
use crate::decision::{AuditDecision, Denial, ErrorCode, Escalation, Verdict, pending_data};
use crate::intent::IntentSource;
use crate::jsonrpc::{self, Entry, Message, ToolCall};
use crate::pipeline::{self, RequestContext};
use crate::token::VerifiedToken;

/// One escalated call.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalated {
    /// The request's raw JSON-RPC id.
    pub id: Option<String>,
    pub tool: String,
    /// The call's arguments object, as sent (`{}` when absent).
    pub arguments: String,
    pub escalation: Escalation,
    /// Index of its `escalate` audit event in [`Disposition::events`].
    pub event: usize,
}

impl Escalated {
    pub(super) fn new(
        id: Option<&RawValue>,
        call: &ToolCall<'_>,
        escalation: Escalation,
        event: usize,
    ) -> Self {
        Escalated {
            id: id.map(|raw| raw.get().to_owned()),
            tool: call.name.to_string(),
            arguments: call
                .arguments
                .map_or_else(|| "{}".to_owned(), |a| a.get().to_owned()),
            escalation,
            event,
        }
    }

    fn raw_id(&self) -> Option<Box<RawValue>> {
        self.id
            .as_ref()
            .and_then(|raw| RawValue::from_string(raw.clone()).ok())
    }

    /// What an approval of this call is bound to, besides tenant, agent and tool.
    pub fn arguments_digest(&self) -> String {
        arguments_digest(
            RawValue::from_string(self.arguments.clone())
                .ok()
                .as_deref(),
        )
    }
}

/// SHA-256 (hex) of the canonical JSON of a call's arguments object (`{}` when absent): the same
/// arguments in any key order or spacing give the same digest.
pub fn arguments_digest(arguments: Option<&RawValue>) -> String {
    let value = arguments
        .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok())
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    arguments_digest_of(&value)
}

/// [`arguments_digest`] of arguments already parsed.
pub fn arguments_digest_of(arguments: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(canonical_json(arguments).as_bytes()))
}

impl Disposition {
    /// Records the approval ids (in escalation order) in the `escalate` audit events.
    pub fn set_pending(&mut self, pending_ids: &[String]) {
        for (escalated, pending) in self.escalations.iter().zip(pending_ids) {
            if let Some(event) = self.events.get_mut(escalated.event) {
                event.pending_id.clone_from(pending);
            }
        }
    }

    /// Whether to hold the request for a human: a lone call (not a batch) escalated and the tenant
    /// waits synchronously. Otherwise escalated calls are [`park`](Self::park)ed.
    pub fn holds(&self, synchronous: bool) -> bool {
        synchronous && !self.layout.batch && self.escalations.len() == 1
    }

    /// Answers every escalated call -32019 with its approval id, and settles the action for the rest.
    pub fn park(&mut self, body: &[u8], pending_ids: &[String]) {
        self.set_pending(pending_ids);
        let answers: Vec<String> = self
            .escalations
            .iter()
            .zip(pending_ids)
            .map(|(escalated, pending)| {
                let mut out = String::new();
                jsonrpc::write_error(
                    &mut out,
                    escalated.raw_id().as_deref(),
                    ErrorCode::ApprovalPending,
                    &pending_data(pending),
                );
                out
            })
            .collect();
        self.answer_escalations(body, answers);
    }

    /// Answers every escalated call with `denial` (no approval could be created, or a call escalated
    /// again after its approval), and settles the action for the rest.
    pub fn deny_escalations(&mut self, body: &[u8], denial: &Denial) {
        // The audit must say what the caller got: a denial, not an escalation that never happened.
        for escalated in &self.escalations {
            if let Some(event) = self.events.get_mut(escalated.event) {
                event.decision = AuditDecision::Deny;
                event.apply_denial(denial);
            }
        }
        let answers = self
            .escalations
            .iter()
            .map(|escalated| jsonrpc::error_body(escalated.raw_id().as_deref(), denial))
            .collect();
        self.answer_escalations(body, answers);
    }

    fn answer_escalations(&mut self, body: &[u8], answers: Vec<String>) {
        self.response.local_errors.extend(answers);
        self.escalations.clear();
        self.settle(body, None);
    }
}

/// The tool and arguments digest of a body that is one `tools/call` (what an approval id presented
/// with `X-IntentGate-Approval-Id` must match); `None` for anything else.
pub fn lone_call(body: &[u8]) -> Option<(String, String)> {
    match jsonrpc::parse(body).ok()? {
        Message::Single(Entry::Call(call)) if call.method == crate::mcp::TOOLS_CALL => {
            let tool_call = jsonrpc::tool_call(&call).ok()?;
            Some((
                tool_call.name.to_string(),
                arguments_digest(tool_call.arguments),
            ))
        }
        _ => None,
    }
}

/// The answer to a held call whose approval did not come: rejected, timed out, or refused when used.
/// One `tools/call` audit event records it.
pub fn refuse(
    env: &mut Env<'_>,
    body: &[u8],
    intent: &IntentSource,
    denial: Denial,
) -> Disposition {
    let (event, id) = held_call_event(
        (env.next_id)(),
        env.ctx,
        env.auth.as_ref().ok().map(Arc::as_ref),
        body,
        intent,
        &denial,
    );
    Disposition::local(
        Action::Respond {
            status: 200,
            body: jsonrpc::error_body(id.as_deref(), &denial),
        },
        vec![event],
    )
}

/// The `tools/call` audit event of a held call (`body`) refused with `denial`, and the call's raw
/// JSON-RPC id.
pub fn held_call_event(
    event_id: String,
    ctx: &RequestContext,
    token: Option<&VerifiedToken>,
    body: &[u8],
    intent: &IntentSource,
    denial: &Denial,
) -> (AuditEvent, Option<Box<RawValue>>) {
    let message = jsonrpc::parse(body).ok();
    let call = match message.as_ref() {
        Some(Message::Single(Entry::Call(call))) => Some(call),
        _ => None,
    };
    let tool_call = call.and_then(|c| jsonrpc::tool_call(c).ok());
    let event = pipeline::tool_call_event(
        event_id,
        ctx,
        token,
        tool_call.as_ref(),
        &Verdict::Deny(denial.clone()),
        intent,
    );
    let id = call
        .and_then(|c| c.id)
        .and_then(|raw| RawValue::from_string(raw.get().to_owned()).ok());
    (event, id)
}
