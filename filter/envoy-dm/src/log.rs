//! Envoy's log, under its `dynamic_modules` logger (`--component-log-level dynamic_modules:debug`).
//! Usable from any thread.
#![allow(unsafe_code)]

pub use crate::abi::LogLevel as Level;
use crate::config::MetricsError;

/// Whether `level` is logged: check before formatting an expensive message.
pub fn enabled(level: Level) -> bool {
    // SAFETY: takes a plain enum; Envoy's loggers are thread-safe.
    unsafe { crate::abi::envoy_dynamic_module_callback_log_enabled(level) }
}

pub fn log(level: Level, message: &str) {
    // SAFETY: `message` lives across the call; Envoy copies it into its log line.
    unsafe {
        crate::abi::envoy_dynamic_module_callback_log(
            level,
            crate::abi::ModuleBuffer::of(message.as_bytes()),
        )
    }
}

pub(crate) fn metric_failed(result: Result<(), MetricsError>) {
    if let Err(err) = result
        && enabled(Level::Debug)
    {
        log(Level::Debug, &format!("metric update refused: {err}"));
    }
}
