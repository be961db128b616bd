//! One HTTP exchange, decided: what to do with the request body (forward it, forward a reduced batch,
//! or answer locally), what the upstream's answer will need (tools/list filtering, local errors merged
//! into a batch answer, -32603 on upstream failure), and the audit events. Host-agnostic: the Envoy
//! filter only moves bytes according to a [`Disposition`].

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::audit::AuditEvent;
use crate::budget::BudgetStore;
use crate::config::Gateway;
use crate::decision::{Denial, ErrorCode, Verdict, upstream_data};
use crate::intent::IntentSource;
use crate::jsonrpc::{self, Entry, Message};
use crate::pipeline::{self, Plan, RequestContext};
use crate::response::{self, IdSet};
use crate::token::VerifiedToken;

/// What the host does with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forward the body as received.
    Forward,
    /// Forward this body instead: a batch with the refused elements taken out.
    ForwardBody(Vec<u8>),
    /// Answer locally; nothing reaches the upstream.
    Respond { status: u16, body: String },
}

/// What the upstream's answer needs before it reaches the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponsePlan {
    /// Ids of forwarded `tools/list` requests: their results are filtered to the token's tools.
    pub tools_list_ids: IdSet,
    /// Errors answered locally for refused elements of a forwarded batch.
    pub local_errors: Vec<String>,
    /// Ids of forwarded requests, to answer -32603 for each if the upstream fails.
    pub forwarded_ids: Vec<String>,
    /// Whether the request was a batch (answers are then arrays).
    pub batch: bool,
}

impl ResponsePlan {
    /// Whether the upstream body must be buffered and rewritten.
    pub fn rewrites_body(&self) -> bool {
        !self.tools_list_ids.is_empty() || !self.local_errors.is_empty()
    }

    /// The answer when the upstream failed (5xx or unreachable): -32603 for every forwarded request,
    /// plus the errors already decided locally.
    pub fn upstream_failure(&self, status: u16) -> Option<String> {
        let detail = format!("upstream answered HTTP {status}");
        let data = upstream_data(Some(status), &detail);
        let mut errors: Vec<String> = self
            .forwarded_ids
            .iter()
            .map(|id| {
                let mut out = String::new();
                let raw = RawValue::from_string(id.clone()).ok();
                jsonrpc::write_error(&mut out, raw.as_deref(), ErrorCode::InternalError, &data);
                out
            })
            .collect();
        errors.extend(self.local_errors.iter().cloned());
        match (self.batch, errors.len()) {
            (_, 0) => None,
            (false, 1) => errors.pop(),
            _ => Some(format!("[{}]", errors.join(","))),
        }
    }

    /// The rewritten upstream body, or `None` to pass it unchanged. A body that cannot be filtered
    /// is replaced by an error rather than passed on unfiltered.
    pub fn rewrite(
        &self,
        content_type: &str,
        body: &[u8],
        token: &VerifiedToken,
    ) -> Option<Vec<u8>> {
        if !self.rewrites_body() {
            return None;
        }
        let allowed = |name: &str| token.allows_tool(name);
        if content_type.starts_with("text/event-stream") {
            let mut out = response::sse_events(&self.local_errors).into_bytes();
            out.extend(response::filter_tools_sse(
                body,
                &self.tools_list_ids,
                &allowed,
            ));
            return Some(out);
        }
        let filtered = if self.tools_list_ids.is_empty() {
            Some(body.to_vec())
        } else {
            response::filter_tools_json(body, &self.tools_list_ids, &allowed)
        };
        let merged = match filtered {
            Some(b) if self.local_errors.is_empty() => Some(b),
            Some(b) => response::merge_json(&b, &self.local_errors),
            None => None,
        };
        Some(merged.unwrap_or_else(|| self.upstream_failure(502).unwrap_or_default().into_bytes()))
    }
}

/// The decision for one exchange.
#[derive(Debug)]
pub struct Disposition {
    pub action: Action,
    pub response: ResponsePlan,
    /// One event per decision, in body order.
    pub events: Vec<AuditEvent>,
    /// Milliseconds each evaluated `tools/call` spent in checks after token verification.
    pub eval_ms: Vec<f64>,
}

