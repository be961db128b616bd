//! The root context: parses and compiles the configuration once per VM, owns what every request of
//! this VM shares (the gateway state and its version, the token and intent caches, budget leases,
//! metrics), and, with a control plane, keeps that state in sync on every tick.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use intentgate_core::budget::lease::LeasePool;
use intentgate_core::config::Gateway;
use intentgate_core::intent::external::IntentCache;
use intentgate_core::sync::Synced;
use intentgate_core::token::TokenCache;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use crate::config::PluginConfig;
use crate::control_plane::ControlPlaneClient;
use crate::http::{Http, Unconfigured};
use crate::metrics::Metrics;
use crate::{counters, host};

/// Per-VM state shared by every request.
pub struct Shared {
    /// The static configuration's gateway until the control plane's first snapshot, then its state.
    pub state: RefCell<Synced>,
    pub config: PluginConfig,
    pub tokens: RefCell<TokenCache>,
    pub intents: RefCell<IntentCache>,
    pub leases: RefCell<LeasePool>,
    pub metrics: Metrics,
    /// Names this VM to the control plane.
    pub filter_id: String,
}

impl Shared {
    fn from_config(bytes: &[u8]) -> Result<Self, String> {
        let config: PluginConfig = serde_json::from_slice(bytes)
            .map_err(|e| format!("plugin configuration is invalid: {e}"))?;
        let gateway = Gateway::compile(config.gateway.clone()).map_err(|e| e.to_string())?;
        if gateway.keys.is_empty() {
            host::log(
                LogLevel::Warn,
                "intentgate: no signing key is trusted yet: every token fails until keys are configured",
            );
        }
        let (cache_size, ttl_ms) = config.intent_extractor.as_ref().map_or((1, 0), |e| {
            (
                e.cache_size,
                i64::try_from(e.cache_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            )
        });
        let vm = host::random_bytes::<4>();
        Ok(Shared {
            state: RefCell::new(Synced::bootstrap(gateway)),
            tokens: RefCell::new(TokenCache::new(config.token_cache_size)),
            intents: RefCell::new(IntentCache::new(cache_size, ttl_ms)),
            leases: RefCell::new(LeasePool::new()),
            metrics: Metrics::define(),
            filter_id: format!(
                "{}/{:02x}{:02x}{:02x}{:02x}",
                host::node_id(),
                vm[0],
                vm[1],
                vm[2],
                vm[3]
            ),
            config,
        })
    }

    /// The gateway a request uses from start to end, even if an update arrives meanwhile.
    pub fn gateway(&self) -> Option<Arc<Gateway>> {
        self.state.try_borrow().ok().map(|s| Arc::clone(&s.gateway))
    }
}

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
    client: Option<ControlPlaneClient>,
}

impl Context for Root {
    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        if let (Some(shared), Some(client)) = (&self.shared, &mut self.client) {
            client.on_stream_message(shared, token, size);
        }
    }

    fn on_grpc_stream_close(&mut self, token: u32, status: u32) {
        if let (Some(shared), Some(client)) = (&self.shared, &mut self.client)
            && let Some(config) = &shared.config.control_plane
        {
            client.on_stream_close(token, status, config);
        }
    }

    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        if let Some(client) = &mut self.client {
            client.on_call_response(token, status, size);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        counters::init();
        let Some(bytes) = host::plugin_configuration() else {
            host::log(LogLevel::Critical, "intentgate: no plugin configuration");
            return false;
        };
        match Shared::from_config(&bytes) {
            Ok(shared) => {
                if let Some(control_plane) = &shared.config.control_plane {
                    host::set_tick_period(Duration::from_millis(control_plane.tick_ms.max(10)));
                    self.client = Some(ControlPlaneClient::new());
                }
                self.shared = Some(Rc::new(shared));
                host::log(LogLevel::Info, "intentgate: configured");
                true
            }
            Err(err) => {
                // Refusing the configuration keeps Envoy from serving without the checks.
                host::log(LogLevel::Critical, &format!("intentgate: {err}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let (Some(shared), Some(client)) = (&self.shared, &mut self.client)
            && let Some(config) = &shared.config.control_plane
        {
            client.tick(shared, config);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(match &self.shared {
            Some(shared) => Box::new(Http::new(Rc::clone(shared))),
            None => Box::new(Unconfigured),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
