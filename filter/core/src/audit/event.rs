//! One audit event per decision, with every field of the API reference's audit schema.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::decision::{AuditDecision, Check, Denial};
use crate::token::VerifiedToken;

pub const SCHEMA_VERSION: &str = "v4";

/// What the event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A `tools/call` decision.
    #[serde(rename = "intentgate.tool_call")]
    ToolCall,
    /// Any other MCP request (initialize, tools/list, session GET/DELETE, ...).
    #[serde(rename = "intentgate.request")]
    Request,
    /// A human decided an escalated call.
    #[serde(rename = "intentgate.approval")]
    Approval,
    /// An operator changed something through the admin API.
    #[serde(rename = "intentgate.admin")]
    Admin,
}

/// Field order follows the API reference; absent strings are "", absent numbers 0, as there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Unique and idempotent: a resent event with the same id is written once.
    pub id: String,
    pub ts: String,
    pub event: EventKind,
    pub schema_version: String,
    pub decision: AuditDecision,
    /// The failing check, "" when allowed.
    pub check: String,
    pub reason: String,
    pub tenant: String,
    pub agent_id: String,
    pub session_id: String,
    pub tool: String,
    pub arg_keys: Vec<String>,
    pub arg_values: Map<String, Value>,
    pub capability_token_id: String,
    pub root_capability_token_id: String,
    pub caveat_count: u64,
    pub pending_id: String,
    pub decided_by: String,
    pub intent_summary: String,
    pub latency_ms: f64,
    pub remote_ip: String,
    pub upstream_status: u16,
    pub requires_step_up: bool,
    pub elevation_id: String,
    /// Beyond the reference: the JSON-RPC method, the deciding Rego rule and the error code sent.
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub error_code: i32,
}

impl AuditEvent {
    pub fn new(id: String, unix_millis: i64, kind: EventKind, decision: AuditDecision) -> Self {
        AuditEvent {
            id,
            ts: crate::time::rfc3339_millis(unix_millis),
            event: kind,
            schema_version: SCHEMA_VERSION.into(),
            decision,
            check: String::new(),
            reason: String::new(),
            tenant: String::new(),
            agent_id: String::new(),
            session_id: String::new(),
            tool: String::new(),
            arg_keys: Vec::new(),
            arg_values: Map::new(),
            capability_token_id: String::new(),
            root_capability_token_id: String::new(),
            caveat_count: 0,
            pending_id: String::new(),
            decided_by: String::new(),
            intent_summary: String::new(),
            latency_ms: 0.0,
            remote_ip: String::new(),
            upstream_status: 0,
            requires_step_up: false,
            elevation_id: String::new(),
            method: String::new(),
            rule: String::new(),
            error_code: 0,
        }
    }

    /// Who presented which token.
    pub fn with_token(mut self, token: &VerifiedToken) -> Self {
        self.tenant.clone_from(&token.tenant);
        self.agent_id.clone_from(&token.subject);
        self.capability_token_id.clone_from(&token.jti);
        self.root_capability_token_id.clone_from(&token.root_jti);
        self.caveat_count = token.caveat_count() as u64;
        self
    }

    /// The tool and its arguments, redacted (see [`redact_args`]).
    pub fn with_tool(mut self, tool: &str, args: Option<&Map<String, Value>>) -> Self {
        self.tool = tool.to_owned();
        if let Some(args) = args {
            self.arg_keys = args.keys().cloned().collect();
            self.arg_values = redact_args(args);
        }
        self
    }

    pub fn with_denial(mut self, denial: &Denial) -> Self {
        self.apply_denial(denial);
        self
    }

    /// Records why the call was refused: the check, reason, deciding rule and error code.
    pub fn apply_denial(&mut self, denial: &Denial) {
        self.check = if denial.check == Check::Envelope {
            "envelope".into()
        } else {
            denial.check.as_str().into()
        };
        self.reason.clone_from(&denial.reason);
        self.rule = denial.rule.clone().unwrap_or_default();
        self.requires_step_up = denial.requires_step_up;
        self.error_code = denial.code.code();
    }

    /// Records the decision's latency, to the microsecond; a non-finite value records 0 (the event
    /// must stay serializable).
    pub fn set_latency(&mut self, latency_ms: f64) {
        self.latency_ms = if latency_ms.is_finite() {
            (latency_ms * 1000.0).round() / 1000.0
        } else {
            0.0
        };
    }

    /// Canonical JSON of the whole event: what the hash chain covers. Serializing an event cannot
    /// fail: its fields are strings, integers, a string map and one finite float (`latency_ms` is
    /// kept finite where it is set), so the fallback is never taken.
    pub fn canonical(&self) -> String {
        super::canonical_json(&serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

/// Longest string argument value kept in the audit; longer ones are cut.
pub const MAX_ARG_STRING: usize = 256;
/// Upper bound on the serialized size of `arg_values`; keys beyond it are recorded as omitted.
pub const MAX_ARG_BYTES: usize = 4096;
const REDACTED: &str = "[redacted]";
const OMITTED: &str = "[omitted]";
const SECRET_WORDS: [&str; 8] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "authorization",
    "credential",
];

fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// Arguments as the audit keeps them: values under secret-looking keys (at any depth) redacted,
/// long strings cut, and the total bounded so one call cannot bloat the log.
pub fn redact_args(args: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut size = 0usize;
    for (key, value) in args {
        let kept = if is_secret_key(key) {
            Value::from(REDACTED)
        } else {
            redact_value(value)
        };
        let cost = key.len() + kept.to_string().len();
        if size + cost > MAX_ARG_BYTES {
            out.insert(key.clone(), Value::from(OMITTED));
            continue;
        }
        size += cost;
        out.insert(key.clone(), kept);
    }
    out
}

fn redact_value(value: &Value) -> Value {
    match value {
        Value::String(s) if s.chars().count() > MAX_ARG_STRING => {
            let mut cut: String = s.chars().take(MAX_ARG_STRING).collect();
            cut.push('…');
            Value::from(cut)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let kept = if is_secret_key(k) {
                        Value::from(REDACTED)
                    } else {
                        redact_value(v)
                    };
                    (k.clone(), kept)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_value).collect()),
        other => other.clone(),
    }
}
