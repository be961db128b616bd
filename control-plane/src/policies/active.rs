//! The active policy of each tenant and its promotion history.
//!
//! Promoting pushes a snapshot of the draft (source and compiled bytecode) onto the tenant's
//! stack and points at it. Clearing drops the pointer (the tenant fails closed) but keeps the
//! stack. Rolling back pops the active entry and points at the one below; after a clear it
//! restores the last active policy. Each change locks the tenant's pointer row first, so changes
//! to one tenant are serialised across replicas, and commits with its audit event.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::changes::Change;
use crate::store::page::{Page, Paged};
use crate::{audit, time, validate};

const COLUMNS: &str = "tenant, draft_id, name, promoted_by, promoted_at, rego_sha256";

/// The cursor list of [`history`].
pub const HISTORY: &str = "policy_history";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    pub draft_id: String,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub tenant: Option<String>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub promoted_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Active {
    pub draft_id: String,
    pub name: String,
    pub promoted_by: String,
    pub promoted_at: String,
    pub rego_sha256: String,
    pub tenant: String,
}

impl Active {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Active {
            draft_id: row.try_get("draft_id")?,
            name: row.try_get("name")?,
            promoted_by: row.try_get("promoted_by")?,
            promoted_at: time::rfc3339(row.try_get("promoted_at")?),
            rego_sha256: row.try_get("rego_sha256")?,
            tenant: row.try_get("tenant")?,
        })
    }
}

/// One entry of the promotion history: the policy as promoted, whether the tenant runs it now, and
/// when a rollback took it off the stack.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Promotion {
    #[serde(flatten)]
    pub policy: Active,
    pub active: bool,
    pub rolled_back_at: Option<String>,
}

/// The tenant's promotions, newest first.
pub async fn history(db: &Db, tenant: &str, page: Page) -> Result<Paged<Promotion>> {
    let sql = format!(
        "SELECT pos, {COLUMNS}, rolled_back_at, \
         COALESCE((SELECT promotion_pos FROM active_policies WHERE tenant = $1), -1) AS active_pos \
         FROM policy_promotions WHERE tenant = $1 AND pos < $2 ORDER BY pos DESC LIMIT $3"
    );
    let query = sqlx::query(&sql).bind(tenant);
    page.run(db, query, |row| {
        let pos: i64 = row.try_get("pos")?;
        let active_pos: i64 = row.try_get("active_pos")?;
        let rolled_back_at: Option<i64> = row.try_get("rolled_back_at")?;
        Ok((
            pos,
            Promotion {
                policy: Active::from_row(row)?,
                active: pos == active_pos,
                rolled_back_at: rolled_back_at.map(time::rfc3339),
            },
        ))
    })
    .await
}

fn none_active(tenant: &str) -> Error {
    Error::not_found(format!("tenant {tenant} has no active policy"))
}

/// The tenant's active policy and its compiled bytecode, if it has one.
pub async fn current(db: &Db, tenant: &str) -> Result<Option<(Active, Vec<u8>)>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS}, bytecode FROM policy_promotions \
         WHERE pos = (SELECT promotion_pos FROM active_policies WHERE tenant = $1)"
    ))
    .bind(tenant)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| Ok((Active::from_row(&r)?, r.try_get("bytecode")?)))
        .transpose()
}

pub async fn get(db: &Db, tenant: &str) -> Result<Active> {
    current(db, tenant)
        .await?
        .map(|(active, _)| active)
        .ok_or_else(|| none_active(tenant))
}

/// Locks the tenant's pointer row (creating it empty) and returns the active promotion.
async fn lock_pointer(conn: &mut AnyConnection, tenant: &str) -> Result<Option<i64>> {
    let row = sqlx::query(
        "INSERT INTO active_policies (tenant, promotion_pos) VALUES ($1, NULL) \
         ON CONFLICT (tenant) DO UPDATE SET tenant = excluded.tenant RETURNING promotion_pos",
    )
    .bind(tenant)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("promotion_pos")?)
}

async fn point(conn: &mut AnyConnection, tenant: &str, pos: Option<i64>) -> Result<()> {
    sqlx::query("UPDATE active_policies SET promotion_pos = $2 WHERE tenant = $1")
        .bind(tenant)
        .bind(pos)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn promotion(conn: &mut AnyConnection, pos: i64) -> Result<Active> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM policy_promotions WHERE pos = $1"
    ))
    .bind(pos)
    .fetch_one(&mut *conn)
    .await?;
    Active::from_row(&row)
}

