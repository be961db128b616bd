//! IntentGate's decision engine. Plain Rust with no proxy-wasm types: the Envoy filter runs it in
//! wasm, the control plane runs it natively for dry-runs and approvals, and the tests run it directly.
#![deny(clippy::indexing_slicing)]

pub mod audit;
pub mod budget;
pub mod config;
pub mod decision;
pub mod exchange;
pub mod glob;
pub mod ids;
pub mod intent;
pub mod jsonrpc;
pub mod mcp;
pub mod memory;
pub mod pipeline;
pub mod policy;
pub mod response;
pub mod time;
pub mod token;

/// The header an agent retries an approved call with (SPEC §4).
pub const APPROVAL_ID_HEADER: &str = "X-IntentGate-Approval-Id";
