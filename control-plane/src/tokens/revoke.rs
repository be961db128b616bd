//! Revoking capability tokens by tenant and jti, and the list of revocations filters enforce. A
//! revocation refuses every token of its tenant that carries the jti in any block: a token minted
//! here, one minted with the CLI, or a derived (attenuated) one, whose root's revocation refuses it
//! too. A tenant admin revokes in its own tenant; the superadmin names the tenant, or lets the
//! token minted here with that jti name it.

use intentgate_core::token::Revoked;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::changes::Change;
use crate::store::page::{Page, Paged};
use crate::{audit, time, validate};

/// The cursor list name of revocations.
pub const REVOCATIONS: &str = "revocations";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub jti: String,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub reason: Option<String>,
    /// The superadmin's choice of tenant; ignored for a tenant admin, whose own it is.
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub tenant: Option<String>,
}

/// What this control plane knows of a token it minted.
struct Minted {
    tenant: String,
    subject: String,
    expires_at: i64,
}

async fn minted(db: &Db, jti: &str) -> Result<Option<Minted>> {
    let row = sqlx::query("SELECT tenant, subject, expires_at FROM tokens WHERE jti = $1")
        .bind(jti)
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| {
        Ok(Minted {
            tenant: row.try_get("tenant")?,
            subject: row.try_get("subject")?,
            expires_at: row.try_get("expires_at")?,
        })
    })
    .transpose()
}

/// Revokes `jti` in a tenant. Revoking twice keeps the first revocation.
pub async fn revoke(recorder: &Recorder, admin: &Admin, request: RevokeRequest) -> Result<()> {
    validate::id("jti", &request.jti).map_err(Error::BadRequest)?;
    let reason = request.reason.unwrap_or_default();
    validate::optional_text("reason", &reason, 1024).map_err(Error::BadRequest)?;
    let minted = minted(recorder.db(), &request.jti).await?;
    let tenant = match (admin, request.tenant.as_deref(), &minted) {
        (Admin::Super, None, Some(token)) => token.tenant.clone(),
        (Admin::Super, None, None) => {
            return Err(Error::bad_request(
                "tenant is required with the superadmin token for a jti not minted here",
            ));
        }
        (_, requested, _) => admin.tenant_for_change(requested)?,
    };
    // What is known of the token comes from this tenant's own mint only.
    let minted = minted.filter(|token| token.tenant == tenant);
    let actor = admin.actor();
    let mut tx = recorder.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO revocations (jti, tenant, revoked_at, reason, revoked_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, jti) DO NOTHING",
    )
    .bind(&request.jti)
    .bind(&tenant)
    .bind(time::now_ms())
    .bind(&reason)
    .bind(&actor)
    .bind(minted.as_ref().map(|token| token.expires_at))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(());
    }
    let details = if reason.is_empty() {
        "revoked".to_owned()
    } else {
        format!("revoked: {reason}")
    };
    let mut event = audit::record::admin(&tenant, "revoke", &actor, details)?;
    event.capability_token_id.clone_from(&request.jti);
    if let Some(token) = minted {
        // Minted here: a root, whose holder is known.
        event.agent_id = token.subject;
        event.root_capability_token_id.clone_from(&request.jti);
    }
    let change = Change::TokenRevoked {
        tenant,
        jti: request.jti,
    };
    tx.commit_announcing(event, change).await?;
    Ok(())
}

/// Which of `jtis` (the blocks of one token of `tenant`) are revoked in that tenant.
pub async fn revoked_among(db: &Db, tenant: &str, jtis: &[String]) -> Result<Revoked> {
    let mut revoked = Revoked::default();
    for jti in jtis {
        let row = sqlx::query("SELECT jti FROM revocations WHERE tenant = $1 AND jti = $2")
            .bind(tenant)
            .bind(jti)
            .fetch_optional(db.pool())
            .await?;
        if row.is_some() {
            revoked.insert(tenant, jti);
        }
    }
    Ok(revoked)
}

#[derive(Debug, Serialize)]
pub struct Revocation {
    pub jti: String,
    pub tenant: String,
    pub revoked_at: String,
    pub reason: String,
}

/// Revocations, newest first, of one tenant or (`None`) of all.
pub async fn revocations(db: &Db, tenant: Option<&str>, page: Page) -> Result<Paged<Revocation>> {
    let scope = tenant.unwrap_or("*");
    let query = sqlx::query(
        "SELECT pos, jti, tenant, revoked_at, reason FROM revocations \
         WHERE ($1 = '*' OR tenant = $1) AND pos < $2 ORDER BY pos DESC LIMIT $3",
    )
    .bind(scope);
    page.run(db, query, |row| {
        Ok((
            row.try_get("pos")?,
            Revocation {
                jti: row.try_get("jti")?,
                tenant: row.try_get("tenant")?,
                revoked_at: time::rfc3339(row.try_get("revoked_at")?),
                reason: row.try_get("reason")?,
            },
        ))
    })
    .await
}
