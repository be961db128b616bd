//! Where a runtime's audit events wait for the tick: lines for the proxy's log (written in one call
//! per tick) and records for the control plane (shipped in batches). Both are bounded; an event that
//! does not fit is dropped and counted, never silently. A batch the control plane did not
//! acknowledge goes back to the front of the queue, past the bound: it was counted once already,
//! and losing it is what the queue exists to prevent.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use intentgate_proto::v1;

use super::host::{CallId, Host, Level};
use super::lock;
use super::metrics::{Metric, Metrics};
use crate::audit::AuditEvent;

/// Log lines one runtime keeps between two ticks.
pub const LOG_CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
struct Buffer {
    lines: Vec<String>,
    records: VecDeque<v1::AuditRecord>,
    /// Dropped since the last batch the control plane acknowledged.
    dropped: u64,
    in_flight: Option<InFlight>,
}

/// A batch on its way to the control plane.
#[derive(Debug)]
struct InFlight {
    call: CallId,
    records: Vec<v1::AuditRecord>,
    dropped: u64,
}

#[derive(Debug)]
pub struct AuditSink {
    log: bool,
    /// Records kept for the control plane; `None` without one.
    capacity: Option<usize>,
    buffer: Mutex<Buffer>,
}

impl AuditSink {
    pub fn new(log: bool, capacity: Option<usize>) -> Self {
        AuditSink {
            log,
            capacity,
            buffer: Mutex::new(Buffer::default()),
        }
    }

    /// Keeps one event for the next tick.
    pub fn push(&self, event: &AuditEvent, metrics: &Metrics) {
        let Ok(json) = serde_json::to_string(event) else {
            // An event is strings, integers and a finite float: this cannot fail; count it if it does.
            metrics.add(Metric::AuditDropped, 1);
            return;
        };
        let mut buffer = lock(&self.buffer);
        let mut kept = true;
        if self.log {
            if buffer.lines.len() < LOG_CAPACITY {
                buffer.lines.push(format!("intentgate-audit {json}"));
            } else {
                kept = false;
            }
        }
        if let Some(capacity) = self.capacity {
            if buffer.records.len() < capacity {
                buffer.records.push_back(v1::AuditRecord {
                    id: event.id.clone(),
                    tenant: event.tenant.clone(),
                    event_json: json,
                });
            } else {
                buffer.dropped += 1;
                kept = false;
            }
        }
        metrics.add(
            if kept {
                Metric::AuditEvents
            } else {
                Metric::AuditDropped
            },
            1,
        );
    }

    /// Writes the lines collected since the last tick, in one call, at the proxy's level when that
    /// is above info (a proxy printing only warnings still prints them).
    pub fn flush_log(&self, host: &mut dyn Host) {
        let lines = std::mem::take(&mut lock(&self.buffer).lines);
        if lines.is_empty() {
            return;
        }
        let level = host.log_level().max(Level::Info);
        host.log(level, &lines.join("\n"));
    }

    /// Takes up to `max` records into a batch (one batch in flight at a time). `None` when
    /// there is nothing to send or a batch is already on its way.
    pub fn take_batch(&self, filter_id: &str, max: usize) -> Option<v1::AuditBatch> {
        let mut buffer = lock(&self.buffer);
        if buffer.in_flight.is_some() || buffer.records.is_empty() {
            return None;
        }
        let take = max.max(1).min(buffer.records.len());
        let events: Vec<v1::AuditRecord> = buffer.records.drain(..take).collect();
        Some(v1::AuditBatch {
            filter_id: filter_id.to_owned(),
            events,
            dropped: buffer.dropped,
        })
    }

    /// The batch is on its way as `call`: hold it until the answer.
    pub fn sent(&self, call: CallId, batch: v1::AuditBatch) {
        let mut buffer = lock(&self.buffer);
        buffer.dropped = buffer.dropped.saturating_sub(batch.dropped);
        buffer.in_flight = Some(InFlight {
            call,
            records: batch.events,
            dropped: batch.dropped,
        });
    }

    /// The batch could not be sent: back in front of the queue.
    pub fn unsent(&self, batch: v1::AuditBatch) {
        let mut buffer = lock(&self.buffer);
        for record in batch.events.into_iter().rev() {
            buffer.records.push_front(record);
        }
    }

    /// Whether `call` is the batch in flight.
    pub fn is_in_flight(&self, call: CallId) -> bool {
        lock(&self.buffer)
            .in_flight
            .as_ref()
            .is_some_and(|f| f.call == call)
    }

    /// Settles the batch in flight: what the control plane stored or rejected is done with; the
    /// rest (everything when `ack` is `None`: no answer) goes back in front of the queue, and an
    /// unacknowledged drop count is reported again with the next batch. Returns the rejected ids.
    pub fn settle(&self, ack: Option<&v1::AuditAck>) -> Vec<String> {
        let mut buffer = lock(&self.buffer);
        let Some(flight) = buffer.in_flight.take() else {
            return Vec::new();
        };
        let unsettled: Vec<v1::AuditRecord> = match ack {
            None => {
                buffer.dropped += flight.dropped;
                flight.records
            }
            Some(ack) => {
                let settled: HashSet<&String> =
                    ack.stored_ids.iter().chain(&ack.rejected_ids).collect();
                flight
                    .records
                    .into_iter()
                    .filter(|r| !settled.contains(&r.id))
                    .collect()
            }
        };
        for record in unsettled.into_iter().rev() {
            buffer.records.push_front(record);
        }
        ack.map(|a| a.rejected_ids.clone()).unwrap_or_default()
    }
}
