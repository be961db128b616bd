//! Decisions of one policy, remembered by the input values they depend on. Only a policy whose
//! reads are proved ([`super::reads`]) gets one, and only decisions (allow, deny, escalate) are
//! kept: an error is evaluated again each time, so limits and their reasons apply as before.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use regorus::Value;

use super::PolicyOutcome;
use super::input::PolicyInput;

/// Decisions one policy keeps; when full, it starts over.
pub const CAPACITY: usize = 1024;
/// A key larger than this (in bytes of its strings and scalars, roughly its JSON size) is not
/// kept: arguments of up to a body's size, all different, would otherwise hold about a gigabyte.
pub const MAX_KEY_BYTES: usize = 1024;

#[derive(Debug)]
pub(super) struct DecisionCache {
    /// The top-level `input` keys the decision depends on, sorted.
    keys: Vec<String>,
    decisions: Mutex<BTreeMap<Vec<Value>, PolicyOutcome>>,
}

impl DecisionCache {
    pub(super) fn new(keys: Vec<String>) -> Self {
        DecisionCache {
            keys,
            decisions: Mutex::new(BTreeMap::new()),
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(super) fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The values the decision for `input` depends on; `None` when one cannot be built (the
    /// whole input is then built, and fails, as without a cache).
    pub(super) fn key_of(
        &self,
        input: &PolicyInput<'_>,
        capability: Option<&Value>,
    ) -> Option<Vec<Value>> {
        self.keys
            .iter()
            .map(|name| input.value_at(name, capability).ok())
            .collect()
    }

    pub(super) fn get(&self, key: &[Value]) -> Option<PolicyOutcome> {
        self.decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    pub(super) fn keep(&self, key: Vec<Value>, outcome: &PolicyOutcome) {
        if matches!(outcome, PolicyOutcome::Error(_)) || !within(&key, MAX_KEY_BYTES) {
            return;
        }
        // A map left whole between two statements: a panic elsewhere does not spoil it.
        let mut decisions = self
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if decisions.len() >= CAPACITY {
            decisions.clear();
        }
        decisions.insert(key, outcome.clone());
    }
}

/// Whether `values` weigh at most `budget` bytes; stops counting once over it, so a huge key costs
/// no more to refuse than a small one to accept.
fn within(values: &[Value], budget: usize) -> bool {
    let mut left = budget;
    values.iter().all(|value| spend(value, &mut left))
}

fn spend(value: &Value, left: &mut usize) -> bool {
    const SCALAR: usize = 8;
    let take = |left: &mut usize, bytes: usize| match left.checked_sub(bytes) {
        Some(rest) => {
            *left = rest;
            true
        }
        None => false,
    };
    match value {
        Value::String(s) => take(left, s.len().max(1)),
        Value::Array(items) => take(left, SCALAR) && items.iter().all(|v| spend(v, left)),
        Value::Set(items) => take(left, SCALAR) && items.iter().all(|v| spend(v, left)),
        Value::Object(fields) => {
            take(left, SCALAR) && fields.iter().all(|(k, v)| spend(k, left) && spend(v, left))
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Undefined => take(left, SCALAR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn keys_are_weighed_roughly_by_their_json_size_and_refused_over_the_budget() {
        let small = vec![json(r#"{"amount": 5, "to": "acme"}"#), Value::from("echo")];
        assert!(within(&small, MAX_KEY_BYTES));
        let big = vec![json(&format!(
            r#"{{"blob": "{}"}}"#,
            "x".repeat(2 * MAX_KEY_BYTES)
        ))];
        assert!(!within(&big, MAX_KEY_BYTES));
        let many = Value::from(vec![Value::from(1); MAX_KEY_BYTES]);
        assert!(!within(&[many], MAX_KEY_BYTES));
    }

    #[test]
    fn a_decision_for_a_key_over_the_budget_is_not_kept() {
        let cache = DecisionCache::new(vec!["args".into()]);
        let allow = PolicyOutcome::Allow {
            rule: None,
            reason: None,
        };
        let big = vec![json(&format!(
            r#"{{"blob": "{}"}}"#,
            "x".repeat(2 * MAX_KEY_BYTES)
        ))];
        cache.keep(big.clone(), &allow);
        assert_eq!(cache.get(&big), None);
        assert_eq!(cache.len(), 0);
        let small = vec![json(r#"{"n": 1}"#)];
        cache.keep(small.clone(), &allow);
        assert_eq!(cache.get(&small), Some(allow));
    }
}
