//! The engine's stats as Envoy stats (`dynamicmodulescustom.intentgate.*`). A runtime counts in
//! memory; what its tick hands over waits here until Envoy's main thread applies it through one of
//! the configurations using the runtime (configuration metrics are updated on the main thread).

use std::sync::{Mutex, MutexGuard, PoisonError};

use intentgate_core::engine::metrics::{ALL, Delta, Kind, Metric};
use intentgate_envoy_dm::{ConfigHandle, ConfigInit, Counter, Gauge, Histogram, Waker};

/// Changes kept while no configuration applied them; beyond, the oldest samples are not needed.
const MAX_PENDING: usize = 4096;

#[derive(Clone, Copy)]
enum Stat {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

/// One configuration's handles on the engine's stats.
pub struct Stats {
    stats: Vec<Option<Stat>>,
}

impl Stats {
    /// Defines every metric of the engine (while Envoy creates the configuration).
    pub fn define(init: &mut ConfigInit<'_>) -> Self {
        let stats = ALL
            .iter()
            .map(|metric| match metric.kind() {
                Kind::Counter => init.counter(metric.name()).ok().map(Stat::Counter),
                Kind::Gauge => init.gauge(metric.name()).ok().map(Stat::Gauge),
                Kind::Histogram => init.histogram(metric.name()).ok().map(Stat::Histogram),
            })
            .collect();
        Stats { stats }
    }

    fn stat(&self, metric: Metric) -> Option<Stat> {
        ALL.iter()
            .position(|m| *m == metric)
            .and_then(|i| self.stats.get(i).copied().flatten())
    }

    pub fn apply(&self, config: &ConfigHandle, deltas: &[Delta]) {
        for delta in deltas {
            match *delta {
                Delta::Add(metric, n) => {
                    if let Some(Stat::Counter(counter)) = self.stat(metric) {
                        config.increment(counter, n);
                    }
                }
                Delta::Set(metric, value) => {
                    if let Some(Stat::Gauge(gauge)) = self.stat(metric) {
                        config.set(gauge, value);
                    }
                }
                Delta::Record(metric, value) => {
                    if let Some(Stat::Histogram(histogram)) = self.stat(metric) {
                        config.record(histogram, value);
                    }
                }
            }
        }
    }
}

/// Stats a runtime handed over, and the configurations that can apply them.
#[derive(Default)]
pub struct Pending {
    deltas: Mutex<Vec<Delta>>,
    /// Wakers of the configurations using the runtime, by configuration id.
    appliers: Mutex<Vec<(u64, Waker)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pending {
    pub fn add_applier(&self, config: u64, waker: Waker) {
        lock(&self.appliers).push((config, waker));
    }

    pub fn remove_applier(&self, config: u64) {
        lock(&self.appliers).retain(|(id, _)| *id != config);
    }

    /// Keeps `deltas` and wakes a configuration on the main thread to apply them.
    pub fn push(&self, deltas: Vec<Delta>) {
        if deltas.is_empty() {
            return;
        }
        {
            let mut pending = lock(&self.deltas);
            let room = MAX_PENDING.saturating_sub(pending.len());
            pending.extend(deltas.into_iter().take(room));
        }
        let mut appliers = lock(&self.appliers);
        // A configuration Envoy already destroyed refuses the wake: the next one applies them.
        while let Some((_, waker)) = appliers.first() {
            if waker.wake(0) {
                return;
            }
            appliers.remove(0);
        }
    }

    pub fn take(&self) -> Vec<Delta> {
        std::mem::take(&mut *lock(&self.deltas))
    }
}
