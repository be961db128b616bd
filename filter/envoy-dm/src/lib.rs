//! IntentGate's side of Envoy's dynamic-module ABI (Envoy 1.40, ABI `v0.2.0`): a native HTTP
//! filter in a shared library that Envoy loads with `envoy.filters.http.dynamic_modules`.
//!
//! [`abi`] holds the C declarations, checked against the symbols the Envoy binary exports. The
//! rest is a small safe layer: a module implements [`HttpFilterConfig`] (one per Envoy filter
//! configuration, shared by every worker) and [`HttpFilter`] (one per HTTP stream), and exports
//! them with [`module!`]. Every hook Envoy calls runs inside a panic barrier: a panic never crosses
//! into Envoy, and the stream it happened in fails closed (a local error answer, or a reset once
//! the response has begun), never a forward.
//!
//! Build the modules with a profile that unwinds (`make native`: the `native` profile); with
//! `panic = "abort"` there would be nothing to catch, so this crate refuses to build that way.

#[cfg(panic = "abort")]
compile_error!(
    "the dynamic-module layer needs panic = \"unwind\" to keep panics out of Envoy: build with `--profile native` (make native)"
);

pub mod abi;
mod barrier;
mod config;
mod filter;
mod hooks;
mod http;
pub mod log;
mod scheduler;
mod stream;

pub use config::{ConfigHandle, ConfigInit, Counter, Gauge, Histogram, MetricsError};
pub use filter::{
    BodyAction, HeadersAction, HttpFilter, HttpFilterConfig, NewConfig, TrailersAction,
};
pub use hooks::program_init;
pub use http::{
    CalloutError, CalloutFailure, CalloutId, CalloutResponse, Direction, HeaderMap, Headers,
    LocalResponse,
};
pub use scheduler::Waker;
pub use stream::Stream;

/// Exports the module's entry point: `envoy_dynamic_module_on_program_init`, which registers
/// `$new_config` (a [`NewConfig`]) and answers Envoy with the ABI version. Use once per module.
#[macro_export]
macro_rules! module {
    ($new_config:expr) => {
        // Envoy finds the entry point by its C name; exporting a fixed symbol needs `no_mangle`.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const ::std::ffi::c_char {
            $crate::program_init($new_config)
        }
    };
}
