//! `intentgate.v1.FilterSync` as tonic serves it: each call translated to the domain module that
//! answers it (filters, approvals, tokens) and back; errors through the one mapping of [`super::error`].

use std::pin::Pin;

use intentgate_proto::v1::filter_sync_server::FilterSync;
use intentgate_proto::v1::{self, sync_request};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::stream;
use crate::approvals::{self, runtime};
use crate::audit::Recorder;
use crate::filters::{Hub, Ingest};
use crate::store::Db;
use crate::store::changes::Changes;
use crate::tokens::budget;

const OUTBOUND_QUEUE: usize = 8;

#[derive(Clone)]
pub struct Service {
    pub db: Db,
    pub ingest: Ingest,
    pub hub: Hub,
    pub changes: Changes,
    pub approvals: approvals::Settings,
}

impl Service {
    /// Where the changes filters make are recorded.
    fn recorder(&self) -> Recorder {
        Recorder::new(self.db.clone(), self.changes.clone())
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
        tokio::spawn(stream::serve(
            self.db.clone(),
            self.hub.clone(),
            filter_id,
            inbound,
            outbound,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn ingest_audit(
        &self,
        request: Request<v1::AuditBatch>,
    ) -> Result<Response<v1::AuditAck>, Status> {
        self.ingest
            .batch(&self.db, request.get_ref())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn create_approval(
        &self,
        request: Request<v1::ApprovalRequest>,
    ) -> Result<Response<v1::ApprovalCreated>, Status> {
        let r = request.into_inner();
        let escalated = runtime::Escalated {
            filter_id: r.filter_id,
            event_json: r.event_json,
            arguments_json: r.arguments_json,
            arguments_sha256: r.arguments_sha256,
            hold_ms: r.hold_ms,
        };
        let id = runtime::park(&self.recorder(), &self.approvals, &escalated)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(v1::ApprovalCreated { id }))
    }

    async fn await_approval(
        &self,
        request: Request<v1::AwaitApprovalRequest>,
    ) -> Result<Response<v1::ApprovalStatus>, Status> {
        let r = request.get_ref();
        let status = runtime::wait(
            &self.db,
            &self.changes,
            &self.approvals,
            &r.id,
            &r.tenant,
            r.wait_ms,
        )
        .await
        .map_err(Status::from)?;
        let state = match status.state {
            runtime::State::Pending => v1::approval_status::State::Pending,
            runtime::State::Approved => v1::approval_status::State::Approved,
            runtime::State::Rejected => v1::approval_status::State::Rejected,
            runtime::State::Ended => v1::approval_status::State::Ended,
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
        let request = runtime::UseRequest {
            id: r.id,
            tenant: r.tenant,
            agent_id: r.agent_id,
            tool: r.tool,
            arguments_sha256: r.arguments_sha256,
        };
        let used = runtime::use_once(&self.db, &self.approvals, &request)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(match used {
            runtime::Use::Granted {
                escalating_rule,
                decided_by,
            } => v1::ApprovalUse {
                granted: true,
                escalating_rule,
                refusal: String::new(),
                decided_by,
            },
            runtime::Use::Refused(refusal) => v1::ApprovalUse {
                refusal,
                ..Default::default()
            },
        }))
    }

    async fn end_approval(
        &self,
        request: Request<v1::EndApprovalRequest>,
    ) -> Result<Response<v1::ApprovalEnded>, Status> {
        let r = request.into_inner();
        let ending = match v1::end_approval_request::Ending::try_from(r.ending) {
            Ok(v1::end_approval_request::Ending::TimedOut) => runtime::Ending::TimedOut,
            Ok(v1::end_approval_request::Ending::Abandoned) => runtime::Ending::Abandoned,
            _ => {
                return Err(Status::invalid_argument(
                    "ending must be TIMED_OUT or ABANDONED",
                ));
            }
        };
        let request = runtime::EndRequest {
            id: r.id,
            tenant: r.tenant,
            ending,
            event_json: r.event_json,
        };
        let ended = runtime::end(&self.recorder(), &request)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(v1::ApprovalEnded { ended }))
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
        let lease = budget::lease(&self.db, &request)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(v1::LeaseResponse {
            lease_id: lease.lease_id,
            granted: lease.granted,
            used: lease.used,
            ttl_ms: lease.ttl_ms,
        }))
    }
}
