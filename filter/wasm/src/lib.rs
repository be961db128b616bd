//! The IntentGate proxy-wasm HTTP filter: a thin adapter between Envoy's callbacks and the core's
//! exchange engine, which makes every decision.
#![deny(clippy::indexing_slicing)]

mod counters;
mod host;
mod http;
mod metrics;
mod root;

use intentgate_core::engine::Level;
use proxy_wasm::types::LogLevel;

fn start() {
    // A panic aborts the VM; say why in Envoy's log first.
    std::panic::set_hook(Box::new(|info| {
        host::log(Level::Critical, &format!("intentgate: panic: {info}"));
    }));
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(root::Root::default())
    });
}

// The SDK's entry macro expands to the `_initialize` export Envoy calls; it needs `no_mangle`.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        super::start();
    }}
}
