//! The root context's link to the control plane: the Sync stream (subscribe, apply each update to
//! this VM's gateway state, acknowledge), reconnection with exponential backoff, shipping buffered
//! audit events, and giving back expired budget leases. Every VM of an Envoy keeps its own stream, so
//! each worker applies every update itself; while the control plane is away the last good state stays.

use std::collections::HashSet;

use intentgate_proto::v1::{self, sync_request};
use prost::Message;
use proxy_wasm::types::LogLevel;

use crate::audit;
use crate::config::ControlPlaneConfig;
use crate::host;
use crate::root::Shared;

const FIRST_BACKOFF_MS: u64 = 100;

/// A batch of audit events on its way to the control plane.
struct InFlight {
    token: u32,
    raw: Vec<Vec<u8>>,
    ids: Vec<String>,
    dropped: u64,
}

pub struct ControlPlaneClient {
    stream: Option<u32>,
    next_attempt_ms: i64,
    backoff_ms: u64,
    audit: Option<InFlight>,
    givebacks: HashSet<u32>,
}

impl ControlPlaneClient {
    pub fn new() -> Self {
        ControlPlaneClient {
            stream: None,
            next_attempt_ms: 0,
            backoff_ms: FIRST_BACKOFF_MS,
            audit: None,
            givebacks: HashSet::new(),
        }
    }

    pub fn tick(&mut self, shared: &Shared, config: &ControlPlaneConfig) {
        let now = host::now_ms();
        if self.stream.is_none() && now >= self.next_attempt_ms {
            self.connect(shared, config, now);
        }
        if self.audit.is_none() {
            self.ship_audit(shared, config);
        }
        self.give_back_expired(shared, config, now);
    }

    fn connect(&mut self, shared: &Shared, config: &ControlPlaneConfig, now: i64) {
        let known_version = shared.state.try_borrow().map_or(0, |s| s.version);
        let subscribe = v1::SyncRequest {
            kind: Some(sync_request::Kind::Subscribe(v1::Subscribe {
                filter_id: shared.filter_id.clone(),
                known_version,
            })),
        };
        match host::open_grpc_stream(&config.cluster, "Sync", config.metadata().as_deref()) {
            Ok(token) if host::send_grpc_stream_message(token, &subscribe.encode_to_vec()) => {
                self.stream = Some(token);
            }
            Ok(token) => {
                host::cancel_grpc_stream(token);
                self.retry_later(config, now);
            }
            Err(_) => self.retry_later(config, now),
        }
    }

    fn retry_later(&mut self, config: &ControlPlaneConfig, now: i64) {
        self.next_attempt_ms =
            now.saturating_add(i64::try_from(self.backoff_ms).unwrap_or(i64::MAX));
        self.backoff_ms = self.backoff_ms.saturating_mul(2).min(config.max_backoff_ms);
    }

    pub fn on_stream_message(&mut self, shared: &Shared, token: u32, size: usize) {
        if self.stream != Some(token) {
            return;
        }
        let update = match v1::SyncUpdate::decode(host::grpc_message(size).as_slice()) {
            Ok(update) => update,
            Err(err) => {
                host::log(
                    LogLevel::Error,
                    &format!("intentgate: undecodable sync update: {err}"),
                );
                shared.metrics.sync_rejected();
                return;
            }
        };
        let applied = match shared.state.try_borrow() {
            Ok(state) => state.apply(&update),
            Err(_) => return,
        };
        match applied {
            Ok(next) => {
                let version = next.version;
                if let Ok(mut state) = shared.state.try_borrow_mut() {
                    *state = next;
                }
                shared.metrics.sync_applied(version);
                self.backoff_ms = FIRST_BACKOFF_MS;
                let ack = v1::SyncRequest {
                    kind: Some(sync_request::Kind::Ack(v1::Ack { version })),
                };
                host::send_grpc_stream_message(token, &ack.encode_to_vec());
            }
            Err(intentgate_core::sync::SyncError::VersionGap { .. }) => {
                // Missed an update: subscribe again, which brings a snapshot.
                host::cancel_grpc_stream(token);
                self.stream = None;
                self.next_attempt_ms = 0;
            }
            Err(err) => {
                shared.metrics.sync_rejected();
                host::log(
                    LogLevel::Error,
                    &format!("intentgate: sync update refused, keeping version in force: {err}"),
                );
            }
        }
    }

    pub fn on_stream_close(&mut self, token: u32, status: u32, config: &ControlPlaneConfig) {
        if self.stream == Some(token) {
            self.stream = None;
            host::log(
                LogLevel::Warn,
                &format!(
                    "intentgate: control plane stream closed (grpc status {status}); reconnecting"
                ),
            );
            self.retry_later(config, host::now_ms());
        }
    }

    fn ship_audit(&mut self, shared: &Shared, config: &ControlPlaneConfig) {
        let Some((batch, raw)) = audit::take_batch(&shared.filter_id, config.audit_batch_events)
        else {
            return;
        };
        let ids = batch.events.iter().map(|e| e.id.clone()).collect();
        match host::dispatch_grpc_call(
            &config.cluster,
            "IngestAudit",
            &batch.encode_to_vec(),
            config.call_timeout(),
            config.metadata().as_deref(),
        ) {
            Ok(token) => {
                self.audit = Some(InFlight {
                    token,
                    raw,
                    ids,
                    dropped: batch.dropped,
                });
            }
            Err(_) => audit::requeue(raw, batch.dropped),
        }
    }

    fn give_back_expired(&mut self, shared: &Shared, config: &ControlPlaneConfig, now: i64) {
        let expired = match shared.leases.try_borrow_mut() {
            Ok(mut pool) => pool.take_expired(now),
            Err(_) => return,
        };
        for giveback in expired {
            let request = v1::LeaseRequest {
                filter_id: shared.filter_id.clone(),
                counter: giveback.counter,
                returning_lease_id: giveback.lease_id,
                returning_unused: giveback.unused,
                ..Default::default()
            };
            // Best effort: a lease not given back counts as fully used, which never over-allows.
            if let Ok(token) = host::dispatch_grpc_call(
                &config.cluster,
                "LeaseBudget",
                &request.encode_to_vec(),
                config.call_timeout(),
                config.metadata().as_deref(),
            ) {
                self.givebacks.insert(token);
            }
        }
    }

    /// Answers to unary calls made from the root context.
    pub fn on_call_response(&mut self, token: u32, status: u32, size: usize) {
        if self.givebacks.remove(&token) {
            return;
        }
        let Some(flight) = self.audit.take_if(|f| f.token == token) else {
            return;
        };
        let ack = (status == 0)
            .then(|| v1::AuditAck::decode(host::grpc_message(size).as_slice()).ok())
            .flatten();
        let Some(ack) = ack else {
            host::log(
                LogLevel::Warn,
                &format!(
                    "intentgate: audit batch not acknowledged (grpc status {status}); requeued"
                ),
            );
            audit::requeue(flight.raw, flight.dropped);
            return;
        };
        for id in &ack.rejected_ids {
            host::log(
                LogLevel::Error,
                &format!("intentgate: control plane rejected audit event {id}"),
            );
        }
        let settled: HashSet<&String> = ack.stored_ids.iter().chain(&ack.rejected_ids).collect();
        let unsettled: Vec<Vec<u8>> = flight
            .raw
            .into_iter()
            .zip(&flight.ids)
            .filter(|(_, id)| !settled.contains(id))
            .map(|(raw, _)| raw)
            .collect();
        if !unsettled.is_empty() {
            audit::requeue(unsettled, 0);
        }
    }
}
