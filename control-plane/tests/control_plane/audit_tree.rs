//! The Merkle tree beside the chain: signed tree heads, inclusion and consistency proofs that
//! verify with only the public key, tampering caught, and verify reporting the tree root against
//! the signed head (which catches a log rewritten with recomputed chain hashes).

use axum::http::StatusCode;
use intentgate_control_plane::audit::{self, tree};
use intentgate_core::audit::merkle::{
    ConsistencyProof, InclusionProof, SignedTreeHead, leaf_hash, parse_hash,
};
use intentgate_core::audit::{AuditEvent, EventKind, link};
use intentgate_core::decision::AuditDecision;
use intentgate_core::token::PublicKeys;
use serde_json::Value;

use crate::on_both_backends;
use crate::support::{ACME, SUPER, TestApp};

on_both_backends!(
    proofs_verify_against_signed_heads_with_only_the_public_key,
    proofs_over_cached_upper_subtrees_match_those_read_from_storage,
    a_tampered_event_or_tree_node_fails_its_proof,
    verify_catches_a_log_rewritten_under_a_signed_head,
    proof_endpoints_refuse_bad_parameters,
    scheduled_heads_follow_growing_trees,
    concurrent_replicas_extend_one_tree_per_tenant,
);

fn event(tenant: &str, n: usize) -> AuditEvent {
    let mut e = AuditEvent::new(
        format!("{tenant}-{n:05}"),
        1_781_444_520_000 + n as i64,
        EventKind::ToolCall,
        if n.is_multiple_of(4) {
            AuditDecision::Deny
        } else {
            AuditDecision::Allow
        },
    );
    e.tenant = tenant.into();
    e.tool = "read_invoice".into();
    e.agent_id = format!("agent-{}", n % 3);
    e
}

async fn append(app: &TestApp, tenant: &str, range: std::ops::RangeInclusive<usize>) {
    let events: Vec<_> = range.map(|n| event(tenant, n)).collect();
    audit::append(&app.state.db, &events).await.unwrap();
}

fn trusted(app: &TestApp) -> PublicKeys {
    let mut keys = PublicKeys::new();
    keys.insert(app.state.keys.issuer().public());
    keys
}

