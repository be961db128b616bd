//! Audit events, their canonical form, and the hash chain that makes the log tamper-evident.

mod canonical;
mod chain;
mod event;
pub mod merkle;

pub use canonical::canonical_json;
pub use chain::{GENESIS, link, parse_hash};
pub use event::{
    AuditEvent, EventKind, MAX_ARG_BYTES, MAX_ARG_STRING, SCHEMA_VERSION, redact_args,
};

#[cfg(test)]
mod tests;
