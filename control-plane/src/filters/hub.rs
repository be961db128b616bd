//! The newest state version this replica knows of, fed by its own commits, by Postgres
//! notifications from other replicas (`LISTEN`, the way they learn at once), and by a slow poll
//! that covers a missed notification (`INTENTGATE_SYNC_POLL_MS`; off, the notifications alone). Every
//! sync stream watches it; a slow stream just sees the latest value (nothing queues up).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::keys::SigningKeys;
use crate::store::changes::{CHANNEL, Changes};
use crate::store::{Backend, Db};

/// How long to wait before listening again after the listening connection failed.
const RELISTEN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Hub {
    latest: Arc<watch::Sender<u64>>,
}

impl Hub {
    pub fn new(initial: u64) -> Self {
        Hub {
            latest: Arc::new(watch::channel(initial).0),
        }
    }

    pub fn advance(&self, version: u64) {
        self.latest.send_if_modified(|held| {
            let newer = version > *held;
            if newer {
                *held = version;
            }
            newer
        });
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    pub fn latest(&self) -> u64 {
        *self.latest.borrow()
    }

    /// Starts the tasks that keep the hub (and the active signing key) current: this process's
    /// commits, other replicas' notifications, and a read of the version every `poll` (if any).
    pub fn spawn_feeds(
        &self,
        db: Db,
        changes: &Changes,
        signing: Arc<SigningKeys>,
        poll: Option<Duration>,
    ) {
        let hub = self.clone();
        let mut local = changes.subscribe();
        tokio::spawn(async move {
            loop {
                match local.recv().await {
                    Ok(committed) => hub.advance(committed.version),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        if db.backend() == Backend::Postgres {
            tokio::spawn(listen(self.clone(), db.clone(), Arc::clone(&signing)));
        }
        if let Some(every) = poll {
            tokio::spawn(read_every(every, self.clone(), db, signing));
        }
    }
}

/// Another replica's commit: advance, and reload the signing key if the key set changed. What was
/// committed while no connection was listening (before the first `LISTEN`, or while it reconnects)
/// is read from the database as soon as it listens again, so no change waits for the poll.
async fn listen(hub: Hub, db: Db, signing: Arc<SigningKeys>) {
    loop {
        let mut listener = match PgListener::connect(db.url()).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "cannot LISTEN for sync changes; retrying");
                tokio::time::sleep(RELISTEN).await;
                continue;
            }
        };
        if let Err(err) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %err, "LISTEN failed; retrying");
            tokio::time::sleep(RELISTEN).await;
            continue;
        }
        catch_up(&hub, &db, &signing).await;
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Ok(version) = notification.payload().parse::<u64>() {
                        // The streams build what they push from the database, not from this
                        // replica's signing key: they need not wait for its reload.
                        hub.advance(version);
                        if let Err(err) = refresh_signing_key(&db, &signing, version).await {
                            tracing::warn!(error = %err, "cannot reload the signing key");
                        }
                    }
                }
                Ok(None) | Err(_) => {
                    tracing::warn!("LISTEN connection lost; listening again");
                    break;
                }
            }
        }
    }
}

/// Reloads the active signing key when `version` changed the key set (a rotation elsewhere).
async fn refresh_signing_key(
    db: &Db,
    signing: &SigningKeys,
    version: u64,
) -> crate::error::Result<()> {
    let kind: Option<String> = sqlx::query("SELECT kind FROM sync_changes WHERE version = $1")
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .fetch_optional(db.pool())
        .await?
        .map(|row| sqlx::Row::try_get(&row, "kind"))
        .transpose()?;
    if kind.as_deref() == Some("keys") {
        signing.reload(db).await?;
    }
    Ok(())
}

async fn read_every(every: Duration, hub: Hub, db: Db, signing: Arc<SigningKeys>) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        catch_up(&hub, &db, &signing).await;
    }
}

/// Reads the version from the database and advances to it if this replica was not told about it.
async fn catch_up(hub: &Hub, db: &Db, signing: &SigningKeys) {
    let Ok(mut conn) = db.pool().acquire().await else {
        return;
    };
    if let Ok(version) = super::state::version(&mut conn).await
        && version > hub.latest()
    {
        // A change this replica was not told about: the key set may be part of it.
        if let Err(err) = signing.reload(db).await {
            tracing::warn!(error = %err, "cannot reload the signing key");
        }
        hub.advance(version);
    }
}
