//! The runtime pipeline (SPEC §3): envelope, capability, intent, policy, budget, in that order; the
//! first failure stops the rest. Split in steps so a host can fetch intent asynchronously between
//! [`plan`] and [`Gateway::decide_tool_call`]; the filter, the control plane and the CLI all call
//! these same functions.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::audit::{AuditEvent, EventKind};
use crate::budget::{BudgetOutcome, BudgetStore, Counter, Window, consume_all};
use crate::config::{Gateway, TenantState};
use crate::decision::{AuditDecision, BudgetUsage, Denial, ErrorCode, Escalation, Verdict};
use crate::intent::IntentSource;
use crate::jsonrpc::{self, Entry, ToolCall};
use crate::mcp::{self, MethodClass};
use crate::memory;
use crate::policy::{CapabilityInput, PolicyInput, PolicyOutcome, RequestInput, empty_args};
use crate::token::{self, TokenVerifier, VerifiedToken};

/// Headers never shown to policies or logs: they carry credentials.
const CREDENTIAL_HEADERS: [&str; 5] = [
    crate::headers::AUTHORIZATION,
    "proxy-authorization",
    "cookie",
    crate::headers::MEMORY_PROVENANCE,
    crate::headers::INTENT_PROMPT,
];

/// What the pipeline knows of the HTTP request around the JSON-RPC messages.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub http_method: String,
    pub path: String,
    pub remote_ip: String,
    pub session_id: String,
    /// Lower-case names, credentials removed (see [`policy_headers`]).
    pub headers: BTreeMap<String, String>,
    /// `X-Intent-Memory-Provenance`, when sent.
    pub memory_provenance: Option<String>,
    /// Unix milliseconds of the request's arrival.
    pub now_ms: i64,
}

impl RequestContext {
    pub fn now_secs(&self) -> i64 {
        self.now_ms.div_euclid(1000)
    }
}

/// Keeps the headers a policy may read: lower-cased, pseudo-headers and credentials removed.
pub fn policy_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    headers
        .into_iter()
        .filter(|(name, _)| !name.starts_with(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .filter(|(name, _)| !CREDENTIAL_HEADERS.contains(&name.as_str()))
        .collect()
}

/// What to do with one element of a body once the token is known.
#[derive(Debug)]
pub enum Plan<'a> {
    /// Forward unchanged.
    Forward,
    /// Forward, and filter the `tools/list` result to the token's tools.
    ForwardToolList,
    /// Answer with this error (no answer at all for a notification).
    Refuse(Denial),
    /// A `tools/call` that passed envelope and token checks: run the rest of the pipeline.
    Evaluate(ToolCall<'a>),
}

/// Checks one message's envelope and the request's token (checks 0 and 1, minus the tool caveat).
pub fn plan<'a>(entry: &Entry<'a>, auth: &Result<Arc<VerifiedToken>, Denial>) -> Plan<'a> {
    let call = match entry {
        Entry::Invalid { error, .. } => return Plan::Refuse(error.clone()),
        Entry::Response { .. } => {
            return match auth {
                Ok(_) => Plan::Forward,
                Err(denial) => Plan::Refuse(denial.clone()),
            };
        }
        Entry::Call(call) => call,
    };
    let class = mcp::classify(&call.method);
    let tool_call = match class {
        MethodClass::Unknown => {
            return Plan::Refuse(Denial::envelope(
                ErrorCode::MethodNotFound,
                format!("method {} is not an MCP method", call.method),
            ));
        }
        MethodClass::ToolCall => match jsonrpc::tool_call(call) {
            Ok(tool_call) => Some(tool_call),
            Err(denial) => return Plan::Refuse(denial),
        },
        MethodClass::ToolList | MethodClass::Forwarded => None,
    };
    if let Err(denial) = auth {
        return Plan::Refuse(denial.clone());
    }
    match (class, tool_call) {
        (_, Some(tool_call)) => Plan::Evaluate(tool_call),
        (MethodClass::ToolList, None) => Plan::ForwardToolList,
        _ => Plan::Forward,
    }
}

impl Gateway {
    /// The capability check for a request as a whole: a valid token from a trusted key, live, not
    /// revoked, of a tenant served here. Uses and fills the verification cache.
    pub fn authenticate(
        &self,
        cache: &mut dyn TokenVerifier,
        authorization: Option<&str>,
        tenant_header: Option<&str>,
        now_secs: i64,
    ) -> Result<Arc<VerifiedToken>, Denial> {
        let header = authorization.ok_or_else(|| Denial::capability("missing bearer token"))?;
        let text = token::bearer(header)
            .ok_or_else(|| Denial::capability("authorization is not a bearer token"))?;
        let verified = cache
            .verify(text, &self.keys)
            .map_err(|e| Denial::capability(e.to_string()))?;
        verified
            .check_live(now_secs, &self.revoked)
            .map_err(|e| Denial::capability(e.to_string()))?;
        if !self.serves(&verified.tenant) {
            return Err(Denial::capability(format!(
                "tenant {} is not served by this gateway",
                verified.tenant
            )));
        }
        if let Some(expected) = tenant_header
            && expected != verified.tenant
        {
            return Err(Denial::capability(format!(
                "token tenant {} does not match the requested tenant {expected}",
                verified.tenant
            )));
        }
        Ok(verified)
    }

