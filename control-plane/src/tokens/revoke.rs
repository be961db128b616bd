//! Revoking capability tokens minted here, scoped to the tenant each was minted for, and the list of
//! revocations filters enforce.

use std::collections::HashSet;

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
}

/// Revokes a token minted here. Revoking twice keeps the first revocation.
pub async fn revoke(recorder: &Recorder, admin: &Admin, request: RevokeRequest) -> Result<()> {
    validate::id("jti", &request.jti).map_err(Error::BadRequest)?;
    let reason = request.reason.unwrap_or_default();
    validate::optional_text("reason", &reason, 1024).map_err(Error::BadRequest)?;
    let not_found = || Error::not_found("no token with that jti");
    let row = sqlx::query("SELECT tenant, subject FROM tokens WHERE jti = $1")
        .bind(&request.jti)
        .fetch_optional(recorder.db().pool())
        .await?
        .ok_or_else(not_found)?;
    let tenant: String = row.try_get("tenant")?;
    let subject: String = row.try_get("subject")?;
    if !admin.may_access(&tenant) {
        return Err(not_found());
    }
    let actor = admin.actor();
    let mut tx = recorder.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO revocations (jti, tenant, revoked_at, reason, revoked_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (jti) DO NOTHING",
    )
    .bind(&request.jti)
    .bind(&tenant)
    .bind(time::now_ms())
    .bind(&reason)
    .bind(&actor)
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
    event.agent_id = subject;
    event.capability_token_id.clone_from(&request.jti);
    event.root_capability_token_id.clone_from(&request.jti);
    let change = Change::TokenRevoked {
        tenant,
        jti: request.jti,
    };
    tx.commit_announcing(event, change).await?;
    Ok(())
}

/// Which of `jtis` (the blocks of one token) are revoked.
pub async fn revoked_among(db: &Db, jtis: &[String]) -> Result<HashSet<String>> {
    let mut revoked = HashSet::new();
    for jti in jtis {
        let row = sqlx::query("SELECT jti FROM revocations WHERE jti = $1")
            .bind(jti)
            .fetch_optional(db.pool())
            .await?;
        if row.is_some() {
            revoked.insert(jti.clone());
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
