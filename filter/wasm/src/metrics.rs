//! Envoy stats the filter keeps (they appear under `wasmcustom.`): decisions by outcome and failing
//! check, and histograms of token verification and evaluation time.

use intentgate_core::audit::{AuditEvent, EventKind};
use intentgate_core::decision::AuditDecision;
use proxy_wasm::types::MetricType;

use crate::host;

const CHECKS: [&str; 5] = ["envelope", "capability", "intent", "policy", "budget"];

pub struct Metrics {
    call_allow: Option<u32>,
    call_escalate: Option<u32>,
    /// Denied `tools/call`s, by check in the order of `CHECKS`.
    call_deny: [Option<u32>; 5],
    request_allow: Option<u32>,
    request_deny: Option<u32>,
    verify_us: Option<u32>,
    eval_us: Option<u32>,
    filter_us: Option<u32>,
    audit_events: Option<u32>,
    audit_dropped: Option<u32>,
    sync_updates: Option<u32>,
    sync_rejected: Option<u32>,
    sync_version: Option<u32>,
}

impl Metrics {
    pub fn define() -> Self {
        let counter = |name: &str| host::define_metric(MetricType::Counter, name);
        Metrics {
            call_allow: counter("intentgate.tool_calls.allow"),
            call_escalate: counter("intentgate.tool_calls.escalate"),
            call_deny: CHECKS.map(|check| counter(&format!("intentgate.tool_calls.deny.{check}"))),
            request_allow: counter("intentgate.requests.allow"),
            request_deny: counter("intentgate.requests.deny"),
            verify_us: host::define_metric(MetricType::Histogram, "intentgate.verify_us"),
            eval_us: host::define_metric(MetricType::Histogram, "intentgate.eval_us"),
            filter_us: host::define_metric(MetricType::Histogram, "intentgate.filter_us"),
            audit_events: counter("intentgate.audit.events"),
            audit_dropped: counter("intentgate.audit.dropped"),
            sync_updates: counter("intentgate.sync.updates"),
            sync_rejected: counter("intentgate.sync.rejected"),
            sync_version: host::define_metric(MetricType::Gauge, "intentgate.sync.version"),
        }
    }

    pub fn decision(&self, event: &AuditEvent) {
        let id = match (event.event, event.decision) {
            (EventKind::ToolCall, AuditDecision::Allow) => self.call_allow,
            (EventKind::ToolCall, AuditDecision::Escalate) => self.call_escalate,
            (EventKind::ToolCall, _) => CHECKS
                .iter()
                .position(|c| *c == event.check)
                .and_then(|i| self.call_deny.get(i).copied().flatten()),
            (_, AuditDecision::Allow) => self.request_allow,
            _ => self.request_deny,
        };
        if let Some(id) = id {
            host::increment_metric(id);
        }
    }

    pub fn audit_written(&self) {
        if let Some(id) = self.audit_events {
            host::increment_metric(id);
        }
    }

    pub fn audit_dropped(&self) {
        if let Some(id) = self.audit_dropped {
            host::increment_metric(id);
        }
    }

    pub fn sync_applied(&self, version: u64) {
        if let Some(id) = self.sync_updates {
            host::increment_metric(id);
        }
        if let Some(id) = self.sync_version {
            host::record_metric(id, version);
        }
    }

    pub fn sync_rejected(&self) {
        if let Some(id) = self.sync_rejected {
            host::increment_metric(id);
        }
    }

    pub fn verify(&self, micros: u64) {
        if let Some(id) = self.verify_us {
            host::record_metric(id, micros);
        }
    }

    /// The filter's own time on one request, all callbacks together.
    pub fn filter(&self, micros: u64) {
        if let Some(id) = self.filter_us {
            host::record_metric(id, micros);
        }
    }

    pub fn eval(&self, micros: u64) {
        if let Some(id) = self.eval_us {
            host::record_metric(id, micros);
        }
    }
}
