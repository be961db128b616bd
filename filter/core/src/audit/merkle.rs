//! The per-tenant Merkle tree over the audit log (RFC 6962 §2.1, RFC 9162 §2.1): the same events, in
//! the same order, as the hash chain, so that an auditor can check one event's inclusion, or that a
//! later log extends an earlier one, from a few dozen hashes and a signed tree head instead of a
//! walk of the whole chain.
//!
//! - A leaf is an event's canonical JSON exactly as stored (what [`super::canonical_json`] wrote);
//!   its hash is `SHA-256(0x00 ‖ leaf)`, an inner node's `SHA-256(0x01 ‖ left ‖ right)`, the empty
//!   tree's `SHA-256()`.
//! - [`CompactRange`] builds roots and the stored complete subtrees from a stream of leaves;
//! - [`Plan`] says which complete subtrees a proof needs, so storage can fetch them in one go;
//! - [`verify_inclusion`] and [`verify_consistency`] are RFC 9162 §2.1.3.2 and §2.1.4.2;
//! - [`TreeHead`] / [`SignedTreeHead`] are the signed statements `{tenant, tree_size, root_hash,
//!   timestamp}`, and the `wire` types the JSON the control plane serves and the CLI reads.

mod head;
mod proof;
mod range;
mod wire;

#[cfg(test)]
mod tests;

use sha2::{Digest, Sha256};

pub use head::{SignedTreeHead, TreeHead};
pub use proof::{Plan, verify_consistency, verify_inclusion};
pub use range::{CompactRange, decompose};
pub use wire::{ConsistencyProof, InclusionProof, parse_hash, parse_hashes};

pub type Hash = [u8; 32];

/// Why a tree operation or a proof check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// A leaf index or tree size outside the tree, or sizes in the wrong order.
    #[error("{0}")]
    OutOfRange(String),
    /// Storage did not hold a subtree a proof needs.
    #[error("the stored tree lacks the subtree at level {}, index {}", .0.level, .0.index)]
    MissingNode(NodeId),
    /// The proof does not lead to the expected root (or has the wrong number of hashes).
    #[error("{0}")]
    ProofMismatch(&'static str),
    /// The tree head's signature does not verify, or its key is not trusted.
    #[error("{0}")]
    BadSignature(String),
    /// A hash, signature or key in the input is not well-formed.
    #[error("{0}")]
    Malformed(String),
}

/// A complete subtree: the `2^level` leaves starting at `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub fn leaf(index: u64) -> Self {
        NodeId { level: 0, index }
    }

    /// The first leaf it covers; `None` beyond 2^64 leaves.
    pub fn first_leaf(self) -> Option<u64> {
        self.index
            .checked_shl(u32::from(self.level))
            .filter(|first| first.checked_shr(u32::from(self.level)) == Some(self.index))
    }

    pub fn leaves(self) -> u64 {
        1u64.checked_shl(u32::from(self.level)).unwrap_or(0)
    }
}

/// `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the tree with no leaves: `SHA-256()` of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The hash of a run of adjacent complete subtrees, the rightmost folded in first: how RFC 6962's
/// `MTH` combines the decomposition of a subtree that is not complete (see [`decompose`]).
pub fn fold(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)))
}

/// The largest power of two strictly below `n` (`n` ≥ 2): where RFC 6962 splits a tree of `n`.
fn split_point(n: u64) -> u64 {
    1u64 << (63 - n.saturating_sub(1).max(1).leading_zeros())
}
