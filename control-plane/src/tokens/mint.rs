//! Minting capability tokens through the core's `mint` (the exact format the filter verifies), for
//! the tenant the admin may act on.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use intentgate_core::memory::derive_memory_key;
use intentgate_core::token::{Grant, IssuerKey, mint};
use serde::{Deserialize, Serialize};

use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::{audit, ids, time, validate};

pub const DEFAULT_TTL_SECONDS: u64 = 3600;
/// Long-lived tokens defeat revocation lists; a month is the ceiling.
pub const MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;
pub const MAX_TOOLS: usize = 256;
pub const DEFAULT_ISSUER: &str = "intentgate";

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
    recorder: &Recorder,
    issuer: &IssuerKey,
    admin: &Admin,
    request: MintRequest,
) -> Result<Minted> {
    request.check()?;
    let tenant = admin.tenant_for_change(request.tenant.as_deref())?;
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

    let mut tx = recorder.begin().await?;
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
    tx.commit(event).await?;
    tracing::info!(%tenant, %jti, subject = %grant.subject, "minted token");
    Ok(Minted {
        token,
        expires_at: time::rfc3339(grant.expires_at * 1000),
        jti,
        memory_signing_key: memory.map(|k| STANDARD.encode(k.to_bytes())),
    })
}
