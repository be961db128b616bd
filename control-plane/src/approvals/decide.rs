//! Operators' decisions on parked calls: each approval is decided once, by an admin of its tenant,
//! and the decision is an audit event in that tenant's chain.

use intentgate_core::audit::EventKind;
use intentgate_core::decision::AuditDecision;
use serde::Deserialize;
use sqlx::Row;

use super::{Approval, COLUMNS};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::changes::Change;
use crate::{audit, time, validate};

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

/// Decides a pending approval once: a second decision is a conflict; another tenant's is absent.
pub async fn decide(
    recorder: &Recorder,
    admin: &Admin,
    id: &str,
    request: DecideRequest,
) -> Result<()> {
    let reason = request.reason.unwrap_or_default();
    validate::optional_text("reason", &reason, 1024).map_err(Error::BadRequest)?;
    let decided_by = admin.labelled("decided_by", request.decided_by)?;
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS}, status FROM approvals WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(recorder.db().pool())
    .await?;
    let not_found = || Error::not_found(format!("no approval {id}"));
    let row = row.ok_or_else(not_found)?;
    let approval = Approval::from_row(&row)?;
    if !admin.may_access(&approval.tenant) {
        return Err(not_found());
    }
    let already = || Error::Conflict(format!("approval {id} was already decided"));
    if row.try_get::<String, _>("status")? != "pending" {
        return Err(already());
    }
    let (status, decision) = match request.decision {
        Verdict::Approve => ("approved", AuditDecision::Approve),
        Verdict::Reject => ("rejected", AuditDecision::Reject),
    };
    let mut event = audit::record::event(
        EventKind::Approval,
        decision,
        &approval.tenant,
        "decide",
        &decided_by.audited,
        reason.clone(),
    )?;
    event = event.with_tool(&approval.tool, approval.arguments.as_object());
    event.agent_id.clone_from(&approval.agent_id);
    event
        .capability_token_id
        .clone_from(&approval.capability_token_id);
    event
        .root_capability_token_id
        .clone_from(&approval.root_capability_token_id);
    event.pending_id = id.to_owned();
    event.rule.clone_from(&approval.escalating_rule);

    let mut tx = recorder.begin().await?;
    let updated = sqlx::query(
        "UPDATE approvals SET status = $2, decided_by = $3, decided_at = $4, decision_reason = $5 \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(status)
    .bind(&decided_by.label)
    .bind(time::now_ms())
    .bind(&reason)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(already()); // Decided concurrently.
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
