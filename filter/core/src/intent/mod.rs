//! The intent check: a call must fit what the user asked for. An extractor turns the user's prompt
//! into an `Intent`; the call's tool is then compared against its allowed and forbidden tools.

pub mod external;
mod extractor;

pub use extractor::{IntentRule, IntentRules, RuleError};

use serde::{Deserialize, Serialize};

use crate::glob;

/// What the user asked for, as the policy sees it (`input.intent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub summary: String,
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    #[serde(default)]
    pub forbidden_tools: Vec<String>,
    pub confidence: f64,
}

/// What the pipeline knows about intent for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum IntentSource {
    /// No `X-Intent-Prompt` was sent.
    NotDeclared,
    Extracted(Intent),
    /// The extractor failed or timed out; the check fails closed.
    Unavailable(String),
}

impl Intent {
    /// `Err(reason)` when the tool does not fit the intent.
    pub fn permits(&self, tool: &str) -> Result<(), String> {
        if let Some(pattern) = self.forbidden_tools.iter().find(|p| glob::matches(p, tool)) {
            return Err(format!(
                "tool {tool} is forbidden by the declared intent ({pattern})"
            ));
        }
        if !self.allowed_tools.is_empty() && !glob::any_matches(&self.allowed_tools, tool) {
            return Err(format!(
                "tool {tool} is outside the declared intent ({})",
                self.summary
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(allowed: &[&str], forbidden: &[&str]) -> Intent {
        Intent {
            summary: "invoice lookup".into(),
            allowed_tools: allowed.iter().map(|s| s.to_string()).collect(),
            forbidden_tools: forbidden.iter().map(|s| s.to_string()).collect(),
            confidence: 1.0,
        }
    }

    #[test]
    fn forbidden_wins_over_allowed() {
        let i = intent(&["*"], &["transfer_*"]);
        assert!(i.permits("read_invoice").is_ok());
        assert!(
            i.permits("transfer_funds")
                .unwrap_err()
                .contains("forbidden")
        );
    }

    #[test]
    fn non_empty_allow_list_is_exhaustive() {
        let i = intent(&["read_*"], &[]);
        assert!(i.permits("read_invoice").is_ok());
        assert!(i.permits("delete_invoice").unwrap_err().contains("outside"));
        assert!(intent(&[], &[]).permits("anything").is_ok());
    }
}
