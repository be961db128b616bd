//! Ending the approvals nobody can use any more, each with an audit event in its tenant's chain
//! (an `intentgate.approval` `deny` by `control-plane`, saying how it ended), so none stays pending
//! for ever: a held call's approval whose filter stopped waiting for it (the filter or its proxy
//! went away without telling) or whose hold is over, a parked one past its lifetime, and an approved
//! one nobody used in time. Filters tell the endings they see themselves (`runtime::end`); this
//! catches the rest. Every replica sweeps; each ending is made once (its update names the status it
//! ends, so a concurrent sweep, decision or filter finds nothing to do).

use std::time::Duration;

use intentgate_core::decision::{AuditDecision, Denial};
use sqlx::Row;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Approval, COLUMNS, Settings, Status};
use crate::audit::Recorder;
use crate::error::Result;
use crate::time;

/// How often each replica sweeps.
pub const EVERY: Duration = Duration::from_secs(1);
/// Approvals ended in one statement's worth of candidates; the rest wait for the next sweep.
const BATCH: i64 = 200;
/// Who the audit events of these endings name.
pub const ACTOR: &str = "control-plane";

/// Sweeps every [`EVERY`] until `stop`.
pub fn schedule(
    recorder: Recorder,
    settings: Settings,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(err) = sweep(&recorder, &settings).await {
                tracing::warn!(error = %err, "approvals sweep failed");
            }
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    })
}

/// Ends what is due now; returns how many approvals it ended.
pub async fn sweep(recorder: &Recorder, settings: &Settings) -> Result<usize> {
    let now = time::now_ms();
    let grace = i64::try_from(settings.grace_ms).unwrap_or(i64::MAX);
    // The approvals someone could still use (a small set, indexed): due ones among them.
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}, watched_until FROM approvals \
         WHERE status IN ('pending', 'approved') AND used_at IS NULL \
         AND (expires_at <= $1 OR (held = 1 AND status = 'pending' AND watched_until <= $1)) \
         ORDER BY pos LIMIT $2"
    ))
    .bind(now)
    .bind(BATCH)
    .fetch_all(recorder.db().pool())
    .await?;
    let mut ended = 0;
    for row in &rows {
        let approval = Approval::from_row(row)?;
        let watched_until: Option<i64> = row.try_get("watched_until")?;
        if let Some((status, reason)) = due(&approval, watched_until, now, grace)
            && end(recorder, &approval, status, reason).await?
        {
            ended += 1;
        }
    }
    Ok(ended)
}

/// How `approval` ends now, if it does.
fn due(
    approval: &Approval,
    watched_until: Option<i64>,
    now: i64,
    grace: i64,
) -> Option<(Status, String)> {
    let id = &approval.id;
    let lived_ms =
        u64::try_from(approval.expires_ms.saturating_sub(approval.created_ms)).unwrap_or(0);
    let lived_secs = lived_ms.div_ceil(1000);
    let past = |extra: i64| approval.expires_ms.saturating_add(extra) <= now;
    match (approval.status, approval.held) {
        (Status::Pending, true) if past(grace) => Some((
            Status::TimedOut,
            format!("approval {id} was not decided within {lived_secs} s"),
        )),
        (Status::Pending, true) if watched_until.is_some_and(|until| until <= now) => Some((
            Status::Abandoned,
            format!(
                "approval {id} abandoned: the filter holding the call stopped waiting for it (its client or its proxy went away)"
            ),
        )),
        (Status::Pending, false) if past(0) => Some((
            Status::Expired,
            format!("approval {id} expired undecided after {lived_secs} s"),
        )),
        (Status::Approved, held) if past(if held { grace } else { 0 }) => Some((
            Status::Expired,
            format!("approval {id} expired unused {lived_secs} s after it was made"),
        )),
        _ => None,
    }
}

/// Ends `approval` as `status`, with its event, unless something else ended or used it first.
async fn end(
    recorder: &Recorder,
    approval: &Approval,
    status: Status,
    reason: String,
) -> Result<bool> {
    let mut event = approval.event(AuditDecision::Deny, "approval/end", ACTOR, reason.clone())?;
    event.apply_denial(&Denial::policy(
        reason.clone(),
        Some(approval.escalating_rule.clone()).filter(|r| !r.is_empty()),
    ));
    // Nobody was answered by this.
    event.error_code = 0;
    let mut tx = recorder.begin().await?;
    let updated = sqlx::query(
        "UPDATE approvals SET status = $2, ended_at = $3, end_reason = $4 \
         WHERE id = $1 AND status = $5 AND used_at IS NULL",
    )
    .bind(&approval.id)
    .bind(status.as_str())
    .bind(time::now_ms())
    .bind(&reason)
    .bind(approval.status.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Ok(false);
    }
    tx.commit(event).await?;
    Ok(true)
}
