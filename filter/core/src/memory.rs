//! Signed agent memory (SPEC §2). A token minted `with_memory_signing_key` carries the public half of
//! a key derived from the master seed and the token's jti; the agent signs each memory entry with the
//! private half, hash-linked to the previous one, and presents the chain in `X-Intent-Memory-Provenance`.
//! The filter verifies it with the key from the token alone.
//!
//! ```text
//! header  = base64url-nopad(JSON {"entries":[{"seq":0,"content_sha256":hex,"prev":hex,"sig":base64url}, ...]})
//! hash_i  = SHA-256("intentgate/memory/v1\0" ‖ jti ‖ 0x00 ‖ seq:u64be ‖ prev:[32] ‖ content_sha256:[32])
//! sig_i   = Ed25519(memory key, hash_i);  prev_0 = 32 zero bytes, prev_i = hash_{i-1}
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const HKDF_SALT: &[u8] = b"intentgate/memory-key/v1";
const DOMAIN: &[u8] = b"intentgate/memory/v1\0";
/// A chain longer than this is refused: verification is one signature check per entry.
pub const MAX_ENTRIES: usize = 256;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The per-token memory signing key: HKDF-SHA256(salt, ikm = master seed, info = jti).
pub fn derive_memory_key(master_seed: &[u8; 32], jti: &str) -> SigningKey {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), master_seed);
    let mut seed = [0u8; 32];
    // 32 bytes is far below HKDF's 255 * 32 limit, so expand cannot fail.
    if hk.expand(jti.as_bytes(), &mut seed).is_err() {
        seed = [0u8; 32];
    }
    SigningKey::from_bytes(&seed)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryEntry {
    pub seq: u64,
    pub content_sha256: String,
    pub prev: String,
    pub sig: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryChain {
    pub entries: Vec<MemoryEntry>,
}

/// What a verified chain proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedMemory {
    pub entries: usize,
    pub head: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    #[error("memory provenance is malformed: {0}")]
    Malformed(String),
    #[error("memory entry {0} is out of sequence")]
    Sequence(usize),
    #[error("memory entry {0} does not link to the previous entry")]
    BrokenLink(usize),
    #[error("memory entry {0} has an invalid signature")]
    BadSignature(usize),
}

fn entry_hash(jti: &str, seq: u64, prev: &[u8; 32], content: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(jti.as_bytes());
    h.update([0u8]);
    h.update(seq.to_be_bytes());
    h.update(prev);
    h.update(content);
    h.finalize().into()
}

fn hex32(text: &str, what: &str) -> Result<[u8; 32], MemoryError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out)
        .map_err(|_| MemoryError::Malformed(format!("{what} must be 64 hex characters")))?;
    Ok(out)
}

/// Verifies the header value against the token's memory key and jti.
pub fn verify_chain(
    header: &str,
    key: &VerifyingKey,
    jti: &str,
) -> Result<VerifiedMemory, MemoryError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(MemoryError::Malformed("header too large".into()));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(header.trim())
        .map_err(|_| MemoryError::Malformed("not base64url".into()))?;
    let chain: MemoryChain =
        serde_json::from_slice(&bytes).map_err(|e| MemoryError::Malformed(e.to_string()))?;
    if chain.entries.is_empty() || chain.entries.len() > MAX_ENTRIES {
        return Err(MemoryError::Malformed(format!(
            "a chain has 1 to {MAX_ENTRIES} entries"
        )));
    }
    let mut prev = [0u8; 32];
    for (index, entry) in chain.entries.iter().enumerate() {
        if entry.seq != index as u64 {
            return Err(MemoryError::Sequence(index));
        }
        if hex32(&entry.prev, "prev")? != prev {
            return Err(MemoryError::BrokenLink(index));
        }
        let content = hex32(&entry.content_sha256, "content_sha256")?;
        let hash = entry_hash(jti, entry.seq, &prev, &content);
        let sig_bytes: [u8; 64] = URL_SAFE_NO_PAD
            .decode(&entry.sig)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(MemoryError::BadSignature(index))?;
        key.verify_strict(&hash, &Signature::from_bytes(&sig_bytes))
            .map_err(|_| MemoryError::BadSignature(index))?;
        prev = hash;
    }
    Ok(VerifiedMemory {
        entries: chain.entries.len(),
        head: prev,
    })
}

