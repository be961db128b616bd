//! What every exchange of one runtime shares, and the work done on the tick.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::audit_sink::AuditSink;
use super::budget::{self, Blocks};
use super::endings::Endings;
use super::host::{Host, Level};
use super::link::Link;
use super::lock;
use super::metrics::{Delta, Metrics};
use super::settings::PluginConfig;
use crate::budget::lease::LeasePool;
use crate::config::Gateway;
use crate::ids::IdGen;
use crate::intent::external::IntentCache;
use crate::sync::Synced;
use crate::token::TokenCache;

pub struct Runtime {
    pub settings: PluginConfig,
    /// The static configuration's gateway until the control plane's first snapshot, then its state.
    pub(super) state: RwLock<Synced>,
    pub(super) tokens: Mutex<TokenCache>,
    pub(super) intents: Mutex<IntentCache>,
    pub(super) leases: Mutex<LeasePool>,
    pub(super) blocks: Mutex<Blocks>,
    ids: Mutex<IdGen>,
    pub metrics: Metrics,
    pub(super) audit: AuditSink,
    pub(super) link: Mutex<Link>,
    /// Held calls that ended without a decision, to tell the control plane.
    pub(super) endings: Mutex<Endings>,
    /// Exchanges started, to pick the sampled ones.
    exchanges: AtomicU64,
    /// Names this runtime to the control plane.
    filter_id: String,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("filter_id", &self.filter_id)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Parses and compiles the plugin configuration. An error refuses the configuration: the host
    /// must then serve nothing (fail closed). `seed` is the host's randomness, read once.
    pub fn configure(
        bytes: &[u8],
        node_id: &str,
        seed: [u8; 32],
        host: &mut dyn Host,
    ) -> Result<Self, String> {
        let mut settings: PluginConfig = serde_json::from_slice(bytes)
            .map_err(|e| format!("plugin configuration is invalid: {e}"))?;
        if let Some(resource) = &settings.protected_resource {
            resource
                .validate()
                .map_err(|e| format!("plugin configuration is invalid: {e}"))?;
        }
        // Compiled, the configuration's text is not needed any more.
        let gateway =
            Gateway::compile(std::mem::take(&mut settings.gateway)).map_err(|e| e.to_string())?;
        if gateway.keys.is_empty() {
            host.log(
                Level::Warn,
                "intentgate: no signing key is trusted yet: every token fails until keys are configured",
            );
        }
        let (cache_size, ttl_ms) = settings.intent_extractor.as_ref().map_or((1, 0), |e| {
            (
                e.cache_size,
                i64::try_from(e.cache_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            )
        });
        let mut ids = IdGen::from_seed(seed);
        let node = if node_id.is_empty() { "envoy" } else { node_id };
        let filter_id = format!("{node}/{:08x}", ids.next_u64() >> 32);
        let capacity = settings
            .control_plane
            .as_ref()
            .map(|c| usize::try_from(c.audit_buffer_events).unwrap_or(usize::MAX));
        Ok(Runtime {
            state: RwLock::new(Synced::bootstrap(gateway)),
            tokens: Mutex::new(TokenCache::new(settings.token_cache_size)),
            intents: Mutex::new(IntentCache::new(cache_size, ttl_ms)),
            leases: Mutex::new(LeasePool::new()),
            blocks: Mutex::new(Blocks::default()),
            ids: Mutex::new(ids),
            metrics: Metrics::default(),
            audit: AuditSink::new(settings.audit_log(), capacity),
            link: Mutex::new(Link::default()),
            endings: Mutex::new(Endings::default()),
            exchanges: AtomicU64::new(0),
            filter_id,
            settings,
        })
    }

    /// The gateway an exchange uses from start to end, even if an update arrives meanwhile.
    pub fn gateway(&self) -> Arc<Gateway> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&state.gateway)
    }

    /// The version of the gateway state in force (0: the static configuration's).
    pub fn version(&self) -> u64 {
        self.state.read().unwrap_or_else(|e| e.into_inner()).version
    }

    pub fn filter_id(&self) -> &str {
        &self.filter_id
    }

    /// A fresh audit event id.
    pub(super) fn next_id(&self, now_ms: i64) -> String {
        lock(&self.ids).ulid(u64::try_from(now_ms).unwrap_or(0))
    }

    /// The sequence number of a new exchange.
    pub(super) fn next_exchange(&self) -> u64 {
        self.exchanges.fetch_add(1, Ordering::Relaxed)
    }

    /// The work between exchanges, on the host's timer (every [`PluginConfig::tick_ms`]): audit
    /// lines written, audit batches shipped, budget reservations and expired leases given back, the
    /// control-plane stream kept up. Returns the stats to apply.
    pub fn tick(&self, host: &mut dyn Host) -> Vec<Delta> {
        self.audit.flush_log(host);
        budget::give_back(self, host);
        if let Some(control_plane) = &self.settings.control_plane {
            let now_ms = super::now_ms(host);
            self.tick_link(host, control_plane, now_ms);
        }
        self.metrics.take()
    }

    /// The proxy is stopping: write what is waiting.
    pub fn stop(&self, host: &mut dyn Host) -> Vec<Delta> {
        self.drop_endings(host);
        self.audit.flush_log(host);
        budget::give_back(self, host);
        self.metrics.take()
    }
}
