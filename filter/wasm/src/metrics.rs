//! Envoy stats for the engine's metrics (they appear under `wasmcustom.`), defined once per VM and
//! updated on each tick from what the engine counted meanwhile.

use intentgate_core::engine::metrics::{ALL, Delta, Kind, Metric};
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

pub struct Stats {
    ids: Vec<Option<u32>>,
}

impl Stats {
    pub fn define() -> Self {
        let ids = ALL
            .iter()
            .map(|metric| {
                let kind = match metric.kind() {
                    Kind::Counter => MetricType::Counter,
                    Kind::Gauge => MetricType::Gauge,
                    Kind::Histogram => MetricType::Histogram,
                };
                hostcalls::define_metric(kind, metric.name()).ok()
            })
            .collect();
        Stats { ids }
    }

    fn id(&self, metric: Metric) -> Option<u32> {
        ALL.iter()
            .position(|m| *m == metric)
            .and_then(|i| self.ids.get(i).copied().flatten())
    }

    pub fn apply(&self, deltas: &[Delta]) {
        for delta in deltas {
            let _ = match *delta {
                Delta::Add(metric, n) => self.id(metric).map(|id| {
                    hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX))
                }),
                Delta::Set(metric, value) | Delta::Record(metric, value) => self
                    .id(metric)
                    .map(|id| hostcalls::record_metric(id, value)),
            };
        }
    }
}