pub async fn promote(
    recorder: &Recorder,
    admin: &Admin,
    request: PromoteRequest,
) -> Result<Active> {
    let promoted_by = admin.labelled("promoted_by", request.promoted_by)?;
    validate::id("draft_id", &request.draft_id).map_err(Error::BadRequest)?;
    let draft = super::drafts::get(recorder.db(), admin, &request.draft_id).await?;
    // A superadmin naming a tenant must name the draft's.
    if matches!(admin, Admin::Super) && request.tenant.as_deref().is_some_and(|t| t != draft.tenant)
    {
        return Err(Error::not_found(format!("no draft {}", request.draft_id)));
    }
    let source = draft.rego_source.clone().unwrap_or_default();
    let policy = super::compile(&source)?;
    let bytecode = policy
        .bytecode()
        .map_err(|e| Error::Internal(format!("policy bytecode: {e}")))?;
    let tenant = draft.tenant.clone();
    let event = audit::record::admin(
        &tenant,
        "promote",
        &promoted_by.audited,
        format!(
            "promoted draft {} ({}) sha256 {}",
            draft.id,
            draft.name,
            policy.sha256()
        ),
    )?;
    let mut tx = recorder.begin().await?;
    lock_pointer(&mut tx, &tenant).await?;
    let pos: i64 = sqlx::query(
        "INSERT INTO policy_promotions (tenant, draft_id, name, rego_source, rego_sha256, \
         bytecode, promoted_by, promoted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING pos",
    )
    .bind(&tenant)
    .bind(&draft.id)
    .bind(&draft.name)
    .bind(&source)
    .bind(policy.sha256())
    .bind(bytecode)
    .bind(&promoted_by.label)
    .bind(time::now_ms())
    .fetch_one(&mut *tx)
    .await?
    .try_get("pos")?;
    point(&mut tx, &tenant, Some(pos)).await?;
    let active = promotion(&mut tx, pos).await?;
    let change = Change::PolicyActivated {
        tenant,
        rego_sha256: active.rego_sha256.clone(),
    };
    tx.commit_announcing(event, change).await?;
    Ok(active)
}

/// Leaves the tenant without an active policy. Clearing an already clear tenant changes nothing.
pub async fn clear(recorder: &Recorder, admin: &Admin, tenant: &str) -> Result<()> {
    let mut tx = recorder.begin().await?;
    let Some(pos) = lock_pointer(&mut tx, tenant).await? else {
        return Ok(());
    };
    let was = promotion(&mut tx, pos).await?;
    point(&mut tx, tenant, None).await?;
    let event = audit::record::admin(
        tenant,
        "clear",
        &admin.actor(),
        format!(
            "cleared the active policy (was draft {} sha256 {})",
            was.draft_id, was.rego_sha256
        ),
    )?;
    let change = Change::PolicyCleared {
        tenant: tenant.to_owned(),
    };
    tx.commit_announcing(event, change).await?;
    Ok(())
}

pub async fn rollback(recorder: &Recorder, admin: &Admin, tenant: &str) -> Result<Active> {
    let mut tx = recorder.begin().await?;
    let current = lock_pointer(&mut tx, tenant).await?;
    let target: Option<i64> = sqlx::query(
        "SELECT MAX(pos) AS pos FROM policy_promotions \
         WHERE tenant = $1 AND rolled_back_at IS NULL AND pos <> $2",
    )
    .bind(tenant)
    .bind(current.unwrap_or(-1))
    .fetch_one(&mut *tx)
    .await?
    .try_get("pos")?;
    let target = target.ok_or_else(|| {
        Error::Conflict(format!(
            "tenant {tenant} has no earlier policy to roll back to"
        ))
    })?;
    if let Some(pos) = current {
        sqlx::query("UPDATE policy_promotions SET rolled_back_at = $2 WHERE pos = $1")
            .bind(pos)
            .bind(time::now_ms())
            .execute(&mut *tx)
            .await?;
    }
    point(&mut tx, tenant, Some(target)).await?;
    let active = promotion(&mut tx, target).await?;
    let event = audit::record::admin(
        tenant,
        "rollback",
        &admin.actor(),
        format!(
            "rolled back to draft {} ({}) sha256 {}",
            active.draft_id, active.name, active.rego_sha256
        ),
    )?;
    let change = Change::PolicyActivated {
        tenant: tenant.to_owned(),
        rego_sha256: active.rego_sha256.clone(),
    };
    tx.commit_announcing(event, change).await?;
    Ok(active)
}
