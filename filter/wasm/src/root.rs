//! The root context: configures the VM's engine runtime once, runs its tick, and carries the
//! control plane's answers to it (the Sync stream, audit batches, lease givebacks).

use std::sync::Arc;
use std::time::Duration;

use intentgate_core::engine::settings::Reach;
use intentgate_core::engine::{Level, Runtime};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use crate::counters;
use crate::host::{self, Envoy};
use crate::http::{Http, Unconfigured};
use crate::metrics::Stats;

#[derive(Default)]
pub struct Root {
    engine: Option<(Arc<Runtime>, Stats)>,
}

impl Context for Root {
    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        if let Some((runtime, _)) = &self.engine {
            runtime.on_sync_message(&mut Envoy, token, &host::grpc_message(size));
        }
    }

    fn on_grpc_stream_close(&mut self, token: u32, status: u32) {
        if let Some((runtime, _)) = &self.engine {
            runtime.on_sync_close(&mut Envoy, token, status);
        }
    }

    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        if let Some((runtime, _)) = &self.engine {
            runtime.on_call_answer(&mut Envoy, token, status, &host::grpc_message(size));
        }
    }

    fn on_done(&mut self) -> bool {
        if let Some((runtime, stats)) = &self.engine {
            stats.apply(&runtime.stop(&mut Envoy));
        }
        true
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        counters::init();
        let Some(bytes) = host::plugin_configuration() else {
            host::log(Level::Critical, "intentgate: no plugin configuration");
            return false;
        };
        let configured = Runtime::configure(&bytes, &host::node_id(), host::seed(), &mut Envoy)
            .and_then(|runtime| {
                runtime.settings.check_reach(Reach::Cluster)?;
                Ok(runtime)
            });
        match configured {
            Ok(runtime) => {
                host::set_tick_period(Duration::from_millis(runtime.settings.tick_ms()));
                self.engine = Some((Arc::new(runtime), Stats::define()));
                host::log(Level::Info, "intentgate: configured");
                true
            }
            Err(err) => {
                // Refusing the configuration keeps Envoy from serving without the checks.
                host::log(Level::Critical, &format!("intentgate: {err}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some((runtime, stats)) = &self.engine {
            stats.apply(&runtime.tick(&mut Envoy));
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(match &self.engine {
            Some((runtime, _)) => Box::new(Http::new(Arc::clone(runtime))),
            None => Box::new(Unconfigured),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
