//! How the engine counts calls. With a control plane, a token's `max_calls` is taken from leases
//! (see [`leases`](super::stream)); every other counter, and `max_calls` without a control plane,
//! is a counter the host shares between the proxy's workers. A runtime reserves calls of such a
//! counter in blocks, one compare-and-swap each, and hands them out without calling the host; what
//! it has not used goes back on the next tick. The count of reserved calls is never above the
//! limit, so the limit is never exceeded across workers; a call may be refused while another
//! worker still holds reserved calls, for at most one tick.

use std::cell::RefCell;
use std::collections::HashMap;

use super::host::{CounterError, Host};
use super::{Runtime, lock};
use crate::budget::lease::LeaseUse;
use crate::budget::{BudgetError, BudgetStore, CALLS_PREFIX, Consumption, Window};

/// The most calls one runtime reserves at once.
pub const MAX_BLOCK: u64 = 64;

/// Calls to reserve when `remaining` are left: a sixteenth of them, at least 1 and at most
/// [`MAX_BLOCK`]. Near the limit every call is counted on its own, so little is held back.
pub fn block_size(remaining: u64) -> u64 {
    (remaining / 16).clamp(1, MAX_BLOCK)
}

/// The shared counter's key: the proxy's shared data holds other things too.
fn shared_key(key: &str) -> String {
    format!("intentgate/budget/{key}")
}

#[derive(Debug)]
struct Block {
    window: u64,
    left: u64,
    /// The counter's count once this block was reserved.
    reserved_to: u64,
}

/// Calls a runtime reserved and has not used yet, by counter key.
#[derive(Debug, Default)]
pub struct Blocks {
    held: HashMap<String, Block>,
}

impl Blocks {
    fn take(&mut self, key: &str, window: u64) -> Option<u64> {
        let block = self.held.get_mut(key)?;
        if block.window != window || block.left == 0 {
            return None;
        }
        block.left -= 1;
        Some(block.reserved_to - block.left)
    }

    fn hold(&mut self, key: &str, window: u64, left: u64, reserved_to: u64) {
        self.held.insert(
            key.to_owned(),
            Block {
                window,
                left,
                reserved_to,
            },
        );
    }

    fn put_back(&mut self, key: &str, window: u64) {
        if let Some(block) = self.held.get_mut(key)
            && block.window == window
        {
            block.left += 1;
        }
    }

    /// Empties the holding: `(key, window, unused calls)` for each block with calls left.
    fn release(&mut self) -> Vec<(String, u64, u64)> {
        self.held
            .drain()
            .filter(|(_, b)| b.left > 0)
            .map(|(key, b)| (key, b.window, b.left))
            .collect()
    }
}

/// Gives the calls a runtime holds back to the shared counters (on each tick). A counter that moved
/// to another window meanwhile is left alone: those calls ended with their window.
pub fn give_back(rt: &Runtime, host: &mut dyn Host) {
    let released = lock(&rt.blocks).release();
    for (key, window, unused) in released {
        let result = host.update_counter(&shared_key(&key), window, &mut |count| {
            count.map(|n| n.saturating_sub(unused))
        });
        if let Err(err) = result {
            // Not given back, the calls stay counted as used: the limit still holds.
            host.log(
                super::host::Level::Warn,
                &format!("intentgate: {unused} reserved calls of {key} not given back: {err}"),
            );
        }
    }
}

/// The [`BudgetStore`] the pipeline counts against during one decision.
pub struct EngineBudget<'a> {
    pub rt: &'a Runtime,
    pub host: RefCell<&'a mut dyn Host>,
    pub now_ms: i64,
}

fn unavailable(err: impl std::fmt::Display) -> BudgetError {
    BudgetError(err.to_string())
}

impl EngineBudget<'_> {
    fn leased(&self, key: &str) -> bool {
        self.rt.settings.control_plane.is_some() && key.starts_with(CALLS_PREFIX)
    }

    /// Reserves a block of `key` with one compare-and-swap and takes its first call.
    fn reserve(&self, key: &str, limit: u64, window: u64) -> Result<Consumption, BudgetError> {
        let mut reserved = (0, 0);
        let mut host = self
            .host
            .try_borrow_mut()
            .map_err(|_| unavailable("host busy"))?;
        host.update_counter(&shared_key(key), window, &mut |count| {
            let count = count.unwrap_or(0);
            if count >= limit {
                reserved = (0, count);
                return None;
            }
            let size = block_size(limit - count);
            reserved = (size, count + size);
            Some(count + size)
        })
        .map_err(|CounterError(err)| unavailable(err))?;
        let (size, reserved_to) = reserved;
        if size == 0 {
            return Ok(Consumption::Exhausted { used: reserved_to });
        }
        lock(&self.rt.blocks).hold(key, window, size - 1, reserved_to);
        Ok(Consumption::Granted {
            used: reserved_to - (size - 1),
        })
    }
}

impl BudgetStore for EngineBudget<'_> {
    fn try_consume(
        &self,
        key: &str,
        limit: u64,
        window: Window,
    ) -> Result<Consumption, BudgetError> {
        if self.leased(key) {
            return match lock(&self.rt.leases).consume(key, self.now_ms) {
                LeaseUse::Counted(consumption) => Ok(consumption),
                LeaseUse::NeedLease => Err(unavailable(
                    "no budget lease from the control plane (unreachable?)",
                )),
            };
        }
        if let Some(used) = lock(&self.rt.blocks).take(key, window.id()) {
            return Ok(Consumption::Granted { used });
        }
        self.reserve(key, limit, window.id())
    }

    fn refund(&self, key: &str, window: Window) -> Result<(), BudgetError> {
        if self.leased(key) {
            lock(&self.rt.leases).refund(key);
        } else {
            lock(&self.rt.blocks).put_back(key, window.id());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_shrink_to_single_calls_near_the_limit() {
        assert_eq!(block_size(10_000), MAX_BLOCK);
        assert_eq!(block_size(160), 10);
        assert_eq!(block_size(20), 1);
        assert_eq!(block_size(1), 1);
    }

    #[test]
    fn a_block_hands_out_its_calls_then_is_released_with_what_is_left() {
        let mut blocks = Blocks::default();
        blocks.hold("k", 0, 2, 10);
        assert_eq!(blocks.take("k", 0), Some(9));
        assert_eq!(blocks.take("k", 1), None, "another window");
        blocks.put_back("k", 0);
        assert_eq!(blocks.release(), vec![("k".to_owned(), 0, 2)]);
        assert_eq!(blocks.take("k", 0), None);
    }
}
