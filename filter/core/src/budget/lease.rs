//! Budget leases: the control plane hands each filter slices of a token's `max_calls`, so the calls
//! allowed across every Envoy never exceed the limit. A filter VM may hold several leases of one
//! counter (requests that asked at the same time each got one), uses them until they run out or
//! expire, and gives back what it did not use.

use std::collections::HashMap;

use super::Consumption;

/// What the control plane granted for one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub granted: u64,
    pub remaining: u64,
    pub expires_ms: i64,
    pub limit: u64,
    /// Calls of the counter used or leased out across all filters, as of the grant.
    pub used: u64,
}

/// A lease to give back: its id and the calls it did not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Giveback {
    pub counter: String,
    pub lease_id: String,
    pub unused: u64,
}

#[derive(Debug, Default)]
struct Holding {
    leases: Vec<Lease>,
    /// The control plane said the budget is spent: `(until, used)`; nothing is asked until then.
    spent: Option<(i64, u64)>,
}

/// The leases one filter VM holds, by counter key.
#[derive(Debug, Default)]
pub struct LeasePool {
    counters: HashMap<String, Holding>,
}

/// What `consume` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseUse {
    Counted(Consumption),
    /// No usable lease: the caller must ask the control plane first (or fail closed).
    NeedLease,
}

impl LeasePool {
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls available on live leases of `counter`.
    pub fn available(&self, counter: &str, now_ms: i64) -> u64 {
        self.counters.get(counter).map_or(0, |h| {
            h.leases
                .iter()
                .filter(|l| l.expires_ms > now_ms)
                .map(|l| l.remaining)
                .sum()
        })
    }

    /// Whether the control plane said this counter is spent and nothing is left here.
    pub fn spent(&self, counter: &str, now_ms: i64) -> bool {
        self.available(counter, now_ms) == 0
            && self
                .counters
                .get(counter)
                .and_then(|h| h.spent)
                .is_some_and(|(until, _)| until > now_ms)
    }

    /// Records a grant. A grant of nothing at the limit marks the counter spent.
    pub fn grant(&mut self, counter: &str, lease: Lease) {
        let holding = self.counters.entry(counter.to_owned()).or_default();
        if lease.remaining == 0 {
            if lease.used >= lease.limit {
                holding.spent = Some((lease.expires_ms, lease.used));
            }
            return;
        }
        holding.spent = None;
        holding.leases.push(lease);
    }

    /// Takes the leases of `counter` out of use, to give them back with a request for a new one.
    /// Removing them first matters: calls taken after their unused count was reported would be
    /// counted twice.
    pub fn surrender(&mut self, counter: &str) -> Vec<Giveback> {
        let Some(holding) = self.counters.get_mut(counter) else {
            return Vec::new();
        };
        holding
            .leases
            .drain(..)
            .map(|l| Giveback {
                counter: counter.to_owned(),
                lease_id: l.id,
                unused: l.remaining,
            })
            .collect()
    }

    /// Takes a call from a live lease of `counter`.
    pub fn consume(&mut self, counter: &str, now_ms: i64) -> LeaseUse {
        let Some(holding) = self.counters.get_mut(counter) else {
            return LeaseUse::NeedLease;
        };
        if let Some(lease) = holding
            .leases
            .iter_mut()
            .find(|l| l.expires_ms > now_ms && l.remaining > 0)
        {
            lease.remaining -= 1;
            return LeaseUse::Counted(Consumption::Granted {
                used: lease.used.saturating_sub(lease.remaining),
            });
        }
        match holding.spent {
            Some((until, used)) if until > now_ms => {
                LeaseUse::Counted(Consumption::Exhausted { used })
            }
            _ => LeaseUse::NeedLease,
        }
    }

    /// Puts back a call taken by `consume` (a later counter of the same call refused), into a lease
    /// that has room for it.
    pub fn refund(&mut self, counter: &str) {
        if let Some(lease) = self
            .counters
            .get_mut(counter)
            .and_then(|h| h.leases.iter_mut().find(|l| l.remaining < l.granted))
        {
            lease.remaining += 1;
        }
    }

    /// Removes expired leases and returns what must be given back for them.
    pub fn take_expired(&mut self, now_ms: i64) -> Vec<Giveback> {
        let mut expired = Vec::new();
        for (counter, holding) in &mut self.counters {
            holding.leases.retain(|l| {
                if l.expires_ms > now_ms {
                    return true;
                }
                expired.push(Giveback {
                    counter: counter.clone(),
                    lease_id: l.id.clone(),
                    unused: l.remaining,
                });
                false
            });
        }
        self.counters.retain(|_, h| {
            !h.leases.is_empty() || h.spent.is_some_and(|(until, _)| until > now_ms)
        });
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: &str, remaining: u64, used: u64, limit: u64) -> Lease {
        Lease {
            id: id.into(),
            granted: remaining,
            remaining,
            expires_ms: 1_000,
            limit,
            used,
        }
    }

    #[test]
    fn a_lease_is_used_until_empty_then_needs_renewal() {
        let mut pool = LeasePool::new();
        assert_eq!(pool.consume("c", 0), LeaseUse::NeedLease);
        pool.grant("c", lease("L1", 2, 10, 100));
        assert_eq!(pool.available("c", 0), 2);
        assert!(matches!(
            pool.consume("c", 0),
            LeaseUse::Counted(Consumption::Granted { .. })
        ));
        assert!(matches!(
            pool.consume("c", 0),
            LeaseUse::Counted(Consumption::Granted { .. })
        ));
        assert_eq!(pool.consume("c", 0), LeaseUse::NeedLease);
        assert!(!pool.spent("c", 0));
    }

    #[test]
    fn grants_that_arrive_together_are_all_kept() {
        let mut pool = LeasePool::new();
        pool.grant("c", lease("L1", 3, 10, 100));
        pool.grant("c", lease("L2", 4, 14, 100));
        assert_eq!(
            pool.available("c", 0),
            7,
            "a second grant must not strand the first"
        );
        let back = pool.surrender("c");
        assert_eq!(back.iter().map(|g| g.unused).sum::<u64>(), 7);
        assert_eq!(pool.available("c", 0), 0);
    }

    #[test]
    fn a_spent_counter_is_exhausted_not_renewed() {
        let mut pool = LeasePool::new();
        pool.grant("c", lease("", 0, 100, 100));
        assert!(pool.spent("c", 0));
        assert_eq!(
            pool.consume("c", 0),
            LeaseUse::Counted(Consumption::Exhausted { used: 100 })
        );
        assert!(
            !pool.spent("c", 1_000),
            "after the answer expires, ask again"
        );
    }

    #[test]
    fn expired_leases_are_given_back_with_their_unused_calls() {
        let mut pool = LeasePool::new();
        pool.grant("c", lease("L1", 3, 10, 100));
        assert_eq!(
            pool.consume("c", 1_000),
            LeaseUse::NeedLease,
            "an expired lease is not used"
        );
        assert_eq!(pool.take_expired(999), vec![]);
        assert_eq!(
            pool.take_expired(1_000),
            vec![Giveback {
                counter: "c".into(),
                lease_id: "L1".into(),
                unused: 3
            }]
        );
        assert_eq!(pool.available("c", 0), 0);
    }

    #[test]
    fn refund_puts_a_call_back_where_there_is_room() {
        let mut pool = LeasePool::new();
        pool.grant("c", lease("L1", 1, 10, 100));
        pool.consume("c", 0);
        pool.refund("c");
        assert_eq!(pool.available("c", 0), 1);
        pool.refund("c");
        assert_eq!(pool.available("c", 0), 1, "never more than granted");
    }
}
