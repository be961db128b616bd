//! The audit log: per-tenant hash chains of events (SPEC §5).
//!
//! - [`store`] appends events (idempotent ids, one writer per tenant chain at a time);
//! - [`columns`] are the body's fields that queries filter on, stored beside it;
//! - [`change`] is the audited change every change to the gateway's state goes through: its writes,
//!   its event and its state version committed together, then announced;
//! - [`record`] builds the events that admin changes write about themselves;
//! - [`query`] filters and pages them, [`export`] streams them, [`verify`] walks a chain;
//! - [`tree`] keeps the Merkle tree over the same events, its proofs and signed tree heads.

pub mod change;
pub mod columns;
pub mod export;
pub mod query;
pub mod record;
pub mod store;
pub mod tree;
pub mod verify;

pub use change::{AuditedChange, ElevationId, Recorder};
pub use store::{Appended, append};