async fn sign(app: &TestApp, tenant: &str) -> SignedTreeHead {
    let (status, body) = app
        .post(
            SUPER,
            &format!("/v1/admin/audit/tree-head?tenant={tenant}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    serde_json::from_value(body).unwrap()
}

async fn inclusion(app: &TestApp, tenant: &str, id: &str, size: u64) -> InclusionProof {
    let (status, body) = app
        .get(
            SUPER,
            &format!(
                "/v1/admin/audit/proofs/inclusion?tenant={tenant}&event_id={id}&tree_size={size}"
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

fn check_inclusion(proof: &InclusionProof, head: &SignedTreeHead) -> Result<(), String> {
    let leaf = leaf_hash(proof.event.as_deref().unwrap().as_bytes());
    if leaf != parse_hash("leaf_hash", &proof.leaf_hash).unwrap() {
        return Err("leaf hash".into());
    }
    proof
        .verify(&head.head.root_hash)
        .map_err(|e| e.to_string())
}

async fn proofs_verify_against_signed_heads_with_only_the_public_key(app: TestApp) {
    append(&app, "acme", 1..=10).await;
    let old = sign(&app, "acme").await;
    append(&app, "acme", 11..=37).await;
    append(&app, "globex", 1..=5).await;
    let new = sign(&app, "acme").await;
    old.verify(&trusted(&app)).unwrap();
    new.verify(&trusted(&app)).unwrap();
    assert_eq!((old.head.tree_size, new.head.tree_size), (10, 37));
    let (_, latest) = app.get(ACME, "/v1/admin/audit/tree-head").await;
    assert_eq!(
        serde_json::from_value::<SignedTreeHead>(latest).unwrap(),
        new
    );

    for n in [1, 2, 10, 17, 32, 37] {
        let proof = inclusion(&app, "acme", &format!("acme-{n:05}"), 37).await;
        assert_eq!(proof.leaf_index, n as u64 - 1);
        check_inclusion(&proof, &new).unwrap_or_else(|e| panic!("event {n}: {e}"));
        // The same event against the older head.
        if n <= 10 {
            let proof = inclusion(&app, "acme", &format!("acme-{n:05}"), 10).await;
            check_inclusion(&proof, &old).unwrap();
        }
    }
    let (status, body) = app
        .get(
            ACME,
            "/v1/admin/audit/proofs/consistency?first=10&second=37",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let proof: ConsistencyProof = serde_json::from_value(body).unwrap();
    proof
        .verify(&old.head.root_hash, &new.head.root_hash)
        .unwrap();
    // Without `second`, the current tree.
    let (_, body) = app
        .get(ACME, "/v1/admin/audit/proofs/consistency?first=37")
        .await;
    assert_eq!(body["second"], 37);
    assert_eq!(body["proof"].as_array().unwrap().len(), 0);

    let (_, report) = app.get(SUPER, "/v1/admin/audit/verify?tenant=acme").await;
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["tree_size"], 37);
    assert_eq!(report["tree_root"], hex::encode(new.head.root_hash));
    assert_eq!(report["signed_tree_head_matches"], true);
    assert_eq!(report["signed_tree_head"]["tree_size"], 37);
}

async fn proofs_over_cached_upper_subtrees_match_those_read_from_storage(app: TestApp) {
    // 700 events: subtrees of 256 and 512 events exist, so proofs use the in-memory cache.
    append(&app, "acme", 1..=300).await;
    let old = sign(&app, "acme").await;
    append(&app, "acme", 301..=700).await;
    append(&app, "globex", 1..=300).await;
    let head = sign(&app, "acme").await;
    let events = [1, 255, 256, 257, 513, 700];
    let mut cold = Vec::new();
    for n in events {
        cold.push(inclusion(&app, "acme", &format!("acme-{n:05}"), 700).await);
    }
    // The upper subtrees of those paths are cached now: the same proofs again, and new ones.
    for (n, first) in events.into_iter().zip(&cold) {
        let warm = inclusion(&app, "acme", &format!("acme-{n:05}"), 700).await;
        assert_eq!(&warm, first, "event {n}");
        check_inclusion(&warm, &head).unwrap_or_else(|e| panic!("event {n}: {e}"));
    }
    for n in [2, 300, 640] {
        let proof = inclusion(&app, "acme", &format!("acme-{n:05}"), 700).await;
        check_inclusion(&proof, &head).unwrap_or_else(|e| panic!("event {n}: {e}"));
        let proof = inclusion(&app, "acme", &format!("acme-{:05}", n.min(300)), 300).await;
        check_inclusion(&proof, &old).unwrap_or_else(|e| panic!("event {n} at 300: {e}"));
    }
    let (status, body) = app
        .get(
            ACME,
            "/v1/admin/audit/proofs/consistency?first=300&second=700",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let proof: ConsistencyProof = serde_json::from_value(body).unwrap();
    proof
        .verify(&old.head.root_hash, &head.head.root_hash)
        .unwrap();
    // Another tenant's tree never answers from acme's cached subtrees.
    let globex = sign(&app, "globex").await;
    for n in [5, 257, 300] {
        let proof = inclusion(&app, "globex", &format!("globex-{n:05}"), 300).await;
        check_inclusion(&proof, &globex).unwrap_or_else(|e| panic!("globex {n}: {e}"));
    }
}

async fn a_tampered_event_or_tree_node_fails_its_proof(app: TestApp) {
    append(&app, "acme", 1..=21).await;
    let head = sign(&app, "acme").await;
    let db = app.state.db.pool();
    sqlx::query("UPDATE audit_events SET body = replace(body, 'agent-1', 'agent-7') WHERE tenant = 'acme' AND seq = 4")
        .execute(db)
        .await
        .unwrap();
    let proof = inclusion(&app, "acme", "acme-00004", 21).await;
    assert!(
        check_inclusion(&proof, &head).is_err(),
        "an altered event must not prove"
    );
    let proof = inclusion(&app, "acme", "acme-00005", 21).await;
    check_inclusion(&proof, &head).unwrap();

    // A stored subtree altered: every proof that uses it fails.
    sqlx::query("UPDATE audit_tree_nodes SET hash = $1 WHERE tenant = 'acme' AND node = 5")
        .bind(vec![7u8; 32])
        .execute(db)
        .await
        .unwrap();
    let proof = inclusion(&app, "acme", "acme-00001", 21).await;
    assert!(
        check_inclusion(&proof, &head).is_err(),
        "an altered node must not prove"
    );

    // A head with an altered field or signature does not verify.
    let mut forged = head.clone();
    forged.head.tree_size = 22;
    assert!(forged.verify(&trusted(&app)).is_err());
}

async fn verify_catches_a_log_rewritten_under_a_signed_head(app: TestApp) {
    append(&app, "acme", 1..=9).await;
    sign(&app, "acme").await;
    // An attacker with database access rewrites event 5 and recomputes every later chain hash
    // and the chain head: the chain alone verifies again.
    let db = app.state.db.pool();
    let rows: Vec<(i64, Vec<u8>, String)> = sqlx::query_as(
        "SELECT seq, prev_hash, body FROM audit_events WHERE tenant = 'acme' ORDER BY seq",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let mut prev: [u8; 32] = rows[3].1.clone().try_into().unwrap();
    prev = link(&prev, rows[3].2.as_bytes());
    for (seq, _, body) in rows.iter().skip(4) {
        let body = if *seq == 5 {
            body.replace("read_invoice", "read_nothing")
        } else {
            body.clone()
        };
        let hash = link(&prev, body.as_bytes());
        sqlx::query("UPDATE audit_events SET body = $1, prev_hash = $2, hash = $3 WHERE tenant = 'acme' AND seq = $4")
            .bind(&body)
            .bind(prev.to_vec())
            .bind(hash.to_vec())
            .bind(seq)
            .execute(db)
            .await
            .unwrap();
        prev = hash;
    }
    sqlx::query("UPDATE audit_chain_heads SET head = $1 WHERE tenant = 'acme'")
        .bind(prev.to_vec())
        .execute(db)
        .await
        .unwrap();
    let (_, report) = app.get(SUPER, "/v1/admin/audit/verify?tenant=acme").await;
    assert_eq!(report["verified"], false, "{report}");
    assert_eq!(report["signed_tree_head_matches"], false, "{report}");
    assert!(report["first_broken_event_id"].is_null(), "{report}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("signed tree head"),
        "{report}"
    );

    // Events removed from the end, chain head moved back: also below the signed size.
    append(&app, "globex", 1..=6).await;
    sign(&app, "globex").await;
    sqlx::query("DELETE FROM audit_events WHERE tenant = 'globex' AND seq = 6")
        .execute(db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_chain_heads SET seq = 5, head = (SELECT hash FROM audit_events WHERE tenant = 'globex' AND seq = 5) WHERE tenant = 'globex'",
    )
    .execute(db)
    .await
    .unwrap();
    let (_, report) = app.get(SUPER, "/v1/admin/audit/verify?tenant=globex").await;
    assert_eq!(report["signed_tree_head_matches"], false, "{report}");
    assert_eq!(report["verified"], false, "{report}");
}

async fn proof_endpoints_refuse_bad_parameters(app: TestApp) {
    let (status, _) = app.get(ACME, "/v1/admin/audit/tree-head").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no head issued yet");
    append(&app, "acme", 1..=3).await;
    append(&app, "globex", 1..=3).await;
    for (uri, expected) in [
        (
            "/v1/admin/audit/proofs/inclusion?event_id=acme-00009",
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/admin/audit/proofs/inclusion?event_id=globex-00001",
            StatusCode::NOT_FOUND,
        ),
        ("/v1/admin/audit/proofs/inclusion", StatusCode::BAD_REQUEST),
        (
            "/v1/admin/audit/proofs/inclusion?event_id=acme-00001&tree_size=4",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/admin/audit/proofs/inclusion?event_id=acme-00003&tree_size=2",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/admin/audit/proofs/inclusion?event_id=acme-00001&tree_size=-1",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/admin/audit/proofs/consistency",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/admin/audit/proofs/consistency?first=0",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/admin/audit/proofs/consistency?first=3&second=2",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/admin/audit/proofs/consistency?first=1&second=4",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/admin/audit/proofs/consistency?first=x",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, body) = app.get(ACME, uri).await;
        assert_eq!(status, expected, "{uri}: {body}");
        assert!(body["error"].is_string(), "{uri}: {body}");
    }
    let (status, _) = app
        .get(SUPER, "/v1/admin/audit/proofs/consistency?first=1")
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the superadmin names the tenant"
    );
    let (status, _) = app
        .call("GET", "/v1/admin/audit/tree-head?tenant=acme", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn scheduled_heads_follow_growing_trees(app: TestApp) {
    append(&app, "acme", 1..=4).await;
    append(&app, "globex", 1..=2).await;
    let keys = app.state.keys.issuer();
    assert_eq!(
        tree::heads::issue_due(&app.state.db, keys).await.unwrap(),
        2
    );
    assert_eq!(
        tree::heads::issue_due(&app.state.db, keys).await.unwrap(),
        0,
        "nothing grew"
    );
    append(&app, "acme", 5..=5).await;
    assert_eq!(
        tree::heads::issue_due(&app.state.db, keys).await.unwrap(),
        1
    );
    let head = tree::latest(&app.state.db, "acme", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.head.tree_size, 5);
    head.verify(&trusted(&app)).unwrap();
}

async fn concurrent_replicas_extend_one_tree_per_tenant(app: TestApp) {
    app.append_from_two_replicas(12, event).await;
    for tenant in ["acme", "globex"] {
        // The stored tree (what the head signs) is the tree of the stored events.
        let head = sign(&app, tenant).await;
        assert_eq!(head.head.tree_size, 48);
        let (_, report) = app
            .get(SUPER, &format!("/v1/admin/audit/verify?tenant={tenant}"))
            .await;
        assert_eq!(report["verified"], true, "{report}");
        assert_eq!(report["signed_tree_head_matches"], true, "{report}");
        for n in [0, 111, 211, 311] {
            let proof = inclusion(&app, tenant, &format!("{tenant}-{n:05}"), 48).await;
            check_inclusion(&proof, &head).unwrap();
        }
    }
}
