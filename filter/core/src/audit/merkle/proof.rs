//! Inclusion and consistency proofs: generation (RFC 9162 §2.1.3.1 `PATH` and §2.1.4.1 `PROOF`,
//! over stored complete subtrees) and verification (§2.1.3.2 and §2.1.4.2, step by step).

use std::collections::HashMap;

use super::range::decompose;
use super::{Hash, MerkleError, NodeId, fold, node_hash, split_point};

/// A proof before its hashes are known: each element is the subtree `MTH(D[a:b])` that RFC 9162
/// names, given as the complete subtrees it folds from (one, except at the tree's right edge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    elements: Vec<Vec<NodeId>>,
}

impl Plan {
    /// `PATH(index, D[size])`: the audit path of leaf `index` in the tree of `size` leaves.
    pub fn inclusion(index: u64, size: u64) -> Result<Self, MerkleError> {
        if index >= size {
            return Err(MerkleError::OutOfRange(format!(
                "leaf {index} is not in a tree of {size} leaves"
            )));
        }
        let mut elements = Vec::new();
        path(index, 0, size, &mut elements);
        Ok(Plan { elements })
    }

    /// `PROOF(first, D[second])`: that the tree of `first` leaves is a prefix of the one of `second`.
    pub fn consistency(first: u64, second: u64) -> Result<Self, MerkleError> {
        if first == 0 || first > second {
            return Err(MerkleError::OutOfRange(format!(
                "a consistency proof needs 1 <= first <= second, got first {first}, second {second}"
            )));
        }
        let mut elements = Vec::new();
        subproof(first, 0, second, true, &mut elements);
        Ok(Plan { elements })
    }

    /// Every stored subtree the proof needs, each once.
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.elements.iter().flatten().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The proof's hashes from the fetched subtrees.
    pub fn build(&self, stored: &HashMap<NodeId, Hash>) -> Result<Vec<Hash>, MerkleError> {
        self.elements
            .iter()
            .map(|ids| {
                let hashes = ids
                    .iter()
                    .map(|id| stored.get(id).copied().ok_or(MerkleError::MissingNode(*id)))
                    .collect::<Result<Vec<Hash>, _>>()?;
                fold(&hashes).ok_or(MerkleError::ProofMismatch("empty proof element"))
            })
            .collect()
    }
}

/// Leaves are `[begin, end)`; `m` is absolute. The sibling of each level is pushed after the path
/// below it, so the proof runs from the leaf up.
fn path(m: u64, begin: u64, end: u64, out: &mut Vec<Vec<NodeId>>) {
    let n = end - begin;
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < begin + k {
        path(m, begin, begin + k, out);
        out.push(decompose(begin + k, end));
    } else {
        path(m, begin + k, end, out);
        out.push(decompose(begin, begin + k));
    }
}

/// `SUBPROOF(m, D[begin:end], whole)` with `m` counted from `begin`.
fn subproof(m: u64, begin: u64, end: u64, whole: bool, out: &mut Vec<Vec<NodeId>>) {
    let n = end - begin;
    if m == n {
        if !whole {
            out.push(decompose(begin, end));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, begin, begin + k, whole, out);
        out.push(decompose(begin + k, end));
    } else {
        subproof(m - k, begin + k, end, false, out);
        out.push(decompose(begin, begin + k));
    }
}

/// Right-shifts `fn` and `sn` together until the lowest bit of `fn` is set or `fn` is 0.
fn shift_while_even(fnode: &mut u64, snode: &mut u64) {
    while *fnode != 0 && *fnode & 1 == 0 {
        *fnode >>= 1;
        *snode >>= 1;
    }
}

/// RFC 9162 §2.1.3.2: does `path` prove leaf `index` (hashed `leaf`) in the tree of `size` leaves
/// whose root is `root`?
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    path: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::OutOfRange(format!(
            "leaf {index} is not in a tree of {size} leaves"
        )));
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return Err(MerkleError::ProofMismatch(
                "the inclusion proof has more hashes than the tree has levels",
            ));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                shift_while_even(&mut fnode, &mut snode);
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(MerkleError::ProofMismatch(
            "the inclusion proof has fewer hashes than the tree has levels",
        ));
    }
    if &r != root {
        return Err(MerkleError::ProofMismatch(
            "the inclusion proof does not lead to the tree head's root",
        ));
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: does `proof` show that the tree of `first` leaves (root `first_root`) is a
/// prefix of the tree of `second` leaves (root `second_root`)? Equal sizes need an empty proof and
/// equal roots.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if first == 0 || first > second {
        return Err(MerkleError::OutOfRange(format!(
            "a consistency proof needs 1 <= first <= second, got first {first}, second {second}"
        )));
    }
    if first == second {
        if !proof.is_empty() {
            return Err(MerkleError::ProofMismatch(
                "trees of equal size need an empty consistency proof",
            ));
        }
        if first_root != second_root {
            return Err(MerkleError::ProofMismatch(
                "two trees of the same size have different roots",
            ));
        }
        return Ok(());
    }
    // Step 1.
    if proof.is_empty() {
        return Err(MerkleError::ProofMismatch("the consistency proof is empty"));
    }
    // Step 2: a first tree that is a complete subtree is its own first element.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((start, rest)) = path.split_first() else {
        return Err(MerkleError::ProofMismatch("the consistency proof is empty"));
    };
    // Steps 3 to 5.
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*start, *start);
    // Step 6.
    for c in rest {
        if snode == 0 {
            return Err(MerkleError::ProofMismatch(
                "the consistency proof has more hashes than the trees need",
            ));
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                shift_while_even(&mut fnode, &mut snode);
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(MerkleError::ProofMismatch(
            "the consistency proof has fewer hashes than the trees need",
        ));
    }
    if &fr != first_root {
        return Err(MerkleError::ProofMismatch(
            "the consistency proof does not lead to the first tree head's root",
        ));
    }
    if &sr != second_root {
        return Err(MerkleError::ProofMismatch(
            "the consistency proof does not lead to the second tree head's root",
        ));
    }
    Ok(())
}
