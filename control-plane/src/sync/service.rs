//! `intentgate.v1.FilterSync` as tonic serves it.

use std::pin::Pin;

use intentgate_core::audit::AuditEvent;
use intentgate_proto::v1::filter_sync_server::FilterSync;
use intentgate_proto::v1::{self, sync_request};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::hub::Hub;
use super::{filters, state};
use crate::approvals::runtime as approvals;
use crate::audit;
use crate::error::Error;
use crate::store::Db;
use crate::tokens::budget;

/// Most events accepted in one audit batch.
pub const MAX_AUDIT_BATCH: usize = 1000;
const OUTBOUND_QUEUE: usize = 8;

#[derive(Clone)]
pub struct Service {
    pub db: Db,
    pub hub: Hub,
    pub changes: crate::store::changes::Changes,
}

fn status(err: Error) -> Status {
    match err {
        Error::BadRequest(m) => Status::invalid_argument(m),
        Error::NotFound(m) => Status::not_found(m),
        Error::Database(e) => {
            tracing::error!(error = %e, "database error in filter sync");
            Status::unavailable("database unavailable")
        }
        other => {
            tracing::error!(error = %other, "filter sync failed");
            Status::unavailable(other.to_string())
        }
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<v1::SyncUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl FilterSync for Service {
    type SyncStream = UpdateStream;

    async fn sync(
        &self,
        request: Request<Streaming<v1::SyncRequest>>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        let mut inbound = request.into_inner();
        let filter_id = match inbound.message().await? {
            Some(v1::SyncRequest {
                kind: Some(sync_request::Kind::Subscribe(subscribe)),
            }) if !subscribe.filter_id.is_empty() && subscribe.filter_id.len() <= 256 => {
                subscribe.filter_id
            }
            _ => {
                return Err(Status::invalid_argument(
                    "a sync stream starts with Subscribe",
                ));
            }
        };
        let (outbound, receiver) = mpsc::channel(OUTBOUND_QUEUE);
        tokio::spawn(serve_stream(self.clone(), filter_id, inbound, outbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn ingest_audit(
        &self,
        request: Request<v1::AuditBatch>,
    ) -> Result<Response<v1::AuditAck>, Status> {
        let batch = request.into_inner();
        if batch.events.len() > MAX_AUDIT_BATCH {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_AUDIT_BATCH} events per batch"
            )));
        }
        let mut events = Vec::with_capacity(batch.events.len());
        let mut rejected_ids = Vec::new();
        for record in &batch.events {
            match serde_json::from_str::<AuditEvent>(&record.event_json) {
                Ok(event)
                    if event.id == record.id
                        && event.tenant == record.tenant
                        && audit::store::check(&event).is_ok() =>
                {
                    events.push(event);
                }
                _ => {
                    tracing::warn!(filter = %batch.filter_id, id = %record.id, "malformed audit event rejected");
                    rejected_ids.push(record.id.clone());
                }
            }
        }
        let stored = audit::store::append(&self.db, &events)
            .await
            .map_err(status)?;
        filters::audit_batch(
            &self.db,
            &batch.filter_id,
            stored.len() as u64,
            batch.dropped,
        )
        .await
        .map_err(status)?;
        if batch.dropped > 0 {
            tracing::error!(filter = %batch.filter_id, dropped = batch.dropped, "a filter dropped audit events: its buffer overflowed");
        }
        Ok(Response::new(v1::AuditAck {
            stored_ids: stored.into_iter().map(|a| a.id).collect(),
            rejected_ids,
        }))
    }

    async fn create_approval(
        &self,
        request: Request<v1::ApprovalRequest>,
    ) -> Result<Response<v1::ApprovalCreated>, Status> {
        let r = request.into_inner();
        let escalated = approvals::Escalated {
            event_json: r.event_json,
            arguments_json: r.arguments_json,
            arguments_sha256: r.arguments_sha256,
        };
        let id = approvals::park(&self.db, &escalated)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ApprovalCreated { id }))
    }

    async fn await_approval(
        &self,
        request: Request<v1::AwaitApprovalRequest>,
    ) -> Result<Response<v1::ApprovalStatus>, Status> {
        let r = request.get_ref();
        let status = approvals::wait(&self.db, &self.changes, &r.id, &r.tenant, r.wait_ms)
            .await
            .map_err(status)?;
        let state = match status.state {
            approvals::State::Pending => v1::approval_status::State::Pending,
            approvals::State::Approved => v1::approval_status::State::Approved,
            approvals::State::Rejected => v1::approval_status::State::Rejected,
        };
        Ok(Response::new(v1::ApprovalStatus {
            state: state as i32,
            decided_by: status.decided_by,
            reason: status.reason,
        }))
    }

    async fn use_approval(
        &self,
        request: Request<v1::UseApprovalRequest>,
    ) -> Result<Response<v1::ApprovalUse>, Status> {
        let r = request.into_inner();
        let request = approvals::UseRequest {
            id: r.id,
            tenant: r.tenant,
            agent_id: r.agent_id,
            tool: r.tool,
            arguments_sha256: r.arguments_sha256,
        };
        let used = approvals::use_once(&self.db, &request)
            .await
            .map_err(status)?;
        Ok(Response::new(match used {
            approvals::Use::Granted {
                escalating_rule,
                decided_by,
            } => v1::ApprovalUse {
                granted: true,
                escalating_rule,
                refusal: String::new(),
                decided_by,
            },
            approvals::Use::Refused(refusal) => v1::ApprovalUse {
                refusal,
                ..Default::default()
            },
        }))
    }

    async fn lease_budget(
        &self,
        request: Request<v1::LeaseRequest>,
    ) -> Result<Response<v1::LeaseResponse>, Status> {
        let r = request.into_inner();
        let request = budget::LeaseRequest {
            counter: r.counter,
            tenant: r.tenant,
            limit: r.limit,
            want: r.want,
            filter_id: r.filter_id,
            returning_lease_id: r.returning_lease_id,
            returning_unused: r.returning_unused,
        };
        let lease = budget::lease(&self.db, &request).await.map_err(status)?;
        Ok(Response::new(v1::LeaseResponse {
            lease_id: lease.lease_id,
            granted: lease.granted,
            used: lease.used,
            ttl_ms: lease.ttl_ms,
        }))
    }
}

