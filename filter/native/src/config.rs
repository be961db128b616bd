//! A filter configuration: the process's runtime for its plugin JSON, and the stats it applies on
//! Envoy's main thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use intentgate_core::engine::LocalAnswer;
use intentgate_envoy_dm::{
    ConfigHandle, ConfigInit, HttpFilter, HttpFilterConfig, LocalResponse, log,
};

use crate::exchange::Exchange;
use crate::host::local_response;
use crate::process::{self, Process};
use crate::stats::Stats;

type ConfigError = Box<dyn std::error::Error + Send + Sync>;

static NEXT_CONFIG: AtomicU64 = AtomicU64::new(1);

/// Envoy's `filter_config` is the same plugin JSON the wasm filter takes. An error refuses the
/// configuration, so Envoy never serves without the checks.
pub fn new_config(
    init: &mut ConfigInit<'_>,
    _filter_name: &str,
    config: &[u8],
) -> Result<Box<dyn HttpFilterConfig>, ConfigError> {
    let refused = |err: String| -> ConfigError { format!("intentgate: {err}").into() };
    if init.is_validation_mode() {
        // Checked as it would be served, but nothing starts: no thread, no connection.
        process::validate(config).map_err(refused)?;
        return Ok(Box::new(Validated));
    }
    let process = process::for_config(config).map_err(refused)?;
    let id = NEXT_CONFIG.fetch_add(1, Ordering::Relaxed);
    let stats = Stats::define(init);
    if let Some(waker) = init.waker() {
        process.stats.add_applier(id, waker);
    }
    log::log(log::Level::Info, "intentgate: configured");
    Ok(Box::new(Config { process, stats, id }))
}

struct Config {
    process: Arc<Process>,
    stats: Stats,
    id: u64,
}

/// What a stream answers when a hook panicked before its response began: nothing was decided, so
/// nothing is forwarded.
fn failed_closed() -> LocalResponse {
    local_response(&LocalAnswer::unavailable("gateway internal error"))
}

impl HttpFilterConfig for Config {
    fn new_filter(&self) -> Box<dyn HttpFilter> {
        Box::new(Exchange::new(Arc::clone(&self.process)))
    }

    fn fail_closed_response(&self) -> LocalResponse {
        failed_closed()
    }

    /// The runtime's tick handed over stats.
    fn on_scheduled(&self, config: &ConfigHandle, _event: u64) {
        self.stats.apply(config, &self.process.stats.take());
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        self.process.stats.remove_applier(self.id);
    }
}

/// A configuration checked by `envoy --mode validate`, which serves nothing.
struct Validated;

impl HttpFilterConfig for Validated {
    fn new_filter(&self) -> Box<dyn HttpFilter> {
        Box::new(Unconfigured)
    }

    fn fail_closed_response(&self) -> LocalResponse {
        failed_closed()
    }
}

struct Unconfigured;

impl HttpFilter for Unconfigured {
    fn on_request_headers(
        &mut self,
        stream: &mut intentgate_envoy_dm::Stream<'_>,
        _end_of_stream: bool,
    ) -> intentgate_envoy_dm::HeadersAction {
        stream.respond(local_response(&LocalAnswer::unavailable(
            "gateway not configured",
        )));
        intentgate_envoy_dm::HeadersAction::Stop
    }
}
