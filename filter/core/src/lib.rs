//! IntentGate's decision engine. Plain Rust with no proxy-wasm types: the Envoy filter runs it in
//! wasm, the control plane runs it natively for dry-runs and approvals, and the tests run it directly.
#![deny(clippy::indexing_slicing)]

pub mod audit;
pub mod budget;
pub mod config;
pub mod decision;
pub mod engine;
pub mod exchange;
pub mod glob;
pub mod ids;
pub mod intent;
pub mod jsonrpc;
pub mod mcp;
pub mod memory;
pub mod pipeline;
pub mod policy;
pub mod resource_server;
pub mod response;
pub mod routing_headers;
pub mod sync;
pub mod time;
pub mod token;

/// The header an agent retries an approved call with (SPEC §4).
pub const APPROVAL_ID_HEADER: &str = "X-IntentGate-Approval-Id";

/// Request headers the gateway reads, lower-case as Envoy presents them.
pub mod headers {
    pub const AUTHORIZATION: &str = "authorization";
    /// The user's prompt, for the intent check.
    pub const INTENT_PROMPT: &str = "x-intent-prompt";
    /// The agent's signed memory chain.
    pub const MEMORY_PROVENANCE: &str = "x-intent-memory-provenance";
    /// When sent, must match the token's tenant.
    pub const TENANT: &str = "x-intentgate-tenant";
    pub const APPROVAL_ID: &str = "x-intentgate-approval-id";
    pub const MCP_SESSION_ID: &str = "mcp-session-id";
    /// Gateway-only headers: never forwarded to the tool server.
    pub const GATEWAY_ONLY: [&str; 5] = [
        AUTHORIZATION,
        INTENT_PROMPT,
        MEMORY_PROVENANCE,
        TENANT,
        APPROVAL_ID,
    ];
}
