//! What a filter configuration can ask of Envoy: metrics while it is created, and, from its hooks on
//! the main thread, callouts and metrics.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::fmt;
use std::time::Duration;

use crate::abi;
use crate::http::{CalloutError, CalloutId};
use crate::scheduler::Waker;

/// A counter defined by the configuration (Envoy stat `<metrics_namespace>.<name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter(pub(crate) usize);

/// A histogram defined by the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Histogram(pub(crate) usize);

/// A gauge defined by the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gauge(pub(crate) usize);

/// Why Envoy refused a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsError {
    NotFound,
    InvalidLabels,
    /// Metrics can only be defined while the configuration is created.
    Frozen,
    Unknown(u32),
}

impl MetricsError {
    pub(crate) fn check(result: abi::MetricsResult) -> Result<(), MetricsError> {
        match result {
            abi::METRICS_SUCCESS => Ok(()),
            abi::METRICS_NOT_FOUND => Err(MetricsError::NotFound),
            abi::METRICS_INVALID_LABELS => Err(MetricsError::InvalidLabels),
            abi::METRICS_FROZEN => Err(MetricsError::Frozen),
            other => Err(MetricsError::Unknown(other)),
        }
    }
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::NotFound => f.write_str("metric not found"),
            MetricsError::InvalidLabels => f.write_str("invalid metric labels"),
            MetricsError::Frozen => f.write_str("metrics are defined only at configuration time"),
            MetricsError::Unknown(code) => write!(f, "metric refused (result {code})"),
        }
    }
}

impl std::error::Error for MetricsError {}

/// Handed to the module's [`crate::NewConfig`] while Envoy creates the configuration (main thread).
pub struct ConfigInit<'a> {
    pub(crate) envoy: abi::ConfigEnvoyPtr,
    pub(crate) waker: &'a mut Option<Waker>,
}

impl ConfigInit<'_> {
    pub fn counter(&mut self, name: &str) -> Result<Counter, MetricsError> {
        define(
            self.envoy,
            name,
            abi::envoy_dynamic_module_callback_http_filter_config_define_counter,
        )
        .map(Counter)
    }

    pub fn histogram(&mut self, name: &str) -> Result<Histogram, MetricsError> {
        define(
            self.envoy,
            name,
            abi::envoy_dynamic_module_callback_http_filter_config_define_histogram,
        )
        .map(Histogram)
    }

    pub fn gauge(&mut self, name: &str) -> Result<Gauge, MetricsError> {
        define(
            self.envoy,
            name,
            abi::envoy_dynamic_module_callback_http_filter_config_define_gauge,
        )
        .map(Gauge)
    }

    /// Whether Envoy only validates its configuration (`--mode validate`): a module then checks its
    /// configuration and starts nothing (no threads, no connections).
    pub fn is_validation_mode(&self) -> bool {
        // SAFETY: no arguments; called while Envoy creates the configuration, on the main thread.
        unsafe { abi::envoy_dynamic_module_callback_is_validation_mode() }
    }

    /// Wakes this configuration's `on_scheduled` on the main thread, from any thread. One per
    /// configuration; it stops working when Envoy destroys the configuration.
    pub fn waker(&mut self) -> Option<Waker> {
        if self.waker.is_none() {
            *self.waker = Waker::for_config(self.envoy);
        }
        self.waker.clone()
    }
}

/// The configuration's side of Envoy in its own hooks (`on_scheduled`, `on_callout_done`), on the
/// main thread.
pub struct ConfigHandle {
    pub(crate) envoy: abi::ConfigEnvoyPtr,
}

impl ConfigHandle {
    pub fn increment(&self, counter: Counter, by: u64) {
        let increment = abi::envoy_dynamic_module_callback_http_filter_config_increment_counter;
        update(self.envoy, counter.0, by, increment);
    }

    pub fn record(&self, histogram: Histogram, value: u64) {
        let record = abi::envoy_dynamic_module_callback_http_filter_config_record_histogram_value;
        update(self.envoy, histogram.0, value, record);
    }

    pub fn set(&self, gauge: Gauge, value: u64) {
        let set = abi::envoy_dynamic_module_callback_http_filter_config_set_gauge;
        update(self.envoy, gauge.0, value, set);
    }

    /// An HTTP request to an Envoy cluster; the answer comes to the configuration's
    /// `on_callout_done` on the main thread. `headers` must carry `:method`, `:path` and `host`.
    pub fn callout(
        &self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout: Duration,
    ) -> Result<CalloutId, CalloutError> {
        let call = abi::envoy_dynamic_module_callback_http_filter_config_http_callout;
        crate::stream::callout(self.envoy, cluster, headers, body, timeout, call)
    }
}

type Define = unsafe extern "C" fn(
    abi::ConfigEnvoyPtr,
    abi::ModuleBuffer,
    *mut abi::ModuleBuffer,
    usize,
    *mut usize,
) -> abi::MetricsResult;

/// Updates a metric through a stream or a configuration (both pointers are `void*` to the ABI).
pub(crate) type Update = unsafe extern "C" fn(
    *mut c_void,
    usize,
    *mut abi::ModuleBuffer,
    usize,
    u64,
) -> abi::MetricsResult;

fn define(envoy: abi::ConfigEnvoyPtr, name: &str, define: Define) -> Result<usize, MetricsError> {
    let mut id = 0;
    // SAFETY: `envoy` is the configuration being created; `name` lives across the call; no labels
    // (null, length 0); `id` is a valid out-pointer.
    let result = unsafe {
        define(
            envoy,
            abi::ModuleBuffer::of(name.as_bytes()),
            std::ptr::null_mut(),
            0,
            &mut id,
        )
    };
    MetricsError::check(result).map(|()| id)
}

/// Best effort: a refused update is a module bug (an id from another configuration), logged at debug.
pub(crate) fn update(owner: *mut c_void, id: usize, value: u64, update: Update) {
    // SAFETY: `owner` is the live stream or configuration of the current hook, matching `update`;
    // no labels.
    let result = unsafe { update(owner, id, std::ptr::null_mut(), 0, value) };
    crate::log::metric_failed(MetricsError::check(result));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_results_map_to_typed_errors() {
        assert_eq!(MetricsError::check(abi::METRICS_SUCCESS), Ok(()));
        assert_eq!(
            MetricsError::check(abi::METRICS_FROZEN),
            Err(MetricsError::Frozen)
        );
        assert_eq!(MetricsError::check(9), Err(MetricsError::Unknown(9)));
    }
}
