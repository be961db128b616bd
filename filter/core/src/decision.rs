//! What a check concludes, in types: which check, which JSON-RPC code, and the `error.data` it carries.

use serde::Serialize;
use serde_json::{Map, Value, json};

/// The checks of the runtime pipeline, in the order they run (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Envelope,
    Capability,
    Intent,
    Policy,
    Budget,
}

impl Check {
    pub const fn as_str(self) -> &'static str {
        match self {
            Check::Envelope => "envelope",
            Check::Capability => "capability",
            Check::Intent => "intent",
            Check::Policy => "policy",
            Check::Budget => "budget",
        }
    }

    /// The code a failure of this check answers with.
    pub const fn error_code(self) -> ErrorCode {
        match self {
            Check::Envelope => ErrorCode::InvalidRequest,
            Check::Capability => ErrorCode::CapabilityDenied,
            Check::Intent => ErrorCode::IntentDenied,
            Check::Policy => ErrorCode::PolicyDenied,
            Check::Budget => ErrorCode::BudgetExceeded,
        }
    }
}

/// Every JSON-RPC error code the gateway answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    CapabilityDenied,
    IntentDenied,
    PolicyDenied,
    BudgetExceeded,
    ApprovalPending,
    /// MCP's `HEADER_MISMATCH`: `Mcp-Method` / `Mcp-Name` disagree with the body.
    HeaderMismatch,
}

impl ErrorCode {
    pub const fn code(self) -> i32 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::InternalError => -32603,
            ErrorCode::CapabilityDenied => -32010,
            ErrorCode::IntentDenied => -32011,
            ErrorCode::PolicyDenied => -32012,
            ErrorCode::BudgetExceeded => -32013,
            ErrorCode::ApprovalPending => -32019,
            ErrorCode::HeaderMismatch => -32020,
        }
    }

    pub const fn message(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "Parse error",
            ErrorCode::InvalidRequest => "Invalid Request",
            ErrorCode::MethodNotFound => "Method not found",
            ErrorCode::InvalidParams => "Invalid params",
            ErrorCode::InternalError => "Upstream error",
            ErrorCode::CapabilityDenied => "Capability check failed",
            ErrorCode::IntentDenied => "Intent check failed",
            ErrorCode::PolicyDenied => "Denied by policy",
            ErrorCode::BudgetExceeded => "Budget exceeded",
            ErrorCode::ApprovalPending => "Approval pending",
            ErrorCode::HeaderMismatch => "Header mismatch",
        }
    }

    pub fn from_code(code: i32) -> Option<Self> {
        ALL_CODES.iter().copied().find(|c| c.code() == code)
    }
}

const ALL_CODES: [ErrorCode; 11] = [
    ErrorCode::ParseError,
    ErrorCode::InvalidRequest,
    ErrorCode::MethodNotFound,
    ErrorCode::InvalidParams,
    ErrorCode::InternalError,
    ErrorCode::CapabilityDenied,
    ErrorCode::IntentDenied,
    ErrorCode::PolicyDenied,
    ErrorCode::BudgetExceeded,
    ErrorCode::ApprovalPending,
    ErrorCode::HeaderMismatch,
];

/// How much of a budget a call found used, for `error.data` of -32013.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUsage {
    pub limit: u64,
    pub used: u64,
}

/// A refused call: the one failure that stopped the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    pub check: Check,
    pub code: ErrorCode,
    pub reason: String,
    /// The Rego rule that decided, for policy denials.
    pub rule: Option<String>,
    pub budget: Option<BudgetUsage>,
    pub requires_step_up: bool,
}

impl Denial {
    pub fn new(check: Check, reason: impl Into<String>) -> Self {
        Denial {
            check,
            code: check.error_code(),
            reason: reason.into(),
            rule: None,
            budget: None,
            requires_step_up: false,
        }
    }

    /// An envelope failure with its specific code (-32700, -32600, -32601, -32602).
    pub fn envelope(code: ErrorCode, reason: impl Into<String>) -> Self {
        Denial {
            code,
            ..Denial::new(Check::Envelope, reason)
        }
    }

    pub fn capability(reason: impl Into<String>) -> Self {
        Denial::new(Check::Capability, reason)
    }

    pub fn intent(reason: impl Into<String>) -> Self {
        Denial::new(Check::Intent, reason)
    }

    pub fn policy(reason: impl Into<String>, rule: Option<String>) -> Self {
        Denial {
            rule,
            ..Denial::new(Check::Policy, reason)
        }
    }

