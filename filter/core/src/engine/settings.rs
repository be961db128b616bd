//! The plugin configuration (the JSON every host takes, Envoy's `configuration` StringValue for the
//! wasm filter): the gateway state the core compiles, plus how the engine reaches its peers.

use serde::Deserialize;

use crate::config::GatewayConfig;
use crate::resource_server::ProtectedResource;

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
    /// Write each audit event as a JSON line to the proxy's log (on each tick, every line the tick
    /// collected in one write). Defaults to on without a control plane (the log is then the audit
    /// sink) and off with one (events go to the control plane).
    #[serde(default)]
    pub audit_log: Option<bool>,
    /// Hold the request headers until the body is decided (needs Envoy's
    /// `allow_on_headers_stop_iteration: true`). `false` for Istio's WasmPlugin, which cannot set
    /// that flag: headers go on at once and the body is held instead; a refused request then reaches
    /// the upstream as headers only, reset before any body.
    #[serde(default = "yes")]
    pub hold_headers: bool,
    /// Sync state from, send audit events to, and lease budgets from the control plane.
    #[serde(default)]
    pub control_plane: Option<ControlPlaneConfig>,
    /// The gateway as an OAuth resource server: its metadata, its 401 challenges, and the token
    /// audiences it accepts. Unset: a bare `Bearer` challenge, no metadata, any audience.
    #[serde(default)]
    pub protected_resource: Option<ProtectedResource>,
}

/// How often a runtime without a control plane flushes its audit lines and stats.
pub const STANDALONE_TICK_MS: u64 = 100;

impl PluginConfig {
    pub fn audit_log(&self) -> bool {
        self.audit_log.unwrap_or(self.control_plane.is_none())
    }

    /// The period of [`Runtime::tick`](super::Runtime::tick); never under 10 ms.
    pub fn tick_ms(&self) -> u64 {
        self.control_plane
            .as_ref()
            .map_or(STANDALONE_TICK_MS, |c| c.tick_ms)
            .max(10)
    }
}

/// How a host reaches the control plane: the wasm filter through an Envoy cluster, the native
/// module from its own background thread, straight to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Cluster,
    Address,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// The Envoy cluster (HTTP/2) of the control plane's gRPC port: how the wasm filter reaches it.
    #[serde(default)]
    pub cluster: String,
    /// The control plane's gRPC address, `http://host:port` or `https://host:port`: how the native
    /// module reaches it. One configuration may carry both, and then serves both builds.
    #[serde(default)]
    pub address: Option<String>,
    /// TLS for an `https://` address.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The control plane's `INTENTGATE_FILTER_TOKEN`, sent as `authorization: Bearer` on every call.
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding that token (a mounted Secret), instead of `token`: the native module reads it
    /// at start and again when it changes. The wasm filter cannot read files: its Envoy injects the
    /// token into the control plane's cluster instead.
    #[serde(default)]
    pub token_file: Option<String>,
    /// How often the engine reconnects, ships audit events and returns expired leases.
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    #[serde(default = "default_call_timeout_ms")]
    pub call_timeout_ms: u64,
    /// Audit events one runtime (a wasm VM, a native module's process) buffers while the control
    /// plane is away; beyond it, events are dropped and counted (metric `intentgate.audit.dropped`,
    /// and reported to the control plane).
    #[serde(default = "default_audit_buffer")]
    pub audit_buffer_events: u64,
    #[serde(default = "default_audit_batch")]
    pub audit_batch_events: usize,
    /// Calls asked for in one budget lease (the control plane may grant fewer near the limit).
    #[serde(default = "default_lease_slice")]
    pub lease_slice: u64,
    /// Longest wait between reconnection attempts.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl ControlPlaneConfig {
    /// gRPC initial metadata for every call.
    pub fn metadata(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }
}

/// How an `https://` control-plane address is verified.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust instead of the public web roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The name the certificate must carry, when it is not the address's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

impl PluginConfig {
    /// Refuses a `control_plane` section that lacks what this host reaches the control plane by, or
    /// names its token in a way this host cannot use.
    pub fn check_reach(&self, reach: Reach) -> Result<(), String> {
        let Some(control_plane) = &self.control_plane else {
            return Ok(());
        };
        match (&control_plane.token, control_plane.token_file.as_deref()) {
            (Some(_), Some(_)) => return Err(
                "plugin configuration is invalid: control_plane.token and control_plane.token_file are exclusive".into(),
            ),
            (_, Some("")) => return Err(
                "plugin configuration is invalid: control_plane.token_file is empty".into(),
            ),
            (_, Some(_)) if reach == Reach::Cluster => return Err(
                "plugin configuration is invalid: control_plane.token_file is read by the native module only; the wasm filter's Envoy injects the token into the control plane's cluster (credential_injector)".into(),
            ),
            _ => {}
        }
        match reach {
            Reach::Cluster if control_plane.cluster.is_empty() => Err(
                "plugin configuration is invalid: control_plane.cluster (the Envoy cluster of the control plane) is required by the wasm filter".into(),
            ),
            Reach::Address if control_plane.address.as_deref().is_none_or(str::is_empty) => Err(
                "plugin configuration is invalid: control_plane.address (http://host:port of the control plane's gRPC port) is required by the native module".into(),
            ),
            _ => Ok(()),
        }
    }
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
    pub fn authority(&self) -> &str {
        self.authority.as_deref().unwrap_or(&self.cluster)
    }
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
fn default_tick_ms() -> u64 {
    100
}
fn default_call_timeout_ms() -> u64 {
    5000
}
fn default_audit_buffer() -> u64 {
    100_000
}
fn default_audit_batch() -> usize {
    256
}
fn default_lease_slice() -> u64 {
    16
}
fn default_max_backoff_ms() -> u64 {
    5000
}
fn yes() -> bool {
    true
}