    /// Intent from the built-in extractor of the token's tenant.
    pub fn builtin_intent(&self, tenant: &str, prompt: Option<&str>) -> IntentSource {
        match (prompt, self.tenant(tenant)) {
            (None, _) => IntentSource::NotDeclared,
            (Some(prompt), Some(state)) => {
                IntentSource::Extracted(state.intent_rules.extract(prompt))
            }
            (Some(prompt), None) => {
                IntentSource::Extracted(crate::intent::IntentRules::default().extract(prompt))
            }
        }
    }

    /// Checks 1 (tool caveat) to 4 for a `tools/call` whose token is already authenticated.
    /// `approved_rule` sets aside an escalation by that rule only (a human approved it, SPEC §4).
    pub fn decide_tool_call(
        &self,
        ctx: &RequestContext,
        token: &VerifiedToken,
        call: &ToolCall<'_>,
        intent: &IntentSource,
        budget: &dyn BudgetStore,
        approved_rule: Option<&Option<String>>,
    ) -> Verdict {
        let tool = call.name.as_ref();
        if !token.allows_tool(tool) {
            return Verdict::Deny(Denial::capability(format!(
                "tool {tool} is not allowed by the token"
            )));
        }
        let Some(tenant) = self.tenant(&token.tenant) else {
            return Verdict::Deny(Denial::policy(
                format!("tenant {} has no configuration (fail closed)", token.tenant),
                None,
            ));
        };
        if let Err(denial) = check_intent(ctx, token, tenant, tool, intent) {
            return Verdict::Deny(denial);
        }
        let rule = match evaluate_policy(ctx, token, tenant, call, intent) {
            PolicyOutcome::Allow { rule, .. } => rule,
            PolicyOutcome::Escalate {
                rule,
                reason,
                requires_step_up,
            } => {
                if approved_rule != Some(&rule) {
                    return Verdict::Escalate(Escalation {
                        rule,
                        reason,
                        requires_step_up,
                    });
                }
                rule
            }
            PolicyOutcome::Deny {
                rule,
                reason,
                requires_step_up,
            } => {
                let mut denial = Denial::policy(reason, rule);
                denial.requires_step_up = requires_step_up;
                return Verdict::Deny(denial);
            }
            PolicyOutcome::Error(reason) => return Verdict::Deny(Denial::policy(reason, None)),
        };
        if let Err(denial) = check_budget(ctx, token, tenant, budget) {
            return Verdict::Deny(denial);
        }
        Verdict::Allow { rule }
    }
}

fn check_intent(
    ctx: &RequestContext,
    token: &VerifiedToken,
    tenant: &TenantState,
    tool: &str,
    intent: &IntentSource,
) -> Result<(), Denial> {
    match intent {
        IntentSource::NotDeclared if tenant.settings.require_intent => {
            return Err(Denial::intent(
                "the tenant requires a declared intent (X-Intent-Prompt) and none was sent",
            ));
        }
        IntentSource::NotDeclared => {}
        IntentSource::Unavailable(reason) => {
            return Err(Denial::intent(format!(
                "intent could not be extracted: {reason}"
            )));
        }
        IntentSource::Extracted(intent) => intent.permits(tool).map_err(Denial::intent)?,
    }
    match (&ctx.memory_provenance, &token.memory_key) {
        (Some(header), Some(key)) => {
            memory::verify_chain(header, key, &token.root_jti)
                .map_err(|e| Denial::intent(e.to_string()))?;
        }
        (Some(_), None) => {
            return Err(Denial::intent(
                "memory provenance was sent but the token carries no memory key",
            ));
        }
        (None, _) if tenant.settings.require_memory_provenance => {
            return Err(Denial::intent(
                "the tenant requires signed memory provenance (X-Intent-Memory-Provenance)",
            ));
        }
        (None, _) => {}
    }
    Ok(())
}

/// Builds the policy input and evaluates the tenant's active policy. Public so dry-runs and the
/// approval re-check evaluate exactly what the filter does.
pub fn evaluate_policy(
    ctx: &RequestContext,
    token: &VerifiedToken,
    tenant: &TenantState,
    call: &ToolCall<'_>,
    intent: &IntentSource,
) -> PolicyOutcome {
    let Some(policy) = &tenant.policy else {
        return PolicyOutcome::Error(format!(
            "no active policy for tenant {} (fail closed)",
            token.tenant
        ));
    };
    let intent_input = match intent {
        IntentSource::Extracted(intent) => Some(intent),
        _ => None,
    };
    let input = PolicyInput {
        method: mcp::TOOLS_CALL,
        tool: &call.name,
        args: call.arguments.unwrap_or(empty_args()),
        agent_id: &token.subject,
        tenant: &token.tenant,
        capability: CapabilityInput::of(token),
        intent: intent_input,
        request: RequestInput {
            method: &ctx.http_method,
            path: &ctx.path,
            remote_ip: &ctx.remote_ip,
            headers: &ctx.headers,
        },
        now: ctx.now_secs(),
    };
    policy.decide(&input, token.policy_view.as_ref())
}

