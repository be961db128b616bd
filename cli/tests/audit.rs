//! `intentgate audit verify-proof` through the built binary: a signed tree head, an inclusion and a
//! consistency proof verify with only the public key, from files and from the admin API; any
//! altered event, proof hash or head is refused with exit 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly on purpose.

mod common;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use intentgate_core::audit::merkle::{
    CompactRange, ConsistencyProof, Hash, InclusionProof, NodeId, Plan, SignedTreeHead, TreeHead,
    leaf_hash,
};
use intentgate_core::audit::{AuditEvent, EventKind};
use intentgate_core::decision::AuditDecision;
use intentgate_core::token::{IssuerKey, SigningKey};
use serde_json::{Value, json};

use common::intentgate;

const SEED: [u8; 32] = [42; 32];
const TOKEN: &str = "audit-admin-token-0123456789";

fn events(n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            let mut e = AuditEvent::new(
                format!("ev-{i:03}"),
                1_781_444_520_000 + i as i64,
                EventKind::ToolCall,
                AuditDecision::Allow,
            );
            e.tenant = "acme".into();
            e.tool = "read_invoice".into();
            e.canonical()
        })
        .collect()
}

/// The log as the control plane stores it: every complete subtree, and the root at each size.
struct Log {
    bodies: Vec<String>,
    nodes: HashMap<NodeId, Hash>,
    roots: Vec<Hash>,
}

fn build_log(bodies: Vec<String>) -> Log {
    let mut nodes = HashMap::new();
    let mut range = CompactRange::new(0);
    let mut roots = vec![range.root().unwrap()];
    for body in &bodies {
        range
            .append(leaf_hash(body.as_bytes()), |id, h| {
                nodes.insert(id, *h);
            })
            .unwrap();
        roots.push(range.root().unwrap());
    }
    Log {
        bodies,
        nodes,
        roots,
    }
}

impl Log {
    fn head(&self, size: usize) -> SignedTreeHead {
        TreeHead {
            tenant: "acme".into(),
            tree_size: size as u64,
            root_hash: self.roots[size],
            timestamp: 1_781_444_520_999,
        }
        .sign(&SigningKey::from_bytes(&SEED))
        .unwrap()
    }

    fn inclusion(&self, index: usize, size: usize) -> InclusionProof {
        let path = Plan::inclusion(index as u64, size as u64)
            .unwrap()
            .build(&self.nodes)
            .unwrap();
        InclusionProof {
            tenant: "acme".into(),
            event_id: format!("ev-{:03}", index + 1),
            leaf_index: index as u64,
            tree_size: size as u64,
            leaf_hash: hex::encode(leaf_hash(self.bodies[index].as_bytes())),
            audit_path: path.iter().map(hex::encode).collect(),
            event: Some(self.bodies[index].clone()),
        }
    }

    fn consistency(&self, first: usize, second: usize) -> ConsistencyProof {
        let proof = Plan::consistency(first as u64, second as u64)
            .unwrap()
            .build(&self.nodes)
            .unwrap();
        ConsistencyProof {
            tenant: "acme".into(),
            first: first as u64,
            second: second as u64,
            proof: proof.iter().map(hex::encode).collect(),
        }
    }
}

fn public_key() -> String {
    IssuerKey::from_seed(&SEED).public_base64()
}

fn file(value: &impl serde::Serialize) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path: PathBuf = std::env::temp_dir().join(format!(
        "intentgate-audit-test-{}-{}.json",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, serde_json::to_string(value).unwrap()).unwrap();
    path.display().to_string()
}

fn verify(
    head: &SignedTreeHead,
    inclusion: &InclusionProof,
    old: &SignedTreeHead,
    consistency: &ConsistencyProof,
) -> common::Run {
    let (h, i, o, c) = (file(head), file(inclusion), file(old), file(consistency));
    intentgate(&[
        "audit",
        "verify-proof",
        "--public-key",
        &public_key(),
        "--tree-head",
        &h,
        "--inclusion",
        &i,
        "--old-tree-head",
        &o,
        "--consistency",
        &c,
    ])
}

#[test]
fn a_head_and_its_proofs_verify_from_files_with_only_the_public_key() {
    let log = build_log(events(13));
    let run = verify(
        &log.head(13),
        &log.inclusion(7, 13),
        &log.head(5),
        &log.consistency(5, 13),
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json["verified"], true);
    assert_eq!(run.json["tree_head"]["tree_size"], 13);
    assert_eq!(run.json["inclusion"]["verified"], true);
    assert_eq!(run.json["consistency"]["verified"], true);
}

