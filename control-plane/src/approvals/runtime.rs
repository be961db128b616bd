//! The runtime side of approvals (SPEC §4), as filters reach it: a call the policy escalated is
//! parked with its `escalate` audit event in one transaction (so notifications can go out while the
//! call waits), a filter waits for the human's decision, an approval is used once, only for the
//! tenant, agent, tool and arguments it was made for, and a held call that ended without a decision
//! ends its approval with the call's final audit event, again in one transaction.

use std::time::Duration;

use intentgate_core::audit::AuditEvent;
use intentgate_core::decision::AuditDecision;
use serde_json::{Map, Value};
use sqlx::Row;

use super::{Lifetime, NewApproval, Settings};
use crate::audit::Recorder;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::changes::{Change, Changes};
use crate::tenants::settings::MAX_APPROVAL_TIMEOUT_SECS;
use crate::{tenants, time};

/// Longest single wait a filter may ask for; it asks again if the tenant's timeout is longer.
pub const MAX_WAIT_MS: u32 = 60_000;
/// How often a wait rereads the approval (a decision made through another replica).
const POLL: Duration = Duration::from_millis(250);

/// A call a filter's policy escalated, as the filter sends it.
#[derive(Debug, Clone, Default)]
pub struct Escalated {
    pub filter_id: String,
    /// The `escalate` audit event as JSON; its `pending_id` becomes the new approval's id.
    pub event_json: String,
    /// The call's arguments object as sent, and its digest.
    pub arguments_json: String,
    pub arguments_sha256: String,
    /// How long the filter holds the call; 0 when it answered -32019 (parked).
    pub hold_ms: u64,
}

/// Where an approval stands, as a waiting filter needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Approved,
    Rejected,
    /// Ended without a decision: timed out, abandoned, expired.
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    pub decided_by: String,
    pub reason: String,
}

/// A filter about to forward a call on the strength of an approval.
#[derive(Debug, Clone, Default)]
pub struct UseRequest {
    pub id: String,
    pub tenant: String,
    pub agent_id: String,
    pub tool: String,
    pub arguments_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Use {
    /// The approval sets aside `escalating_rule`'s escalation for this one call.
    Granted {
        escalating_rule: String,
        decided_by: String,
    },
    /// Why the approval does not cover this call.
    Refused(String),
}

/// Parks an escalated call, with its `escalate` event, and returns its approval's id. A held one
/// lives as long as its hold; a parked one for the tenant's `approval_lifetime_secs`.
pub async fn park(recorder: &Recorder, settings: &Settings, request: &Escalated) -> Result<String> {
    let mut event: AuditEvent = serde_json::from_str(&request.event_json)
        .map_err(|e| Error::bad_request(format!("event_json: {e}")))?;
    if event.decision != AuditDecision::Escalate {
        return Err(Error::bad_request("event_json must be an escalate event"));
    }
    let arguments: Map<String, Value> = serde_json::from_str(&request.arguments_json)
        .map_err(|e| Error::bad_request(format!("arguments_json must be an object: {e}")))?;
    if super::arguments_digest(&arguments) != request.arguments_sha256 {
        return Err(Error::bad_request(
            "arguments_sha256 does not match arguments_json",
        ));
    }
    let lifetime = if request.hold_ms > 0 {
        Lifetime::Held {
            filter_id: request.filter_id.clone(),
            hold_ms: request.hold_ms.min(MAX_APPROVAL_TIMEOUT_SECS * 1000),
            grace_ms: settings.grace_ms,
        }
    } else {
        let tenant = tenants::settings::get(recorder.db(), &event.tenant).await?;
        Lifetime::Parked {
            lifetime_ms: tenant.settings.approval_lifetime_secs.saturating_mul(1000),
        }
    };
    let new = NewApproval {
        lifetime,
        tenant: event.tenant.clone(),
        agent_id: event.agent_id.clone(),
        capability_token_id: event.capability_token_id.clone(),
        root_capability_token_id: event.root_capability_token_id.clone(),
        tool: event.tool.clone(),
        arguments,
        escalating_rule: event.rule.clone(),
        reason: event.reason.clone(),
    };
    let mut tx = recorder.begin().await?;
    let id = super::create_in(&mut tx, new).await?;
    event.pending_id.clone_from(&id);
    tx.commit(event).await?;
    Ok(id)
}

/// The approval's state, waiting up to `wait_ms` (at most [`MAX_WAIT_MS`]) for a decision. While a
/// filter waits on a held call, and for the grace after, it counts as holding the call; a wait cut
/// short (the filter, or its proxy, went away) leaves it the grace alone to ask again.
pub async fn wait(
    db: &Db,
    changes: &Changes,
    settings: &Settings,
    id: &str,
    tenant: &str,
    wait_ms: u32,
) -> Result<Status> {
    let wait_ms = wait_ms.min(MAX_WAIT_MS);
    let grace_ms = i64::try_from(settings.grace_ms).unwrap_or(i64::MAX);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(wait_ms));
    let mut decided = changes.subscribe();
    let mut watch = Watch {
        db: db.clone(),
        id: id.to_owned(),
        grace_ms,
        done: false,
    };
    watched(
        db,
        id,
        time::now_ms()
            .saturating_add(i64::from(wait_ms))
            .saturating_add(grace_ms),
    )
    .await?;
    let status = loop {
        let status = status(db, id, tenant).await?;
        if status.state != State::Pending {
            break status;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break status;
        }
        // Woken by a decision made here; a decision made through another replica is found by the poll.
        let _ = tokio::time::timeout(POLL.min(deadline - now), async {
            while let Ok(committed) = decided.recv().await {
                if matches!(&committed.change, Change::ApprovalDecided { id: decided, .. } if decided == id) {
                    break;
                }
            }
        })
        .await;
    };
    watch.done = true;
    watched(db, id, time::now_ms().saturating_add(grace_ms)).await?;
    Ok(status)
}

