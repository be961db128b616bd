//! Signing and verifying keys, identified by a key id derived from the public key so that every
//! component names a key the same way without coordination.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::TokenError;

/// `ig-` followed by the first 8 bytes of SHA-256 of the public key, in hex.
pub fn key_id(public: &VerifyingKey) -> String {
    let digest = Sha256::digest(public.as_bytes());
    let mut id = String::with_capacity(19);
    id.push_str("ig-");
    id.push_str(&hex::encode(digest.get(..8).unwrap_or_default()));
    id
}

/// The key that signs root blocks. Only the control plane and the CLI hold one.
pub struct IssuerKey {
    signing: SigningKey,
    kid: String,
}

impl IssuerKey {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let kid = key_id(&signing.verifying_key());
        IssuerKey { signing, kid }
    }

    /// From `INTENTGATE_MASTER_KEY`-style text: base64 of a 32-byte seed.
    pub fn from_base64_seed(text: &str) -> Result<Self, TokenError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| TokenError::BadKey("the seed is not valid base64".into()))?;
        let seed: [u8; 32] = bytes.try_into().map_err(|v: Vec<u8>| {
            TokenError::BadKey(format!("the seed must be 32 bytes, got {}", v.len()))
        })?;
        Ok(Self::from_seed(&seed))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn seed(&self) -> &[u8; 32] {
        self.signing.as_bytes()
    }

    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.public().as_bytes())
    }

    pub(crate) fn signing(&self) -> &SigningKey {
        &self.signing
    }
}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the seed.
        f.debug_struct("IssuerKey").field("kid", &self.kid).finish()
    }
}

/// The public keys a verifier accepts, by key id. Several at once during a rotation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublicKeys {
    keys: HashMap<String, VerifyingKey>,
}

impl PublicKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key under its derived id and returns that id.
    pub fn insert(&mut self, key: VerifyingKey) -> String {
        let kid = key_id(&key);
        self.keys.insert(kid.clone(), key);
        kid
    }

    /// Adds a key given as base64; a `kid`, when given, must be the one derived from the key.
    pub fn insert_base64(&mut self, kid: Option<&str>, public: &str) -> Result<String, TokenError> {
        let key = parse_public_key(public)?;
        let derived = key_id(&key);
        if let Some(kid) = kid
            && kid != derived
        {
            return Err(TokenError::BadKey(format!(
                "key id {kid} does not match the key (expected {derived})"
            )));
        }
        self.keys.insert(derived.clone(), key);
        Ok(derived)
    }

    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

pub fn parse_public_key(text: &str) -> Result<VerifyingKey, TokenError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| TokenError::BadKey("public key is not valid base64".into()))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| TokenError::BadKey("public key must be 32 bytes".into()))?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| TokenError::BadKey("public key is not a valid Ed25519 point".into()))?;
    if key.is_weak() {
        return Err(TokenError::BadKey(
            "public key is a weak (small-order) point".into(),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_stable_and_checked() {
        let issuer = IssuerKey::from_seed(&[7u8; 32]);
        assert!(issuer.kid().starts_with("ig-"));
        assert_eq!(issuer.kid().len(), 19);
        let mut keys = PublicKeys::new();
        let kid = keys.insert_base64(None, &issuer.public_base64()).unwrap();
        assert_eq!(kid, issuer.kid());
        assert!(
            keys.insert_base64(Some("ig-0000000000000000"), &issuer.public_base64())
                .is_err()
        );
        assert!(keys.insert_base64(None, "AAAA").is_err());
    }

    #[test]
    fn seed_text_must_be_32_bytes() {
        assert!(IssuerKey::from_base64_seed("AAAA").is_err());
        assert!(IssuerKey::from_base64_seed("not base64!").is_err());
        let text = STANDARD.encode([1u8; 32]);
        assert_eq!(
            IssuerKey::from_base64_seed(&text).unwrap().seed(),
            &[1u8; 32]
        );
    }
}
