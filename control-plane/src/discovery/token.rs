//! Per-source bearer tokens: `igds_<source id>_<secret>`. Only the token's SHA-256 is stored; the
//! token is shown once, when the source is created or its token rotated. The source id in the
//! token finds the row, and the digest is then compared in constant time.

use crate::auth::token::{issue_secret, matches_stored};
use crate::error::Result;

const PREFIX: &str = "igds_";

pub struct Minted {
    pub token: String,
    pub digest: [u8; 32],
}

pub fn mint(source_id: &str) -> Result<Minted> {
    let issued = issue_secret(&format!("{PREFIX}{source_id}_"))?;
    Ok(Minted {
        token: issued.secret,
        digest: issued.digest,
    })
}

/// The source a token claims to belong to (a ULID never contains `_`).
pub fn source_id(token: &str) -> Option<&str> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some(id)
}

pub fn verify(stored: &[u8], presented: &str) -> bool {
    matches_stored(stored, presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_source_and_verify_against_the_digest() {
        let minted = mint("01J0SOURCE").unwrap();
        assert_eq!(source_id(&minted.token), Some("01J0SOURCE"));
        assert!(verify(&minted.digest, &minted.token));
        let other = mint("01J0SOURCE").unwrap();
        assert!(!verify(&minted.digest, &other.token));
        assert_eq!(source_id("igds_"), None);
        assert_eq!(source_id("Bearer x"), None);
    }
}
