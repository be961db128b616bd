//! The plugin configuration (Envoy's `configuration` StringValue): the gateway state the core
//! compiles, plus what only the filter needs.

use std::time::Duration;

use intentgate_core::config::GatewayConfig;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Keys, tenants (policies, settings, intent rules), revocations.
    pub gateway: GatewayConfig,
    /// Delegate intent extraction to an HTTP service reached through an Envoy cluster.
    #[serde(default)]
    pub intent_extractor: Option<ExtractorConfig>,
    #[serde(default = "default_token_cache")]
    pub token_cache_size: usize,
    /// Write each audit event as a JSON line to Envoy's log.
    #[serde(default = "yes")]
    pub audit_log: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractorConfig {
    /// The Envoy cluster of the extractor service.
    pub cluster: String,
    #[serde(default = "default_extract_path")]
    pub path: String,
    /// `:authority` of the call; the cluster name when unset.
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_intent_cache")]
    pub cache_size: usize,
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl_secs: u64,
}

impl ExtractorConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn authority(&self) -> &str {
        self.authority.as_deref().unwrap_or(&self.cluster)
    }
}

fn yes() -> bool {
    true
}
fn default_token_cache() -> usize {
    4096
}
fn default_extract_path() -> String {
    "/v1/extract".into()
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_intent_cache() -> usize {
    1024
}
fn default_cache_ttl() -> u64 {
    300
}
