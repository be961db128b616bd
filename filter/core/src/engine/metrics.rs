//! The engine's stats, kept in memory and handed to the host on each tick: counting a decision
//! costs no call into the proxy. Histograms are fed from sampled exchanges only (see
//! [`SAMPLE_EVERY`](super::stream::SAMPLE_EVERY)), and at most [`MAX_SAMPLES`] per tick.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::audit::{AuditEvent, EventKind};
use crate::decision::{AuditDecision, Check};

use super::lock;

/// Histogram samples kept between two ticks; more are dropped (the histogram is a sample anyway).
pub const MAX_SAMPLES: usize = 64;

/// How a metric is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every stat the engine keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    CallAllow,
    CallEscalate,
    CallDeny(Check),
    RequestAllow,
    RequestDeny,
    AuditEvents,
    AuditDropped,
    SyncUpdates,
    SyncRejected,
    SyncVersion,
    /// Token verification (cache included), microseconds.
    VerifyUs,
    /// The checks after the token (tool caveat, intent, policy, budget), microseconds.
    EvalUs,
    /// The callback that decides a request, all of it, microseconds.
    FilterUs,
}

const CHECKS: [Check; 5] = [
    Check::Envelope,
    Check::Capability,
    Check::Intent,
    Check::Policy,
    Check::Budget,
];

/// Every metric, in the order of their slots.
pub const ALL: [Metric; 17] = [
    Metric::CallAllow,
    Metric::CallEscalate,
    Metric::CallDeny(Check::Envelope),
    Metric::CallDeny(Check::Capability),
    Metric::CallDeny(Check::Intent),
    Metric::CallDeny(Check::Policy),
    Metric::CallDeny(Check::Budget),
    Metric::RequestAllow,
    Metric::RequestDeny,
    Metric::AuditEvents,
    Metric::AuditDropped,
    Metric::SyncUpdates,
    Metric::SyncRejected,
    Metric::SyncVersion,
    Metric::VerifyUs,
    Metric::EvalUs,
    Metric::FilterUs,
];

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::CallAllow => "intentgate.tool_calls.allow",
            Metric::CallEscalate => "intentgate.tool_calls.escalate",
            Metric::CallDeny(Check::Envelope) => "intentgate.tool_calls.deny.envelope",
            Metric::CallDeny(Check::Capability) => "intentgate.tool_calls.deny.capability",
            Metric::CallDeny(Check::Intent) => "intentgate.tool_calls.deny.intent",
            Metric::CallDeny(Check::Policy) => "intentgate.tool_calls.deny.policy",
            Metric::CallDeny(Check::Budget) => "intentgate.tool_calls.deny.budget",
            Metric::RequestAllow => "intentgate.requests.allow",
            Metric::RequestDeny => "intentgate.requests.deny",
            Metric::AuditEvents => "intentgate.audit.events",
            Metric::AuditDropped => "intentgate.audit.dropped",
            Metric::SyncUpdates => "intentgate.sync.updates",
            Metric::SyncRejected => "intentgate.sync.rejected",
            Metric::SyncVersion => "intentgate.sync.version",
            Metric::VerifyUs => "intentgate.verify_us",
            Metric::EvalUs => "intentgate.eval_us",
            Metric::FilterUs => "intentgate.filter_us",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Metric::SyncVersion => Kind::Gauge,
            Metric::VerifyUs | Metric::EvalUs | Metric::FilterUs => Kind::Histogram,
            _ => Kind::Counter,
        }
    }

    fn slot(self) -> usize {
        ALL.iter().position(|m| *m == self).unwrap_or(0)
    }
}

/// A change for the host to apply to one stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    /// Add to a counter.
    Add(Metric, u64),
    /// Set a gauge.
    Set(Metric, u64),
    /// One histogram sample.
    Record(Metric, u64),
}

/// Counts since the last tick.
#[derive(Debug, Default)]
pub struct Metrics {
    pending: [AtomicU64; ALL.len()],
    /// The gauge's value, once set.
    version: Mutex<Option<u64>>,
    samples: Mutex<Vec<(Metric, u64)>>,
}

impl Metrics {
    pub fn add(&self, metric: Metric, n: u64) {
        if let Some(slot) = self.pending.get(metric.slot()) {
            slot.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn record(&self, metric: Metric, value: u64) {
        let mut samples = lock(&self.samples);
        if samples.len() < MAX_SAMPLES * 3 {
            samples.push((metric, value));
        }
    }

    pub fn set_version(&self, version: u64) {
        *lock(&self.version) = Some(version);
    }

    /// Counts one decision's audit event by outcome and failing check.
    pub fn decision(&self, event: &AuditEvent) {
        let metric = match (event.event, event.decision) {
            (EventKind::ToolCall, AuditDecision::Allow) => Metric::CallAllow,
            (EventKind::ToolCall, AuditDecision::Escalate) => Metric::CallEscalate,
            (EventKind::ToolCall, _) => match CHECKS.iter().find(|c| c.as_str() == event.check) {
                Some(check) => Metric::CallDeny(*check),
                None => return,
            },
            (_, AuditDecision::Allow) => Metric::RequestAllow,
            _ => Metric::RequestDeny,
        };
        self.add(metric, 1);
    }

    /// Everything since the last call: counters that moved, the gauge, the samples.
    pub fn take(&self) -> Vec<Delta> {
        let mut out: Vec<Delta> = ALL
            .iter()
            .zip(&self.pending)
            .filter_map(|(metric, slot)| {
                let n = slot.swap(0, Ordering::Relaxed);
                (n > 0).then_some(Delta::Add(*metric, n))
            })
            .collect();
        if let Some(version) = lock(&self.version).take() {
            out.push(Delta::Set(Metric::SyncVersion, version));
        }
        out.extend(
            lock(&self.samples)
                .drain(..)
                .map(|(metric, value)| Delta::Record(metric, value)),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_its_own_slot_and_name() {
        let names: std::collections::HashSet<_> = ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), ALL.len());
        for (index, metric) in ALL.iter().enumerate() {
            assert_eq!(metric.slot(), index);
        }
    }

    #[test]
    fn counts_are_handed_over_once() {
        let metrics = Metrics::default();
        metrics.add(Metric::CallAllow, 2);
        metrics.add(Metric::CallAllow, 1);
        metrics.record(Metric::FilterUs, 40);
        metrics.set_version(7);
        assert_eq!(
            metrics.take(),
            vec![
                Delta::Add(Metric::CallAllow, 3),
                Delta::Set(Metric::SyncVersion, 7),
                Delta::Record(Metric::FilterUs, 40)
            ]
        );
        assert_eq!(metrics.take(), vec![]);
    }
}
