//! An audit event as delivery handles it: the stored canonical JSON (what every destination
//! receives, unchanged, so a SIEM holds the very bytes the chain and the Merkle tree cover) and
//! the few fields destinations put in their envelopes.

use serde_json::Value;

use super::config::Selection;

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub tenant: String,
    pub seq: i64,
    /// The canonical JSON as stored.
    pub body: String,
    value: Value,
}

impl Event {
    pub fn new(tenant: String, seq: i64, body: String) -> Self {
        let value = serde_json::from_str(&body).unwrap_or(Value::Null);
        Event {
            tenant,
            seq,
            body,
            value,
        }
    }

    /// The parsed event (`Null` if the stored body is not JSON, which verify would report).
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// A string field, "" when absent.
    pub fn field(&self, name: &str) -> &str {
        self.value.get(name).and_then(Value::as_str).unwrap_or("")
    }

    pub fn id(&self) -> &str {
        self.field("id")
    }

    /// Unix milliseconds of `ts`, if it parses.
    pub fn ts_millis(&self) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(self.field("ts"))
            .ok()
            .map(|t| t.timestamp_millis())
    }

    /// A denial, an escalation, or a call that required step-up authentication.
    pub fn is_finding(&self) -> bool {
        matches!(self.field("decision"), "deny" | "escalate")
            || self.value.get("requires_step_up").and_then(Value::as_bool) == Some(true)
    }

    pub fn selected(&self, selection: Selection) -> bool {
        match selection {
            Selection::All => true,
            Selection::Findings => self.is_finding(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(decision: &str, step_up: bool) -> Event {
        Event::new(
            "acme".into(),
            1,
            format!(
                r#"{{"decision":"{decision}","id":"e1","requires_step_up":{step_up},"ts":"2026-06-14T13:42:00.123Z"}}"#
            ),
        )
    }

    #[test]
    fn findings_are_denials_escalations_and_step_ups() {
        assert!(event("deny", false).selected(Selection::Findings));
        assert!(event("escalate", false).selected(Selection::Findings));
        assert!(event("allow", true).selected(Selection::Findings));
        assert!(!event("allow", false).selected(Selection::Findings));
        assert!(!event("approve", false).selected(Selection::Findings));
        assert!(event("allow", false).selected(Selection::All));
        assert_eq!(event("allow", false).ts_millis(), Some(1_781_444_520_123));
        assert_eq!(event("allow", false).id(), "e1");
    }
}
