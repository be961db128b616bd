//! Where the filter counts calls. Rate limits are counted in shared data across this Envoy's workers.
//! `max_calls` is counted there too when the filter runs alone; with a control plane it is counted in
//! leased slices (see `leases`), so it is exact across every Envoy.

use std::cell::RefCell;

use intentgate_core::budget::lease::{LeasePool, LeaseUse};
use intentgate_core::budget::{BudgetError, BudgetStore, Consumption, Window, take_one};

use crate::counters;

const PREFIX: &str = "intentgate/budget/";
/// Counter keys of `max_calls` (see intentgate_core::pipeline).
pub const CALLS_PREFIX: &str = "calls/";

pub struct FilterBudget<'a> {
    /// Present when a control plane leases `max_calls`.
    pub leases: Option<&'a RefCell<LeasePool>>,
    pub now_ms: i64,
}

fn shared_key(key: &str) -> String {
    format!("{PREFIX}{key}")
}

fn unavailable(err: impl std::fmt::Display) -> BudgetError {
    BudgetError(err.to_string())
}

impl FilterBudget<'_> {
    fn leased(&self, key: &str) -> Option<&RefCell<LeasePool>> {
        self.leases.filter(|_| key.starts_with(CALLS_PREFIX))
    }
}

impl BudgetStore for FilterBudget<'_> {
    fn try_consume(
        &self,
        key: &str,
        limit: u64,
        window: Window,
    ) -> Result<Consumption, BudgetError> {
        if let Some(pool) = self.leased(key) {
            let mut pool = pool
                .try_borrow_mut()
                .map_err(|_| unavailable("lease pool busy"))?;
            return match pool.consume(key, self.now_ms) {
                LeaseUse::Counted(consumption) => Ok(consumption),
                LeaseUse::NeedLease => Err(unavailable(
                    "no budget lease from the control plane (unreachable?)",
                )),
            };
        }
        counters::update(&shared_key(key), window.id(), |count| {
            take_one(count, limit)
        })
        .map_err(unavailable)
    }

    fn refund(&self, key: &str, window: Window) -> Result<(), BudgetError> {
        if let Some(pool) = self.leased(key) {
            pool.try_borrow_mut()
                .map_err(|_| unavailable("lease pool busy"))?
                .refund(key);
            return Ok(());
        }
        counters::update(&shared_key(key), window.id(), |count| {
            (Some(count.saturating_sub(1)), ())
        })
        .map_err(unavailable)
    }
}