    pub fn budget(reason: impl Into<String>, usage: BudgetUsage) -> Self {
        Denial {
            budget: Some(usage),
            ..Denial::new(Check::Budget, reason)
        }
    }

    /// `error.data` exactly as SPEC §3's table gives it for this check.
    pub fn error_data(&self) -> Value {
        let mut data = Map::new();
        if self.check != Check::Envelope {
            data.insert("check".into(), Value::from(self.check.as_str()));
        }
        data.insert("reason".into(), Value::from(self.reason.as_str()));
        if self.check == Check::Policy {
            data.insert(
                "rule".into(),
                self.rule.as_deref().map_or(Value::Null, Value::from),
            );
            if self.requires_step_up {
                data.insert("requires_step_up".into(), Value::Bool(true));
            }
        }
        if let Some(usage) = self.budget {
            data.insert("limit".into(), Value::from(usage.limit));
            data.insert("used".into(), Value::from(usage.used));
        }
        Value::Object(data)
    }
}

/// A policy escalation: the call waits for a human (SPEC §4).
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    pub rule: Option<String>,
    pub reason: String,
    pub requires_step_up: bool,
}

/// The pipeline's answer for one `tools/call`.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow {
        /// The rule that allowed, when the policy named one.
        rule: Option<String>,
    },
    Deny(Denial),
    Escalate(Escalation),
}

impl Verdict {
    pub fn audit_decision(&self) -> AuditDecision {
        match self {
            Verdict::Allow { .. } => AuditDecision::Allow,
            Verdict::Deny(_) => AuditDecision::Deny,
            Verdict::Escalate(_) => AuditDecision::Escalate,
        }
    }
}

/// The `decision` field of an audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    Allow,
    Deny,
    Escalate,
    Approve,
    Reject,
}

impl AuditDecision {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditDecision::Allow => "allow",
            AuditDecision::Deny => "deny",
            AuditDecision::Escalate => "escalate",
            AuditDecision::Approve => "approve",
            AuditDecision::Reject => "reject",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(AuditDecision::Allow),
            "deny" => Some(AuditDecision::Deny),
            "escalate" => Some(AuditDecision::Escalate),
            "approve" => Some(AuditDecision::Approve),
            "reject" => Some(AuditDecision::Reject),
            _ => None,
        }
    }
}

/// `error.data` of -32019: the call is parked until a human decides.
pub fn pending_data(pending_id: &str) -> Value {
    json!({
        "pending_id": pending_id,
        "status": "pending",
        "resume_header": crate::APPROVAL_ID_HEADER,
    })
}

/// `error.data` of -32603: the upstream tool server failed.
pub fn upstream_data(upstream_status: Option<u16>, detail: &str) -> Value {
    json!({ "upstream_status": upstream_status, "detail": detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_spec_table() {
        assert_eq!(ErrorCode::ParseError.code(), -32700);
        assert_eq!(ErrorCode::InvalidRequest.code(), -32600);
        assert_eq!(ErrorCode::MethodNotFound.code(), -32601);
        assert_eq!(ErrorCode::InvalidParams.code(), -32602);
        assert_eq!(Check::Capability.error_code().code(), -32010);
        assert_eq!(Check::Intent.error_code().code(), -32011);
        assert_eq!(Check::Policy.error_code().code(), -32012);
        assert_eq!(Check::Budget.error_code().code(), -32013);
        assert_eq!(ErrorCode::ApprovalPending.code(), -32019);
        assert_eq!(ErrorCode::InternalError.code(), -32603);
        for code in ALL_CODES {
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
        }
    }

    #[test]
    fn error_data_has_the_fields_of_each_check() {
        assert_eq!(
            Denial::envelope(ErrorCode::InvalidParams, "params.name missing").error_data(),
            json!({"reason": "params.name missing"})
        );
        assert_eq!(
            Denial::capability("token expired").error_data(),
            json!({"check": "capability", "reason": "token expired"})
        );
        assert_eq!(
            Denial::policy("no wire transfers", Some("deny_wire".into())).error_data(),
            json!({"check": "policy", "reason": "no wire transfers", "rule": "deny_wire"})
        );
        assert_eq!(
            Denial::budget("max_calls reached", BudgetUsage { limit: 3, used: 3 }).error_data(),
            json!({"check": "budget", "reason": "max_calls reached", "limit": 3, "used": 3})
        );
        assert_eq!(
            pending_data("01J"),
            json!({"pending_id": "01J", "status": "pending", "resume_header": "X-IntentGate-Approval-Id"})
        );
    }
}
