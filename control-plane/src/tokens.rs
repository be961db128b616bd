//! Capability tokens: minting through the core's `mint` (the exact format the filter verifies),
//! and revocation, scoped to the tenant each token was minted for.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use intentgate_core::memory::derive_memory_key;
use intentgate_core::token::{Grant, IssuerKey, mint};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::changes::{Change, Changes};
use crate::store::page::{Cursors, Page};
use crate::{audit, ids, time, validate};

pub const DEFAULT_TTL_SECONDS: u64 = 3600;
/// Long-lived tokens defeat revocation lists; a month is the ceiling.
pub const MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;
pub const MAX_TOOLS: usize = 256;
pub const DEFAULT_ISSUER: &str = "intentgate";
/// The cursor list name of revocations.
pub const REVOCATIONS: &str = "revocations";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    pub subject: String,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub issuer: Option<String>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub tenant: Option<String>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub ttl_seconds: Option<u64>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub tools: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub max_calls: Option<u64>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub step_up: Option<bool>,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub with_memory_signing_key: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Minted {
    pub token: String,
    pub jti: String,
    pub expires_at: String,
    /// Base64 seed of the token's memory signing key, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_signing_key: Option<String>,
}

impl MintRequest {
    fn check(&self) -> Result<()> {
        let bad = Error::BadRequest;
        validate::required_text("subject", &self.subject, 256).map_err(bad)?;
        if let Some(issuer) = &self.issuer {
            validate::required_text("issuer", issuer, 256).map_err(bad)?;
        }
        if let Some(ttl) = self.ttl_seconds
            && !(1..=MAX_TTL_SECONDS).contains(&ttl)
        {
            return Err(Error::bad_request(format!(
                "ttl_seconds must be from 1 to {MAX_TTL_SECONDS}"
            )));
        }
        if let Some(tools) = &self.tools {
            if tools.is_empty() || tools.len() > MAX_TOOLS {
                return Err(Error::bad_request(format!(
                    "tools must list 1 to {MAX_TOOLS} tool names or patterns"
                )));
            }
            for tool in tools {
                validate::required_text("tools[]", tool, 256).map_err(bad)?;
            }
        }
        if self.max_calls == Some(0) {
            return Err(Error::bad_request("max_calls must be at least 1"));
        }
        Ok(())
    }
}

pub async fn mint_token(
    db: &Db,
    issuer: &IssuerKey,
    admin: &Admin,
    request: MintRequest,
) -> Result<Minted> {
    request.check()?;
    let tenant = admin.tenant(request.tenant.as_deref())?;
    validate::assignable_tenant(&tenant).map_err(Error::BadRequest)?;
    let now_ms = time::now_ms();
    let now = now_ms.div_euclid(1000);
    let ttl = i64::try_from(request.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS))
        .map_err(|_| Error::bad_request("ttl_seconds is out of range"))?;
    let jti = ids::new_id()?;
    let memory = request
        .with_memory_signing_key
        .unwrap_or(false)
        .then(|| derive_memory_key(issuer.seed(), &jti));
    let grant = Grant {
        jti: jti.clone(),
        issuer: request
            .issuer
            .clone()
            .unwrap_or_else(|| DEFAULT_ISSUER.into()),
        subject: request.subject.clone(),
        tenant: tenant.clone(),
        issued_at: now,
        not_before: now,
        expires_at: now + ttl,
        tools: request.tools.clone(),
        max_calls: request.max_calls,
        step_up_at: request.step_up.unwrap_or(false).then_some(now),
        memory_key: memory.as_ref().map(|k| k.verifying_key()),
    };
    let token =
        mint(issuer, &grant, &ids::random32()?).map_err(|e| Error::bad_request(e.to_string()))?;

    let mut event = audit::record::admin(
        &tenant,
        "mint",
        &admin.actor(),
        format!(
            "minted a token for {} expiring {}{}{}",
            grant.subject,
            time::rfc3339(grant.expires_at * 1000),
            grant
                .tools
                .as_ref()
                .map(|t| format!(", tools {t:?}"))
                .unwrap_or_default(),
            grant
                .max_calls
                .map(|n| format!(", max_calls {n}"))
                .unwrap_or_default(),
        ),
    )?;
    event.agent_id.clone_from(&grant.subject);
    event.capability_token_id.clone_from(&jti);
    event.root_capability_token_id.clone_from(&jti);

    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO tokens (jti, tenant, subject, issuer, kid, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&jti)
    .bind(&tenant)
    .bind(&grant.subject)
    .bind(&grant.issuer)
    .bind(issuer.kid())
    .bind(now_ms)
    .bind(grant.expires_at * 1000)
    .execute(&mut *tx)
    .await?;
    audit::store::append_in(&mut tx, &[event]).await?;
    tx.commit().await?;
    tracing::info!(%tenant, %jti, subject = %grant.subject, "minted token");
    Ok(Minted {
        token,
        expires_at: time::rfc3339(grant.expires_at * 1000),
        jti,
        memory_signing_key: memory.map(|k| STANDARD.encode(k.to_bytes())),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub jti: String,
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub reason: Option<String>,
}

/// Revokes a token minted here. Revoking twice keeps the first revocation.
pub async fn revoke(
    db: &Db,
    changes: &Changes,
    admin: &Admin,
    request: RevokeRequest,
) -> Result<()> {
    validate::id("jti", &request.jti).map_err(Error::BadRequest)?;
    let reason = request.reason.unwrap_or_default();
    validate::optional_text("reason", &reason, 1024).map_err(Error::BadRequest)?;
    let not_found = || Error::not_found("no token with that jti");
    let row = sqlx::query("SELECT tenant, subject FROM tokens WHERE jti = $1")
        .bind(&request.jti)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(not_found)?;
    let tenant: String = row.try_get("tenant")?;
    let subject: String = row.try_get("subject")?;
    if !admin.may_access(&tenant) {
        return Err(not_found());
    }
    let actor = admin.actor();
    let mut tx = db.begin().await?;
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
    audit::store::append_in(&mut tx, &[event]).await?;
    let change = Change::TokenRevoked {
        tenant,
        jti: request.jti,
    };
    let version = Changes::record(&mut tx, db.backend(), &change).await?;
    tx.commit().await?;
    changes.publish(version, change);
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Revocation {
    pub jti: String,
    pub tenant: String,
    pub revoked_at: String,
    pub reason: String,
}

/// Revocations, newest first, of one tenant or (`None`) of all.
pub async fn revocations(
    db: &Db,
    cursors: &Cursors,
    tenant: Option<&str>,
    page: Page,
) -> Result<(Vec<Revocation>, Option<String>)> {
    let scope = tenant.unwrap_or("*");
    let query = sqlx::query(
        "SELECT pos, jti, tenant, revoked_at, reason FROM revocations \
         WHERE ($1 = '*' OR tenant = $1) AND pos < $2 ORDER BY pos DESC LIMIT $3",
    )
    .bind(scope);
    page.run(db, cursors, REVOCATIONS, scope, query, |row| {
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
