//! Operators' decisions on parked calls: each approval is decided once, by an admin of its tenant,
//! and the decision is an audit event in that tenant's chain.

use intentgate_core::decision::AuditDecision;
use serde::Deserialize;

use super::Status;
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::changes::Change;
use crate::{time, validate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approve,
    Reject,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    pub decision: Verdict,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub decided_by: Option<String>,
}

/// Decides a pending approval once: a second decision is a conflict, and so is deciding one that
/// ended (nobody could use it); another tenant's is absent.
pub async fn decide(
    recorder: &Recorder,
    admin: &Admin,
    id: &str,
    request: DecideRequest,
) -> Result<()> {
    let reason = request.reason.unwrap_or_default();
    validate::optional_text("reason", &reason, 1024).map_err(Error::BadRequest)?;
    let decided_by = admin.labelled("decided_by", request.decided_by)?;
    let not_found = || Error::not_found(format!("no approval {id}"));
    let approval = super::get(recorder.db(), id).await?;
    if !admin.may_access(&approval.tenant) {
        return Err(not_found());
    }
    let now = time::now_ms();
    let conflict = |status: Status| {
        Error::Conflict(match status {
            Status::Approved | Status::Rejected => format!("approval {id} was already decided"),
            ended => format!(
                "approval {id} {}: nobody can use it any more",
                ended.describe()
            ),
        })
    };
    if approval.status != Status::Pending {
        return Err(conflict(approval.status));
    }
    if approval.expires_ms <= now {
        // Past its time, about to be ended by the sweep.
        let ended = if approval.held {
            Status::TimedOut
        } else {
            Status::Expired
        };
        return Err(conflict(ended));
    }
    let (status, decision) = match request.decision {
        Verdict::Approve => (Status::Approved, AuditDecision::Approve),
        Verdict::Reject => (Status::Rejected, AuditDecision::Reject),
    };
    let event = approval.event(
        decision,
        "admin/decide",
        &decided_by.audited,
        reason.clone(),
    )?;

    let mut tx = recorder.begin().await?;
    let updated = sqlx::query(
        "UPDATE approvals SET status = $2, decided_by = $3, decided_at = $4, decision_reason = $5 \
         WHERE id = $1 AND status = 'pending' AND expires_at > $4",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(&decided_by.label)
    .bind(now)
    .bind(&reason)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        // Decided or ended concurrently.
        let now_status = super::get(recorder.db(), id).await?.status;
        return Err(conflict(now_status));
    }
    tx.commit_announcing(
        event,
        Change::ApprovalDecided {
            tenant: approval.tenant,
            id: id.to_owned(),
            approved: request.decision == Verdict::Approve,
        },
    )
    .await?;
    Ok(())
}
