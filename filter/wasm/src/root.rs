//! The root context: parses and compiles the configuration once per VM, and owns what every request
//! of this VM shares (the compiled gateway, the token and intent caches, metrics).

use std::cell::RefCell;
use std::rc::Rc;

use intentgate_core::config::Gateway;
use intentgate_core::intent::external::IntentCache;
use intentgate_core::token::TokenCache;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use crate::config::PluginConfig;
use crate::http::{Http, Unconfigured};
use crate::metrics::Metrics;
use crate::{budget, host};

/// Per-VM state shared by every request.
pub struct Shared {
    pub gateway: RefCell<Rc<Gateway>>,
    pub config: PluginConfig,
    pub tokens: RefCell<TokenCache>,
    pub intents: RefCell<IntentCache>,
    pub metrics: Metrics,
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
        Ok(Shared {
            gateway: RefCell::new(Rc::new(gateway)),
            tokens: RefCell::new(TokenCache::new(config.token_cache_size)),
            intents: RefCell::new(IntentCache::new(cache_size, ttl_ms)),
            metrics: Metrics::define(),
            config,
        })
    }

    /// The gateway a request uses from start to end, even if the configuration changes meanwhile.
    pub fn gateway(&self) -> Option<Rc<Gateway>> {
        self.gateway.try_borrow().ok().map(|g| Rc::clone(&g))
    }
}

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        budget::init();
        let Some(bytes) = host::plugin_configuration() else {
            host::log(LogLevel::Critical, "intentgate: no plugin configuration");
            return false;
        };
        match Shared::from_config(&bytes) {
            Ok(shared) => {
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