/// One subscription: a snapshot, then a delta whenever the version moves, until either side goes.
async fn serve_stream(
    service: Service,
    filter_id: String,
    mut inbound: Streaming<v1::SyncRequest>,
    outbound: mpsc::Sender<Result<v1::SyncUpdate, Status>>,
) {
    let _ = filters::connected(&service.db, &filter_id).await;
    let mut latest = service.hub.watch();
    let mut sent = match send_snapshot(&service, &outbound).await {
        Some(version) => version,
        None => return,
    };
    loop {
        tokio::select! {
            changed = latest.changed() => {
                if changed.is_err() {
                    break;
                }
                if *latest.borrow_and_update() <= sent {
                    continue;
                }
                match state::delta(&service.db, sent).await {
                    Ok(Some(update)) => {
                        let version = update.version;
                        if outbound.send(Ok(update)).await.is_err() {
                            break;
                        }
                        sent = version;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, filter = %filter_id, "cannot build a delta");
                    }
                }
            }
            message = inbound.message() => match message {
                Ok(Some(v1::SyncRequest { kind: Some(sync_request::Kind::Ack(ack)) })) => {
                    let _ = filters::acked(&service.db, &filter_id, ack.version).await;
                }
                Ok(Some(v1::SyncRequest { kind: Some(sync_request::Kind::Subscribe(_)) })) => {
                    match send_snapshot(&service, &outbound).await {
                        Some(version) => sent = version,
                        None => break,
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            },
        }
    }
    let _ = filters::disconnected(&service.db, &filter_id).await;
}

async fn send_snapshot(
    service: &Service,
    outbound: &mpsc::Sender<Result<v1::SyncUpdate, Status>>,
) -> Option<u64> {
    match state::snapshot(&service.db).await {
        Ok(snapshot) => {
            let version = snapshot.version;
            outbound.send(Ok(snapshot)).await.ok()?;
            Some(version)
        }
        Err(err) => {
            let _ = outbound.send(Err(status(err))).await;
            None
        }
    }
}
