//! The JWT issuers a tenant trusts (an enterprise IdP issuing ID-JAGs or access tokens, a
//! Kubernetes cluster's service-account issuer): the `iss` they sign as, their keys, and the
//! audiences their JWTs must carry to count here (by default the authorization server's issuer or
//! token endpoint). What a JWT of theirs may get is an exchange rule's to say. Every change is
//! audited.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::keys::KeySource;
use super::registry::{self, Table, flag, from_optional_column, to_column};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::{audit, ids, time, validate};

pub const LIST: &str = "oauth_trusted_issuers";
const MAX_NAME: usize = 200;
const MAX_AUDIENCES: usize = 16;

pub const TABLE: Table<TrustedIssuer> = Table {
    name: "oauth_trusted_issuers",
    noun: "trusted issuer",
    from_row: TrustedIssuer::from_row,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIssuer {
    pub name: String,
    pub issuer: String,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub tenant: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub jwks_uri: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub audiences: Option<Vec<String>>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub created_by: Option<String>,
}

/// A partial update: fields left out keep their value. The `iss` stays (register another issuer).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerUpdate {
    #[serde(default, deserialize_with = "validate::non_null")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub jwks_uri: Option<String>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub audiences: Option<Vec<String>>,
    #[serde(default, deserialize_with = "validate::non_null")]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrustedIssuer {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub issuer: String,
    #[serde(flatten)]
    pub keys: KeySource,
    /// Accepted `aud` values; absent: the authorization server's issuer or token endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    updated_ms: i64,
}

impl TrustedIssuer {
    fn from_row(row: &AnyRow) -> Result<Self> {
        use sqlx::Row as _;
        Ok(TrustedIssuer {
            id: row.try_get("id")?,
            tenant: row.try_get("tenant")?,
            name: row.try_get("name")?,
            issuer: row.try_get("issuer")?,
            keys: KeySource::from_row(row)?
                .ok_or_else(|| Error::Internal("a trusted issuer without keys".into()))?,
            audiences: from_optional_column(row, "audiences")?,
            enabled: flag(row, "enabled")?,
            created_by: row.try_get("created_by")?,
            created_at: time::rfc3339(row.try_get("created_at")?),
            updated_at: time::rfc3339(row.try_get("updated_at")?),
            updated_ms: row.try_get("updated_at")?,
        })
    }

    /// The audiences its JWTs may carry here: its own list, else `ours`.
    pub fn accepted_audiences(&self, ours: Vec<String>) -> Vec<String> {
        self.audiences.clone().unwrap_or(ours)
    }
}

fn check_audiences(audiences: Option<&[String]>) -> Result<()> {
    if let Some(audiences) = audiences {
        if audiences.is_empty() || audiences.len() > MAX_AUDIENCES {
            return Err(Error::bad_request(format!(
                "audiences must list 1 to {MAX_AUDIENCES} values"
            )));
        }
        for audience in audiences {
            validate::required_text("audiences[]", audience, 2048).map_err(Error::BadRequest)?;
        }
    }
    Ok(())
}

fn summary(name: &str, issuer: &str, keys: &KeySource, enabled: bool) -> String {
    let keys = match &keys.jwks_uri {
        Some(uri) => format!("keys at {uri}"),
        None => "inline keys".to_owned(),
    };
    format!("{issuer} ({name}, {keys}, enabled {enabled})")
}

