//! The runtime side of approvals (SPEC §4), as filters reach it: a call the policy escalated is
//! parked with its `escalate` audit event in one transaction (so notifications can go out while the
//! call waits), a filter waits for the human's decision, and an approval is used once, only for the
//! tenant, agent, tool and arguments it was made for.

use std::time::Duration;

use intentgate_core::audit::AuditEvent;
use intentgate_core::decision::AuditDecision;
use serde_json::{Map, Value};
use sqlx::Row;

use super::NewApproval;
use crate::audit::Recorder;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::changes::{Change, Changes};
use crate::time;

/// Longest single wait a filter may ask for; it asks again if the tenant's timeout is longer.
pub const MAX_WAIT_MS: u32 = 60_000;
/// How often a wait rereads the approval (a decision made through another replica).
const POLL: Duration = Duration::from_millis(250);

/// A call a filter's policy escalated, as the filter sends it.
#[derive(Debug, Clone, Default)]
pub struct Escalated {
    /// The `escalate` audit event as JSON; its `pending_id` becomes the new approval's id.
    pub event_json: String,
    /// The call's arguments object as sent, and its digest.
    pub arguments_json: String,
    pub arguments_sha256: String,
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Approved,
    Rejected,
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

/// Parks an escalated call, with its `escalate` event, and returns its approval's id.
pub async fn park(recorder: &Recorder, request: &Escalated) -> Result<String> {
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
    let new = NewApproval {
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

/// The approval's state, waiting up to `wait_ms` (at most [`MAX_WAIT_MS`]) for a decision.
pub async fn wait(
    db: &Db,
    changes: &Changes,
    id: &str,
    tenant: &str,
    wait_ms: u32,
) -> Result<Status> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(u64::from(wait_ms.min(MAX_WAIT_MS)));
    let mut decided = changes.subscribe();
    loop {
        let status = status(db, id, tenant).await?;
        if status.state != State::Pending {
            return Ok(status);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(status);
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
    }
}

async fn status(db: &Db, id: &str, tenant: &str) -> Result<Status> {
    let row = sqlx::query(
        "SELECT status, decided_by, decision_reason FROM approvals WHERE id = $1 AND tenant = $2",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| Error::not_found(format!("no approval {id}")))?;
    let state = match row.try_get::<String, _>("status")?.as_str() {
        "approved" => State::Approved,
        "rejected" => State::Rejected,
        _ => State::Pending,
    };
    Ok(Status {
        state,
        decided_by: row
            .try_get::<Option<String>, _>("decided_by")?
            .unwrap_or_default(),
        reason: row
            .try_get::<Option<String>, _>("decision_reason")?
            .unwrap_or_default(),
    })
}

/// Uses an approval for one call. Refusals say why; nothing is marked used unless granted.
pub async fn use_once(db: &Db, request: &UseRequest) -> Result<Use> {
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
        "SELECT status, agent_id, tool, arguments_sha256, escalating_rule, decided_by, used_at \
         FROM approvals WHERE id = $1",
    )
    .bind(&request.id)
    .fetch_one(&mut *tx)
    .await?;
    let status: String = row.try_get("status")?;
    let used_at: Option<i64> = row.try_get("used_at")?;
    let refusal = if status != "approved" {
        Some(format!("the approval is {status}"))
    } else if used_at.is_some() {
        Some("the approval was already used".to_owned())
    } else if row.try_get::<String, _>("agent_id")? != request.agent_id {
        Some("the approval is for another agent".to_owned())
    } else if row.try_get::<String, _>("tool")? != request.tool {
        Some("the approval is for another tool".to_owned())
    } else if row.try_get::<String, _>("arguments_sha256")? != request.arguments_sha256 {
        Some("the approval is for other arguments".to_owned())
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
