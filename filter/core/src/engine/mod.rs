//! The exchange engine: everything the gateway does with one HTTP exchange and between exchanges,
//! as a state machine a host drives. The host (the proxy-wasm filter, a native module, the tests'
//! fake) turns the proxy's callbacks into calls on a [`Stream`] and a [`Runtime`], gives the engine
//! its facilities through [`Host`], and carries out the [`Step`] each call returns.
//!
//! - [`Runtime`]: what every exchange of one runtime shares — the plugin settings, the gateway
//!   state (swapped whole when the control plane pushes a change), caches, budget reservations and
//!   leases, stats and audit events waiting for the tick, the control-plane link. It is `Send +
//!   Sync`: a wasm host keeps one per VM, a native host may keep one per process for all threads.
//! - [`Stream`]: one exchange's state, a plain struct the host's stream object owns.
//! - [`Runtime::tick`]: on a timer; writes audit lines, ships audit batches, hands over stats,
//!   gives back budget reservations and expired leases, keeps the control-plane stream up.

mod audit_sink;
mod budget;
mod endings;
mod host;
mod link;
pub mod metrics;
mod runtime;
pub mod settings;
mod stream;

pub use audit_sink::LOG_CAPACITY;
pub use budget::{MAX_BLOCK, block_size};
pub use host::{
    Answer, CallId, CounterError, Edit, Flow, Host, HttpCallout, Level, LocalAnswer, Outcome, Rpc,
    Side, Step, StepTarget, without_port,
};
pub use runtime::Runtime;
pub use stream::{SAMPLE_EVERY, Stream};

use std::sync::{Mutex, MutexGuard, PoisonError};

/// The host's clock in unix milliseconds.
pub(crate) fn now_ms(host: &mut dyn Host) -> i64 {
    i64::try_from(host.now_ns() / 1_000_000).unwrap_or(i64::MAX)
}

/// Locks `mutex`, poisoned or not: every value behind the engine's locks is left whole between two
/// statements (caches, counts, queues), so a panic elsewhere does not make it unusable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
