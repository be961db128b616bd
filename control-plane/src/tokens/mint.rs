//! `POST /v1/admin/mint`: a capability token for the tenant the admin may act on, issued by
//! [`issue`](super::issue).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use intentgate_core::token::IssuerKey;
use serde::{Deserialize, Serialize};

use super::issue::{DEFAULT_TTL_SECONDS, Issue, check_grant, describe, issue};
use crate::audit::Recorder;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::{audit, time, validate};

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
    /// Binds the token to one resource (RFC 8707 URL).
    #[serde(default, deserialize_with = "crate::validate::non_null")]
    pub audience: Option<String>,
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
        check_grant(self.tools.as_deref(), self.ttl_seconds, self.max_calls)?;
        if let Some(audience) = &self.audience {
            check_audience(audience)?;
        }
        Ok(())
    }
}

/// A token's audience as a request gives it: an absolute URI without fragment (RFC 8707).
pub fn check_audience(audience: &str) -> Result<()> {
    intentgate_core::token::check_audience(audience).map_err(Error::BadRequest)
}

pub async fn mint_token(
    recorder: &Recorder,
    key: &IssuerKey,
    admin: &Admin,
    request: MintRequest,
) -> Result<Minted> {
    request.check()?;
    let tenant = admin.tenant_for_change(request.tenant.as_deref())?;
    let order = Issue {
        issuer: request.issuer.unwrap_or_else(|| DEFAULT_ISSUER.into()),
        subject: request.subject,
        tenant,
        ttl_seconds: request.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS),
        tools: request.tools,
        max_calls: request.max_calls,
        step_up: request.step_up.unwrap_or(false),
        audience: request.audience,
        with_memory_signing_key: request.with_memory_signing_key.unwrap_or(false),
    };
    let issued = issue(recorder, key, &order, |grant| {
        audit::record::admin(
            &grant.tenant,
            "mint",
            &admin.actor(),
            format!(
                "minted a token {}",
                describe(grant, order.audience.as_deref())
            ),
        )
    })
    .await?;
    Ok(Minted {
        token: issued.token,
        expires_at: time::rfc3339(issued.grant.expires_at * 1000),
        jti: issued.jti,
        memory_signing_key: issued
            .memory_signing_key
            .map(|k| STANDARD.encode(k.to_bytes())),
    })
}
