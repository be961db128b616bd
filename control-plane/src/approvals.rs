//! Approvals: calls a policy escalated, parked for a human (SPEC §4). The runtime side (issue 6)
//! creates them through [`create`]; operators list the pending ones and decide each once.

use intentgate_core::audit::{EventKind, canonical_json};
use intentgate_core::decision::AuditDecision;
use intentgate_core::exchange::arguments_digest_of;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::changes::{Change, Changes};
use crate::store::page::{Cursors, Page};
use crate::{audit, ids, time, validate};

/// The cursor list name of pending approvals.
pub const LIST: &str = "approvals";
const COLUMNS: &str = "pos, id, tenant, agent_id, capability_token_id, root_capability_token_id, \
                       tool, arguments, escalating_rule, created_at";

/// A call to park, as the runtime knows it.
#[derive(Debug, Clone)]
pub struct NewApproval {
    pub tenant: String,
    pub agent_id: String,
    pub capability_token_id: String,
    pub root_capability_token_id: String,
    pub tool: String,
    pub arguments: Map<String, Value>,
    pub escalating_rule: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Approval {
    pub id: String,
    pub tenant: String,
    pub agent_id: String,
    pub capability_token_id: String,
    pub tool: String,
    pub arguments: Value,
    pub escalating_rule: String,
    pub created_at: String,
    #[serde(skip)]
    pub root_capability_token_id: String,
}

impl Approval {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let arguments: String = row.try_get("arguments")?;
        Ok(Approval {
            id: row.try_get("id")?,
            tenant: row.try_get("tenant")?,
            agent_id: row.try_get("agent_id")?,
            capability_token_id: row.try_get("capability_token_id")?,
            root_capability_token_id: row.try_get("root_capability_token_id")?,
            tool: row.try_get("tool")?,
            arguments: serde_json::from_str(&arguments)
                .map_err(|e| Error::Internal(format!("stored approval arguments: {e}")))?,
            escalating_rule: row.try_get("escalating_rule")?,
            created_at: time::rfc3339(row.try_get("created_at")?),
        })
    }
}

/// Parks a call. The arguments' canonical hash is stored so that an approval can later be bound
/// to exactly these arguments.
pub async fn create(db: &Db, new: NewApproval) -> Result<Approval> {
    let mut conn = db.pool().acquire().await?;
    let id = create_in(&mut conn, new).await?;
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"))
        .bind(&id)
        .fetch_one(db.pool())
        .await?;
    Approval::from_row(&row)
}

/// [`create`] inside the caller's transaction; returns the new approval's id.
pub async fn create_in(conn: &mut AnyConnection, new: NewApproval) -> Result<String> {
    validate::tenant(&new.tenant).map_err(Error::BadRequest)?;
    let arguments = Value::Object(new.arguments);
    let canonical = canonical_json(&arguments);
    let id = ids::new_id()?;
    sqlx::query(
        "INSERT INTO approvals (id, tenant, agent_id, capability_token_id, \
         root_capability_token_id, tool, arguments, arguments_sha256, escalating_rule, reason, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(&new.tenant)
    .bind(&new.agent_id)
    .bind(&new.capability_token_id)
    .bind(&new.root_capability_token_id)
    .bind(&new.tool)
    .bind(&canonical)
    .bind(arguments_digest_of(&arguments))
    .bind(&new.escalating_rule)
    .bind(&new.reason)
    .bind(time::now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Pending approvals, newest first, of one tenant or (`None`) of all.
pub async fn pending(
    db: &Db,
    cursors: &Cursors,
    tenant: Option<&str>,
    page: Page,
) -> Result<(Vec<Approval>, Option<String>)> {
    let scope = tenant.unwrap_or("*");
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE ($1 = '*' OR tenant = $1) AND status = 'pending' \
         AND pos < $2 ORDER BY pos DESC LIMIT $3"
    );
    let query = sqlx::query(&sql).bind(scope);
    page.run(db, cursors, LIST, scope, query, |row| {
        Ok((row.try_get("pos")?, Approval::from_row(row)?))
    })
    .await
}

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
    db: &Db,
    changes: &Changes,
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
    .fetch_optional(db.pool())
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

    let mut tx = db.begin().await?;
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
    audit::store::append_in(&mut tx, &[event]).await?;
    tx.commit().await?;
    changes.publish(
        0,
        Change::ApprovalDecided {
            tenant: approval.tenant,
            id: id.to_owned(),
            approved: request.decision == Verdict::Approve,
        },
    );
    Ok(())
}
