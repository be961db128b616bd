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
        if matches!(outcome, PolicyOutcome::Error(_)) {
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
