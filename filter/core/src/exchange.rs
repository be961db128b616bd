//! One HTTP exchange, decided: what to do with the request body (forward it, forward a reduced batch,
//! or answer locally), what the upstream's answer will need (tools/list filtering, local errors merged
//! into a batch answer, -32603 on upstream failure), and the audit events. Host-agnostic: the Envoy
//! filter only moves bytes according to a [`Disposition`].

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::audit::AuditEvent;
use crate::budget::BudgetStore;
use crate::config::Gateway;
use crate::decision::{Check, Denial, ErrorCode, Verdict, upstream_data};
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
    /// Some calls wait for a human: see [`Disposition::escalations`].
    Escalate,
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
    /// One event per decision, in body order. Their `latency_ms` is 0 until the caller stamps the
    /// time the decision took ([`Disposition::stamp_latency`]).
    pub events: Vec<AuditEvent>,
    /// Calls the policy escalated to a human. When any, `action` is [`Action::Escalate`]: the host
    /// creates the approvals, then holds a lone call or [`Disposition::park`]s them.
    pub escalations: Vec<Escalated>,
    /// Where the body's elements went, to settle the action once approvals exist.
    layout: Layout,
}

#[derive(Debug, Default)]
struct Layout {
    /// Positions of the forwarded elements.
    kept: Vec<usize>,
    entries: usize,
    batch: bool,
}

/// Host facilities a decision needs.
pub struct Env<'a> {
    pub gateway: &'a Gateway,
    pub ctx: &'a RequestContext,
    pub auth: &'a Result<Arc<VerifiedToken>, Denial>,
    pub budget: &'a dyn BudgetStore,
    /// A fresh unique audit event id on each call.
    pub next_id: &'a mut dyn FnMut() -> String,
    /// Whether escalations can wait for a human (a control plane keeps approvals). Without one, an
    /// escalation is a denial.
    pub approvals: bool,
    /// A human approved an escalation by this rule: set it aside (SPEC §4). Everything else is
    /// checked again.
    pub approved_rule: Option<&'a Option<String>>,
}

/// What to do with each element of a body, in body order (envelope and token checks): planned once,
/// counted by [`evaluations`], carried out by [`decide_planned`].
pub fn plans<'a>(
    message: &Message<'a>,
    auth: &Result<Arc<VerifiedToken>, Denial>,
) -> Vec<Plan<'a>> {
    message
        .entries()
        .iter()
        .map(|entry| pipeline::plan(entry, auth))
        .collect()
}

