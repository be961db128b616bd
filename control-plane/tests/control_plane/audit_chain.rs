//! The hash chain: appends (idempotent, concurrent, several replicas) and verify, which names the
//! first broken event whatever stored field was tampered with.

use axum::http::StatusCode;
use intentgate_control_plane::audit;
use intentgate_control_plane::store::{Backend, Db};
use intentgate_core::audit::{AuditEvent, EventKind, GENESIS, link};
use intentgate_core::decision::AuditDecision;
use serde_json::Value;

use crate::on_both_backends;
use crate::support::{ACME, SUPER, TestApp};

on_both_backends!(
    an_intact_chain_verifies,
    appends_are_idempotent_by_event_id,
    concurrent_replicas_keep_one_chain_per_tenant,
    tampering_is_detected_at_the_right_event,
    queryable_columns_cannot_be_edited_apart_from_the_body,
    a_row_whose_columns_disagree_with_its_body_is_reported,
);

fn event(tenant: &str, n: usize) -> AuditEvent {
    let mut event = AuditEvent::new(
        format!("{tenant}-event-{n:04}"),
        1_781_444_520_000 + n as i64,
        EventKind::ToolCall,
        if n.is_multiple_of(3) {
            AuditDecision::Deny
        } else {
            AuditDecision::Allow
        },
    );
    event.tenant = tenant.into();
    event.agent_id = format!("agent-{}", n % 2);
    event.tool = if n.is_multiple_of(2) {
        "read_invoice".into()
    } else {
        "transfer_funds".into()
    };
    event
}

/// Appends `n` events to `tenant` and returns their ids in chain order.
async fn chain(app: &TestApp, tenant: &str, n: usize) -> Vec<String> {
    let events: Vec<_> = (1..=n).map(|i| event(tenant, i)).collect();
    audit::append(&app.state.db, &events).await.unwrap();
    events.into_iter().map(|e| e.id).collect()
}

