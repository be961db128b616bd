//! Policy drafts: Rego that compiles, kept per tenant until promoted. Each change is audited.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::{audit, ids, time, validate};

const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 4096;
const COLUMNS: &str =
    "id, tenant, name, description, created_by, created_at, rego_sha256, rego_source";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDraft {
    pub name: String,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub description: Option<String>,
    pub rego_source: String,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub tenant: Option<String>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub created_by: Option<String>,
}

/// A partial update: fields left out keep their value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftUpdate {
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub rego_source: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Draft {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tenant: String,
    pub created_by: String,
    pub created_at: String,
    pub rego_sha256: String,
    /// Left out of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rego_source: Option<String>,
}

impl Draft {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Draft {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            tenant: row.try_get("tenant")?,
            created_by: row.try_get("created_by")?,
            created_at: time::rfc3339(row.try_get("created_at")?),
            rego_sha256: row.try_get("rego_sha256")?,
            rego_source: Some(row.try_get("rego_source")?),
        })
    }
}

fn check_fields(name: Option<&str>, description: Option<&str>) -> Result<()> {
    if let Some(name) = name {
        validate::required_text("name", name, MAX_NAME).map_err(Error::BadRequest)?;
    }
    if let Some(description) = description {
        validate::optional_text("description", description, MAX_DESCRIPTION)
            .map_err(Error::BadRequest)?;
    }
    Ok(())
}

pub async fn create(recorder: &Recorder, admin: &Admin, new: NewDraft) -> Result<Draft> {
    check_fields(Some(&new.name), new.description.as_deref())?;
    let created_by = admin.labelled("created_by", new.created_by)?;
    let tenant = admin.tenant_for_change(new.tenant.as_deref())?;
    let policy = super::compile(&new.rego_source)?;
    let id = ids::new_id()?;
    let now = time::now_ms();
    let event = audit::record::admin(
        &tenant,
        "draft_create",
        &created_by.audited,
        format!(
            "created draft {id} ({}) sha256 {}",
            new.name,
            policy.sha256()
        ),
    )?;
    let mut tx = recorder.begin().await?;
    sqlx::query(
        "INSERT INTO policy_drafts (id, tenant, name, description, created_by, created_at, \
         updated_at, rego_source, rego_sha256) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&tenant)
    .bind(&new.name)
    .bind(new.description.unwrap_or_default())
    .bind(&created_by.label)
    .bind(now)
    .bind(&new.rego_source)
    .bind(policy.sha256())
    .execute(&mut *tx)
    .await?;
    tx.commit(event).await?;
    get(recorder.db(), admin, &id).await
}

/// A tenant's drafts (or every tenant's), oldest first, without their source.
pub async fn list(db: &Db, scope: Option<&str>) -> Result<Vec<Draft>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM policy_drafts WHERE ($1 = '*' OR tenant = $1) ORDER BY pos"
    ))
    .bind(scope.unwrap_or("*"))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let mut draft = Draft::from_row(row)?;
            draft.rego_source = None;
            Ok(draft)
        })
        .collect()
}

/// A draft the admin may see; another tenant's is reported absent.
pub async fn get(db: &Db, admin: &Admin, id: &str) -> Result<Draft> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM policy_drafts WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    match row.map(|r| Draft::from_row(&r)).transpose()? {
        Some(draft) if admin.may_access(&draft.tenant) => Ok(draft),
        _ => Err(Error::not_found(format!("no draft {id}"))),
    }
}

pub async fn update(
    recorder: &Recorder,
    admin: &Admin,
    id: &str,
    change: DraftUpdate,
) -> Result<Draft> {
    let current = get(recorder.db(), admin, id).await?;
    update_from(recorder, admin, current, change).await
}

/// Applies `change` over `current`, the draft as it was read. The write only lands while the draft
/// is still that (compare-and-set on its fields): a concurrent update is 409 rather than silently
/// overwritten with fields read before it, and a concurrent delete is 404, with nothing audited.
pub async fn update_from(
    recorder: &Recorder,
    admin: &Admin,
    current: Draft,
    change: DraftUpdate,
) -> Result<Draft> {
    let id = current.id.clone();
    check_fields(change.name.as_deref(), change.description.as_deref())?;
    let source = match change.rego_source {
        Some(source) => source,
        None => current.rego_source.clone().unwrap_or_default(),
    };
    let policy = super::compile(&source)?;
    let name = change.name.unwrap_or_else(|| current.name.clone());
    let event = audit::record::admin(
        &current.tenant,
        "draft_update",
        &admin.actor(),
        format!("updated draft {id} ({name}) sha256 {}", policy.sha256()),
    )?;
    let mut tx = recorder.begin().await?;
    let updated = sqlx::query(
        "UPDATE policy_drafts SET name = $2, description = $3, rego_source = $4, \
         rego_sha256 = $5, updated_at = $6 \
         WHERE id = $1 AND name = $7 AND description = $8 AND rego_sha256 = $9",
    )
    .bind(&id)
    .bind(&name)
    .bind(
        change
            .description
            .unwrap_or_else(|| current.description.clone()),
    )
    .bind(&source)
    .bind(policy.sha256())
    .bind(time::now_ms())
    .bind(&current.name)
    .bind(&current.description)
    .bind(&current.rego_sha256)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        // Dropping the change rolls it back: nothing written, nothing audited.
        get(recorder.db(), admin, &id).await?;
        return Err(Error::Conflict(format!(
            "draft {id} changed while this update was made; read it again and retry"
        )));
    }
    tx.commit(event).await?;
    get(recorder.db(), admin, &id).await
}

/// Deleting a draft never changes the active policy: promotion took a snapshot.
pub async fn delete(recorder: &Recorder, admin: &Admin, id: &str) -> Result<()> {
    let current = get(recorder.db(), admin, id).await?;
    let event = audit::record::admin(
        &current.tenant,
        "draft_delete",
        &admin.actor(),
        format!("deleted draft {id} ({})", current.name),
    )?;
    recorder
        .delete("policy_drafts", id, event, || {
            Error::not_found(format!("no draft {id}"))
        })
        .await
}
