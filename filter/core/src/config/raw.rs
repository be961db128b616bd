//! Configuration as written (plugin JSON, or pushed by the control plane). Parsed strictly:
//! an unknown field is an error, not a silently ignored typo.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::intent::IntentRule;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Public keys that may sign root tokens.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    /// Revoked token ids (root or derived).
    #[serde(default)]
    pub revocations: Vec<String>,
    /// When set, tokens of any other tenant fail the capability check.
    #[serde(default)]
    pub serve_tenants: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Optional; checked against the id derived from the key when given.
    #[serde(default)]
    pub kid: Option<String>,
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// No policy: every `tools/call` of the tenant is denied (fail closed).
    #[serde(default)]
    pub policy: Option<PolicySource>,
    #[serde(default, deserialize_with = "super::strict::object")]
    pub settings: TenantSettings,
    #[serde(default, deserialize_with = "super::strict::objects")]
    pub intent_rules: Vec<IntentRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicySource {
    /// Rego source, compiled at load.
    Rego(String),
    /// Base64 of RVM bytecode compiled by the control plane.
    Bytecode(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// The filter holds the request until a human decides or the timeout passes.
    #[default]
    Sync,
    /// The filter answers -32019 at once; the agent retries with the approval id.
    Async,
}

/// Per-tenant behaviour an operator sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// A `tools/call` without `X-Intent-Prompt` fails the intent check.
    #[serde(default)]
    pub require_intent: bool,
    /// A `tools/call` without a valid `X-Intent-Memory-Provenance` fails the intent check.
    #[serde(default)]
    pub require_memory_provenance: bool,
    #[serde(default)]
    pub approval_mode: ApprovalMode,
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_secs: u64,
    #[serde(default, deserialize_with = "super::strict::object")]
    pub rate_limits: RateLimits,
}

fn default_approval_timeout() -> u64 {
    300
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            require_intent: false,
            require_memory_provenance: false,
            approval_mode: ApprovalMode::Sync,
            approval_timeout_secs: default_approval_timeout(),
            rate_limits: RateLimits::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default)]
    pub per_agent_per_minute: Option<u64>,
    #[serde(default)]
    pub per_tenant_per_minute: Option<u64>,
}
