//! The audit log's reads on a read replica (`INTENTGATE_READ_DATABASE_URL`): a real hot standby made
//! by `pg_basebackup`, streaming from the primary while the primary takes appends. Verify, queries,
//! exports, proofs and reports answer for the point the standby has replayed (verify says which
//! event), never with a false alarm; writes, signed tree heads included, go to the primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use intentgate_control_plane::audit;
use intentgate_control_plane::store::Db;
use intentgate_core::audit::AuditEvent;
use intentgate_core::decision::AuditDecision;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, Row};

use crate::support::{REPORTS, SUPER, TestApp, postgres, tool_call};

const TENANT: &str = "acme";

fn event(task: usize, n: usize) -> AuditEvent {
    tool_call(
        format!("replica-{task}-{n:06}"),
        TENANT,
        intentgate_control_plane::time::now_ms(),
        AuditDecision::Deny,
    )
}

/// The chain's length as recorded on `db`'s side.
async fn chain_length(url: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let row = sqlx::query("SELECT seq FROM audit_chain_heads WHERE tenant = $1")
        .bind(TENANT)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    row.map_or(0, |r| r.get("seq"))
}

async fn event_id_at(url: &str, seq: i64) -> String {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let id: String = sqlx::query("SELECT id FROM audit_events WHERE tenant = $1 AND seq = $2")
        .bind(TENANT)
        .bind(seq)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get("id");
    conn.close().await.unwrap();
    id
}

/// Waits until the replica's verify has reached `events` (a replica that has not replayed the
/// schema yet answers 503 meanwhile).
async fn caught_up(app: &TestApp, events: i64) -> Value {
    for _ in 0..400 {
        let (status, report) = app
            .get(SUPER, &format!("/v1/admin/audit/verify?tenant={TENANT}"))
            .await;
        if status == StatusCode::OK && report["events_checked"] == events {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the replica did not replay {events} events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_replica_answers_for_the_point_it_has_reached() {
    let (primary, standby) = postgres::replicated_database().await;
    let app = TestApp::with_read_replica(primary.clone(), standby.clone()).await;
    let db = app.state.db.clone();
    audit::append(&db, &(0..30).map(|n| event(9, n)).collect::<Vec<_>>())
        .await
        .unwrap();
    let report = caught_up(&app, 30).await;
    assert_eq!(report["read_from"], "replica", "{report}");

    // Under appends from two replicas of the control plane, the standby lags and catches up by
    // turns; every verify answers for the point it had replayed, and never raises an alarm.
    let stop = Arc::new(AtomicBool::new(false));
    let other = Db::connect(&primary).await.unwrap();
    let appenders: Vec<_> = [db.clone(), other]
        .into_iter()
        .enumerate()
        .map(|(task, db)| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let batch: Vec<_> = (n..n + 4).map(|i| event(task, i)).collect();
                    audit::append(&db, &batch).await.unwrap();
                    n += 4;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    let mut sizes = std::collections::BTreeSet::new();
    for run in 0..150 {
        let report = app.verify(TENANT).await;
        assert_eq!(report["verified"], true, "run {run}: {report}");
        let checked = report["events_checked"].as_i64().unwrap();
        assert!(checked <= chain_length(&primary).await, "{report}");
        assert_eq!(
            report["chain_head_id"],
            event_id_at(&primary, checked).await.as_str(),
            "run {run}: the report names the last event it reached: {report}"
        );
        sizes.insert(checked);
    }
    stop.store(true, Ordering::SeqCst);
    for task in appenders {
        task.await.unwrap();
    }
    assert!(sizes.len() >= 10, "saw only {} chain lengths", sizes.len());

    // A standby that stops replaying: the primary moves on (events, a signed tree head), the
    // replica's answers stay at the point it reached.
    let reached = chain_length(&primary).await;
    caught_up(&app, reached).await;
    let (status, head_before) = app
        .post(
            SUPER,
            &format!("/v1/admin/audit/tree-head?tenant={TENANT}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{head_before}");
    caught_up(&app, reached).await;
    let mut control = PgConnection::connect(&standby).await.unwrap();
    wait_for_head(&app, head_before["tree_size"].as_i64().unwrap()).await;
    control
        .execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    for _ in 0..200 {
        let state: String = sqlx::query("SELECT pg_get_wal_replay_pause_state()::text AS s")
            .fetch_one(&mut control)
            .await
            .unwrap()
            .get("s");
        if state == "paused" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let later: Vec<_> = (0..10).map(|n| event(7, n)).collect();
    audit::append(&db, &later).await.unwrap();
    let (status, head_after) = app
        .post(
            SUPER,
            &format!("/v1/admin/audit/tree-head?tenant={TENANT}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{head_after}");
    assert_eq!(head_after["tree_size"], reached + 10);

    let report = app.verify(TENANT).await;
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["events_checked"], reached, "{report}");
    assert_eq!(
        report["chain_head_id"],
        event_id_at(&primary, reached).await.as_str()
    );
    assert_eq!(report["signed_tree_head"], head_before, "{report}");
    assert_eq!(report["signed_tree_head_matches"], true, "{report}");
    let (_, latest) = app
        .get(SUPER, &format!("/v1/admin/audit/tree-head?tenant={TENANT}"))
        .await;
    assert_eq!(latest, head_before);
    let listed = listed_ids(&app).await;
    assert_eq!(listed.len() as i64, reached);
    assert!(listed.iter().all(|id| !id.starts_with("replica-7-")));
    let (status, export) = app
        .send(
            "GET",
            &format!("/v1/admin/audit/export?tenant={TENANT}&format=ndjson"),
            Some(SUPER),
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        String::from_utf8(export).unwrap().lines().count() as i64,
        reached
    );
    let proof_uri = format!(
        "/v1/admin/audit/proofs/inclusion?tenant={TENANT}&event_id={}",
        later[0].id
    );
    let (status, _) = app.get(SUPER, &proof_uri).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not replayed yet");
    let (status, activity) = app
        .get(REPORTS, &format!("/api/reports/activity?tenant={TENANT}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{activity}");
    assert_eq!(activity["tenants"][0]["deny"], reached, "{activity}");

    // Replaying again, the replica reaches the primary's point, the later head included.
    control
        .execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    control.close().await.unwrap();
    let report = caught_up(&app, reached + 10).await;
    assert_eq!(report["verified"], true, "{report}");
    wait_for_head(&app, reached + 10).await;
    let report = app.verify(TENANT).await;
    assert_eq!(report["signed_tree_head"], head_after, "{report}");
    assert_eq!(report["signed_tree_head_matches"], true, "{report}");
    let (status, proof) = app.get(SUPER, &proof_uri).await;
    assert_eq!(status, StatusCode::OK, "{proof}");
}

/// The ids of every event the audit query lists, page by page.
async fn listed_ids(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = app
            .get(
                SUPER,
                &format!("/v1/admin/audit?tenant={TENANT}&limit=1000{cursor}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for item in page["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return ids,
        }
    }
}

/// Waits until the replica serves a signed tree head of `size` events.
async fn wait_for_head(app: &TestApp, size: i64) {
    for _ in 0..400 {
        let (status, head) = app
            .get(SUPER, &format!("/v1/admin/audit/tree-head?tenant={TENANT}"))
            .await;
        if status == StatusCode::OK && head["tree_size"] == size {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the replica did not replay the tree head of {size} events");
}
