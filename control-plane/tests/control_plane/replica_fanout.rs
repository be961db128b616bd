//! Replicas learn of each other's changes at once, by Postgres `LISTEN`/`NOTIFY`: with the poll
//! turned off, a change made through replica A still moves replica B's version hub (which tells B's
//! filter subscriptions to send the delta).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use intentgate_control_plane::filters::{Hub, state};
use intentgate_control_plane::keys::{Keys, SigningKeys};
use intentgate_control_plane::store::Db;
use intentgate_control_plane::store::changes::Changes;
use serde_json::json;

use crate::support::{ACME, TestApp};

/// Waits, without the poll, for B's hub to reach `version`.
async fn reaches(hub: &Hub, version: u64) {
    let mut watch = hub.watch();
    let reached = tokio::time::timeout(
        Duration::from_secs(10),
        watch.wait_for(|held| *held >= version),
    )
    .await;
    assert!(
        matches!(reached, Ok(Ok(_))),
        "replica B's hub stayed at {} instead of {version}",
        hub.latest()
    );
}

async fn revoke_on_a(a: &TestApp) -> u64 {
    let jti = a.mint("acme", "agent-fanout").await;
    let (status, body) = a.post(ACME, "/v1/admin/revoke", json!({"jti": jti})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let mut conn = a.state.db.pool().acquire().await.unwrap();
    state::version(&mut conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_replica_a_reaches_replica_b_by_notification_alone() {
    let a = TestApp::postgres().await;
    let b = Db::connect(a.state.db.url()).await.unwrap();
    let keys = Keys::from_seed(a.state.keys.seed()).unwrap();
    let signing = Arc::new(SigningKeys::load(&b, &keys).await.unwrap());
    let initial = {
        let mut conn = b.pool().acquire().await.unwrap();
        state::version(&mut conn).await.unwrap()
    };
    let hub = Hub::new(initial);
    hub.spawn_feeds(b, &Changes::new(), signing, None);

    // The first change may land before B listens (it is read once B does); by the time it arrives,
    // B listens, so the next ones can only come by notification.
    let first = revoke_on_a(&a).await;
    reaches(&hub, first).await;
    for _ in 0..3 {
        let version = revoke_on_a(&a).await;
        reaches(&hub, version).await;
    }
}
