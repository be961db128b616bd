//! Reading the value the policy produced into a typed outcome.

use regorus::Value;

/// What a policy concluded for one call.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyOutcome {
    Allow {
        rule: Option<String>,
        reason: Option<String>,
    },
    Deny {
        rule: Option<String>,
        reason: String,
        requires_step_up: bool,
    },
    Escalate {
        rule: Option<String>,
        reason: String,
        requires_step_up: bool,
    },
    /// The policy could not be evaluated or produced no well-formed decision: deny.
    Error(String),
}

impl PolicyOutcome {
    pub fn rule(&self) -> Option<&str> {
        match self {
            PolicyOutcome::Allow { rule, .. }
            | PolicyOutcome::Deny { rule, .. }
            | PolicyOutcome::Escalate { rule, .. } => rule.as_deref(),
            PolicyOutcome::Error(_) => None,
        }
    }

    /// `allow`, `deny` or `escalate`, as the audit and dry-run name decisions.
    pub fn label(&self) -> &'static str {
        match self {
            PolicyOutcome::Allow { .. } => "allow",
            PolicyOutcome::Escalate { .. } => "escalate",
            PolicyOutcome::Deny { .. } | PolicyOutcome::Error(_) => "deny",
        }
    }
}

fn optional_string(decision: &Value, field: &str) -> Result<Option<String>, String> {
    match &decision[field] {
        Value::Undefined | Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.to_string())),
        _ => Err(format!("malformed decision: {field} must be a string")),
    }
}

fn optional_bool(decision: &Value, field: &str) -> Result<bool, String> {
    match &decision[field] {
        Value::Undefined | Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        _ => Err(format!("malformed decision: {field} must be a boolean")),
    }
}

pub(super) fn interpret(value: &Value) -> PolicyOutcome {
    match value {
        Value::Undefined => {
            return PolicyOutcome::Error(
                "policy produced no decision (data.intentgate.policy.decision is undefined)".into(),
            );
        }
        Value::Object(_) => {}
        _ => return PolicyOutcome::Error("malformed decision: not an object".into()),
    }
    let read = || -> Result<PolicyOutcome, String> {
        let rule = optional_string(value, "rule")?;
        let reason = optional_string(value, "reason")?;
        let requires_step_up = optional_bool(value, "requires_step_up")?;
        // Escalate wins over allow within one decision (SPEC §3).
        if optional_bool(value, "escalate")? {
            return Ok(PolicyOutcome::Escalate {
                reason: reason.unwrap_or_else(|| "escalated for human approval".into()),
                rule,
                requires_step_up,
            });
        }
        match &value["allow"] {
            Value::Bool(true) => Ok(PolicyOutcome::Allow { rule, reason }),
            Value::Bool(false) => Ok(PolicyOutcome::Deny {
                reason: reason.unwrap_or_else(|| "denied by policy".into()),
                rule,
                requires_step_up,
            }),
            Value::Undefined => Err("malformed decision: allow is missing".into()),
            _ => Err("malformed decision: allow is not a boolean".into()),
        }
    };
    read().unwrap_or_else(PolicyOutcome::Error)
}

/// Turns a VM error into a denial reason an operator can act on.
pub(super) fn describe_error(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("instruction") && lower.contains("limit") {
        format!("policy evaluation exceeded its instruction limit: {message}")
    } else if lower.contains("conflict") || lower.contains("multiple") {
        format!("policy evaluation conflict: rule bodies produced different decisions ({message})")
    } else {
        format!("policy evaluation error: {message}")
    }
}
