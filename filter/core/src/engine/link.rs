//! A runtime's link to the control plane: the Sync stream (subscribe with the version held, apply
//! each update, acknowledge), reconnection with exponential backoff, shipping audit batches and the
//! endings of held calls, and giving back expired budget leases. While the control plane is away
//! the last good state stays.

use std::collections::HashSet;

use intentgate_proto::v1::{self, sync_request};
use prost::Message;

use super::host::{CallId, Host, Level, Rpc};
use super::lock;
use super::metrics::Metric;
use super::runtime::Runtime;
use super::settings::ControlPlaneConfig;
use crate::sync::SyncError;

const FIRST_BACKOFF_MS: u64 = 100;

#[derive(Debug)]
pub struct Link {
    stream: Option<CallId>,
    next_attempt_ms: i64,
    backoff_ms: u64,
    /// Lease givebacks on their way (their answers need nothing done).
    givebacks: HashSet<CallId>,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            stream: None,
            next_attempt_ms: 0,
            backoff_ms: FIRST_BACKOFF_MS,
            givebacks: HashSet::new(),
        }
    }
}

impl Link {
    fn retry_later(&mut self, config: &ControlPlaneConfig, now_ms: i64) {
        self.next_attempt_ms =
            now_ms.saturating_add(i64::try_from(self.backoff_ms).unwrap_or(i64::MAX));
        self.backoff_ms = self.backoff_ms.saturating_mul(2).min(config.max_backoff_ms);
    }
}

impl Runtime {
    pub(super) fn tick_link(&self, host: &mut dyn Host, config: &ControlPlaneConfig, now_ms: i64) {
        self.connect(host, config, now_ms);
        self.ship_audit(host, config);
        self.ship_endings(host, config, now_ms);
        self.give_back_expired(host, config, now_ms);
    }

    fn connect(&self, host: &mut dyn Host, config: &ControlPlaneConfig, now_ms: i64) {
        let mut link = lock(&self.link);
        if link.stream.is_some() || now_ms < link.next_attempt_ms {
            return;
        }
        let subscribe = v1::SyncRequest {
            kind: Some(sync_request::Kind::Subscribe(v1::Subscribe {
                filter_id: self.filter_id().to_owned(),
                known_version: self.version(),
            })),
        };
        match host.open_sync(config, &subscribe.encode_to_vec()) {
            Some(stream) => link.stream = Some(stream),
            None => link.retry_later(config, now_ms),
        }
    }

    /// One message on the Sync stream.
    pub fn on_sync_message(&self, host: &mut dyn Host, stream: CallId, message: &[u8]) {
        if lock(&self.link).stream != Some(stream) {
            return;
        }
        let update = match v1::SyncUpdate::decode(message) {
            Ok(update) => update,
            Err(err) => {
                host.log(
                    Level::Error,
                    &format!("intentgate: undecodable sync update: {err}"),
                );
                self.metrics.add(Metric::SyncRejected, 1);
                return;
            }
        };
        let applied = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .apply(&update);
        match applied {
            Ok(next) => {
                let version = next.version;
                *self.state.write().unwrap_or_else(|e| e.into_inner()) = next;
                self.metrics.add(Metric::SyncUpdates, 1);
                self.metrics.set_version(version);
                lock(&self.link).backoff_ms = FIRST_BACKOFF_MS;
                let ack = v1::SyncRequest {
                    kind: Some(sync_request::Kind::Ack(v1::Ack { version })),
                };
                host.send_sync(stream, &ack.encode_to_vec());
            }
            Err(SyncError::VersionGap { .. }) => {
                // Missed an update: subscribe again at once (not on the next tick), which brings
                // a snapshot.
                host.close_sync(stream);
                {
                    let mut link = lock(&self.link);
                    link.stream = None;
                    link.next_attempt_ms = 0;
                }
                if let Some(config) = &self.settings.control_plane {
                    let now_ms = super::now_ms(host);
                    self.connect(host, config, now_ms);
                }
            }
            Err(err) => {
                self.metrics.add(Metric::SyncRejected, 1);
                host.log(
                    Level::Error,
                    &format!("intentgate: sync update refused, keeping version in force: {err}"),
                );
            }
        }
    }

    /// The Sync stream closed: reconnect after the backoff.
    pub fn on_sync_close(&self, host: &mut dyn Host, stream: CallId, status: u32) {
        let Some(config) = &self.settings.control_plane else {
            return;
        };
        let mut link = lock(&self.link);
        if link.stream != Some(stream) {
            return;
        }
        link.stream = None;
        let now_ms = super::now_ms(host);
        link.retry_later(config, now_ms);
        drop(link);
        host.log(
            Level::Warn,
            &format!(
                "intentgate: control plane stream closed (grpc status {status}); reconnecting"
            ),
        );
    }

    fn ship_audit(&self, host: &mut dyn Host, config: &ControlPlaneConfig) {
        let Some(batch) = self
            .audit
            .take_batch(self.filter_id(), config.audit_batch_events)
        else {
            return;
        };
        match host.grpc_call(
            config,
            Rpc::IngestAudit,
            &batch.encode_to_vec(),
            config.call_timeout_ms,
        ) {
            Some(call) => self.audit.sent(call, batch),
            None => self.audit.unsent(batch),
        }
    }

    fn give_back_expired(&self, host: &mut dyn Host, config: &ControlPlaneConfig, now_ms: i64) {
        let expired = lock(&self.leases).take_expired(now_ms);
        for giveback in expired {
            let request = v1::LeaseRequest {
                filter_id: self.filter_id().to_owned(),
                counter: giveback.counter,
                returning_lease_id: giveback.lease_id,
                returning_unused: giveback.unused,
                ..Default::default()
            };
            // Best effort: a lease not given back counts as fully used, which never over-allows.
            if let Some(call) = host.grpc_call(
                config,
                Rpc::LeaseBudget,
                &request.encode_to_vec(),
                config.call_timeout_ms,
            ) {
                lock(&self.link).givebacks.insert(call);
            }
        }
    }

    /// The answer to a call the runtime made (audit batch, lease giveback, an approval's ending);
    /// `false` when `call` is not one of them.
    pub fn on_call_answer(
        &self,
        host: &mut dyn Host,
        call: CallId,
        status: u32,
        message: &[u8],
    ) -> bool {
        if lock(&self.link).givebacks.remove(&call) || self.on_ending_answer(host, call, status) {
            return true;
        }
        if !self.audit.is_in_flight(call) {
            return false;
        }
        let ack = (status == 0)
            .then(|| v1::AuditAck::decode(message).ok())
            .flatten();
        if ack.is_none() {
            host.log(
                Level::Warn,
                &format!(
                    "intentgate: audit batch not acknowledged (grpc status {status}); requeued"
                ),
            );
        }
        for id in self.audit.settle(ack.as_ref()) {
            host.log(
                Level::Error,
                &format!("intentgate: control plane rejected audit event {id}"),
            );
        }
        true
    }
}
