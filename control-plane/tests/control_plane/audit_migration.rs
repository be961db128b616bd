//! Migration 0090 over a database written before it: the rows whose queryable columns the old
//! schema derived from their bodies (SQLite's generated columns, Postgres's trigger) keep their
//! positions, hashes, bodies and columns, verify still says verified, and appends after it
//! continue the same chains and Merkle trees.
//!
//! sqlx's migrator applies a whole source, so the database is first migrated from a copy of the
//! migrations folder holding only the files up to 0081; the rows are then written as the control
//! plane wrote them then (the four hashed columns, the chain head and the tree, in one
//! transaction), and the control plane, connecting, applies the rest.

use std::path::Path;

use axum::http::StatusCode;
use intentgate_control_plane::audit::{self, columns::Columns, tree};
use intentgate_core::audit::merkle::leaf_hash;
use intentgate_core::audit::{AuditEvent, EventKind, GENESIS, link};
use intentgate_core::decision::AuditDecision;
use serde_json::{Value, json};
use sqlx::AnyPool;
use sqlx::migrate::Migrator;

use crate::support::{SUPER, TestApp};

mod sqlite {
    #[tokio::test]
    async fn rows_written_before_0090_keep_their_columns_and_chains() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}/control-plane.db?mode=rwc",
            dir.path().display()
        );
        super::rows_written_before_0090_keep_their_columns_and_chains("sqlite", url, Some(dir))
            .await;
    }
}

mod postgres {
    #[tokio::test]
    async fn rows_written_before_0090_keep_their_columns_and_chains() {
        let url = crate::support::postgres::database().await;
        super::rows_written_before_0090_keep_their_columns_and_chains("postgres", url, None).await;
    }
}

/// The last migration before the columns were written by the control plane.
const BEFORE: i64 = 81;

/// A row as stored: `pos, seq, prev_hash, hash, body` and the seven queryable columns.
type Row = (
    i64,
    i64,
    Vec<u8>,
    Vec<u8>,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

async fn rows_written_before_0090_keep_their_columns_and_chains(
    backend: &str,
    url: String,
    dir: Option<tempfile::TempDir>,
) {
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(&url).await.unwrap();
    migrate_up_to(&pool, backend, BEFORE).await;
    // Interleaved, so that the tenants' rows interleave in storage order as they do in use.
    append_old(&pool, &events("acme", 1..=10)).await;
    append_old(&pool, &events("globex", 1..=3)).await;
    append_old(&pool, &events("acme", 11..=30)).await;
    append_old(&pool, &events("globex", 4..=5)).await;
    let before = stored(&pool).await;
    pool.close().await;
    assert_eq!(before.len(), 35);
    for row in &before {
        // What the old schema derived: the body's top-level fields, not the nested `tenant`.
        let body = Columns::of_body(row.4.as_bytes()).unwrap();
        let columns = [&row.5, &row.6, &row.7, &row.8, &row.9, &row.10, &row.11];
        assert_eq!(
            columns.map(String::as_str),
            [
                &*body.tenant,
                &*body.id,
                &*body.ts,
                &*body.event,
                &*body.decision,
                &*body.tool,
                &*body.agent_id
            ],
        );
    }

    // Connecting applies 0090 and what follows it.
    let app = TestApp::start(url, dir).await;
    let versions: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations")
        .fetch_all(app.state.db.pool())
        .await
        .unwrap();
    assert!(versions.contains(&(90,)), "{versions:?}");
    same_rows(&stored(app.state.db.pool()).await, &before);

    let report = verify(&app, "acme").await;
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["events_checked"], 30);
    assert_eq!(report["chain_head_id"], "acme-old-030");
    assert_eq!(report["tree_size"], 30);
    assert_eq!(verify(&app, "globex").await["verified"], true);

    // New events continue each chain where the old rows end, and its tree.
    let last_old = before.iter().rfind(|r| r.5 == "acme").unwrap().clone();
    let new: Vec<AuditEvent> = (31..=33).map(|n| event("acme", n)).collect();
    let appended = audit::append(&app.state.db, &new).await.unwrap();
    assert_eq!(
        appended.iter().map(|a| a.seq).collect::<Vec<_>>(),
        [31, 32, 33]
    );
    assert_eq!(
        appended[0].hash,
        link(
            &last_old.3.clone().try_into().unwrap(),
            new[0].canonical().as_bytes()
        )
    );
    audit::append(&app.state.db, &[event("globex", 6)])
        .await
        .unwrap();
    let after = stored(app.state.db.pool()).await;
    same_rows(&after[..before.len()], &before);
    assert_eq!(after.len(), 39);
    assert!(after[before.len()..].iter().all(|r| r.0 > before[34].0));
    let keys = app.state.keys.issuer();
    tree::issue(&app.state.db, keys, "acme").await.unwrap();
    let report = verify(&app, "acme").await;
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["events_checked"], 33);
    assert_eq!(report["chain_head_id"], "acme-old-033");
    assert_eq!(report["signed_tree_head_matches"], true, "{report}");
    let report = verify(&app, "globex").await;
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["events_checked"], 6);
}

