//! `max_calls` and rate counters in Envoy shared data, exact across every worker VM of this Envoy:
//! each count changes by compare-and-swap. Envoy's shared data cannot create a key atomically
//! (a set on a missing key always succeeds), so counters are created under a lock key that the
//! first VM configured creates before any worker serves traffic.

use intentgate_core::budget::{BudgetError, BudgetStore, Consumption, Window};
use proxy_wasm::types::Status;

use crate::host;

const PREFIX: &str = "intentgate/budget/";
const LOCK: &str = "intentgate/budget/.lock";
const MAX_CAS_ATTEMPTS: usize = 64;
const MAX_LOCK_SPINS: usize = 100_000;

/// Creates the lock key if no VM has yet. Called from `on_configure`.
pub fn init() {
    if let Ok((None, _)) = host::shared_get(LOCK) {
        let _ = host::shared_set(LOCK, b"0", None);
    }
}

pub struct SharedBudget;

fn encode(window: u64, count: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&window.to_le_bytes());
    out[8..].copy_from_slice(&count.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<(u64, u64)> {
    let window: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let count: [u8; 8] = bytes.get(8..16)?.try_into().ok()?;
    Some((u64::from_le_bytes(window), u64::from_le_bytes(count)))
}

fn unavailable(what: &str) -> BudgetError {
    BudgetError(format!("shared budget store: {what}"))
}

/// Creates `key` with a zero count unless another VM did first.
fn create(key: &str, window: u64) -> Result<(), BudgetError> {
    let mut acquired = false;
    for _ in 0..MAX_LOCK_SPINS {
        match host::shared_get(LOCK) {
            Ok((Some(v), Some(cas))) if v.as_slice() != b"1" && cas != 0 => {
                if host::shared_set(LOCK, b"1", Some(cas)).is_ok() {
                    acquired = true;
                    break;
                }
            }
            Ok((Some(_), _)) => {}
            _ => return Err(unavailable("lock key missing")),
        }
    }
    if !acquired {
        return Err(unavailable("lock contention"));
    }
    let result = match host::shared_get(key) {
        Ok((None, _)) => host::shared_set(key, &encode(window, 0), None)
            .map_err(|_| unavailable("cannot create counter")),
        Ok(_) => Ok(()),
        Err(_) => Err(unavailable("cannot read counter")),
    };
    let _ = host::shared_set(LOCK, b"0", None);
    result
}

/// Applies `update` to the counter by compare-and-swap; `update` returns the new count, or `None`
/// to leave it unchanged.
fn update<T>(
    key: &str,
    window: u64,
    mut step: impl FnMut(u64) -> (Option<u64>, T),
) -> Result<T, BudgetError> {
    let key = format!("{PREFIX}{key}");
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (value, cas) = match host::shared_get(&key) {
            Ok((Some(value), Some(cas))) if cas != 0 => (value, cas),
            Ok((None, _)) => {
                create(&key, window)?;
                continue;
            }
            _ => return Err(unavailable("cannot read counter")),
        };
        let (stored_window, stored) =
            decode(&value).ok_or_else(|| unavailable("corrupt counter"))?;
        let count = if stored_window == window { stored } else { 0 };
        let (next, out) = step(count);
        let Some(next) = next else {
            return Ok(out);
        };
        match host::shared_set(&key, &encode(window, next), Some(cas)) {
            Ok(()) => return Ok(out),
            Err(Status::CasMismatch) => continue,
            Err(_) => return Err(unavailable("cannot write counter")),
        }
    }
    Err(unavailable("too much contention on a counter"))
}

impl BudgetStore for SharedBudget {
    fn try_consume(
        &self,
        key: &str,
        limit: u64,
        window: Window,
    ) -> Result<Consumption, BudgetError> {
        update(key, window.id(), |count| {
            if count >= limit {
                (None, Consumption::Exhausted { used: count })
            } else {
                (Some(count + 1), Consumption::Granted { used: count + 1 })
            }
        })
    }

    fn refund(&self, key: &str, window: Window) -> Result<(), BudgetError> {
        update(key, window.id(), |count| {
            (Some(count.saturating_sub(1)), ())
        })
    }
}