pub async fn create(recorder: &Recorder, admin: &Admin, new: NewIssuer) -> Result<TrustedIssuer> {
    let tenant = admin.tenant_for_change(new.tenant.as_deref())?;
    let created_by = admin.labelled("created_by", new.created_by)?;
    validate::required_text("name", &new.name, MAX_NAME).map_err(Error::BadRequest)?;
    validate::required_text("issuer", &new.issuer, 2048).map_err(Error::BadRequest)?;
    check_audiences(new.audiences.as_deref())?;
    let keys = KeySource::change(admin, None, new.jwks, new.jwks_uri)?
        .ok_or_else(|| Error::bad_request("jwks or jwks_uri is required"))?;
    let enabled = new.enabled.unwrap_or(true);
    let id = ids::new_id()?;
    let now = time::now_ms();
    let taken =
        sqlx::query("SELECT id FROM oauth_trusted_issuers WHERE tenant = $1 AND issuer = $2")
            .bind(&tenant)
            .bind(&new.issuer)
            .fetch_optional(recorder.db().pool())
            .await?;
    if taken.is_some() {
        return Err(Error::Conflict(format!(
            "tenant {tenant} already trusts issuer {}",
            new.issuer
        )));
    }
    let event = audit::record::admin(
        &tenant,
        "oauth_issuer_create",
        &created_by.audited,
        format!(
            "trusted issuer {id}: {}",
            summary(&new.name, &new.issuer, &keys, enabled)
        ),
    )?;
    let mut tx = recorder.begin().await?;
    sqlx::query(
        "INSERT INTO oauth_trusted_issuers (id, tenant, name, issuer, jwks, jwks_uri, \
         private_reach, audiences, enabled, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(&id)
    .bind(&tenant)
    .bind(&new.name)
    .bind(&new.issuer)
    .bind(keys.jwks_text())
    .bind(keys.jwks_uri.clone())
    .bind(i64::from(keys.private_reach))
    .bind(new.audiences.as_ref().map(to_column).transpose()?)
    .bind(i64::from(enabled))
    .bind(&created_by.label)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    TABLE
        .commit_written(recorder.db(), tx, &id, true, |_| Ok(event))
        .await
}

pub async fn update(
    recorder: &Recorder,
    admin: &Admin,
    id: &str,
    change: IssuerUpdate,
) -> Result<TrustedIssuer> {
    let db = recorder.db();
    let current = TABLE.get(db, admin, id).await?;
    let name = change.name.unwrap_or_else(|| current.name.clone());
    validate::required_text("name", &name, MAX_NAME).map_err(Error::BadRequest)?;
    let audiences = change.audiences.or_else(|| current.audiences.clone());
    check_audiences(audiences.as_deref())?;
    let keys = KeySource::change(admin, Some(&current.keys), change.jwks, change.jwks_uri)?
        .ok_or_else(|| Error::Internal("a trusted issuer without keys".into()))?;
    let enabled = change.enabled.unwrap_or(current.enabled);
    let event = audit::record::admin(
        &current.tenant,
        "oauth_issuer_update",
        &admin.actor(),
        format!(
            "updated trusted issuer {id}: {}",
            summary(&name, &current.issuer, &keys, enabled)
        ),
    )?;
    let mut tx = recorder.begin().await?;
    let updated = sqlx::query(
        "UPDATE oauth_trusted_issuers SET name = $2, jwks = $3, jwks_uri = $4, private_reach = $5, \
         audiences = $6, enabled = $7, updated_at = $8 WHERE id = $1 AND updated_at = $9",
    )
    .bind(id)
    .bind(&name)
    .bind(keys.jwks_text())
    .bind(keys.jwks_uri.clone())
    .bind(i64::from(keys.private_reach))
    .bind(audiences.as_ref().map(to_column).transpose()?)
    .bind(i64::from(enabled))
    .bind(registry::next_version(current.updated_ms))
    .bind(current.updated_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    TABLE
        .commit_written(db, tx, id, updated == 1, |_| Ok(event))
        .await
}

/// Deleting an issuer its exchange rules still name is refused: delete or move those first.
pub async fn delete(recorder: &Recorder, admin: &Admin, id: &str) -> Result<()> {
    let current = TABLE.get(recorder.db(), admin, id).await?;
    let event = audit::record::admin(
        &current.tenant,
        "oauth_issuer_delete",
        &admin.actor(),
        format!("stopped trusting issuer {id} ({})", current.issuer),
    )?;
    let mut tx = recorder.begin().await?;
    let rules = sqlx::query("SELECT id FROM oauth_exchange_rules WHERE trusted_issuer_id = $1")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    if !rules.is_empty() {
        return Err(Error::Conflict(format!(
            "{} exchange rule(s) use trusted issuer {id}: delete them first",
            rules.len()
        )));
    }
    let deleted = sqlx::query("DELETE FROM oauth_trusted_issuers WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(TABLE.gone(id));
    }
    tx.commit(event).await
}

/// The enabled issuers trusted as `iss`, in every tenant or in `tenant` alone.
pub async fn trusting(db: &Db, iss: &str, tenant: Option<&str>) -> Result<Vec<TrustedIssuer>> {
    let rows = sqlx::query(
        "SELECT * FROM oauth_trusted_issuers WHERE issuer = $1 AND enabled = 1 \
         AND ($2 = '*' OR tenant = $2) ORDER BY pos",
    )
    .bind(iss)
    .bind(tenant.unwrap_or("*"))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(TrustedIssuer::from_row).collect()
}

impl registry::Tenanted for TrustedIssuer {
    fn tenant(&self) -> &str {
        &self.tenant
    }
}
