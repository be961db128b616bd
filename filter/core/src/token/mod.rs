//! Capability tokens (SPEC §2): Ed25519-signed blocks that a holder can narrow but never widen.

mod cache;
mod claims;
mod codec;
mod issue;
mod keys;
mod revoked;
mod verify;

#[cfg(test)]
mod tests;

pub use cache::{TokenCache, TokenVerifier};
pub use claims::{AttenuationClaims, AuthorityClaims, Caveat, TOKEN_VERSION};
pub use codec::{MAX_TOKEN_CHARS, PREFIX};
/// The Ed25519 key types tokens name, so callers need not depend on ed25519-dalek themselves.
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use issue::{Grant, Narrowing, attenuate, mint, mint_for_audience};
pub use keys::{IssuerKey, PublicKeys, key_id, parse_public_key};
pub use revoked::Revoked;
pub use verify::{
    CLOCK_SKEW_SECS, CallBudget, MAX_AUDIENCE_BYTES, VerifiedToken, check_audience, verify,
};

/// What a token says, signature unchecked: for inspection tools only, never for a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Unverified {
    pub kid: String,
    pub authority: AuthorityClaims,
    pub attenuations: Vec<AttenuationClaims>,
}

/// Decodes a token's claims without checking any signature.
pub fn read_unverified(text: &str) -> Result<Unverified, TokenError> {
    let raw = codec::decode(text)?;
    let mut blocks = raw.blocks.iter();
    let first = blocks
        .next()
        .ok_or_else(|| TokenError::Malformed("token has no blocks".into()))?;
    let authority = serde_json::from_slice(&first.payload)
        .map_err(|e| TokenError::Malformed(format!("authority block: {e}")))?;
    let attenuations = blocks
        .enumerate()
        .map(|(i, b)| {
            serde_json::from_slice(&b.payload)
                .map_err(|e| TokenError::Malformed(format!("block {}: {e}", i + 1)))
        })
        .collect::<Result<_, _>>()?;
    Ok(Unverified {
        kid: raw.kid,
        authority,
        attenuations,
    })
}

/// Why a token is refused. The display text is the `reason` callers see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token signed by unknown key {0}")]
    UnknownKey(String),
    #[error("invalid signature on block {0}")]
    BadSignature(usize),
    #[error("token proof does not match its last block")]
    BadProof,
    #[error("unknown caveat kind {0:?}")]
    UnknownCaveat(String),
    #[error("invalid caveat: {0}")]
    InvalidCaveat(String),
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token {0} is revoked")]
    Revoked(String),
    #[error("invalid key: {0}")]
    BadKey(String),
    #[error("attenuation would widen the token: {0}")]
    Widening(String),
}

/// Extracts the token from an `Authorization` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}
