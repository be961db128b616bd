//! Signed tree heads: `{tenant, tree_size, root_hash, timestamp}` signed with Ed25519 by the control
//! plane's key. The signed bytes carry their own domain, so a tree head signature can never be
//! taken for a token block signature made by the same key (those start `intentgate/token/v1`).

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};

use super::{Hash, MerkleError};
use crate::token::{PublicKeys, key_id};

const DOMAIN: &[u8] = b"intentgate/tree-head/v1\0";

/// What a tree head states: the tenant's log had `tree_size` events with this root at `timestamp`
/// (unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    pub tenant: String,
    pub tree_size: u64,
    pub root_hash: Hash,
    pub timestamp: i64,
}

impl TreeHead {
    /// `DOMAIN ‖ u16be(len tenant) ‖ tenant ‖ u64be(tree_size) ‖ root_hash ‖ i64be(timestamp)`:
    /// fixed widths and a length prefix, so no two heads sign the same bytes.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, MerkleError> {
        let tenant = self.tenant.as_bytes();
        let len = u16::try_from(tenant.len())
            .map_err(|_| MerkleError::Malformed("the tenant name is too long".into()))?;
        let mut out = Vec::with_capacity(DOMAIN.len() + 2 + tenant.len() + 48);
        out.extend_from_slice(DOMAIN);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(tenant);
        out.extend_from_slice(&self.tree_size.to_be_bytes());
        out.extend_from_slice(&self.root_hash);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        Ok(out)
    }

    pub fn sign(self, key: &SigningKey) -> Result<SignedTreeHead, MerkleError> {
        let signature = key.sign(&self.signed_bytes()?).to_bytes();
        Ok(SignedTreeHead {
            key_id: key_id(&key.verifying_key()),
            head: self,
            signature,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTreeHead {
    pub head: TreeHead,
    /// The signing key's id (`ig-…`, derived from its public key as token key ids are).
    pub key_id: String,
    pub signature: [u8; 64],
}

impl SignedTreeHead {
    /// Checks the signature with a trusted key of that id.
    pub fn verify(&self, keys: &PublicKeys) -> Result<(), MerkleError> {
        let key = keys.get(&self.key_id).ok_or_else(|| {
            MerkleError::BadSignature(format!(
                "the tree head is signed by key {}, which is not a trusted key",
                self.key_id
            ))
        })?;
        key.verify(
            &self.head.signed_bytes()?,
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| MerkleError::BadSignature("the tree head's signature does not verify".into()))
    }
}