/// Host facilities a decision needs.
pub struct Env<'a> {
    pub gateway: &'a Gateway,
    pub ctx: &'a RequestContext,
    pub auth: &'a Result<Arc<VerifiedToken>, Denial>,
    pub budget: &'a dyn BudgetStore,
    /// A fresh unique audit event id on each call.
    pub next_id: &'a mut dyn FnMut() -> String,
    /// Milliseconds since the request arrived.
    pub elapsed_ms: &'a dyn Fn() -> f64,
}

/// How many `tools/call`s of the body pass envelope and token checks and will be evaluated: whether
/// intent is worth extracting before [`decide`], and how many budget calls to have leased.
pub fn evaluations(body: &[u8], auth: &Result<Arc<VerifiedToken>, Denial>) -> usize {
    match jsonrpc::parse(body) {
        Ok(message) => message
            .entries()
            .iter()
            .filter(|e| matches!(pipeline::plan(e, auth), Plan::Evaluate(_)))
            .count(),
        Err(_) => 0,
    }
}

/// Decides a request without a JSON-RPC body (the GET that opens a stream, the DELETE that ends a
/// session): a valid token forwards it, anything else is 401 with -32010.
pub fn decide_bodyless(env: &mut Env<'_>, http_method: &str) -> Disposition {
    let (action, denial, token) = match env.auth {
        Ok(token) => (Action::Forward, None, Some(token.as_ref())),
        Err(denial) => (
            Action::Respond {
                status: 401,
                body: jsonrpc::error_body(None, denial),
            },
            Some(denial),
            None,
        ),
    };
    let event = pipeline::request_event(
        (env.next_id)(),
        env.ctx,
        token,
        http_method,
        denial,
        (env.elapsed_ms)(),
    );
    Disposition {
        action,
        response: ResponsePlan::default(),
        events: vec![event],
        eval_ms: Vec::new(),
    }
}

/// Answers a body over [`jsonrpc::MAX_BODY_BYTES`] without reading it.
pub fn decide_oversized(env: &mut Env<'_>, size: usize) -> Disposition {
    let denial = Denial::envelope(
        ErrorCode::InvalidRequest,
        format!(
            "body of {size} bytes exceeds the limit of {} bytes",
            jsonrpc::MAX_BODY_BYTES
        ),
    );
    local_failure(env, denial)
}

fn local_failure(env: &mut Env<'_>, denial: Denial) -> Disposition {
    let event = pipeline::request_event(
        (env.next_id)(),
        env.ctx,
        env.auth.as_ref().ok().map(Arc::as_ref),
        "",
        Some(&denial),
        (env.elapsed_ms)(),
    );
    Disposition {
        action: Action::Respond {
            status: 200,
            body: jsonrpc::error_body(None, &denial),
        },
        response: ResponsePlan::default(),
        events: vec![event],
        eval_ms: Vec::new(),
    }
}

/// Decides a request body: every element through the pipeline, then one action for the whole.
pub fn decide(env: &mut Env<'_>, body: &[u8], intent: &IntentSource) -> Disposition {
    let message = match jsonrpc::parse(body) {
        Ok(message) => message,
        Err(denial) => return local_failure(env, denial),
    };
    let batch = matches!(message, Message::Batch(_));
    let mut plan = ResponsePlan {
        batch,
        ..ResponsePlan::default()
    };
    let mut events = Vec::with_capacity(message.entries().len());
    let mut eval_ms = Vec::new();
    let mut kept = Vec::with_capacity(message.entries().len());
    let mut has_request = false;
    for (index, entry) in message.entries().iter().enumerate() {
        let id = entry_id(entry);
        has_request |= id.is_some();
        match decide_entry(env, entry, intent, &mut events, &mut eval_ms) {
            None => {
                kept.push(index);
                if let Some(id) = id {
                    plan.forwarded_ids.push(id.get().to_owned());
                    if is_tools_list(entry) {
                        plan.tools_list_ids.insert(id.get().to_owned());
                    }
                }
            }
            Some(denial) => {
                // A refused notification gets no answer (JSON-RPC), only its audit event.
                if id.is_some() || matches!(entry, Entry::Invalid { .. }) {
                    plan.local_errors.push(jsonrpc::error_body(id, &denial));
                }
            }
        }
    }
    let action = if kept.len() == message.entries().len() {
        Action::Forward
    } else if kept.is_empty() {
        local_answer(env, &plan, batch, has_request)
    } else {
        match response::subset_batch(body, &kept) {
            Some(reduced) => Action::ForwardBody(reduced),
            None => local_answer(env, &plan, batch, has_request),
        }
    };
    if matches!(action, Action::Respond { .. }) {
        plan = ResponsePlan::default();
    }
    Disposition {
        action,
        response: plan,
        events,
        eval_ms,
    }
}