/// Builds a chain the way an agent does; used by the CLI and tests.
pub struct ChainWriter<'a> {
    key: &'a SigningKey,
    jti: String,
    chain: MemoryChain,
    prev: [u8; 32],
}

impl<'a> ChainWriter<'a> {
    pub fn new(key: &'a SigningKey, jti: &str) -> Self {
        ChainWriter {
            key,
            jti: jti.to_owned(),
            chain: MemoryChain { entries: vec![] },
            prev: [0u8; 32],
        }
    }

    pub fn append(&mut self, content: &[u8]) {
        let content_hash: [u8; 32] = Sha256::digest(content).into();
        let seq = self.chain.entries.len() as u64;
        let hash = entry_hash(&self.jti, seq, &self.prev, &content_hash);
        self.chain.entries.push(MemoryEntry {
            seq,
            content_sha256: hex::encode(content_hash),
            prev: hex::encode(self.prev),
            sig: URL_SAFE_NO_PAD.encode(self.key.sign(&hash).to_bytes()),
        });
        self.prev = hash;
    }

    pub fn chain(&self) -> &MemoryChain {
        &self.chain
    }

    /// The header value.
    pub fn header(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&self.chain).unwrap_or_default())
    }
}

/// Encodes an edited chain as a header value (tests tamper with chains through this).
pub fn encode_chain(chain: &MemoryChain) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(chain).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer_chain(key: &SigningKey) -> ChainWriter<'_> {
        let mut w = ChainWriter::new(key, "01JTI");
        w.append(b"user asked for invoice 7");
        w.append(b"looked up vendor acme");
        w.append(b"drafted reply");
        w
    }

    #[test]
    fn derivation_is_deterministic_and_per_jti() {
        let a = derive_memory_key(&[9; 32], "01A");
        assert_eq!(a.to_bytes(), derive_memory_key(&[9; 32], "01A").to_bytes());
        assert_ne!(a.to_bytes(), derive_memory_key(&[9; 32], "01B").to_bytes());
        assert_ne!(a.to_bytes(), derive_memory_key(&[8; 32], "01A").to_bytes());
    }

    #[test]
    fn hkdf_matches_rfc5869_construction() {
        // HKDF-SHA256 computed independently: PRK = HMAC(salt, ikm); OKM = HMAC(PRK, info || 0x01).
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(HKDF_SALT).unwrap();
        mac.update(&[9; 32]);
        let prk = mac.finalize().into_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(&prk).unwrap();
        mac.update(b"01A");
        mac.update(&[1]);
        let okm = mac.finalize().into_bytes();
        assert_eq!(
            derive_memory_key(&[9; 32], "01A").to_bytes().as_slice(),
            okm.as_slice()
        );
    }

    #[test]
    fn a_written_chain_verifies() {
        let key = derive_memory_key(&[1; 32], "01JTI");
        let w = writer_chain(&key);
        let verified = verify_chain(&w.header(), &key.verifying_key(), "01JTI").unwrap();
        assert_eq!(verified.entries, 3);
    }

    #[test]
    fn tampering_is_detected_at_the_right_entry() {
        let key = derive_memory_key(&[1; 32], "01JTI");
        let public = key.verifying_key();
        let w = writer_chain(&key);

        let mut edited = w.chain().clone();
        edited.entries[1].content_sha256 = hex::encode([0u8; 32]);
        assert_eq!(
            verify_chain(&encode_chain(&edited), &public, "01JTI"),
            Err(MemoryError::BadSignature(1))
        );

        let mut dropped = w.chain().clone();
        dropped.entries.remove(1);
        assert_eq!(
            verify_chain(&encode_chain(&dropped), &public, "01JTI"),
            Err(MemoryError::Sequence(1))
        );

        let mut relinked = w.chain().clone();
        relinked.entries[2].prev = relinked.entries[0].prev.clone();
        assert_eq!(
            verify_chain(&encode_chain(&relinked), &public, "01JTI"),
            Err(MemoryError::BrokenLink(2))
        );

        // Another token's key or jti does not verify.
        let other = derive_memory_key(&[1; 32], "01OTHER").verifying_key();
        assert_eq!(
            verify_chain(&w.header(), &other, "01JTI"),
            Err(MemoryError::BadSignature(0))
        );
        assert!(verify_chain(&w.header(), &public, "01OTHER").is_err());
        assert!(verify_chain("%%%", &public, "01JTI").is_err());
    }
}
