//! Issuing a root capability token, whoever asks for it (an admin's mint, an OAuth grant): signed by
//! the core's `mint` (the exact format the filter verifies), recorded so that it can be revoked, and
//! audited in its tenant's chain in the same change.

use intentgate_core::audit::AuditEvent;
use intentgate_core::memory::derive_memory_key;
use intentgate_core::token::{Grant, IssuerKey, SigningKey, mint_for_audience};

use crate::audit::Recorder;
use crate::error::{Error, Result};
use crate::{ids, time, validate};

/// Long-lived tokens defeat revocation lists; a month is the ceiling.
pub const MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;
pub const DEFAULT_TTL_SECONDS: u64 = 3600;
pub const MAX_TOOLS: usize = 256;

/// What a new root token grants. Checked by its caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub issuer: String,
    pub subject: String,
    pub tenant: String,
    pub ttl_seconds: u64,
    /// `None`: any tool.
    pub tools: Option<Vec<String>>,
    pub max_calls: Option<u64>,
    pub step_up: bool,
    /// The resource the token is bound to (RFC 8707), if any.
    pub audience: Option<String>,
    pub with_memory_signing_key: bool,
}

/// The limits a grant may set, wherever they are given (a mint, an OAuth client's registration, an
/// exchange rule): 1 to [`MAX_TOOLS`] tool names or patterns, a lifetime of 1 s to
/// [`MAX_TTL_SECONDS`], and at least one call.
pub fn check_grant(
    tools: Option<&[String]>,
    ttl_seconds: Option<u64>,
    max_calls: Option<u64>,
) -> Result<()> {
    if let Some(ttl) = ttl_seconds
        && !(1..=MAX_TTL_SECONDS).contains(&ttl)
    {
        return Err(Error::bad_request(format!(
            "ttl_seconds must be from 1 to {MAX_TTL_SECONDS}"
        )));
    }
    if let Some(tools) = tools {
        if tools.is_empty() || tools.len() > MAX_TOOLS {
            return Err(Error::bad_request(format!(
                "tools must list 1 to {MAX_TOOLS} tool names or patterns"
            )));
        }
        for tool in tools {
            validate::required_text("tools[]", tool, 256).map_err(Error::BadRequest)?;
        }
    }
    if max_calls == Some(0) {
        return Err(Error::bad_request("max_calls must be at least 1"));
    }
    Ok(())
}

/// What a grant gives, for its audit event: the subject, expiry, tools, budget and audience.
pub fn describe(grant: &Grant, audience: Option<&str>) -> String {
    format!(
        "for {} expiring {}, tools {}{}{}",
        grant.subject,
        time::rfc3339(grant.expires_at.saturating_mul(1000)),
        grant
            .tools
            .as_ref()
            .map_or_else(|| "any".to_owned(), |t| format!("{t:?}")),
        grant
            .max_calls
            .map(|n| format!(", max_calls {n}"))
            .unwrap_or_default(),
        audience
            .map(|a| format!(", audience {a}"))
            .unwrap_or_default(),
    )
}

/// A token issued and recorded.
pub struct Issued {
    pub token: String,
    pub jti: String,
    pub grant: Grant,
    pub memory_signing_key: Option<SigningKey>,
}

/// Signs `issue` with `key`, records the token (so that its jti can be revoked) and appends the
/// audit event `event` builds from the grant, all in one audited change.
pub async fn issue(
    recorder: &Recorder,
    key: &IssuerKey,
    issue: &Issue,
    event: impl FnOnce(&Grant) -> Result<AuditEvent>,
) -> Result<Issued> {
    let now_ms = time::now_ms();
    let now = now_ms.div_euclid(1000);
    let ttl = i64::try_from(issue.ttl_seconds.min(MAX_TTL_SECONDS))
        .map_err(|_| Error::bad_request("ttl_seconds is out of range"))?;
    let jti = ids::new_id()?;
    let memory = issue
        .with_memory_signing_key
        .then(|| derive_memory_key(key.seed(), &jti));
    let grant = Grant {
        jti: jti.clone(),
        issuer: issue.issuer.clone(),
        subject: issue.subject.clone(),
        tenant: issue.tenant.clone(),
        issued_at: now,
        not_before: now,
        expires_at: now + ttl,
        tools: issue.tools.clone(),
        max_calls: issue.max_calls,
        step_up_at: issue.step_up.then_some(now),
        memory_key: memory.as_ref().map(|k| k.verifying_key()),
    };
    let token = mint_for_audience(key, &grant, issue.audience.as_deref(), &ids::random32()?)
        .map_err(|e| Error::bad_request(e.to_string()))?;
    let mut event = event(&grant)?;
    event.tenant.clone_from(&grant.tenant);
    event.agent_id.clone_from(&grant.subject);
    event.capability_token_id.clone_from(&jti);
    event.root_capability_token_id.clone_from(&jti);
    let mut tx = recorder.begin().await?;
    record(&mut tx, &grant, key.kid()).await?;
    tx.commit(event).await?;
    tracing::info!(tenant = %grant.tenant, %jti, subject = %grant.subject, "issued token");
    Ok(Issued {
        token,
        jti,
        grant,
        memory_signing_key: memory,
    })
}

/// Records a token's id with its tenant, subject and expiry: revocation looks tokens up here.
pub async fn record(conn: &mut sqlx::AnyConnection, grant: &Grant, kid: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO tokens (jti, tenant, subject, issuer, kid, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&grant.jti)
    .bind(&grant.tenant)
    .bind(&grant.subject)
    .bind(&grant.issuer)
    .bind(kid)
    .bind(grant.issued_at.saturating_mul(1000))
    .bind(grant.expires_at.saturating_mul(1000))
    .execute(conn)
    .await?;
    Ok(())
}