/// A filter's wait on a held call, until it answers.
struct Watch {
    db: Db,
    id: String,
    grace_ms: i64,
    done: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // The filter's call went away before its answer: the grace starts now.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (db, id) = (self.db.clone(), std::mem::take(&mut self.id));
            let until = time::now_ms().saturating_add(self.grace_ms);
            runtime.spawn(async move {
                if let Err(err) = watched(&db, &id, until).await {
                    tracing::warn!(error = %err, approval = %id, "cannot record that no filter waits");
                }
            });
        }
    }
}

/// Records until when the filter holding approval `id` is known to wait for it.
async fn watched(db: &Db, id: &str, until: i64) -> Result<()> {
    sqlx::query(
        "UPDATE approvals SET watched_until = $2 WHERE id = $1 AND held = 1 AND status = 'pending'",
    )
    .bind(id)
    .bind(until)
    .execute(db.pool())
    .await?;
    Ok(())
}

async fn status(db: &Db, id: &str, tenant: &str) -> Result<Status> {
    let row = sqlx::query(
        "SELECT status, decided_by, decision_reason, end_reason FROM approvals \
         WHERE id = $1 AND tenant = $2",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| Error::not_found(format!("no approval {id}")))?;
    let text = |column: &str| -> Result<String> {
        Ok(row
            .try_get::<Option<String>, _>(column)?
            .unwrap_or_default())
    };
    let (state, reason) = match row.try_get::<String, _>("status")?.as_str() {
        "pending" => (State::Pending, String::new()),
        "approved" => (State::Approved, text("decision_reason")?),
        "rejected" => (State::Rejected, text("decision_reason")?),
        _ => (State::Ended, text("end_reason")?),
    };
    Ok(Status {
        state,
        decided_by: text("decided_by")?,
        reason,
    })
}

