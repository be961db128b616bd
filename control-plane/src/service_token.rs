//! Bearer tokens of the server-to-server endpoints configured by environment variables
//! (`INTENTGATE_DISCOVERY_SYNC_TOKEN`, `INTENTGATE_REPORTS_API_TOKEN`): kept as SHA-256 digests so
//! every comparison has the same length, and compared in constant time.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

#[derive(Clone)]
pub struct ServiceToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceToken(..)")
    }
}

impl ServiceToken {
    pub fn new(token: &str) -> Self {
        ServiceToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(self.digest.ct_eq(&presented))
    }
}

/// The bearer token of a request, if it sent one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(intentgate_core::token::bearer)
}

/// Admits a request to an endpoint guarded by the token configured in `variable`: 503 when the
/// variable is unset (the endpoint is not configured), 401 when the token is missing or wrong.
pub fn require(
    configured: Option<&ServiceToken>,
    variable: &str,
    headers: &HeaderMap,
) -> Result<()> {
    let token = configured.ok_or_else(|| {
        Error::Unavailable(format!("this endpoint is not configured: set {variable}"))
    })?;
    match bearer(headers) {
        Some(presented) if token.matches(presented) => Ok(()),
        _ => Err(Error::InvalidToken(format!(
            "missing or invalid bearer token ({variable})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves() {
        let token = ServiceToken::new("reports-token-0123456789");
        assert!(token.matches("reports-token-0123456789"));
        assert!(!token.matches("reports-token-012345678"));
        assert!(!token.matches(""));
        let mut headers = HeaderMap::new();
        assert!(
            matches!(require(None, "X", &headers), Err(Error::Unavailable(m)) if m.contains("X"))
        );
        assert!(matches!(
            require(Some(&token), "X", &headers),
            Err(Error::InvalidToken(_))
        ));
        headers.insert(
            AUTHORIZATION,
            "Bearer reports-token-0123456789".parse().unwrap(),
        );
        assert!(require(Some(&token), "X", &headers).is_ok());
    }
}
