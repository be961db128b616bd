//! Where audit events go. Without a control plane: a JSON line in Envoy's log. With one: a bounded
//! queue in Envoy shared memory that every VM of this Envoy drains in batches to the control plane;
//! a batch that is not acknowledged goes back into the queue, so nothing is lost while the control
//! plane is away. When the queue is full, events are dropped and counted, never silently.

use intentgate_core::audit::AuditEvent;
use intentgate_proto::v1;
use prost::Message;
use proxy_wasm::types::LogLevel;

use crate::counters;
use crate::host;
use crate::metrics::Metrics;

const QUEUE: &str = "intentgate/audit";
const QUEUED: &str = "intentgate/audit/queued";
const DROPPED: &str = "intentgate/audit/dropped";

/// Writes one event to the configured sinks.
pub fn record(event: &AuditEvent, log: bool, buffer: Option<u64>, metrics: &Metrics) {
    let json = match serde_json::to_string(event) {
        Ok(json) => json,
        Err(err) => {
            host::log(
                LogLevel::Error,
                &format!("intentgate: audit event {} unserializable: {err}", event.id),
            );
            return;
        }
    };
    if log {
        host::log(host::audit_log_level(), &format!("intentgate-audit {json}"));
    }
    if let Some(capacity) = buffer {
        let record = v1::AuditRecord {
            id: event.id.clone(),
            tenant: event.tenant.clone(),
            event_json: json,
        };
        if !enqueue(&record.encode_to_vec(), capacity) {
            metrics.audit_dropped();
            let _ = counters::update(DROPPED, 0, |n| (Some(n + 1), ()));
            host::log(
                LogLevel::Error,
                &format!("intentgate: audit buffer full, event {} dropped", event.id),
            );
            return;
        }
    }
    metrics.audit_written();
}

/// Reserves a place in the bounded queue, then enqueues.
fn enqueue(record: &[u8], capacity: u64) -> bool {
    let Some(queue) = host::register_queue(QUEUE) else {
        return false;
    };
    let reserved = counters::update(QUEUED, 0, |n| {
        if n >= capacity {
            (None, false)
        } else {
            (Some(n + 1), true)
        }
    });
    if reserved != Ok(true) {
        return false;
    }
    if host::enqueue(queue, record) {
        return true;
    }
    let _ = counters::update(QUEUED, 0, |n| (Some(n.saturating_sub(1)), ()));
    false
}

/// Takes up to `max` queued events, and the count of events dropped since the last batch.
pub fn take_batch(filter_id: &str, max: usize) -> Option<(v1::AuditBatch, Vec<Vec<u8>>)> {
    let queue = host::register_queue(QUEUE)?;
    let mut raw = Vec::new();
    while raw.len() < max {
        match host::dequeue(queue) {
            Some(item) => raw.push(item),
            None => break,
        }
    }
    if raw.is_empty() {
        return None;
    }
    let taken = raw.len() as u64;
    let _ = counters::update(QUEUED, 0, |n| (Some(n.saturating_sub(taken)), ()));
    let mut dropped = counters::update(DROPPED, 0, |n| (Some(0), n)).unwrap_or(0);
    // Only this filter writes the queue, so an undecodable entry is memory corruption: count it.
    let mut events = Vec::with_capacity(raw.len());
    raw.retain(|bytes| match v1::AuditRecord::decode(bytes.as_slice()) {
        Ok(record) => {
            events.push(record);
            true
        }
        Err(_) => {
            dropped += 1;
            false
        }
    });
    Some((
        v1::AuditBatch {
            filter_id: filter_id.to_owned(),
            events,
            dropped,
        },
        raw,
    ))
}

/// Puts events back in the queue after a failed or partial delivery. They go back even past the
/// capacity: they were already counted once, and losing them is what the queue exists to prevent.
pub fn requeue(raw: Vec<Vec<u8>>, dropped: u64) {
    let Some(queue) = host::register_queue(QUEUE) else {
        host::log(
            LogLevel::Critical,
            &format!(
                "intentgate: audit queue unavailable, {} events lost",
                raw.len()
            ),
        );
        return;
    };
    let count = raw.len() as u64;
    for item in raw {
        if !host::enqueue(queue, &item) {
            host::log(
                LogLevel::Critical,
                "intentgate: audit event lost on requeue",
            );
        }
    }
    let _ = counters::update(QUEUED, 0, |n| (Some(n + count), ()));
    if dropped > 0 {
        let _ = counters::update(DROPPED, 0, |n| (Some(n + dropped), ()));
    }
}
