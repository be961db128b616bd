//! Counting calls against limits. The store is a trait: the filter counts in Envoy shared memory
//! (and, with a control plane, in leased slices), the control plane and the CLI in memory or a database.

pub mod lease;

use std::collections::HashMap;
use std::sync::Mutex;

/// Counter keys of a token's `max_calls` start with this: the filter leases them from the control
/// plane, while every other counter (rate limits) stays local to one Envoy.
pub const CALLS_PREFIX: &str = "calls/";

/// The counter key of a token's `max_calls` budget named `counter` (see `VerifiedToken::budgets`).
pub fn calls_key(counter: &str) -> String {
    format!("{CALLS_PREFIX}{counter}")
}

/// Which period a count belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// For the counter's whole life (a token's `max_calls`).
    Lifetime,
    /// One fixed window of a rate limit; `id` is `unix_secs / window_secs`.
    Fixed { id: u64 },
}

impl Window {
    pub fn id(self) -> u64 {
        match self {
            Window::Lifetime => 0,
            Window::Fixed { id } => id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumption {
    /// Counted; `used` includes this call.
    Granted { used: u64 },
    /// Not counted: `used` calls already reached the limit.
    Exhausted { used: u64 },
}

/// One call against a counter at `count`: the new count (`None`: unchanged) and the consumption.
/// Every store applies this same step, atomically in its own way.
pub fn take_one(count: u64, limit: u64) -> (Option<u64>, Consumption) {
    if count >= limit {
        (None, Consumption::Exhausted { used: count })
    } else {
        (Some(count + 1), Consumption::Granted { used: count + 1 })
    }
}

/// The store could not answer; the budget check fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("budget store unavailable: {0}")]
pub struct BudgetError(pub String);

pub trait BudgetStore {
    /// Counts one call against `key` if fewer than `limit` were counted in `window`, atomically.
    fn try_consume(
        &self,
        key: &str,
        limit: u64,
        window: Window,
    ) -> Result<Consumption, BudgetError>;

    /// Gives back one call counted by `try_consume`, when a later counter of the same call refused.
    fn refund(&self, key: &str, window: Window) -> Result<(), BudgetError>;
}

/// Counters in process memory.
#[derive(Debug, Default)]
pub struct MemoryBudget {
    counters: Mutex<HashMap<String, (u64, u64)>>,
}

impl MemoryBudget {
    pub fn new() -> Self {
        Self::default()
    }
}

impl BudgetStore for MemoryBudget {
    fn try_consume(
        &self,
        key: &str,
        limit: u64,
        window: Window,
    ) -> Result<Consumption, BudgetError> {
        let mut counters = self
            .counters
            .lock()
            .map_err(|_| BudgetError("counter lock poisoned".into()))?;
        let entry = counters.entry(key.to_owned()).or_insert((window.id(), 0));
        if entry.0 != window.id() {
            *entry = (window.id(), 0);
        }
        let (next, consumption) = take_one(entry.1, limit);
        if let Some(next) = next {
            entry.1 = next;
        }
        Ok(consumption)
    }

    fn refund(&self, key: &str, window: Window) -> Result<(), BudgetError> {
        let mut counters = self
            .counters
            .lock()
            .map_err(|_| BudgetError("counter lock poisoned".into()))?;
        if let Some(entry) = counters.get_mut(key)
            && entry.0 == window.id()
        {
            entry.1 = entry.1.saturating_sub(1);
        }
        Ok(())
    }
}

/// One limit a call must fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub key: String,
    pub limit: u64,
    pub window: Window,
    /// Said in the denial when this counter is exhausted.
    pub label: String,
}

/// The outcome of counting a call against all its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetOutcome {
    Granted,
    Exhausted { counter: Counter, used: u64 },
    Unavailable(BudgetError),
}

/// Counts the call against every counter or none: an exhausted counter refunds the earlier ones.
pub fn consume_all(store: &dyn BudgetStore, counters: &[Counter]) -> BudgetOutcome {
    for (index, counter) in counters.iter().enumerate() {
        let result = store.try_consume(&counter.key, counter.limit, counter.window);
        let failure = match result {
            Ok(Consumption::Granted { .. }) => continue,
            Ok(Consumption::Exhausted { used }) => BudgetOutcome::Exhausted {
                counter: counter.clone(),
                used,
            },
            Err(err) => BudgetOutcome::Unavailable(err),
        };
        for earlier in counters.iter().take(index) {
            // A failed refund leaves the counter one high: it errs on the side of refusing.
            let _ = store.refund(&earlier.key, earlier.window);
        }
        return failure;
    }
    BudgetOutcome::Granted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(key: &str, limit: u64, window: Window) -> Counter {
        Counter {
            key: key.into(),
            limit,
            window,
            label: key.into(),
        }
    }

    #[test]
    fn lifetime_counter_stops_at_its_limit() {
        let store = MemoryBudget::new();
        for used in 1..=3 {
            assert_eq!(
                store.try_consume("t", 3, Window::Lifetime),
                Ok(Consumption::Granted { used })
            );
        }
        assert_eq!(
            store.try_consume("t", 3, Window::Lifetime),
            Ok(Consumption::Exhausted { used: 3 })
        );
    }

    #[test]
    fn fixed_window_resets_in_the_next_window() {
        let store = MemoryBudget::new();
        assert!(matches!(
            store.try_consume("r", 1, Window::Fixed { id: 5 }),
            Ok(Consumption::Granted { .. })
        ));
        assert!(matches!(
            store.try_consume("r", 1, Window::Fixed { id: 5 }),
            Ok(Consumption::Exhausted { .. })
        ));
        assert!(matches!(
            store.try_consume("r", 1, Window::Fixed { id: 6 }),
            Ok(Consumption::Granted { .. })
        ));
    }

    #[test]
    fn all_or_nothing_across_counters() {
        let store = MemoryBudget::new();
        let counters = [
            counter("a", 10, Window::Lifetime),
            counter("b", 1, Window::Lifetime),
        ];
        assert_eq!(consume_all(&store, &counters), BudgetOutcome::Granted);
        match consume_all(&store, &counters) {
            BudgetOutcome::Exhausted { counter, used } => {
                assert_eq!(counter.key, "b");
                assert_eq!(used, 1);
            }
            other => panic!("{other:?}"),
        }
        // "a" was refunded: it counts only the granted call.
        assert_eq!(
            store.try_consume("a", 10, Window::Lifetime),
            Ok(Consumption::Granted { used: 2 })
        );
    }
}