const RATE_WINDOW_SECS: i64 = 60;

fn check_budget(
    ctx: &RequestContext,
    token: &VerifiedToken,
    tenant: &TenantState,
    store: &dyn BudgetStore,
) -> Result<(), Denial> {
    let mut counters: Vec<Counter> = token
        .budgets
        .iter()
        .map(|b| Counter {
            key: crate::budget::calls_key(&b.counter),
            limit: b.max_calls,
            window: Window::Lifetime,
            label: format!("max_calls of token {}", b.counter),
        })
        .collect();
    let window = Window::Fixed {
        id: u64::try_from(ctx.now_secs().div_euclid(RATE_WINDOW_SECS)).unwrap_or(0),
    };
    let limits = &tenant.settings.rate_limits;
    if let Some(limit) = limits.per_agent_per_minute {
        counters.push(Counter {
            key: format!("rate/agent/{}/{}", token.tenant, token.subject),
            limit,
            window,
            label: format!(
                "rate limit of {limit} calls per minute for agent {}",
                token.subject
            ),
        });
    }
    if let Some(limit) = limits.per_tenant_per_minute {
        counters.push(Counter {
            key: format!("rate/tenant/{}", token.tenant),
            limit,
            window,
            label: format!(
                "rate limit of {limit} calls per minute for tenant {}",
                token.tenant
            ),
        });
    }
    match consume_all(store, &counters) {
        BudgetOutcome::Granted => Ok(()),
        BudgetOutcome::Exhausted { counter, used } => Err(Denial::budget(
            format!("{} reached", counter.label),
            BudgetUsage {
                limit: counter.limit,
                used,
            },
        )),
        BudgetOutcome::Unavailable(err) => {
            let mut denial = Denial::budget(err.to_string(), BudgetUsage { limit: 0, used: 0 });
            denial.budget = None;
            Err(denial)
        }
    }
}

/// Arguments as a JSON map for the audit; `None` when absent or not an object.
pub fn arguments_map(args: Option<&RawValue>) -> Option<Map<String, Value>> {
    args.and_then(|raw| serde_json::from_str(raw.get()).ok())
}

/// The audit event of one `tools/call` decision.
pub fn tool_call_event(
    id: String,
    ctx: &RequestContext,
    token: Option<&VerifiedToken>,
    call: Option<&ToolCall<'_>>,
    verdict: &Verdict,
    intent: &IntentSource,
) -> AuditEvent {
    let mut event = AuditEvent::new(
        id,
        ctx.now_ms,
        EventKind::ToolCall,
        verdict.audit_decision(),
    );
    if let Some(token) = token {
        event = event.with_token(token);
    }
    if let Some(call) = call {
        event = event.with_tool(&call.name, arguments_map(call.arguments).as_ref());
    }
    event = match verdict {
        Verdict::Allow { rule } => {
            event.rule = rule.clone().unwrap_or_default();
            event
        }
        Verdict::Deny(denial) => event.with_denial(denial),
        Verdict::Escalate(escalation) => {
            event.check = "policy".into();
            event.reason.clone_from(&escalation.reason);
            event.rule = escalation.rule.clone().unwrap_or_default();
            event.requires_step_up = escalation.requires_step_up;
            event
        }
    };
    if let IntentSource::Extracted(intent) = intent {
        event.intent_summary.clone_from(&intent.summary);
    }
    finish(event, ctx, mcp::TOOLS_CALL)
}

/// The audit event of a request that is not a `tools/call`: allowed, or refused with `denial`.
pub fn request_event(
    id: String,
    ctx: &RequestContext,
    token: Option<&VerifiedToken>,
    method: &str,
    denial: Option<&Denial>,
) -> AuditEvent {
    let decision = if denial.is_some() {
        AuditDecision::Deny
    } else {
        AuditDecision::Allow
    };
    let mut event = AuditEvent::new(id, ctx.now_ms, EventKind::Request, decision);
    if let Some(token) = token {
        event = event.with_token(token);
    }
    if let Some(denial) = denial {
        event = event.with_denial(denial);
    }
    finish(event, ctx, method)
}

fn finish(mut event: AuditEvent, ctx: &RequestContext, method: &str) -> AuditEvent {
    event.method = method.to_owned();
    event.session_id.clone_from(&ctx.session_id);
    event.remote_ip.clone_from(&ctx.remote_ip);
    event
}

#[cfg(test)]
mod tests;