#[test]
fn an_altered_event_proof_hash_or_head_fails_with_exit_1() {
    let log = build_log(events(13));
    let (head, old) = (log.head(13), log.head(5));
    let (inclusion, consistency) = (log.inclusion(7, 13), log.consistency(5, 13));

    let mut event = inclusion.clone();
    event.event = Some(event.event.unwrap().replace("read_invoice", "read_nothing"));
    let run = verify(&head, &event, &old, &consistency);
    assert_eq!(
        (run.code, &run.json["inclusion"]["verified"]),
        (1, &json!(false)),
        "{}",
        run.stdout
    );

    let mut path = inclusion.clone();
    path.audit_path[1] = "00".repeat(32);
    let run = verify(&head, &path, &old, &consistency);
    assert_eq!(
        (run.code, &run.json["inclusion"]["verified"]),
        (1, &json!(false)),
        "{}",
        run.stdout
    );

    let mut cons = consistency.clone();
    cons.proof[0] = "11".repeat(32);
    let run = verify(&head, &inclusion, &old, &cons);
    assert_eq!(
        (run.code, &run.json["consistency"]["verified"]),
        (1, &json!(false)),
        "{}",
        run.stdout
    );

    let mut forged = head.clone();
    forged.head.root_hash[0] ^= 1;
    let run = verify(&forged, &inclusion, &old, &consistency);
    assert_eq!(
        (run.code, &run.json["tree_head"]["verified"]),
        (1, &json!(false)),
        "{}",
        run.stdout
    );

    // A history rewritten before the old head: the old head's tree is not a prefix any more.
    let mut bodies = events(13);
    bodies[2] = bodies[2].replace("read_invoice", "read_nothing");
    let rewritten = build_log(bodies);
    let run = verify(
        &rewritten.head(13),
        &rewritten.inclusion(7, 13),
        &old,
        &rewritten.consistency(5, 13),
    );
    assert_eq!(
        (run.code, &run.json["consistency"]["verified"]),
        (1, &json!(false)),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.json["inclusion"]["verified"], true,
        "the new log is consistent with itself"
    );

    let other = IssuerKey::from_seed(&[1; 32]).public_base64();
    let h = file(&head);
    let run = intentgate(&[
        "audit",
        "verify-proof",
        "--public-key",
        &other,
        "--tree-head",
        &h,
    ]);
    assert_eq!(run.code, 1, "{}", run.stdout);

    let bad = file(&json!({"tenant": "acme", "tree_size": 1}));
    let run = intentgate(&[
        "audit",
        "verify-proof",
        "--public-key",
        &public_key(),
        "--tree-head",
        &bad,
    ]);
    assert_eq!(
        run.code, 2,
        "a malformed head is an input error: {}",
        run.stderr
    );
}

/// Serves the admin API's three GETs from `log` for `expected` requests, checking the token.
fn serve(log: &Log, expected: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let head = serde_json::to_string(&log.head(13)).unwrap();
    let inclusion = serde_json::to_string(&log.inclusion(3, 13)).unwrap();
    let consistency = serde_json::to_string(&log.consistency(5, 13)).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(expected) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut authorized = false;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                authorized |= line.to_ascii_lowercase().trim()
                    == format!("authorization: bearer {TOKEN}").to_ascii_lowercase();
            }
            let target = request.split(' ').nth(1).unwrap_or("").to_owned();
            let body = if !authorized {
                None
            } else if target.starts_with("/v1/admin/audit/tree-head?tenant=acme") {
                Some(head.clone())
            } else if target.starts_with(
                "/v1/admin/audit/proofs/inclusion?tenant=acme&event_id=ev-004&tree_size=13",
            ) {
                Some(inclusion.clone())
            } else if target
                .starts_with("/v1/admin/audit/proofs/consistency?tenant=acme&first=5&second=13")
            {
                Some(consistency.clone())
            } else {
                None
            };
            let (status, body) = match body {
                Some(body) => ("200 OK", body),
                None => ("404 Not Found", format!("{{\"error\":\"no {target}\"}}")),
            };
            write!(stream, "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).unwrap();
        }
    });
    url
}

#[test]
fn proofs_fetched_from_the_admin_api_verify_the_same_way() {
    let log = build_log(events(13));
    let url = serve(&log, 3);
    let old = file(&log.head(5));
    let run = intentgate(&[
        "audit",
        "verify-proof",
        "--public-key",
        &public_key(),
        "--url",
        &url,
        "--token",
        TOKEN,
        "--tenant",
        "acme",
        "--event-id",
        "ev-004",
        "--old-tree-head",
        &old,
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json["inclusion"]["event_id"], "ev-004");
    assert_eq!(run.json["consistency"]["first"], 5);
    assert_eq!(run.json["verified"], Value::Bool(true));
}
