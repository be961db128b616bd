//! Verify while the chain grows: each report is of one consistent view of the database, so events
//! appended during a walk never look like tampering (on Postgres two replicas append, on SQLite one
//! process), while a real tampering made in the middle of that load is reported, with its event, by
//! every verify after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use intentgate_control_plane::audit;
use intentgate_control_plane::store::Db;
use intentgate_core::audit::AuditEvent;
use intentgate_core::decision::AuditDecision;

use crate::support::{TestApp, tool_call};

/// Verifies made while the appends run, half before the tampering and half after.
const RUNS: usize = 500;
const TENANT: &str = "acme";

fn event(task: usize, n: usize) -> AuditEvent {
    tool_call(
        format!("load-{task}-{n:06}"),
        TENANT,
        1_781_444_520_000 + n as i64,
        AuditDecision::Allow,
    )
}

/// Appends small batches from each of `writers` until told to stop.
fn spawn_appenders(
    writers: Vec<Db>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    writers
        .into_iter()
        .enumerate()
        .map(|(task, db)| {
            let stop = Arc::clone(stop);
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let batch: Vec<_> = (n..n + 4).map(|i| event(task, i)).collect();
                    audit::append(&db, &batch).await.expect("append under load");
                    n += 4;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                n
            })
        })
        .collect()
}

async fn chain_length(db: &Db) -> u64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE tenant = $1")
        .bind(TENANT)
        .fetch_one(db.pool())
        .await
        .unwrap();
    u64::try_from(n).unwrap()
}

async fn verify_under_load(app: TestApp, writers: Vec<Db>) {
    let db = app.state.db.clone();
    audit::append(&db, &(0..20).map(|n| event(9, n)).collect::<Vec<_>>())
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let appenders = spawn_appenders(writers, &stop);

    let mut sizes = std::collections::BTreeSet::new();
    for run in 0..RUNS / 2 {
        let report = app.verify(TENANT).await;
        assert_eq!(
            report["verified"], true,
            "run {run}: a false alarm under appends: {report}"
        );
        let checked = report["events_checked"].as_u64().unwrap();
        sizes.insert(checked);
        // The next verify starts once the chain has grown, so each run sees another length of it
        // however slowly a loaded machine appends.
        while chain_length(&db).await <= checked {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    // A real tampering, in the middle of the load: an event's body rewritten in place.
    let tampered: (String,) =
        sqlx::query_as("SELECT id FROM audit_events WHERE tenant = $1 AND seq = 7")
            .bind(TENANT)
            .fetch_one(db.pool())
            .await
            .unwrap();
    sqlx::query(
        "UPDATE audit_events SET body = replace(body, 'agent-1', 'agent-9') \
         WHERE tenant = $1 AND seq = 7",
    )
    .bind(TENANT)
    .execute(db.pool())
    .await
    .unwrap();
    for run in 0..RUNS / 2 {
        let report = app.verify(TENANT).await;
        assert_eq!(report["verified"], false, "run {run}: {report}");
        assert_eq!(
            report["first_broken_event_id"],
            tampered.0.as_str(),
            "run {run}: {report}"
        );
        assert!(
            report["reason"].as_str().unwrap().contains("altered"),
            "run {run}: {report}"
        );
    }

    stop.store(true, Ordering::SeqCst);
    let mut appended = 0;
    for task in appenders {
        appended += task.await.unwrap();
    }
    // The verifies ran while the chain grew: they saw many different lengths of it.
    assert!(appended >= 200, "only {appended} events were appended");
    assert!(
        sizes.len() >= 20,
        "the verifies saw only {} chain lengths",
        sizes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_verify_under_appends_from_one_process() {
    let app = TestApp::sqlite().await;
    let writers = vec![app.state.db.clone(), app.state.db.clone()];
    verify_under_load(app, writers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_under_appends_from_two_replicas() {
    let app = TestApp::postgres().await;
    let other = Db::connect(app.state.db.url())
        .await
        .expect("a second replica's pool");
    let writers = vec![app.state.db.clone(), other];
    verify_under_load(app, writers).await;
}
