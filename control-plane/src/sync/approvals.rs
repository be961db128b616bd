//! The runtime side of approvals (SPEC §4), as filters reach it over FilterSync: a call the policy
//! escalated is parked with its `escalate` audit event in one transaction (so notifications can go out
//! while the call waits), a filter waits for the human's decision, and an approval is used once, only
//! for the tenant, agent, tool and arguments it was made for.

use std::time::Duration;

use intentgate_core::audit::AuditEvent;
use intentgate_core::decision::AuditDecision;
use intentgate_proto::v1::{self, approval_status::State};
use serde_json::{Map, Value};
use sqlx::Row;

use crate::approvals::{self, NewApproval};
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::changes::{Change, Changes};
use crate::{audit, time};

/// Longest single wait a filter may ask for; it asks again if the tenant's timeout is longer.
pub const MAX_WAIT_MS: u32 = 60_000;
/// How often a wait rereads the approval (a decision made through another replica).
const POLL: Duration = Duration::from_millis(250);

pub async fn create(db: &Db, request: &v1::ApprovalRequest) -> Result<v1::ApprovalCreated> {
    let mut event: AuditEvent = serde_json::from_str(&request.event_json)
        .map_err(|e| Error::bad_request(format!("event_json: {e}")))?;
    if event.decision != AuditDecision::Escalate {
        return Err(Error::bad_request("event_json must be an escalate event"));
    }
    let arguments: Map<String, Value> = serde_json::from_str(&request.arguments_json)
        .map_err(|e| Error::bad_request(format!("arguments_json must be an object: {e}")))?;
    let digest = intentgate_core::exchange::arguments_digest_of(&Value::Object(arguments.clone()));
    if digest != request.arguments_sha256 {
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
    let mut tx = db.begin().await?;
    let id = approvals::create_in(&mut tx, new).await?;
    event.pending_id.clone_from(&id);
    audit::store::check(&event)?;
    audit::store::append_in(&mut tx, &[event]).await?;
    tx.commit().await?;
    Ok(v1::ApprovalCreated { id })
}

/// The approval's state, waiting up to `wait_ms` for a decision.
pub async fn wait(
    db: &Db,
    changes: &Changes,
    request: &v1::AwaitApprovalRequest,
) -> Result<v1::ApprovalStatus> {
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::from(request.wait_ms.min(MAX_WAIT_MS)));
    let mut decided = changes.subscribe();
    loop {
        let status = status(db, &request.id, &request.tenant).await?;
        if status.state != State::Pending as i32 {
            return Ok(status);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(status);
        }
        // Woken by a decision made here; a decision made through another replica is found by the poll.
        let _ = tokio::time::timeout(POLL.min(deadline - now), async {
            while let Ok(committed) = decided.recv().await {
                if matches!(&committed.change, Change::ApprovalDecided { id, .. } if *id == request.id) {
                    break;
                }
            }
        })
        .await;
    }
}

async fn status(db: &Db, id: &str, tenant: &str) -> Result<v1::ApprovalStatus> {
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
    Ok(v1::ApprovalStatus {
        state: state as i32,
        decided_by: row
            .try_get::<Option<String>, _>("decided_by")?
            .unwrap_or_default(),
        reason: row
            .try_get::<Option<String>, _>("decision_reason")?
            .unwrap_or_default(),
    })
}

/// Uses an approval for one call. Refusals say why; nothing is marked used unless granted.
pub async fn use_once(db: &Db, request: &v1::UseApprovalRequest) -> Result<v1::ApprovalUse> {
    let refused = |why: &str| v1::ApprovalUse {
        refusal: why.to_owned(),
        ..Default::default()
    };
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
    Ok(v1::ApprovalUse {
        granted: true,
        escalating_rule: row.try_get("escalating_rule")?,
        refusal: String::new(),
        decided_by: row
            .try_get::<Option<String>, _>("decided_by")?
            .unwrap_or_default(),
    })
}