/// The answer when nothing is forwarded.
fn local_answer(env: &Env<'_>, plan: &ResponsePlan, batch: bool, has_request: bool) -> Action {
    if !has_request
        && plan.local_errors.is_empty()
        && let Err(denial) = env.auth
    {
        // Only notifications or responses, with a bad token: the request as a whole is refused.
        return Action::Respond {
            status: 401,
            body: jsonrpc::error_body(None, denial),
        };
    }
    match (plan.local_errors.as_slice(), batch) {
        ([], _) => Action::Respond {
            status: 202,
            body: String::new(),
        },
        ([single], false) => Action::Respond {
            status: 200,
            body: single.clone(),
        },
        (errors, _) => Action::Respond {
            status: 200,
            body: format!("[{}]", errors.join(",")),
        },
    }
}

/// `None` when the element is forwarded, the denial otherwise; pushes the element's audit event.
fn decide_entry(
    env: &mut Env<'_>,
    entry: &Entry<'_>,
    intent: &IntentSource,
    events: &mut Vec<AuditEvent>,
    eval_ms: &mut Vec<f64>,
) -> Option<Denial> {
    let token = env.auth.as_ref().ok().map(Arc::as_ref);
    let method = match entry {
        Entry::Call(call) => call.method.as_ref(),
        _ => "",
    };
    match pipeline::plan(entry, env.auth) {
        Plan::Forward | Plan::ForwardToolList => {
            events.push(pipeline::request_event(
                (env.next_id)(),
                env.ctx,
                token,
                method,
                None,
                (env.elapsed_ms)(),
            ));
            None
        }
        Plan::Refuse(denial) => {
            let event = if method == crate::mcp::TOOLS_CALL {
                let call = match entry {
                    Entry::Call(call) => jsonrpc::tool_call(call).ok(),
                    _ => None,
                };
                pipeline::tool_call_event(
                    (env.next_id)(),
                    env.ctx,
                    token,
                    call.as_ref(),
                    &Verdict::Deny(denial.clone()),
                    intent,
                    (env.elapsed_ms)(),
                )
            } else {
                pipeline::request_event(
                    (env.next_id)(),
                    env.ctx,
                    token,
                    method,
                    Some(&denial),
                    (env.elapsed_ms)(),
                )
            };
            events.push(event);
            Some(denial)
        }
        Plan::Evaluate(call) => {
            let token = token?;
            let started = (env.elapsed_ms)();
            let verdict = env
                .gateway
                .decide_tool_call(env.ctx, token, &call, intent, env.budget, None);
            eval_ms.push((env.elapsed_ms)() - started);
            let verdict = match verdict {
                // Approvals need the control plane; without it an escalation cannot be waited on.
                Verdict::Escalate(escalation) => {
                    let mut denial = Denial::policy(
                        format!(
                            "escalated for human approval ({}), but no approval service is configured",
                            escalation.reason
                        ),
                        escalation.rule,
                    );
                    denial.requires_step_up = escalation.requires_step_up;
                    Verdict::Deny(denial)
                }
                other => other,
            };
            events.push(pipeline::tool_call_event(
                (env.next_id)(),
                env.ctx,
                Some(token),
                Some(&call),
                &verdict,
                intent,
                (env.elapsed_ms)(),
            ));
            match verdict {
                Verdict::Deny(denial) => Some(denial),
                _ => None,
            }
        }
    }
}

fn entry_id<'a>(entry: &Entry<'a>) -> Option<&'a RawValue> {
    match entry {
        Entry::Call(call) => call.id,
        Entry::Response { .. } => None,
        Entry::Invalid { id, .. } => *id,
    }
}

fn is_tools_list(entry: &Entry<'_>) -> bool {
    matches!(entry, Entry::Call(call) if call.method == crate::mcp::TOOLS_LIST)
}

#[cfg(test)]
mod tests;
