//! Group commit of audit batches: batches that queue for one tenant's chain while another batch is
//! being written are written next, together, in the order they arrived; a batch repeating ids
//! (stored before, or earlier in the same group) is not doubled; and a batch that the database
//! refuses fails alone, while the batches queued with it are stored.

use std::time::Duration;

use intentgate_control_plane::error::Error;
use intentgate_control_plane::filters::Ingest;
use intentgate_control_plane::store::{Backend, Db};
use intentgate_core::audit::AuditEvent;
use intentgate_core::decision::AuditDecision;
use intentgate_proto::v1;
use sqlx::Executor;
use tokio::task::JoinHandle;

use crate::on_both_backends;
use crate::support::{TestApp, audit_batch, tool_call};

on_both_backends!(
    batches_queued_behind_a_write_are_chained_in_arrival_order,
    a_batch_the_database_refuses_fails_alone_in_its_group,
);

const TENANT: &str = "acme";

fn event(id: &str, n: usize) -> AuditEvent {
    tool_call(
        id.to_owned(),
        TENANT,
        1_781_444_520_000 + n as i64,
        AuditDecision::Allow,
    )
}

fn batch(filter: &str, ids: &[String]) -> v1::AuditBatch {
    audit_batch(filter, ids.iter().enumerate().map(|(n, id)| event(id, n)))
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("{prefix}-{n:03}")).collect()
}

/// The tenant's chain as stored: ids by position, which must be 1..=n.
async fn chain(db: &Db) -> Vec<String> {
    let rows = sqlx::query_as::<_, (i64, String)>(
        "SELECT seq, id FROM audit_events WHERE tenant = $1 ORDER BY seq",
    )
    .bind(TENANT)
    .fetch_all(db.pool())
    .await
    .unwrap();
    let positions: Vec<i64> = rows.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(positions, (1..=rows.len() as i64).collect::<Vec<_>>());
    rows.into_iter().map(|(_, id)| id).collect()
}

/// Sends `batches` one after the other while the tenant's chain is held by another transaction, so
/// that the first waits in the database and the rest queue behind it; then lets them through.
async fn send_behind_a_held_chain(
    db: &Db,
    ingest: &Ingest,
    batches: Vec<v1::AuditBatch>,
) -> Vec<Result<v1::AuditAck, Error>> {
    let mut hold = db.begin().await.unwrap();
    sqlx::query("UPDATE audit_chain_heads SET seq = seq WHERE tenant = $1")
        .bind(TENANT)
        .execute(&mut *hold)
        .await
        .unwrap();
    let mut sent: Vec<JoinHandle<Result<v1::AuditAck, Error>>> = Vec::new();
    for batch in batches {
        let (db, ingest) = (db.clone(), ingest.clone());
        sent.push(tokio::spawn(async move { ingest.batch(&db, &batch).await }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    hold.rollback().await.unwrap();
    let mut out = Vec::new();
    for task in sent {
        out.push(task.await.unwrap());
    }
    out
}

async fn batches_queued_behind_a_write_are_chained_in_arrival_order(app: TestApp) {
    let db = &app.state.db;
    let ingest = Ingest::default();
    let first = ids("first", 0..10);
    ingest.batch(db, &batch("envoy-0", &first)).await.unwrap();

    let a = ids("a", 0..20);
    let b = ids("b", 0..20);
    // Resent in part (its acknowledgement was lost): five of `first` and five of `b`, which is
    // queued ahead of it in the same group, then new events.
    let c: Vec<String> = first[..5]
        .iter()
        .chain(&b[..5])
        .cloned()
        .chain(ids("c", 0..20))
        .collect();
    let d = ids("d", 0..20);
    let sent = vec![
        batch("envoy-1", &a),
        batch("envoy-2", &b),
        batch("envoy-3", &c),
        batch("envoy-4", &d),
    ];
    let acks = send_behind_a_held_chain(db, &ingest, sent).await;
    for (ack, expected) in acks.into_iter().zip([&a, &b, &c, &d]) {
        assert_eq!(&ack.unwrap().stored_ids, expected);
    }

    let expected: Vec<String> = [first, a, b, ids("c", 0..20), d].concat();
    assert_eq!(chain(db).await, expected);
    let report = app.verify(TENANT).await;
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["events_checked"], expected.len());
    assert_eq!(report["tree_size"], expected.len());
}

/// Makes the database refuse any event whose id starts with `poison-`.
async fn refuse_poisoned_events(db: &Db) {
    let sql = match db.backend() {
        Backend::Sqlite => {
            r#"CREATE TRIGGER poison BEFORE INSERT ON audit_events
               WHEN instr(NEW.body, '"id":"poison-') > 0
               BEGIN SELECT RAISE(ABORT, 'poisoned event'); END"#
        }
        Backend::Postgres => {
            r#"CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                   IF strpos(NEW.body, '"id":"poison-') > 0 THEN
                       RAISE EXCEPTION 'poisoned event';
                   END IF;
                   RETURN NEW;
               END $$;
               CREATE TRIGGER poison BEFORE INSERT ON audit_events
                   FOR EACH ROW EXECUTE FUNCTION poison();"#
        }
    };
    db.pool().execute(sql).await.unwrap();
}

async fn a_batch_the_database_refuses_fails_alone_in_its_group(app: TestApp) {
    let db = &app.state.db;
    let ingest = Ingest::default();
    let first = ids("first", 0..10);
    ingest.batch(db, &batch("envoy-0", &first)).await.unwrap();
    refuse_poisoned_events(db).await;

    let a = ids("a", 0..20);
    let b = ids("b", 0..20);
    let poisoned: Vec<String> = ids("p", 0..5)
        .into_iter()
        .chain(ids("poison", 0..1))
        .collect();
    let d = ids("d", 0..20);
    let sent = vec![
        batch("envoy-1", &a),
        batch("envoy-2", &b),
        batch("envoy-3", &poisoned),
        batch("envoy-4", &d),
    ];
    let mut acks = send_behind_a_held_chain(db, &ingest, sent).await;
    let refused = acks.remove(2);
    assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    for (ack, expected) in acks.into_iter().zip([&a, &b, &d]) {
        assert_eq!(&ack.unwrap().stored_ids, expected);
    }

    let expected: Vec<String> = [first, a, b, d].concat();
    assert_eq!(chain(db).await, expected);
    let report = app.verify(TENANT).await;
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["tree_size"], expected.len());
}