/// How many `tools/call`s of a body pass envelope and token checks and will be evaluated: whether
/// intent is worth extracting before deciding, and how many budget calls to have leased.
pub fn evaluations(plans: &[Plan<'_>]) -> usize {
    plans
        .iter()
        .filter(|plan| matches!(plan, Plan::Evaluate(_)))
        .count()
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
    let event = pipeline::request_event((env.next_id)(), env.ctx, token, http_method, denial);
    Disposition::local(action, vec![event])
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
    local_failure(env, denial, 200, None, "")
}

/// A request whose `Mcp-Method` / `Mcp-Name` headers disagree with its body (`reason` says how):
/// HTTP 400 with -32020, as MCP servers answer it; nothing is forwarded.
pub fn decide_header_mismatch(
    env: &mut Env<'_>,
    message: &Message<'_>,
    reason: String,
) -> Disposition {
    let (id, method) = match message {
        Message::Single(Entry::Call(call)) => (call.id, call.method.as_ref()),
        _ => (None, ""),
    };
    let denial = Denial::envelope(ErrorCode::HeaderMismatch, reason);
    local_failure(env, denial, 400, id, method)
}

fn local_failure(
    env: &mut Env<'_>,
    denial: Denial,
    status: u16,
    id: Option<&RawValue>,
    method: &str,
) -> Disposition {
    let event = pipeline::request_event(
        (env.next_id)(),
        env.ctx,
        env.auth.as_ref().ok().map(Arc::as_ref),
        method,
        Some(&denial),
    );
    Disposition::local(
        Action::Respond {
            status,
            body: jsonrpc::error_body(id, &denial),
        },
        vec![event],
    )
}

/// Decides a request body: every element through the pipeline, then one action for the whole.
pub fn decide(env: &mut Env<'_>, body: &[u8], intent: &IntentSource) -> Disposition {
    match jsonrpc::parse(body) {
        Ok(message) => decide_message(env, &message, body, intent),
        Err(denial) => decide_unparsable(env, denial),
    }
}

/// The answer to a body [`jsonrpc::parse`] refused as a whole.
pub fn decide_unparsable(env: &mut Env<'_>, denial: Denial) -> Disposition {
    local_failure(env, denial, 200, None, "")
}

/// [`decide`] on a body already parsed (`message` is `body` parsed), so a host parses it once.
pub fn decide_message(
    env: &mut Env<'_>,
    message: &Message<'_>,
    body: &[u8],
    intent: &IntentSource,
) -> Disposition {
    let planned = plans(message, env.auth);
    decide_planned(env, message, planned, body, intent)
}

/// [`decide_message`] with the elements already planned (`planned` is [`plans`] of `message` with
/// the same token), so a host that counted the evaluations does not check the envelope twice.
pub fn decide_planned(
    env: &mut Env<'_>,
    message: &Message<'_>,
    planned: Vec<Plan<'_>>,
    body: &[u8],
    intent: &IntentSource,
) -> Disposition {
    let layout = Layout {
        kept: Vec::new(),
        entries: message.entries().len(),
        batch: matches!(message, Message::Batch(_)),
    };
    let mut out = Disposition {
        action: Action::Forward,
        response: ResponsePlan {
            batch: layout.batch,
            ..ResponsePlan::default()
        },
        events: Vec::with_capacity(layout.entries),
        escalations: Vec::new(),
        layout,
    };
    let mut has_request = false;
    let mut refused_for_token = false;
    for (index, (entry, plan)) in message.entries().iter().zip(planned).enumerate() {
        let id = entry_id(entry);
        has_request |= id.is_some();
        match decide_entry(env, entry, plan, intent, &mut out) {
            Outcome::Forward => {
                out.layout.kept.push(index);
                if let Some(id) = id {
                    out.response.forwarded_ids.push(id.get().to_owned());
                    if is_tools_list(entry) {
                        out.response.tools_list_ids.insert(id.get());
                    }
                }
            }
            Outcome::Refuse(denial) => {
                refused_for_token |= env.auth.is_err() && denial.check == Check::Capability;
                // A refused notification gets no answer (JSON-RPC), only its audit event.
                if id.is_some() || matches!(entry, Entry::Invalid { .. }) {
                    out.response
                        .local_errors
                        .push(jsonrpc::error_body(id, &denial));
                }
            }
            Outcome::Escalate(escalated) => out.escalations.push(escalated),
        }
    }
    if out.escalations.is_empty() {
        // MCP's authorization: a request without a valid token is answered 401, so that the client
        // finds the resource's metadata; the body keeps the JSON-RPC errors.
        let unauthenticated = (refused_for_token || !has_request)
            .then(|| env.auth.as_ref().err())
            .flatten();
        out.settle(body, unauthenticated);
    } else {
        out.action = Action::Escalate;
    }
    out
}

impl Disposition {
    /// Records how long the decision took in its audit events.
    pub fn stamp_latency(&mut self, latency_ms: f64) {
        for event in &mut self.events {
            event.set_latency(latency_ms);
        }
    }

    fn local(action: Action, events: Vec<AuditEvent>) -> Self {
        Disposition {
            action,
            response: ResponsePlan::default(),
            events,
            escalations: Vec::new(),
            layout: Layout::default(),
        }
    }

    /// Sets the action from where the elements went: forward all, forward the kept ones, or answer.
    /// `unauthenticated`: the token is missing or refused, and the body was refused for it (or held
    /// only notifications and responses) — answered 401.
    fn settle(&mut self, body: &[u8], unauthenticated: Option<&Denial>) {
        let layout = &self.layout;
        self.action = if layout.kept.len() == layout.entries {
            Action::Forward
        } else if layout.kept.is_empty() {
            local_answer(&self.response, layout.batch, unauthenticated)
        } else {
            match response::subset_batch(body, &layout.kept) {
                Some(reduced) => Action::ForwardBody(reduced),
                None => local_answer(&self.response, layout.batch, unauthenticated),
            }
        };
        if matches!(self.action, Action::Respond { .. }) {
            self.response = ResponsePlan::default();
        }
    }
}

/// The answer when nothing is forwarded.
fn local_answer(plan: &ResponsePlan, batch: bool, unauthenticated: Option<&Denial>) -> Action {
    let status = if unauthenticated.is_some() { 401 } else { 200 };
    match (plan.local_errors.as_slice(), batch, unauthenticated) {
        ([], _, Some(denial)) => Action::Respond {
            status,
            body: jsonrpc::error_body(None, denial),
        },
        ([], _, None) => Action::Respond {
            status: 202,
            body: String::new(),
        },
        ([single], false, _) => Action::Respond {
            status,
            body: single.clone(),
        },
        (errors, _, _) => Action::Respond {
            status,
            body: format!("[{}]", errors.join(",")),
        },
    }
}

/// Where one element of a body goes.
enum Outcome {
    Forward,
    Refuse(Denial),
    Escalate(Escalated),
}

/// Decides one element and pushes its audit event.
fn decide_entry(
    env: &mut Env<'_>,
    entry: &Entry<'_>,
    plan: Plan<'_>,
    intent: &IntentSource,
    out: &mut Disposition,
) -> Outcome {
    let token = env.auth.as_ref().ok().map(Arc::as_ref);
    let method = match entry {
        Entry::Call(call) => call.method.as_ref(),
        _ => "",
    };
    match plan {
        Plan::Forward | Plan::ForwardToolList => {
            out.events.push(pipeline::request_event(
                (env.next_id)(),
                env.ctx,
                token,
                method,
                None,
            ));
            Outcome::Forward
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
                )
            } else {
                pipeline::request_event((env.next_id)(), env.ctx, token, method, Some(&denial))
            };
            out.events.push(event);
            Outcome::Refuse(denial)
        }
        Plan::Evaluate(call) => {
            let Some(token) = token else {
                return Outcome::Refuse(Denial::capability("missing bearer token"));
            };
            let verdict = env.gateway.decide_tool_call(
                env.ctx,
                token,
                &call,
                intent,
                env.budget,
                env.approved_rule,
            );
            let verdict = match verdict {
                Verdict::Escalate(escalation) if !env.approvals => {
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
            out.events.push(pipeline::tool_call_event(
                (env.next_id)(),
                env.ctx,
                Some(token),
                Some(&call),
                &verdict,
                intent,
            ));
            match verdict {
                Verdict::Allow { .. } => Outcome::Forward,
                Verdict::Deny(denial) => Outcome::Refuse(denial),
                Verdict::Escalate(escalation) => Outcome::Escalate(Escalated::new(
                    entry_id(entry),
                    &call,
                    escalation,
                    out.events.len() - 1,
                )),
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

mod escalation;
pub use escalation::{
    Escalated, arguments_digest, arguments_digest_of, held_call_event, lone_call, refuse,
};

#[cfg(test)]
mod tests;