/// Applies the backend's migrations up to version `last`, from a copy of its folder holding only
/// those.
async fn migrate_up_to(pool: &AnyPool, backend: &str, last: i64) {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(backend);
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&folder).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let version: i64 = name.split('_').next().unwrap().parse().unwrap();
        if version <= last {
            std::fs::copy(entry.path(), copy.path().join(&name)).unwrap();
        }
    }
    let migrator = Migrator::new(copy.path()).await.unwrap();
    assert_eq!(migrator.iter().map(|m| m.version).max(), Some(last));
    migrator.run(pool).await.unwrap();
}

/// Appends one tenant's `events` as the control plane did before 0090: only the hashed columns
/// (the schema derived the rest from the body), then the chain head and the Merkle tree, in one
/// transaction.
async fn append_old(pool: &AnyPool, events: &[AuditEvent]) {
    let tenant = &events[0].tenant;
    let mut tx = pool.begin().await.unwrap();
    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, head FROM audit_chain_heads WHERE tenant = $1")
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
    let (mut seq, mut prev) =
        head.map_or((0, GENESIS), |(seq, head)| (seq, head.try_into().unwrap()));
    let mut leaves = Vec::new();
    for event in events {
        let body = event.canonical();
        let hash = link(&prev, body.as_bytes());
        seq += 1;
        sqlx::query(
            "INSERT INTO audit_events (seq, prev_hash, hash, body) VALUES ($1, $2, $3, $4)",
        )
        .bind(seq)
        .bind(prev.to_vec())
        .bind(hash.to_vec())
        .bind(&body)
        .execute(&mut *tx)
        .await
        .unwrap();
        leaves.push(leaf_hash(body.as_bytes()));
        prev = hash;
    }
    let last = events.last().unwrap();
    sqlx::query(
        "INSERT INTO audit_chain_heads (tenant, seq, head, head_id, head_ts) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq, \
         head = excluded.head, head_id = excluded.head_id, head_ts = excluded.head_ts",
    )
    .bind(tenant)
    .bind(seq)
    .bind(prev.to_vec())
    .bind(&last.id)
    .bind(&last.ts)
    .execute(&mut *tx)
    .await
    .unwrap();
    tree::extend(&mut tx, tenant, seq.try_into().unwrap(), &leaves)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// `rows` are `expected`, compared row by row so that a failure shows the row.
fn same_rows(rows: &[Row], expected: &[Row]) {
    assert_eq!(rows.len(), expected.len(), "rows dropped or added");
    for (row, expected) in rows.iter().zip(expected) {
        assert_eq!(row, expected);
    }
}

/// Every stored event, in storage order.
async fn stored(pool: &AnyPool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT pos, seq, prev_hash, hash, body, tenant, id, ts, event, decision, tool, agent_id \
         FROM audit_events ORDER BY pos",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Events whose columns need escapes in the body, and whose arguments hold a nested `tenant`.
fn event(tenant: &str, n: usize) -> AuditEvent {
    let (kind, decision) = match n % 3 {
        0 => (EventKind::ToolCall, AuditDecision::Deny),
        1 => (EventKind::ToolCall, AuditDecision::Allow),
        _ => (EventKind::Request, AuditDecision::Allow),
    };
    let mut event = AuditEvent::new(
        format!("{tenant}-old-{n:03}"),
        1_781_444_520_000 + n as i64,
        kind,
        decision,
    );
    let args = json!({"tenant": "not-this-one", "n": n});
    let tool = if n.is_multiple_of(2) {
        "read_invoice"
    } else {
        "say \"hi\"\n\u{e9}\u{1F600}\\"
    };
    event = event.with_tool(tool, args.as_object());
    event.tenant = tenant.into();
    event.agent_id = format!("agent/{}", n % 4);
    event
}

fn events(tenant: &str, range: std::ops::RangeInclusive<usize>) -> Vec<AuditEvent> {
    range.map(|n| event(tenant, n)).collect()
}

async fn verify(app: &TestApp, tenant: &str) -> Value {
    let (status, report) = app
        .get(SUPER, &format!("/v1/admin/audit/verify?tenant={tenant}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}
