//! Bearer tokens as the control plane holds them: configured secrets that `Debug` never prints,
//! kept as SHA-256 digests so that every comparison has the same length, compared in constant time.
//! Neither the content nor the length of a token shows in how long a refusal takes.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Shorter configured tokens are refused: they would be guessable.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A configured bearer token or key; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A token to check presented ones against, held only as its digest.
#[derive(Clone)]
pub struct HashedToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for HashedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashedToken(..)")
    }
}

impl HashedToken {
    pub fn new(token: &str) -> Self {
        HashedToken {
            digest: digest(token),
        }
    }

    pub fn matches(&self, presented: &str) -> bool {
        self.matches_digest(&digest(presented))
    }

    /// Against a presented token's [`digest`], when one presented token is checked against several.
    pub fn matches_digest(&self, presented: &[u8; 32]) -> bool {
        bool::from(self.digest.ct_eq(presented))
    }
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A secret made here and shown once (a discovery source's token, an OAuth client's secret).
pub struct IssuedSecret {
    pub secret: String,
    /// What is stored: the secret's SHA-256. A fast hash is enough: 256 random bits cannot be
    /// guessed, so a slow hash would slow down no attack.
    pub digest: [u8; 32],
}

/// `prefix` followed by 256 random bits (base64url).
pub fn issue_secret(prefix: &str) -> Result<IssuedSecret> {
    use base64::Engine as _;
    let random = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::ids::random32()?);
    let secret = format!("{prefix}{random}");
    Ok(IssuedSecret {
        digest: digest(&secret),
        secret,
    })
}

/// Whether `presented` is the secret whose digest was stored, compared in constant time.
pub fn matches_stored(stored: &[u8], presented: &str) -> bool {
    stored.len() == 32 && bool::from(stored.ct_eq(&digest(presented)))
}

/// The token of an `Authorization` header value: the `Bearer` scheme in any case, then the token.
pub fn bearer(header: &str) -> Option<&str> {
    intentgate_core::token::bearer(header)
}

/// Admits a caller of an endpoint guarded by the token configured in `variable`: unavailable when
/// the variable is unset (the endpoint is not configured), an invalid token when the presented one
/// is missing or wrong.
pub fn require(
    configured: Option<&HashedToken>,
    variable: &str,
    presented: Option<&str>,
) -> Result<()> {
    let token = configured.ok_or_else(|| {
        Error::Unavailable(format!("this endpoint is not configured: set {variable}"))
    })?;
    match presented {
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
        let token = HashedToken::new("reports-token-0123456789");
        assert!(token.matches("reports-token-0123456789"));
        assert!(!token.matches("reports-token-012345678"));
        assert!(!token.matches("reports-token-01234567890"));
        assert!(!token.matches(""));
        assert!(matches!(require(None, "X", None), Err(Error::Unavailable(m)) if m.contains("X")));
        assert!(matches!(
            require(Some(&token), "X", None),
            Err(Error::InvalidToken(_))
        ));
        assert!(matches!(
            require(Some(&token), "X", Some("reports-token")),
            Err(Error::InvalidToken(_))
        ));
        assert!(require(Some(&token), "X", Some("reports-token-0123456789")).is_ok());
    }

    #[test]
    fn issued_secrets_are_fresh_and_match_only_their_digest() {
        let issued = issue_secret("igcs_").unwrap();
        assert!(issued.secret.starts_with("igcs_"));
        assert_eq!(issued.secret.len(), "igcs_".len() + 43);
        assert!(matches_stored(&issued.digest, &issued.secret));
        let other = issue_secret("igcs_").unwrap();
        assert!(!matches_stored(&issued.digest, &other.secret));
        assert!(!matches_stored(&issued.digest[..31], &issued.secret));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