/// Uses an approval for one call. Refusals say why; nothing is marked used unless granted.
pub async fn use_once(db: &Db, settings: &Settings, request: &UseRequest) -> Result<Use> {
    let grace_ms = settings.grace_ms;
    let refused = |why: &str| Use::Refused(why.to_owned());
    let mut tx = db.begin().await?;
    // Taking the row's write lock first serialises two uses of one approval.
    let touched =
        sqlx::query("UPDATE approvals SET used_at = used_at WHERE id = $1 AND tenant = $2")
            .bind(&request.id)
            .bind(&request.tenant)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if touched == 0 {
        return Ok(refused("no such approval for this tenant"));
    }
    let row = sqlx::query(
        "SELECT status, agent_id, tool, arguments_sha256, escalating_rule, decided_by, used_at, \
         held, expires_at FROM approvals WHERE id = $1",
    )
    .bind(&request.id)
    .fetch_one(&mut *tx)
    .await?;
    let status = super::Status::parse(&row.try_get::<String, _>("status")?)?;
    let used_at: Option<i64> = row.try_get("used_at")?;
    // A held call uses its approval as soon as it is approved: the grace covers an approval given
    // in the hold's last moment.
    let grace = if row.try_get::<i64, _>("held")? != 0 {
        i64::try_from(grace_ms).unwrap_or(i64::MAX)
    } else {
        0
    };
    let expired = row.try_get::<i64, _>("expires_at")?.saturating_add(grace) <= time::now_ms();
    let refusal = if status != super::Status::Approved {
        Some(format!("the approval {}", status.describe()))
    } else if used_at.is_some() {
        Some("the approval was already used".to_owned())
    } else if row.try_get::<String, _>("agent_id")? != request.agent_id {
        Some("the approval is for another agent".to_owned())
    } else if row.try_get::<String, _>("tool")? != request.tool {
        Some("the approval is for another tool".to_owned())
    } else if row.try_get::<String, _>("arguments_sha256")? != request.arguments_sha256 {
        Some("the approval is for other arguments".to_owned())
    } else if expired {
        Some("the approval expired".to_owned())
    } else {
        None
    };
    if let Some(why) = refusal {
        return Ok(refused(&why));
    }
    sqlx::query("UPDATE approvals SET used_at = $2 WHERE id = $1")
        .bind(&request.id)
        .bind(time::now_ms())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Use::Granted {
        escalating_rule: row.try_get("escalating_rule")?,
        decided_by: row
            .try_get::<Option<String>, _>("decided_by")?
            .unwrap_or_default(),
    })
}

/// How a held call ended without a decision, as its filter tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The tenant's approval timeout passed; the call was answered -32012.
    TimedOut,
    /// The client went away before a decision.
    Abandoned,
}

/// A held call's ending, with its final audit event (a `deny` naming the approval).
#[derive(Debug, Clone)]
pub struct EndRequest {
    pub id: String,
    pub tenant: String,
    pub ending: Ending,
    pub event_json: String,
}

/// Ends a held call's approval and writes the call's final event, in one transaction. The event is
/// written even when the approval was decided or ended meanwhile (it says what became of the call);
/// an event already written is not written again. Returns whether the approval ended now.
pub async fn end(recorder: &Recorder, request: &EndRequest) -> Result<bool> {
    let event: AuditEvent = serde_json::from_str(&request.event_json)
        .map_err(|e| Error::bad_request(format!("event_json: {e}")))?;
    if event.decision != AuditDecision::Deny
        || event.tenant != request.tenant
        || event.pending_id != request.id
    {
        return Err(Error::bad_request(
            "event_json must be a deny of this approval's tenant naming it in pending_id",
        ));
    }
    // Another tenant's approval is absent.
    status(recorder.db(), &request.id, &request.tenant).await?;
    let status = match request.ending {
        Ending::TimedOut => super::Status::TimedOut,
        Ending::Abandoned => super::Status::Abandoned,
    };
    let mut tx = recorder.begin().await?;
    let ended = sqlx::query(
        "UPDATE approvals SET status = $2, ended_at = $3, end_reason = $4 \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(&request.id)
    .bind(status.as_str())
    .bind(time::now_ms())
    .bind(&event.reason)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit(event).await?;
    Ok(ended)
}
