//! The JSON forms of tree heads and proofs: what the control plane serves and `intentgate audit
//! verify-proof` reads. Hashes are lower-case hex (as chain hashes are), signatures base64.
//! Parsing checks every hash and signature for its exact length, so a malformed file is refused
//! with the field named rather than verified as something else.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::{Hash, MerkleError, SignedTreeHead, TreeHead, verify_consistency, verify_inclusion};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHead {
    tenant: String,
    tree_size: u64,
    root_hash: String,
    timestamp: i64,
    key_id: String,
    signature: String,
}

impl From<SignedTreeHead> for RawHead {
    fn from(sth: SignedTreeHead) -> Self {
        RawHead {
            tenant: sth.head.tenant,
            tree_size: sth.head.tree_size,
            root_hash: hex::encode(sth.head.root_hash),
            timestamp: sth.head.timestamp,
            key_id: sth.key_id,
            signature: STANDARD.encode(sth.signature),
        }
    }
}

impl TryFrom<RawHead> for SignedTreeHead {
    type Error = MerkleError;

    fn try_from(raw: RawHead) -> Result<Self, MerkleError> {
        let signature = STANDARD
            .decode(raw.signature.trim())
            .ok()
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .ok_or_else(|| MerkleError::Malformed("signature must be base64 of 64 bytes".into()))?;
        Ok(SignedTreeHead {
            head: TreeHead {
                tenant: raw.tenant,
                tree_size: raw.tree_size,
                root_hash: parse_hash("root_hash", &raw.root_hash)?,
                timestamp: raw.timestamp,
            },
            key_id: raw.key_id,
            signature,
        })
    }
}

impl Serialize for SignedTreeHead {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawHead::from(self.clone()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SignedTreeHead {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SignedTreeHead::try_from(RawHead::deserialize(deserializer)?)
            .map_err(serde::de::Error::custom)
    }
}

/// That event `event_id` is leaf `leaf_index` of the tenant's tree of `tree_size` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub tenant: String,
    pub event_id: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// `SHA-256(0x00 ‖ event)`, hex.
    pub leaf_hash: String,
    /// From the leaf's sibling up to the root's child, hex.
    pub audit_path: Vec<String>,
    /// The event's canonical JSON as stored: the leaf itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

impl InclusionProof {
    /// Checks the audit path from `leaf_hash` to `root` (a signed head's). That `leaf_hash` is the
    /// hash of the event in question is the caller's to check.
    pub fn verify(&self, root: &Hash) -> Result<(), MerkleError> {
        let leaf = parse_hash("leaf_hash", &self.leaf_hash)?;
        let path = parse_hashes("audit_path", &self.audit_path)?;
        verify_inclusion(&leaf, self.leaf_index, self.tree_size, &path, root)
    }
}

/// That the tenant's tree of `first` leaves is a prefix of its tree of `second` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    pub tenant: String,
    pub first: u64,
    pub second: u64,
    /// Hex.
    pub proof: Vec<String>,
}

impl ConsistencyProof {
    /// Checks the proof between the roots of the trees of `first` and `second` leaves.
    pub fn verify(&self, first_root: &Hash, second_root: &Hash) -> Result<(), MerkleError> {
        let proof = parse_hashes("proof", &self.proof)?;
        verify_consistency(self.first, self.second, first_root, second_root, &proof)
    }
}

/// A 32-byte hash in hex, the field named when it is not one.
pub fn parse_hash(field: &str, text: &str) -> Result<Hash, MerkleError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| MerkleError::Malformed(format!("{field} must be 64 hex digits")))?;
    Ok(out)
}

/// Every hash of a proof, in order, the position named when one is malformed.
pub fn parse_hashes(field: &str, texts: &[String]) -> Result<Vec<Hash>, MerkleError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| parse_hash(&format!("{field}[{i}]"), text))
        .collect()
}