async fn verify(app: &TestApp, tenant: &str) -> Value {
    let (status, report) = app
        .get(SUPER, &format!("/v1/admin/audit/verify?tenant={tenant}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

async fn exec(db: &Db, sql: &str) {
    sqlx::query(sql)
        .execute(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Writes a row as the control plane would, around it: `body` chained at `seq` after the event
/// at `seq - 1` of the tenant `columns` names, its queryable columns taken from `columns`.
/// Returns the row's hash.
async fn append_around(db: &Db, seq: i64, body: &str, columns: &AuditEvent) -> [u8; 32] {
    let row: (Vec<u8>,) =
        sqlx::query_as("SELECT hash FROM audit_events WHERE tenant = $1 AND seq = $2")
            .bind(&columns.tenant)
            .bind(seq - 1)
            .fetch_one(db.pool())
            .await
            .unwrap();
    let prev: [u8; 32] = row.0.try_into().unwrap();
    let hash = link(&prev, body.as_bytes());
    sqlx::query(
        "INSERT INTO audit_events (seq, prev_hash, hash, body, tenant, id, ts, event, decision, \
         tool, agent_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(seq)
    .bind(prev.to_vec())
    .bind(hash.to_vec())
    .bind(body)
    .bind(&columns.tenant)
    .bind(&columns.id)
    .bind(&columns.ts)
    .bind("intentgate.tool_call")
    .bind(columns.decision.as_str())
    .bind(&columns.tool)
    .bind(&columns.agent_id)
    .execute(db.pool())
    .await
    .unwrap();
    hash
}

async fn an_intact_chain_verifies(app: TestApp) {
    let empty = verify(&app, "acme").await;
    assert_eq!(empty["verified"], true);
    assert_eq!(empty["events_checked"], 0);
    assert!(empty["chain_head_id"].is_null());

    let ids = chain(&app, "acme", 25).await;
    chain(&app, "globex", 3).await;
    let report = verify(&app, "acme").await;
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["tenant"], "acme");
    assert_eq!(report["events_checked"], 25);
    assert_eq!(report["chain_head_id"], ids[24].as_str());
    assert_eq!(report["chain_head_at"], "2026-06-14T13:42:00.025Z");
    assert!(report["first_broken_event_id"].is_null());
    assert!(report["duration_ms"].is_u64());

    // A per-tenant admin verifies its own chain whatever it asks for.
    let (_, own) = app.get(ACME, "/v1/admin/audit/verify?tenant=globex").await;
    assert_eq!(own["tenant"], "acme");
    let (status, _) = app.get(SUPER, "/v1/admin/audit/verify").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn appends_are_idempotent_by_event_id(app: TestApp) {
    let first = audit::append(&app.state.db, &[event("acme", 1), event("acme", 2)])
        .await
        .unwrap();
    assert!(first.iter().all(|a| a.inserted));
    assert_eq!(
        first[0].hash,
        link(&GENESIS, event("acme", 1).canonical().as_bytes())
    );
    // Resent (even in a batch with a new event, and twice in one batch): written once.
    let again = audit::append(
        &app.state.db,
        &[
            event("acme", 2),
            event("acme", 3),
            event("acme", 3),
            event("globex", 1),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        again[0],
        audit::Appended {
            inserted: false,
            ..first[1].clone()
        }
    );
    assert!(again[1].inserted);
    assert_eq!((again[2].seq, again[2].inserted), (3, false));
    assert_eq!((again[3].tenant.as_str(), again[3].seq), ("globex", 1));
    assert_eq!(verify(&app, "acme").await["events_checked"], 3);

    // An invalid event rejects the whole batch.
    let mut bad = event("acme", 9);
    bad.ts = "yesterday".into();
    assert!(
        audit::append(&app.state.db, &[event("acme", 8), bad])
            .await
            .is_err()
    );
    assert_eq!(verify(&app, "acme").await["events_checked"], 3);
}

async fn concurrent_replicas_keep_one_chain_per_tenant(app: TestApp) {
    app.append_from_two_replicas(15, event).await;
    for tenant in ["acme", "globex"] {
        let report = verify(&app, tenant).await;
        assert_eq!(report["verified"], true, "{report}");
        assert_eq!(report["events_checked"], 60);
    }
}

async fn tampering_is_detected_at_the_right_event(app: TestApp) {
    let db = &app.state.db;
    let cases: [(&str, &str, usize, &str); 8] = [
        (
            "body",
            "UPDATE audit_events SET body = replace(body, 'agent-1', 'agent-9') WHERE tenant = 'body' AND seq = 3",
            3,
            "altered",
        ),
        (
            "hash",
            "UPDATE audit_events SET hash = prev_hash WHERE tenant = 'hash' AND seq = 4",
            4,
            "altered",
        ),
        (
            "prev",
            "UPDATE audit_events SET prev_hash = hash WHERE tenant = 'prev' AND seq = 2",
            2,
            "prev_hash",
        ),
        (
            "deleted",
            "DELETE FROM audit_events WHERE tenant = 'deleted' AND seq = 4",
            5,
            "prev_hash",
        ),
        (
            "first",
            "DELETE FROM audit_events WHERE tenant = 'first' AND seq = 1",
            2,
            "prev_hash",
        ),
        (
            "last",
            "DELETE FROM audit_events WHERE tenant = 'last' AND seq = 6",
            6,
            "removed from the end",
        ),
        (
            "head",
            "DELETE FROM audit_chain_heads WHERE tenant = 'head'",
            1,
            "no recorded head",
        ),
        (
            "moved",
            "UPDATE audit_events SET body = replace(body, '\"tenant\":\"moved\"', '\"tenant\":\"elsewhere\"') \
             WHERE tenant = 'moved' AND seq = 5",
            6,
            "prev_hash",
        ),
    ];
    for (tenant, sql, broken, why) in cases {
        let ids = chain(&app, tenant, 6).await;
        exec(db, sql).await;
        let report = verify(&app, tenant).await;
        assert_eq!(report["verified"], false, "{tenant}: {report}");
        assert_eq!(
            report["first_broken_event_id"],
            ids[broken - 1].as_str(),
            "{tenant}: {report}"
        );
        assert!(
            report["reason"].as_str().unwrap().contains(why),
            "{tenant}: {report}"
        );
    }

    // Reordering: events 3 and 4 swap positions; event 3 is the first out of place.
    let ids = chain(&app, "swap", 6).await;
    for sql in [
        "UPDATE audit_events SET seq = -3 WHERE tenant = 'swap' AND seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE tenant = 'swap' AND seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE tenant = 'swap' AND seq = -3",
    ] {
        exec(db, sql).await;
    }
    let report = verify(&app, "swap").await;
    assert_eq!(report["first_broken_event_id"], ids[2].as_str(), "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("reordered"),
        "{report}"
    );

    // An event forged onto the end with a correct hash, without the head: caught by the head.
    let ids = chain(&app, "forged", 3).await;
    let forged = event("forged", 4);
    append_around(db, 4, &forged.canonical(), &forged).await;
    let report = verify(&app, "forged").await;
    assert_eq!(
        report["first_broken_event_id"], "forged-event-0004",
        "{report}"
    );
    assert_eq!(ids.len(), 3);

    // Other chains are untouched by all of this.
    chain(&app, "clean", 4).await;
    assert_eq!(verify(&app, "clean").await["verified"], true);
}

async fn queryable_columns_cannot_be_edited_apart_from_the_body(app: TestApp) {
    chain(&app, "acme", 2).await;
    for column in [
        "tenant", "id", "ts", "event", "decision", "tool", "agent_id",
    ] {
        let sql = format!("UPDATE audit_events SET {column} = 'x' WHERE seq = 1");
        assert!(
            sqlx::query(&sql)
                .execute(app.state.db.pool())
                .await
                .is_err(),
            "{column} is editable"
        );
    }
    assert_eq!(verify(&app, "acme").await["verified"], true);
}

async fn a_row_whose_columns_disagree_with_its_body_is_reported(app: TestApp) {
    let db = &app.state.db;
    // A row written around the control plane, chained and hashed correctly, whose `tool` column
    // names another tool than its body: queries would show it as a call of that tool.
    let ids = chain(&app, "acme", 3).await;
    let written = event("acme", 4);
    let mut shown = written.clone();
    shown.tool = "harmless_tool".into();
    let head = append_around(db, 4, &written.canonical(), &shown).await;
    sqlx::query(
        "UPDATE audit_chain_heads SET seq = 4, head = $1, head_id = $2 WHERE tenant = 'acme'",
    )
    .bind(head.to_vec())
    .bind(&written.id)
    .execute(db.pool())
    .await
    .unwrap();
    broken_at(&app, "acme", &written.id, "queryable columns").await;
    assert_eq!(ids.len(), 3);

    // A stored event whose column is edited with the database's own guard removed.
    let ids = chain(&app, "globex", 5).await;
    let unguard = if db.backend() == Backend::Sqlite {
        "DROP TRIGGER audit_events_columns_from_body"
    } else {
        "DROP TRIGGER audit_events_derive ON audit_events"
    };
    exec(db, unguard).await;
    exec(
        db,
        "UPDATE audit_events SET decision = 'allow' WHERE tenant = 'globex' AND seq = 3",
    )
    .await;
    broken_at(&app, "globex", &ids[2], "queryable columns").await;
}

/// Verify finds `tenant`'s chain broken at event `id`, for a reason that says `why`.
async fn broken_at(app: &TestApp, tenant: &str, id: &str, why: &str) {
    let report = verify(app, tenant).await;
    assert_eq!(report["verified"], false, "{report}");
    assert_eq!(report["first_broken_event_id"], id, "{report}");
    assert!(report["reason"].as_str().unwrap().contains(why), "{report}");
}
