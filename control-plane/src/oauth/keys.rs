//! Where a registration's public keys come from (a trusted issuer's, a `private_key_jwt` client's):
//! a JWK Set given inline, or its URL. A URL a per-tenant admin sets reaches public addresses only
//! (see `discovery::reach`); the superadmin's may be internal (a cluster's service-account issuer).

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::jwk::KeySet;
use super::jwks::Jwks;
use crate::auth::Admin;
use crate::discovery::reach;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Whether the superadmin set `jwks_uri`, so that it may be internal.
    #[serde(skip)]
    pub private_reach: bool,
}

impl KeySource {
    /// The keys a change sets: `jwks` or `jwks_uri` (not both), else the current ones (`None` when
    /// there are none).
    pub fn change(
        admin: &Admin,
        current: Option<&KeySource>,
        jwks: Option<Value>,
        jwks_uri: Option<String>,
    ) -> Result<Option<KeySource>> {
        match (jwks, jwks_uri) {
            (Some(_), Some(_)) => Err(Error::bad_request("give jwks or jwks_uri, not both")),
            (Some(jwks), None) => {
                let keys = KeySet::from_value(&jwks, true)
                    .map_err(|e| Error::bad_request(format!("jwks: {e}")))?;
                if keys.is_empty() {
                    return Err(Error::bad_request(
                        "jwks holds no usable public signing key (RSA, EC P-256/P-384 or Ed25519)",
                    ));
                }
                Ok(Some(KeySource {
                    jwks: Some(jwks),
                    jwks_uri: None,
                    private_reach: false,
                }))
            }
            (None, Some(uri)) => {
                reach::check_url("jwks_uri", &uri).map_err(Error::BadRequest)?;
                let kept = current.filter(|c| c.jwks_uri.as_deref() == Some(uri.as_str()));
                let private_reach = match (admin, kept) {
                    (Admin::Super, _) => true,
                    // A per-tenant admin may keep an internal URL the superadmin set, not set one.
                    (Admin::Tenant(_), Some(kept)) => kept.private_reach,
                    (Admin::Tenant(_), None) if reach::names_private_endpoint(&uri) => {
                        return Err(Error::bad_request(
                            "jwks_uri must be a public address (an internal one takes the superadmin token)",
                        ));
                    }
                    (Admin::Tenant(_), None) => false,
                };
                Ok(Some(KeySource {
                    jwks: None,
                    jwks_uri: Some(uri),
                    private_reach,
                }))
            }
            (None, None) => Ok(current.cloned()),
        }
    }

    /// The `jwks`, `jwks_uri` and `private_reach` columns of a row; `None` when both are empty.
    pub fn from_row(row: &AnyRow) -> Result<Option<KeySource>> {
        let jwks: Option<String> = row.try_get("jwks")?;
        let jwks_uri: Option<String> = row.try_get("jwks_uri")?;
        if jwks.is_none() && jwks_uri.is_none() {
            return Ok(None);
        }
        let jwks = jwks
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| Error::Internal(format!("stored jwks: {e}")))
            })
            .transpose()?;
        Ok(Some(KeySource {
            jwks,
            jwks_uri,
            private_reach: row.try_get::<i64, _>("private_reach")? != 0,
        }))
    }

    /// The `jwks` column's text.
    pub fn jwks_text(&self) -> Option<String> {
        self.jwks.as_ref().map(Value::to_string)
    }

    /// The keys now: parsed inline, or fetched through the cache. The error is for the log.
    pub async fn keys(
        &self,
        cache: &Jwks,
        kid: Option<&str>,
    ) -> std::result::Result<Arc<KeySet>, String> {
        match (&self.jwks, &self.jwks_uri) {
            (Some(jwks), _) => KeySet::from_value(jwks, false).map(Arc::new),
            (None, Some(uri)) => cache.get(uri, self.private_reach, kid).await,
            (None, None) => Err("no keys are registered".into()),
        }
    }
}
