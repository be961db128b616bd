//! Held calls that ended without a human's decision: the tenant's timeout passed (the call was
//! answered -32012), or the client went away. The control plane is told (`EndApproval`) with the
//! call's final audit event, which it writes in the transaction that ends the approval, so the
//! approval leaves the pending list together with the event saying how it ended. Endings are told on
//! the tick and told again until answered; one the control plane refuses for good (or one too many
//! while it is away) goes to the audit queue instead, so its event is not lost, and the control
//! plane ends that approval on its own.

use std::collections::{HashMap, VecDeque};

use intentgate_proto::v1;
use prost::Message as _;

use super::host::{CallId, Host, Level, Rpc};
use super::lock;
use super::runtime::Runtime;
use super::settings::ControlPlaneConfig;
use crate::audit::AuditEvent;

pub use v1::end_approval_request::Ending;

/// Endings a runtime keeps while the control plane does not answer.
const CAPACITY: usize = 10_000;

/// gRPC statuses that will not change on a retry: invalid argument, not found, failed
/// precondition, unimplemented (a control plane that does not know `EndApproval`).
const REFUSED_FOR_GOOD: [u32; 4] = [3, 5, 9, 12];

/// One ending to tell.
#[derive(Debug)]
struct Told {
    approval: String,
    tenant: String,
    ending: Ending,
    /// Without an id until it is first sent (an abandoned call ends where no clock is at hand): the
    /// tick stamps its id and time.
    event: AuditEvent,
}

#[derive(Debug, Default)]
pub(super) struct Endings {
    waiting: VecDeque<Told>,
    in_flight: HashMap<CallId, Told>,
}

impl Runtime {
    /// Approval `approval` of `tenant` ended without a decision; `event` is the call's final audit
    /// event.
    pub(super) fn end_approval(
        &self,
        approval: String,
        tenant: String,
        ending: Ending,
        mut event: AuditEvent,
    ) {
        event.pending_id.clone_from(&approval);
        lock(&self.endings).waiting.push_back(Told {
            approval,
            tenant,
            ending,
            event,
        });
    }

    /// Stamps an event that ended where no clock was at hand.
    fn stamp(&self, event: &mut AuditEvent, now_ms: i64) {
        if event.id.is_empty() {
            event.id = self.next_id(now_ms);
            event.ts = crate::time::rfc3339_millis(now_ms);
        }
    }

    /// Tells the control plane every ending waiting (on the tick).
    pub(super) fn ship_endings(
        &self,
        host: &mut dyn Host,
        config: &ControlPlaneConfig,
        now_ms: i64,
    ) {
        let waiting = std::mem::take(&mut lock(&self.endings).waiting);
        let excess = waiting.len().saturating_sub(CAPACITY);
        let mut unsent = VecDeque::new();
        for (index, mut told) in waiting.into_iter().enumerate() {
            self.stamp(&mut told.event, now_ms);
            if index < excess {
                self.audit.push(&told.event, &self.metrics);
                continue;
            }
            let request = v1::EndApprovalRequest {
                filter_id: self.filter_id().to_owned(),
                id: told.approval.clone(),
                tenant: told.tenant.clone(),
                ending: told.ending as i32,
                event_json: told.event.canonical(),
            };
            match host.grpc_call(
                config,
                Rpc::EndApproval,
                &request.encode_to_vec(),
                config.call_timeout_ms,
            ) {
                Some(call) => {
                    lock(&self.endings).in_flight.insert(call, told);
                }
                None => unsent.push_back(told),
            }
        }
        if !unsent.is_empty() {
            let mut endings = lock(&self.endings);
            unsent.append(&mut endings.waiting);
            endings.waiting = unsent;
        }
    }

    /// The proxy is stopping: the endings not told go with the audit events (the control plane ends
    /// those approvals on its own).
    pub(super) fn drop_endings(&self, host: &mut dyn Host) {
        let endings = std::mem::take(&mut *lock(&self.endings));
        if endings.waiting.is_empty() && endings.in_flight.is_empty() {
            return;
        }
        let now_ms = super::now_ms(host);
        for mut told in endings
            .waiting
            .into_iter()
            .chain(endings.in_flight.into_values())
        {
            self.stamp(&mut told.event, now_ms);
            self.audit.push(&told.event, &self.metrics);
        }
    }

    /// The control plane's answer to an ending; `false` when `call` is not one.
    pub(super) fn on_ending_answer(&self, host: &mut dyn Host, call: CallId, status: u32) -> bool {
        let Some(told) = lock(&self.endings).in_flight.remove(&call) else {
            return false;
        };
        if status == 0 {
            return true;
        }
        if REFUSED_FOR_GOOD.contains(&status) {
            host.log(
                Level::Warn,
                &format!(
                    "intentgate: the control plane refused the ending of approval {} (grpc status {status}); its event goes with the audit events",
                    told.approval
                ),
            );
            self.audit.push(&told.event, &self.metrics);
        } else {
            lock(&self.endings).waiting.push_front(told);
        }
        true
    }
}
