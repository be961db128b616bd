//! Budget leases: the control plane hands each filter slices of a token's `max_calls`, so the calls
//! allowed across every Envoy never exceed the limit. A filter holds at most one lease per counter,
//! uses it until it runs out or expires, and gives back what it did not use.

use std::collections::HashMap;

use super::Consumption;

/// What the control plane granted for one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
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

/// The leases one filter VM holds, by counter key.
#[derive(Debug, Default)]
pub struct LeasePool {
    leases: HashMap<String, Lease>,
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

    /// Calls available on a live lease of `counter`.
    pub fn available(&self, counter: &str, now_ms: i64) -> u64 {
        self.leases
            .get(counter)
            .filter(|l| l.expires_ms > now_ms)
            .map_or(0, |l| l.remaining)
    }

    /// Whether the control plane said this counter is spent (a live lease with nothing left and the
    /// limit reached).
    pub fn spent(&self, counter: &str, now_ms: i64) -> bool {
        self.leases
            .get(counter)
            .is_some_and(|l| l.expires_ms > now_ms && l.remaining == 0 && l.used >= l.limit)
    }

    /// Records a grant, replacing the lease held for `counter`; the replaced lease, if any, must be
    /// given back (the caller already sent its unused calls back with the request).
    pub fn grant(&mut self, counter: &str, lease: Lease) {
        self.leases.insert(counter.to_owned(), lease);
    }

    /// Takes the lease of `counter` out of use, to give it back with a request for a new one.
    /// Removing it first matters: calls taken from it after its unused count was reported would be
    /// counted twice.
    pub fn surrender(&mut self, counter: &str) -> Option<Giveback> {
        self.leases
            .remove(counter)
            .filter(|l| !l.id.is_empty())
            .map(|l| Giveback {
                counter: counter.to_owned(),
                lease_id: l.id,
                unused: l.remaining,
            })
    }

    /// Takes a call from the lease of `counter`.
    pub fn consume(&mut self, counter: &str, now_ms: i64) -> LeaseUse {
        let Some(lease) = self
            .leases
            .get_mut(counter)
            .filter(|l| l.expires_ms > now_ms)
        else {
            return LeaseUse::NeedLease;
        };
        if lease.remaining > 0 {
            lease.remaining -= 1;
            return LeaseUse::Counted(Consumption::Granted {
                used: lease.used.saturating_sub(lease.remaining),
            });
        }
        if lease.used >= lease.limit {
            return LeaseUse::Counted(Consumption::Exhausted { used: lease.used });
        }
        LeaseUse::NeedLease
    }

    /// Puts back a call taken by `consume` (a later counter of the same call refused).
    pub fn refund(&mut self, counter: &str) {
        if let Some(lease) = self.leases.get_mut(counter) {
            lease.remaining += 1;
        }
    }

    /// Removes expired leases and returns what must be given back for them.
    pub fn take_expired(&mut self, now_ms: i64) -> Vec<Giveback> {
        let expired: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|counter| {
                let lease = self.leases.remove(&counter)?;
                Some(Giveback {
                    counter,
                    lease_id: lease.id,
                    unused: lease.remaining,
                })
            })
            .filter(|g| !g.lease_id.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(remaining: u64, used: u64, limit: u64) -> Lease {
        Lease {
            id: "L1".into(),
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
        pool.grant("c", lease(2, 10, 100));
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
    fn a_spent_counter_is_exhausted_not_renewed() {
        let mut pool = LeasePool::new();
        pool.grant("c", lease(0, 100, 100));
        assert!(pool.spent("c", 0));
        assert_eq!(
            pool.consume("c", 0),
            LeaseUse::Counted(Consumption::Exhausted { used: 100 })
        );
    }

    #[test]
    fn expired_leases_are_given_back_with_their_unused_calls() {
        let mut pool = LeasePool::new();
        pool.grant("c", lease(3, 10, 100));
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
    fn a_surrendered_lease_is_out_of_use() {
        let mut pool = LeasePool::new();
        pool.grant("c", lease(3, 10, 100));
        assert_eq!(
            pool.surrender("c"),
            Some(Giveback {
                counter: "c".into(),
                lease_id: "L1".into(),
                unused: 3
            })
        );
        assert_eq!(pool.consume("c", 0), LeaseUse::NeedLease);
        assert_eq!(pool.surrender("c"), None);
    }

    #[test]
    fn refund_puts_a_call_back() {
        let mut pool = LeasePool::new();
        pool.grant("c", lease(1, 10, 100));
        pool.consume("c", 0);
        pool.refund("c");
        assert_eq!(pool.available("c", 0), 1);
    }
}
