//! The built-in extractor: deterministic keyword rules from configuration. Same prompt, same rules,
//! same intent, on every replica, so operators can predict and test it.

use serde::{Deserialize, Serialize};

use super::Intent;

/// One rule as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentRule {
    /// Names the rule in summaries.
    pub id: String,
    /// Words or phrases; the rule matches when any appears in the prompt as whole words.
    pub keywords: Vec<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub forbid: Vec<String>,
    #[serde(default)]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("intent rule {0:?}: {1}")]
    Invalid(String, String),
}

/// Compiled rules: keywords pre-split into lowercase words.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntentRules {
    rules: Vec<(IntentRule, Vec<Vec<String>>)>,
}

impl IntentRules {
    pub fn compile(rules: Vec<IntentRule>) -> Result<Self, RuleError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in rules {
            if rule.id.is_empty() {
                return Err(RuleError::Invalid(rule.id, "id must not be empty".into()));
            }
            if rule.allow.is_empty() && rule.forbid.is_empty() {
                return Err(RuleError::Invalid(
                    rule.id,
                    "needs at least one of allow or forbid".into(),
                ));
            }
            let phrases: Vec<Vec<String>> = rule.keywords.iter().map(|k| words(k)).collect();
            if phrases.is_empty() || phrases.iter().any(Vec::is_empty) {
                return Err(RuleError::Invalid(
                    rule.id,
                    "keywords must be non-empty words".into(),
                ));
            }
            compiled.push((rule, phrases));
        }
        Ok(IntentRules { rules: compiled })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every matching rule contributes its tools; confidence is the best share of a rule's
    /// keywords found in the prompt (0 when nothing matched).
    pub fn extract(&self, prompt: &str) -> Intent {
        let prompt_words = words(prompt);
        let mut intent = Intent {
            summary: String::new(),
            allowed_tools: Vec::new(),
            forbidden_tools: Vec::new(),
            confidence: 0.0,
        };
        let mut summaries: Vec<&str> = Vec::new();
        for (rule, phrases) in &self.rules {
            let hits = phrases
                .iter()
                .filter(|p| contains_phrase(&prompt_words, p))
                .count();
            if hits == 0 {
                continue;
            }
            let score = hits as f64 / phrases.len() as f64;
            intent.confidence = intent.confidence.max(score);
            summaries.push(rule.summary.as_deref().unwrap_or(&rule.id));
            extend_unique(&mut intent.allowed_tools, &rule.allow);
            extend_unique(&mut intent.forbidden_tools, &rule.forbid);
        }
        intent.summary = if summaries.is_empty() {
            "no intent rule matched".into()
        } else {
            summaries.join("; ")
        };
        intent
    }
}

fn extend_unique(into: &mut Vec<String>, from: &[String]) {
    for item in from {
        if !into.contains(item) {
            into.push(item.clone());
        }
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn contains_phrase(haystack: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && haystack.windows(phrase.len()).any(|w| w == phrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> IntentRules {
        IntentRules::compile(vec![
            IntentRule {
                id: "invoices".into(),
                keywords: vec!["invoice".into(), "billing".into()],
                allow: vec!["read_invoice".into(), "list_vendors".into()],
                forbid: vec![],
                summary: Some("look up invoices".into()),
            },
            IntentRule {
                id: "read-only".into(),
                keywords: vec!["read only".into(), "don't change".into()],
                allow: vec![],
                forbid: vec!["delete_*".into(), "transfer_*".into()],
                summary: None,
            },
        ])
        .unwrap()
    }

    #[test]
    fn matching_rules_combine() {
        let i = rules().extract("Show me INVOICE 7, read-only please");
        assert_eq!(i.allowed_tools, vec!["read_invoice", "list_vendors"]);
        assert_eq!(i.forbidden_tools, vec!["delete_*", "transfer_*"]);
        assert_eq!(i.summary, "look up invoices; read-only");
        assert!((i.confidence - 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn whole_words_only_and_deterministic() {
        let i = rules().extract("invoices are boring");
        assert!(i.allowed_tools.is_empty());
        assert_eq!(i.confidence, 0.0);
        assert_eq!(i.summary, "no intent rule matched");
        assert_eq!(
            rules().extract("billing invoice"),
            rules().extract("billing invoice")
        );
    }

    #[test]
    fn invalid_rules_fail_to_compile() {
        let bad = IntentRule {
            id: "x".into(),
            keywords: vec!["  ".into()],
            allow: vec!["a".into()],
            forbid: vec![],
            summary: None,
        };
        assert!(IntentRules::compile(vec![bad]).is_err());
    }
}
