//! One body through the pipeline, entry by entry, as the filter runs it: [`plan`], then for a
//! `tools/call` [`Gateway::decide_tool_call`], then one audit event per entry.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use intentgate_core::budget::MemoryBudget;
use intentgate_core::config::Gateway;
use intentgate_core::decision::{Denial, Verdict};
use intentgate_core::intent::IntentSource;
use intentgate_core::jsonrpc::{self, Entry};
use intentgate_core::mcp::TOOLS_CALL;
use intentgate_core::pipeline::{Plan, RequestContext, plan, request_event, tool_call_event};
use intentgate_core::token::VerifiedToken;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::common::new_ulid;

/// Everything one request's entries share.
pub struct Run<'a> {
    pub gateway: &'a Gateway,
    pub ctx: &'a RequestContext,
    pub auth: &'a Result<Arc<VerifiedToken>, Denial>,
    pub intent: &'a IntentSource,
    /// Shared by the entries of a batch, as the filter's counters are.
    pub budget: &'a MemoryBudget,
}

impl Run<'_> {
    /// The result of every entry of `body`; a body that does not parse is one refused result.
    pub fn body(&self, body: &[u8]) -> anyhow::Result<Vec<Value>> {
        let started = Instant::now();
        let message = match jsonrpc::parse(body) {
            Ok(message) => message,
            Err(denial) => {
                let mut event =
                    request_event(self.event_id()?, self.ctx, self.token(), "", Some(&denial));
                event.set_latency(elapsed_ms(started));
                let mut result = Map::new();
                result.insert("index".into(), Value::Null);
                result.insert("id".into(), Value::Null);
                result.insert("method".into(), Value::Null);
                result.insert("decision".into(), Value::from("deny"));
                result.insert("response".into(), response(None, &denial)?);
                result.insert("audit".into(), to_json(&event)?);
                return Ok(vec![Value::Object(result)]);
            }
        };
        message
            .entries()
            .iter()
            .enumerate()
            .map(|(index, entry)| self.entry(index, entry))
            .collect()
    }

    fn token(&self) -> Option<&VerifiedToken> {
        self.auth.as_ref().ok().map(Arc::as_ref)
    }

    fn event_id(&self) -> anyhow::Result<String> {
        new_ulid(self.ctx.now_ms)
    }

    fn entry(&self, index: usize, entry: &Entry<'_>) -> anyhow::Result<Value> {
        let started = Instant::now();
        let (id, method, call) = match entry {
            Entry::Call(call) => (call.id, Some(call.method.as_ref()), Some(call)),
            Entry::Response { id } => (Some(*id), None, None),
            Entry::Invalid { id, .. } => (*id, None, None),
        };
        let notification = call.is_some_and(|c| c.is_notification());
        let mut result = Map::new();
        result.insert("index".into(), Value::from(index));
        result.insert("id".into(), raw_json(id)?);
        result.insert("method".into(), method.map_or(Value::Null, Value::from));
        if matches!(entry, Entry::Response { .. }) {
            result.insert("kind".into(), Value::from("response"));
        }
        let mut event = match plan(entry, self.auth) {
            Plan::Forward | Plan::ForwardToolList => {
                result.insert("decision".into(), Value::from("forward"));
                if method == Some(intentgate_core::mcp::TOOLS_LIST) {
                    result.insert("filter_tool_list".into(), Value::Bool(true));
                }
                request_event(
                    self.event_id()?,
                    self.ctx,
                    self.token(),
                    method.unwrap_or_default(),
                    None,
                )
            }
            Plan::Refuse(denial) => {
                result.insert("decision".into(), Value::from("deny"));
                let answer = if notification {
                    result.insert(
                        "note".into(),
                        Value::from("a notification gets no response, even when refused"),
                    );
                    Value::Null
                } else {
                    response(id, &denial)?
                };
                result.insert("response".into(), answer);
                if method == Some(TOOLS_CALL) {
                    let tool_call = call.and_then(|c| jsonrpc::tool_call(c).ok());
                    if let Some(tool_call) = &tool_call {
                        result.insert("tool".into(), Value::from(tool_call.name.as_ref()));
                    }
                    tool_call_event(
                        self.event_id()?,
                        self.ctx,
                        self.token(),
                        tool_call.as_ref(),
                        &Verdict::Deny(denial),
                        self.intent,
                    )
                } else {
                    request_event(
                        self.event_id()?,
                        self.ctx,
                        self.token(),
                        method.unwrap_or_default(),
                        Some(&denial),
                    )
                }
            }
            Plan::Evaluate(tool_call) => {
                let token = self
                    .token()
                    .ok_or_else(|| anyhow!("internal: a tools/call was planned without a token"))?;
                let verdict = self.gateway.decide_tool_call(
                    self.ctx,
                    token,
                    &tool_call,
                    self.intent,
                    self.budget,
                    None,
                );
                result.insert("tool".into(), Value::from(tool_call.name.as_ref()));
                self.describe(&mut result, id, notification, token, &verdict)?;
                tool_call_event(
                    self.event_id()?,
                    self.ctx,
                    Some(token),
                    Some(&tool_call),
                    &verdict,
                    self.intent,
                )
            }
        };
        event.set_latency(elapsed_ms(started));
        result.insert("audit".into(), to_json(&event)?);
        Ok(Value::Object(result))
    }

    /// The decision of a `tools/call`, and what the agent gets back.
    fn describe(
        &self,
        result: &mut Map<String, Value>,
        id: Option<&RawValue>,
        notification: bool,
        token: &VerifiedToken,
        verdict: &Verdict,
    ) -> anyhow::Result<()> {
        result.insert(
            "decision".into(),
            Value::from(verdict.audit_decision().as_str()),
        );
        match verdict {
            Verdict::Allow { rule } => {
                result.insert(
                    "rule".into(),
                    rule.as_deref().map_or(Value::Null, Value::from),
                );
                result.insert("response".into(), Value::Null);
            }
            Verdict::Deny(denial) if notification => {
                result.insert("response".into(), Value::Null);
                result.insert(
                    "note".into(),
                    Value::from("a notification gets no response, even when refused"),
                );
                result.insert("reason".into(), Value::from(denial.reason.as_str()));
            }
            Verdict::Deny(denial) => {
                result.insert("response".into(), response(id, denial)?);
            }
            Verdict::Escalate(escalation) => {
                let settings = self.gateway.tenant(&token.tenant).map(|t| &t.settings);
                let mode = settings.map(|s| s.approval_mode);
                result.insert("response".into(), Value::Null);
                result.insert(
                    "escalation".into(),
                    json!({
                        "rule": escalation.rule,
                        "reason": escalation.reason,
                        "requires_step_up": escalation.requires_step_up,
                        "approval_mode": mode,
                        "approval_timeout_secs": settings.map(|s| s.approval_timeout_secs),
                    }),
                );
                result.insert(
                    "note".into(),
                    Value::from(
                        "the pipeline escalates: with an approval service the call waits for a \
                         human (sync) or is answered -32019 (async); without one the filter \
                         answers -32012 (see http)",
                    ),
                );
            }
        }
        Ok(())
    }
}

/// The JSON-RPC error body the agent would receive, as JSON.
fn response(id: Option<&RawValue>, denial: &Denial) -> anyhow::Result<Value> {
    let body = jsonrpc::error_body(id, denial);
    serde_json::from_str(&body).with_context(|| format!("internal: invalid error body {body}"))
}

fn raw_json(raw: Option<&RawValue>) -> anyhow::Result<Value> {
    raw.map_or(Ok(Value::Null), |raw| {
        serde_json::from_str(raw.get()).context("internal: unreadable JSON-RPC id")
    })
}

fn to_json(event: &impl serde::Serialize) -> anyhow::Result<Value> {
    serde_json::to_value(event).context("cannot serialize the audit event")
}

fn elapsed_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}
