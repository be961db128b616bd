//! The cost of Envoy's wasm machinery alone, for `make bench`: a filter that does no work but holds
//! the request headers until the whole body is in, as IntentGate's filter does, then lets it go.
//! Measured beside plain Envoy and the real filter, it splits the added latency into what Envoy
//! and V8 cost around any such filter and what IntentGate's checks cost.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Hold))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Hold;

impl Context for Hold {}

impl HttpContext for Hold {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, _body_size: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }
}

// The SDK's entry macro expands to the `_initialize` export Envoy calls; it needs `no_mangle`.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::Root)
        });
    }}
}
