//! Audit batches from filters, through the ingest FilterSync's `IngestAudit` calls: a batch that
//! repeats ids already written (or repeats one within itself) writes only the new events, without a
//! gap; batches sent at once through two replicas interleave into one chain and one tree, every
//! event once, in an order both agree on.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use intentgate_control_plane::filters::Ingest;
use intentgate_control_plane::store::Db;
use intentgate_core::audit::AuditEvent;
use intentgate_core::audit::merkle::InclusionProof;
use intentgate_core::decision::AuditDecision;
use intentgate_proto::v1;
use serde_json::Value;

use crate::on_both_backends;
use crate::support::{SUPER, TestApp, audit_batch, tool_call};

on_both_backends!(
    a_batch_repeating_written_ids_writes_only_the_new_events,
    batches_through_two_replicas_interleave_into_one_chain,
);

const TENANT: &str = "acme";

fn event(n: usize) -> AuditEvent {
    tool_call(
        format!("ingest-{n:05}"),
        TENANT,
        1_781_444_520_000 + n as i64,
        AuditDecision::Allow,
    )
}

fn batch(filter: &str, numbers: impl IntoIterator<Item = usize>) -> v1::AuditBatch {
    audit_batch(filter, numbers.into_iter().map(event))
}

/// The tenant's chain as stored: id by position.
async fn chain(db: &Db) -> BTreeMap<i64, String> {
    sqlx::query_as::<_, (i64, String)>(
        "SELECT seq, id FROM audit_events WHERE tenant = $1 ORDER BY seq",
    )
    .bind(TENANT)
    .fetch_all(db.pool())
    .await
    .unwrap()
    .into_iter()
    .collect()
}

async fn verify(app: &TestApp) -> Value {
    let report = app.verify(TENANT).await;
    assert_eq!(report["verified"], true, "{report}");
    report
}

/// Every event's inclusion proof verifies against the tree the signed head pins.
async fn every_event_proves(app: &TestApp, ids: &BTreeMap<i64, String>) {
    let (status, head) = app
        .post(
            SUPER,
            &format!("/v1/admin/audit/tree-head?tenant={TENANT}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{head}");
    assert_eq!(head["tree_size"], ids.len());
    let root: [u8; 32] = hex::decode(head["root_hash"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    for id in ids.values() {
        let (status, proof) = app
            .get(
                SUPER,
                &format!("/v1/admin/audit/proofs/inclusion?tenant={TENANT}&event_id={id}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{proof}");
        let proof: InclusionProof = serde_json::from_value(proof).unwrap();
        proof.verify(&root).unwrap();
    }
}

async fn a_batch_repeating_written_ids_writes_only_the_new_events(app: TestApp) {
    let db = &app.state.db;
    let ingest = Ingest::default();
    let first = ingest.batch(db, &batch("envoy-a", 1..=10)).await.unwrap();
    assert_eq!(first.stored_ids.len(), 10);

    // Sent again in part (its acknowledgement was lost), with new events, one of them twice, and
    // one malformed record.
    let mut again = batch("envoy-a", (6..=15).chain([12]));
    again.events.push(v1::AuditRecord {
        id: "broken".into(),
        tenant: TENANT.into(),
        event_json: "{".into(),
    });
    let ack = ingest.batch(db, &again).await.unwrap();
    let expected: Vec<String> = (6..=15).chain([12]).map(|n| event(n).id).collect();
    assert_eq!(ack.stored_ids, expected);
    assert_eq!(ack.rejected_ids, ["broken"]);

    let stored = chain(db).await;
    let in_order: Vec<(i64, String)> = (1..=15).map(|n| (n as i64, event(n).id)).collect();
    assert_eq!(stored.into_iter().collect::<Vec<_>>(), in_order);
    let report = verify(&app).await;
    assert_eq!(report["events_checked"], 15);
    assert_eq!(report["tree_size"], 15);

    // Entirely a repeat: nothing is written, every id is acknowledged.
    let repeat = ingest.batch(db, &batch("envoy-a", 1..=15)).await.unwrap();
    assert_eq!(repeat.stored_ids.len(), 15);
    assert_eq!(chain(db).await.len(), 15);
    every_event_proves(&app, &chain(db).await).await;
}

async fn batches_through_two_replicas_interleave_into_one_chain(app: TestApp) {
    let replica = Db::connect(app.state.db.url()).await.unwrap();
    let senders: Vec<(Db, Ingest)> = vec![
        (app.state.db.clone(), Ingest::default()),
        (replica.clone(), Ingest::default()),
    ];
    // Four filters, two per replica, each sending 12 batches of 20 events; each batch also repeats
    // the first five events of the filter sending through the other replica, so the same ids race
    // through both replicas.
    let mut tasks = Vec::new();
    for filter in 0..4usize {
        let (db, ingest) = senders[filter % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for round in 0..12usize {
                let own = (0..20).map(|i| 10_000 * (filter + 1) + 100 * round + i);
                let other = 10_000 * ((filter + 1) % 4 + 1) + 100 * round;
                let numbers: Vec<usize> = own.chain(other..other + 5).collect();
                let ack = ingest
                    .batch(&db, &batch(&format!("envoy-{filter}"), numbers.clone()))
                    .await
                    .unwrap();
                assert_eq!(ack.stored_ids.len(), numbers.len());
                acked.extend(ack.stored_ids);
            }
            acked
        }));
    }
    let mut acked = BTreeSet::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    assert_eq!(acked.len(), 4 * 12 * 20);

    // One chain, seen alike through both replicas: positions 1..=n, each acknowledged id once.
    let stored = chain(&app.state.db).await;
    assert_eq!(stored, chain(&replica).await);
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (1..=acked.len() as i64).collect::<Vec<_>>()
    );
    assert_eq!(stored.values().cloned().collect::<BTreeSet<_>>(), acked);
    // The events only one filter sends keep that filter's order in the chain.
    for filter in 1..=4usize {
        let own: Vec<usize> = stored
            .values()
            .filter_map(|id| id.strip_prefix("ingest-")?.parse::<usize>().ok())
            .filter(|n| n / 10_000 == filter && n % 100 >= 5)
            .collect();
        assert_eq!(own.len(), 12 * 15);
        assert!(
            own.windows(2).all(|w| w[0] < w[1]),
            "filter {filter}'s events out of order"
        );
    }
    let report = verify(&app).await;
    assert_eq!(report["events_checked"], acked.len());
    every_event_proves(&app, &stored).await;
}
