//! Dry-runs: a candidate Rego evaluated by the core's evaluator (the code the filter runs) against
//! one synthetic input, or against the tenant's recent tool calls replayed from the audit log.
//! Nothing changes.
//!
//! - With `input`, the actual decision is the tenant's active policy's answer for the same input
//!   (`deny` when the tenant has none: filters fail closed).
//! - With `sample`, the `sample` most recent tool-call events (1 to 1000, newest first) are
//!   rebuilt into policy inputs and the actual decision is the one recorded.

use intentgate_core::audit::{AuditEvent, EventKind};
use intentgate_core::intent::Intent;
use intentgate_core::policy::{CapabilityInput, Policy, PolicyInput, PolicyOutcome, RequestInput};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::Row;
use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::store::Db;
use crate::time;

pub const MAX_SAMPLE: u32 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    pub rego_source: String,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub tenant: Option<String>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub input: Option<Value>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub sample: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DryRunDecision {
    pub input: Value,
    pub candidate_decision: &'static str,
    pub actual_decision: String,
    /// The candidate's deciding rule, when it named one.
    pub rule: Option<String>,
    /// The candidate's reason (or why it could not decide).
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DryRun {
    pub decisions: Vec<DryRunDecision>,
}

/// What to evaluate, checked before any work.
pub enum Subject {
    Input(Value),
    Sample(u32),
}

impl DryRunRequest {
    pub fn subject(&mut self) -> Result<Subject> {
        match (self.input.take(), self.sample.take()) {
            (Some(_), Some(_)) => Err(Error::bad_request("give either input or sample, not both")),
            (None, None) => Err(Error::bad_request("input or sample is required")),
            (Some(input), None) if input.is_object() => Ok(Subject::Input(input)),
            (Some(_), None) => Err(Error::bad_request("input must be a JSON object")),
            (None, Some(sample)) => sample
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_SAMPLE).contains(n))
                .map(Subject::Sample)
                .ok_or_else(|| {
                    Error::bad_request(format!(
                        "sample must be the number of recent tool-call events to replay, 1 to {MAX_SAMPLE}"
                    ))
                }),
        }
    }
}

pub async fn run(db: &Db, tenant: &str, source: &str, subject: Subject) -> Result<DryRun> {
    let candidate = super::compile(source)?;
    let decisions = match subject {
        Subject::Input(input) => {
            let active = match super::active::current(db, tenant).await? {
                Some((_, bytecode)) => Some(
                    Policy::from_bytecode(&bytecode)
                        .map_err(|e| Error::Internal(format!("active policy bytecode: {e}")))?,
                ),
                None => None,
            };
            blocking(move || {
                let value = to_regorus(&input)?;
                let outcome = candidate.evaluate(value.clone());
                let actual = active.map_or("deny", |p| p.evaluate(value).label());
                Ok(vec![decision(input, &outcome, actual.to_owned())])
            })
            .await?
        }
        Subject::Sample(count) => {
            let events = recent_tool_calls(db, tenant, count).await?;
            blocking(move || {
                events
                    .iter()
                    .map(|event| {
                        let input = replay_input(event)?;
                        let outcome = candidate.evaluate(to_regorus(&input)?);
                        Ok(decision(
                            input,
                            &outcome,
                            event.decision.as_str().to_owned(),
                        ))
                    })
                    .collect()
            })
            .await?
        }
    };
    Ok(DryRun { decisions })
}

/// Rego evaluation is CPU work: keep it off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("dry-run: {e}")))?
}

fn decision(input: Value, outcome: &PolicyOutcome, actual: String) -> DryRunDecision {
    let reason = match outcome {
        PolicyOutcome::Allow { reason, .. } => reason.clone(),
        PolicyOutcome::Deny { reason, .. } | PolicyOutcome::Escalate { reason, .. } => {
            Some(reason.clone())
        }
        PolicyOutcome::Error(reason) => Some(reason.clone()),
    };
    DryRunDecision {
        input,
        candidate_decision: outcome.label(),
        actual_decision: actual,
        rule: outcome.rule().map(str::to_owned),
        reason,
    }
}

fn to_regorus(input: &Value) -> Result<regorus::Value> {
    regorus::Value::from_json_str(&input.to_string())
        .map_err(|e| Error::bad_request(format!("input is not usable as policy input: {e}")))
}

/// How the core names tool-call events in their JSON (and so in the generated `event` column).
fn tool_call_kind() -> Result<String> {
    match serde_json::to_value(EventKind::ToolCall) {
        Ok(Value::String(kind)) => Ok(kind),
        _ => Err(Error::Internal(
            "EventKind does not serialize to a string".into(),
        )),
    }
}

async fn recent_tool_calls(db: &Db, tenant: &str, count: u32) -> Result<Vec<AuditEvent>> {
    let rows = sqlx::query(
        "SELECT body FROM audit_events WHERE tenant = $1 AND event = $2 ORDER BY seq DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(tool_call_kind()?)
    .bind(i64::from(count))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let body: String = row.try_get("body")?;
            serde_json::from_str(&body)
                .map_err(|e| Error::Internal(format!("stored audit event is unreadable: {e}")))
        })
        .collect()
}

/// The policy input a recorded tool call had, as far as the event records it: the redacted
/// arguments, the intent summary only (no tool lists, confidence 0), no caveats or headers, and
/// `request.method` POST with an empty path.
fn replay_input(event: &AuditEvent) -> Result<Value> {
    let args = RawValue::from_string(Value::Object(event.arg_values.clone()).to_string())
        .map_err(|e| Error::Internal(format!("event arguments: {e}")))?;
    let intent = (!event.intent_summary.is_empty()).then(|| Intent {
        summary: event.intent_summary.clone(),
        allowed_tools: Vec::new(),
        forbidden_tools: Vec::new(),
        confidence: 0.0,
    });
    let headers = BTreeMap::new();
    let input = PolicyInput {
        method: intentgate_core::mcp::TOOLS_CALL,
        tool: &event.tool,
        args: &args,
        agent_id: &event.agent_id,
        tenant: &event.tenant,
        capability: CapabilityInput {
            subject: &event.agent_id,
            tenant: &event.tenant,
            jti: &event.capability_token_id,
            root_jti: &event.root_capability_token_id,
            step_up_at: None,
            caveats: &[],
        },
        intent: intent.as_ref(),
        request: RequestInput {
            method: "POST",
            path: "",
            remote_ip: &event.remote_ip,
            headers: &headers,
        },
        now: time::parse_audit_ts(&event.ts)
            .unwrap_or_default()
            .div_euclid(1000),
    };
    serde_json::to_value(&input).map_err(|e| Error::Internal(format!("policy input: {e}")))
}
