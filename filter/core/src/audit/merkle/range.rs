//! Compact ranges: a run of leaves `[begin, end)` held as the hashes of the fewest complete subtrees
//! that cover it (at most two per level). Appending a leaf merges sibling subtrees as they complete,
//! which is how the append path learns which subtrees to store and what the new root is, and two
//! adjacent ranges merge into one, which is how verify combines ranges hashed in parallel.

use super::{Hash, MerkleError, NodeId, empty_root, fold, node_hash};

/// The complete subtrees covering `[begin, end)`, left to right: at each step the largest subtree
/// that starts there (aligned to its size) and still fits.
pub fn decompose(begin: u64, end: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut at = begin;
    while at < end {
        let fits = 63 - (end - at).leading_zeros();
        let level = at.trailing_zeros().min(fits);
        out.push(NodeId {
            level: level as u8,
            index: at >> level,
        });
        at += 1u64 << level;
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactRange {
    begin: u64,
    end: u64,
    nodes: Vec<(NodeId, Hash)>,
}

impl CompactRange {
    /// No leaves yet; the first one appended is leaf `begin`.
    pub fn new(begin: u64) -> Self {
        CompactRange {
            begin,
            end: begin,
            nodes: Vec::new(),
        }
    }

    /// The range from the stored hashes of `decompose(begin, end)`, in that order.
    pub fn from_hashes(begin: u64, end: u64, hashes: &[Hash]) -> Result<Self, MerkleError> {
        if end < begin {
            return Err(MerkleError::OutOfRange(format!(
                "range end {end} is before its begin {begin}"
            )));
        }
        let ids = decompose(begin, end);
        if ids.len() != hashes.len() {
            return Err(MerkleError::Malformed(format!(
                "the range [{begin}, {end}) has {} subtrees, got {} hashes",
                ids.len(),
                hashes.len()
            )));
        }
        Ok(CompactRange {
            begin,
            end,
            nodes: ids.into_iter().zip(hashes.iter().copied()).collect(),
        })
    }

    pub fn begin(&self) -> u64 {
        self.begin
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends leaf `end` by its leaf hash. `completed` sees the leaf and then every inner subtree
    /// the append completes: exactly the nodes a store of complete subtrees must add.
    pub fn append(
        &mut self,
        leaf: Hash,
        mut completed: impl FnMut(NodeId, &Hash),
    ) -> Result<(), MerkleError> {
        let id = NodeId::leaf(self.end);
        completed(id, &leaf);
        self.push(id, leaf, &mut completed)
    }

    /// Appends the adjacent range `next` (which must begin where this one ends).
    pub fn merge(&mut self, next: CompactRange) -> Result<(), MerkleError> {
        if next.begin != self.end {
            return Err(MerkleError::OutOfRange(format!(
                "cannot join [{}, {}) and [{}, {}): they are not adjacent",
                self.begin, self.end, next.begin, next.end
            )));
        }
        for (id, hash) in next.nodes {
            self.push(id, hash, &mut |_, _| {})?;
        }
        Ok(())
    }

    /// The tree head's root over leaves `[0, end)`; only a range that starts at leaf 0 has one.
    pub fn root(&self) -> Result<Hash, MerkleError> {
        if self.begin != 0 {
            return Err(MerkleError::OutOfRange(format!(
                "a range starting at leaf {} has no tree root",
                self.begin
            )));
        }
        let hashes: Vec<Hash> = self.nodes.iter().map(|(_, h)| *h).collect();
        Ok(fold(&hashes).unwrap_or_else(empty_root))
    }

    fn push(
        &mut self,
        id: NodeId,
        hash: Hash,
        completed: &mut impl FnMut(NodeId, &Hash),
    ) -> Result<(), MerkleError> {
        if id.first_leaf() != Some(self.end) {
            return Err(MerkleError::OutOfRange(format!(
                "subtree at level {}, index {} does not start at leaf {}",
                id.level, id.index, self.end
            )));
        }
        self.end = self
            .end
            .checked_add(id.leaves())
            .ok_or_else(|| MerkleError::OutOfRange("the tree is full".into()))?;
        self.nodes.push((id, hash));
        // Two subtrees of one level, the left at an even index, are siblings: their parent is
        // complete now and replaces them.
        while let [.., (left, left_hash), (right, right_hash)] = self.nodes.as_slice()
            && left.level == right.level
            && left.index % 2 == 0
        {
            let parent = NodeId {
                level: left.level + 1,
                index: left.index / 2,
            };
            let parent_hash = node_hash(left_hash, right_hash);
            self.nodes.truncate(self.nodes.len() - 2);
            self.nodes.push((parent, parent_hash));
            completed(parent, &parent_hash);
        }
        Ok(())
    }
}
