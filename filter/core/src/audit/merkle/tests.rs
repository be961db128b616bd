use std::collections::HashMap;

use super::*;
use crate::token::{IssuerKey, PublicKeys, SigningKey};

/// The leaf inputs of RFC 6962's reference implementation's tests (certificate-transparency,
/// `merkle_tree_test.cc`).
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// The roots of the trees of the first 0..=8 of those leaves.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn h(text: &str) -> Hash {
    parse_hash("test", text).unwrap()
}

fn leaf_inputs(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| match LEAVES.get(i) {
            Some(hex_text) => hex::decode(hex_text).unwrap(),
            None => format!("{{\"n\":{i}}}").into_bytes(),
        })
        .collect()
}

/// RFC 9162 §2.1.1's `MTH`, written as the RFC defines it: the reference the tree code must match.
fn mth(leaves: &[Vec<u8>]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// A whole tree in memory: every complete subtree the append path would store, and the root.
fn build(leaves: &[Vec<u8>]) -> (HashMap<NodeId, Hash>, Hash) {
    let mut stored = HashMap::new();
    let mut range = CompactRange::new(0);
    for leaf in leaves {
        range
            .append(leaf_hash(leaf), |id, hash| {
                assert!(stored.insert(id, *hash).is_none(), "{id:?} completed twice");
            })
            .unwrap();
    }
    (stored, range.root().unwrap())
}

fn inclusion(stored: &HashMap<NodeId, Hash>, index: u64, size: u64) -> Vec<Hash> {
    Plan::inclusion(index, size).unwrap().build(stored).unwrap()
}

fn consistency(stored: &HashMap<NodeId, Hash>, first: u64, second: u64) -> Vec<Hash> {
    Plan::consistency(first, second)
        .unwrap()
        .build(stored)
        .unwrap()
}

#[test]
fn roots_match_the_rfc_6962_reference_vectors() {
    let leaves = leaf_inputs(8);
    for (n, expected) in ROOTS.iter().enumerate() {
        assert_eq!(build(&leaves[..n]).1, h(expected), "tree of {n}");
        assert_eq!(mth(&leaves[..n]), h(expected), "reference MTH of {n}");
    }
}

#[test]
fn proofs_match_the_rfc_6962_reference_vectors() {
    let (stored, _) = build(&leaf_inputs(8));
    let paths: [(u64, u64, Vec<&str>); 4] = [
        (
            0,
            8,
            vec![
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            vec![
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            vec!["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            vec![
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (index, size, expected) in paths {
        let expected: Vec<Hash> = expected.iter().map(|t| h(t)).collect();
        assert_eq!(
            inclusion(&stored, index, size),
            expected,
            "PATH({index}, {size})"
        );
    }
    let proofs: [(u64, u64, Vec<&str>); 4] = [
        (
            1,
            8,
            vec![
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            vec![
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            vec![
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (8, 8, vec![]),
    ];
    for (first, second, expected) in proofs {
        let expected: Vec<Hash> = expected.iter().map(|t| h(t)).collect();
        assert_eq!(
            consistency(&stored, first, second),
            expected,
            "PROOF({first}, {second})"
        );
    }
}

#[test]
fn every_generated_proof_verifies_up_to_70_leaves() {
    let leaves = leaf_inputs(70);
    let (stored, _) = build(&leaves);
    let roots: Vec<Hash> = (0..=leaves.len()).map(|n| mth(&leaves[..n])).collect();
    for size in 1..=leaves.len() as u64 {
        let root = roots[size as usize];
        for index in 0..size {
            let path = inclusion(&stored, index, size);
            let leaf = leaf_hash(&leaves[index as usize]);
            verify_inclusion(&leaf, index, size, &path, &root)
                .unwrap_or_else(|e| panic!("leaf {index} of {size}: {e}"));
        }
        for first in 1..=size {
            let proof = consistency(&stored, first, size);
            verify_consistency(first, size, &roots[first as usize], &root, &proof)
                .unwrap_or_else(|e| panic!("{first} -> {size}: {e}"));
        }
    }
}

#[test]
fn any_altered_hash_leaf_or_index_fails_inclusion() {
    let leaves = leaf_inputs(13);
    let (stored, root) = build(&leaves);
    for index in 0..13u64 {
        let leaf = leaf_hash(&leaves[index as usize]);
        let path = inclusion(&stored, index, 13);
        for i in 0..path.len() {
            let mut bad = path.clone();
            bad[i][0] ^= 1;
            assert!(verify_inclusion(&leaf, index, 13, &bad, &root).is_err());
        }
        let mut extra = path.clone();
        extra.push(root);
        assert!(verify_inclusion(&leaf, index, 13, &extra, &root).is_err());
        assert!(verify_inclusion(&leaf, index, 13, &path[1..], &root).is_err());
        let other = leaf_hash(b"{\"forged\":true}");
        assert!(verify_inclusion(&other, index, 13, &path, &root).is_err());
        assert!(verify_inclusion(&leaf, (index + 1) % 13, 13, &path, &root).is_err());
        let mut bad_root = root;
        bad_root[31] ^= 0x80;
        assert!(verify_inclusion(&leaf, index, 13, &path, &bad_root).is_err());
    }
    assert!(matches!(
        verify_inclusion(&root, 13, 13, &[], &root),
        Err(MerkleError::OutOfRange(_))
    ));
}

#[test]
fn any_altered_hash_or_proof_length_fails_consistency() {
    let leaves = leaf_inputs(21);
    let (stored, root) = build(&leaves);
    for first in 1..21u64 {
        let first_root = mth(&leaves[..first as usize]);
        let proof = consistency(&stored, first, 21);
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i][7] ^= 4;
            assert!(verify_consistency(first, 21, &first_root, &root, &bad).is_err());
        }
        let mut bad_first = first_root;
        bad_first[0] ^= 1;
        assert!(verify_consistency(first, 21, &bad_first, &root, &proof).is_err());
        assert!(verify_consistency(first, 21, &first_root, &first_root, &proof).is_err());
        let mut longer = proof.clone();
        longer.push(root);
        assert!(verify_consistency(first, 21, &first_root, &root, &longer).is_err());
        assert!(verify_consistency(first, 21, &first_root, &root, &proof[1..]).is_err());
    }
    // A rewritten history: the same size, a different first event.
    let mut rewritten = leaves.clone();
    rewritten[0] = b"{\"rewritten\":true}".to_vec();
    let (_, other_root) = build(&rewritten);
    let proof = consistency(&stored, 5, 21);
    assert!(verify_consistency(5, 21, &mth(&leaves[..5]), &other_root, &proof).is_err());
    assert!(verify_consistency(21, 21, &root, &other_root, &[]).is_err());
    assert!(verify_consistency(21, 21, &root, &root, &[]).is_ok());
    assert!(verify_consistency(0, 21, &root, &root, &proof).is_err());
    assert!(Plan::consistency(6, 5).is_err());
    assert!(Plan::inclusion(5, 5).is_err());
}

#[test]
fn ranges_hashed_apart_merge_into_the_same_root() {
    let leaves = leaf_inputs(45);
    let expected = mth(&leaves);
    for cuts in [
        vec![0, 45],
        vec![0, 1, 45],
        vec![0, 7, 8, 30, 31, 45],
        vec![0, 16, 32, 45],
    ] {
        let mut parts = cuts.windows(2).map(|w| {
            let mut range = CompactRange::new(w[0]);
            for leaf in &leaves[w[0] as usize..w[1] as usize] {
                range.append(leaf_hash(leaf), |_, _| {}).unwrap();
            }
            range
        });
        let mut whole = parts.next().unwrap();
        for part in parts {
            whole.merge(part).unwrap();
        }
        assert_eq!(whole.root().unwrap(), expected, "cuts {cuts:?}");
    }
    let mut gap = CompactRange::new(0);
    assert!(gap.merge(CompactRange::new(3)).is_err());
    assert!(CompactRange::new(2).root().is_err());
}

#[test]
fn a_range_reloaded_from_stored_subtrees_continues_the_same_tree() {
    let leaves = leaf_inputs(29);
    let (stored, root) = build(&leaves);
    for cut in 0..29u64 {
        let frontier: Vec<Hash> = decompose(0, cut).iter().map(|id| stored[id]).collect();
        let mut range = CompactRange::from_hashes(0, cut, &frontier).unwrap();
        let mut added = HashMap::new();
        for leaf in &leaves[cut as usize..] {
            range
                .append(leaf_hash(leaf), |id, hash| {
                    added.insert(id, *hash);
                })
                .unwrap();
        }
        assert_eq!(range.root().unwrap(), root);
        // What the append reports is exactly what the first `cut` leaves had not completed.
        let before = build(&leaves[..cut as usize]).0;
        assert_eq!(before.len() + added.len(), stored.len());
        assert!(
            added
                .iter()
                .all(|(id, hash)| stored[id] == *hash && !before.contains_key(id))
        );
    }
    assert!(CompactRange::from_hashes(0, 5, &[root]).is_err());
    // 2n - popcount(n) complete subtrees for n leaves.
    assert_eq!(stored.len(), 2 * 29 - 29u32.count_ones() as usize);
}

fn signed() -> (SignedTreeHead, PublicKeys) {
    let issuer = IssuerKey::from_seed(&[9u8; 32]);
    let mut keys = PublicKeys::new();
    keys.insert(issuer.public());
    let head = TreeHead {
        tenant: "acme-corp".into(),
        tree_size: 8,
        root_hash: h(ROOTS[8]),
        timestamp: 1_781_444_520_123,
    };
    (
        head.sign(&SigningKey::from_bytes(&[9u8; 32])).unwrap(),
        keys,
    )
}

#[test]
fn tree_heads_verify_and_any_change_is_detected() {
    let (sth, keys) = signed();
    sth.verify(&keys).unwrap();
    let text = serde_json::to_string(&sth).unwrap();
    let back: SignedTreeHead = serde_json::from_str(&text).unwrap();
    assert_eq!(back, sth);

    let mut edits: Vec<SignedTreeHead> = Vec::new();
    let mut e = sth.clone();
    e.head.tenant = "globex".into();
    edits.push(e);
    let mut e = sth.clone();
    e.head.tree_size = 9;
    edits.push(e);
    let mut e = sth.clone();
    e.head.root_hash[3] ^= 1;
    edits.push(e);
    let mut e = sth.clone();
    e.head.timestamp += 1;
    edits.push(e);
    let mut e = sth.clone();
    e.signature[10] ^= 1;
    edits.push(e);
    for edited in edits {
        assert!(matches!(
            edited.verify(&keys),
            Err(MerkleError::BadSignature(_))
        ));
    }
    let stranger = PublicKeys::new();
    assert!(sth.verify(&stranger).is_err());
}

#[test]
fn the_signed_bytes_are_fixed_test_vector() {
    let (sth, _) = signed();
    let bytes = sth.head.signed_bytes().unwrap();
    let mut expected = b"intentgate/tree-head/v1\0".to_vec();
    expected.extend_from_slice(&[0, 9]);
    expected.extend_from_slice(b"acme-corp");
    expected.extend_from_slice(&8u64.to_be_bytes());
    expected.extend_from_slice(&h(ROOTS[8]));
    expected.extend_from_slice(&1_781_444_520_123i64.to_be_bytes());
    assert_eq!(bytes, expected);
}

#[test]
fn malformed_wire_values_are_refused_with_the_field_named() {
    let (sth, _) = signed();
    let mut value = serde_json::to_value(&sth).unwrap();
    value["root_hash"] = "abcd".into();
    let err = serde_json::from_value::<SignedTreeHead>(value).unwrap_err();
    assert!(err.to_string().contains("root_hash"), "{err}");
    let mut value = serde_json::to_value(&sth).unwrap();
    value["signature"] = "AAAA".into();
    assert!(serde_json::from_value::<SignedTreeHead>(value).is_err());
    let mut value = serde_json::to_value(&sth).unwrap();
    value["extra"] = 1.into();
    assert!(serde_json::from_value::<SignedTreeHead>(value).is_err());
    let err = parse_hashes("audit_path", &["00".repeat(32), "zz".into()]).unwrap_err();
    assert!(err.to_string().contains("audit_path[1]"), "{err}");
}
