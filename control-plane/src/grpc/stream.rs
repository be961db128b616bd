//! One `Sync` subscription: a snapshot, then a delta whenever the state version moves, and the
//! filter's acknowledgements recorded as they come.

use intentgate_proto::v1::{self, sync_request};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::filters::{Hub, registry, state};
use crate::store::Db;

/// One subscription: a snapshot, then a delta whenever the version moves, until either side goes.
pub async fn serve(
    db: Db,
    hub: Hub,
    filter_id: String,
    mut inbound: Streaming<v1::SyncRequest>,
    outbound: mpsc::Sender<Result<v1::SyncUpdate, Status>>,
) {
    let _ = registry::connected(&db, &filter_id).await;
    let mut latest = hub.watch();
    let mut sent = match send_snapshot(&db, &outbound).await {
        Some(version) => version,
        None => return,
    };
    loop {
        tokio::select! {
            changed = latest.changed() => {
                if changed.is_err() {
                    break;
                }
                if *latest.borrow_and_update() <= sent {
                    continue;
                }
                match state::delta(&db, sent).await {
                    Ok(Some(update)) => {
                        let version = update.version;
                        if outbound.send(Ok(update)).await.is_err() {
                            break;
                        }
                        sent = version;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, filter = %filter_id, "cannot build a delta");
                    }
                }
            }
            message = inbound.message() => match message {
                Ok(Some(v1::SyncRequest { kind: Some(sync_request::Kind::Ack(ack)) })) => {
                    let _ = registry::acked(&db, &filter_id, ack.version).await;
                }
                Ok(Some(v1::SyncRequest { kind: Some(sync_request::Kind::Subscribe(_)) })) => {
                    match send_snapshot(&db, &outbound).await {
                        Some(version) => sent = version,
                        None => break,
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            },
        }
    }
    let _ = registry::disconnected(&db, &filter_id).await;
}

async fn send_snapshot(
    db: &Db,
    outbound: &mpsc::Sender<Result<v1::SyncUpdate, Status>>,
) -> Option<u64> {
    match state::snapshot(db).await {
        Ok(snapshot) => {
            let version = snapshot.version;
            outbound.send(Ok(snapshot)).await.ok()?;
            Some(version)
        }
        Err(err) => {
            let _ = outbound.send(Err(Status::from(err))).await;
            None
        }
    }
}
