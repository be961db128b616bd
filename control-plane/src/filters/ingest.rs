//! Audit batches from filters: each event must be the one its record names (id and tenant) and
//! satisfy the store's rules, else it is rejected by id; the rest go to their tenants' chains through
//! the idempotent append, so a batch sent again is written once. A batch's events and the filter's
//! bookkeeping commit in one transaction. What a filter had to drop while its buffer was full is
//! counted, never silent.
//!
//! The batches that arrive while one is being written are written next, together, in one
//! transaction (group commit): a fleet's batches into one chain then share the per-transaction costs
//! (the chain and tree heads' round trips, the commit) instead of queueing for the chain's lock one by
//! one. Batches queue in lanes: on SQLite one, as its writes go one at a time whatever their tenant;
//! on Postgres a lane per set of tenants (hashed onto [`POSTGRES_LANES`]), so batches of unrelated
//! tenants still run in parallel there. A group that fails is written again batch by batch, so one
//! batch that cannot be stored fails alone.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use intentgate_core::audit::AuditEvent;
use intentgate_proto::v1;
use tokio::sync::oneshot;

use super::registry;
use crate::audit::store::{self, Appended, Prepared};
use crate::error::{Error, Result};
use crate::store::{Backend, Db};

/// Most events accepted in one audit batch.
pub const MAX_BATCH: usize = 1000;
/// Most events written in one group-commit transaction (a batch is never split).
const MAX_GROUP_EVENTS: usize = 16 * MAX_BATCH;
/// Postgres lanes: batches whose tenant sets hash alike share one (and may share a transaction).
const POSTGRES_LANES: usize = 16;

/// A validated batch, ready to be written.
struct Batch {
    filter_id: String,
    dropped: u64,
    events: Vec<Prepared>,
}

type Reply = oneshot::Sender<Result<Vec<Appended>>>;

/// This process's audit ingest. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    lanes: Arc<[Lane]>,
}

/// Batches written one group at a time.
#[derive(Default)]
struct Lane {
    /// Batches waiting to be written together, with where each one's outcome goes.
    waiting: Mutex<Vec<(Batch, Reply)>>,
    /// Held by the one caller writing a group.
    writing: tokio::sync::Mutex<()>,
}

impl Default for Ingest {
    fn default() -> Self {
        Ingest {
            lanes: (0..POSTGRES_LANES).map(|_| Lane::default()).collect(),
        }
    }
}

impl Ingest {
    pub async fn batch(&self, db: &Db, batch: &v1::AuditBatch) -> Result<v1::AuditAck> {
        if batch.events.len() > MAX_BATCH {
            return Err(Error::bad_request(format!(
                "at most {MAX_BATCH} events per batch"
            )));
        }
        let mut events = Vec::with_capacity(batch.events.len());
        let mut rejected_ids = Vec::new();
        for record in &batch.events {
            let prepared = serde_json::from_str::<AuditEvent>(&record.event_json)
                .ok()
                .filter(|event| event.id == record.id && event.tenant == record.tenant)
                .and_then(|event| Prepared::new(&event).ok());
            match prepared {
                Some(prepared) => events.push(prepared),
                None => {
                    tracing::warn!(filter = %batch.filter_id, id = %record.id, "malformed audit event rejected");
                    rejected_ids.push(record.id.clone());
                }
            }
        }
        let validated = Batch {
            filter_id: batch.filter_id.clone(),
            dropped: batch.dropped,
            events,
        };
        let stored = self
            .lane(db.backend(), &validated)
            .together(db, validated)
            .await?;
        if batch.dropped > 0 {
            tracing::error!(filter = %batch.filter_id, dropped = batch.dropped, "a filter dropped audit events: its buffer overflowed");
        }
        Ok(v1::AuditAck {
            stored_ids: stored.into_iter().map(|a| a.id).collect(),
            rejected_ids,
        })
    }

    /// The lane `batch` queues in: its set of tenants picks one on Postgres.
    fn lane(&self, backend: Backend, batch: &Batch) -> &Lane {
        let index = match backend {
            Backend::Sqlite => 0,
            Backend::Postgres => {
                let tenants: BTreeSet<&str> = batch.events.iter().map(Prepared::tenant).collect();
                let mut hasher = DefaultHasher::new();
                tenants.hash(&mut hasher);
                usize::try_from(hasher.finish() % POSTGRES_LANES as u64).unwrap_or(0)
            }
        };
        &self.lanes[index.min(self.lanes.len() - 1)]
    }
}

impl Lane {
    /// Queues `batch`, then writes what is queued whenever this caller's turn comes, until its
    /// own batch has been written (by itself or by a caller before it).
    async fn together(&self, db: &Db, batch: Batch) -> Result<Vec<Appended>> {
        let (reply, mut outcome) = oneshot::channel();
        self.lock_waiting()?.push((batch, reply));
        loop {
            {
                let _writing = self.writing.lock().await;
                if let Some(result) = settled(&mut outcome) {
                    return result;
                }
                let group = self.take_group()?;
                if !group.is_empty() {
                    let (batches, replies): (Vec<Batch>, Vec<Reply>) = group.into_iter().unzip();
                    let results = write_group(db, &batches).await;
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
            }
            if let Some(result) = settled(&mut outcome) {
                return result;
            }
        }
    }

    /// The oldest waiting batches, up to [`MAX_GROUP_EVENTS`] events (at least one batch).
    fn take_group(&self) -> Result<Vec<(Batch, Reply)>> {
        let mut waiting = self.lock_waiting()?;
        let mut events = 0;
        let count = waiting
            .iter()
            .take_while(|(batch, _)| {
                events += batch.events.len();
                events <= MAX_GROUP_EVENTS
            })
            .count()
            .max(1)
            .min(waiting.len());
        Ok(waiting.drain(..count).collect())
    }

    fn lock_waiting(&self) -> Result<std::sync::MutexGuard<'_, Vec<(Batch, Reply)>>> {
        self.waiting
            .lock()
            .map_err(|_| Error::Internal("the audit ingest queue is poisoned".into()))
    }
}

/// The batch's outcome, once whoever wrote it has sent it.
fn settled(
    outcome: &mut oneshot::Receiver<Result<Vec<Appended>>>,
) -> Option<Result<Vec<Appended>>> {
    match outcome.try_recv() {
        Ok(result) => Some(result),
        Err(oneshot::error::TryRecvError::Empty) => None,
        Err(oneshot::error::TryRecvError::Closed) => Some(Err(Error::Internal(
            "an audit batch was taken for writing but never answered".into(),
        ))),
    }
}

/// Writes `batches` together; when that fails, each alone, so that a batch that cannot be stored
/// fails by itself. Returns each batch's outcome, in order.
async fn write_group(db: &Db, batches: &[Batch]) -> Vec<Result<Vec<Appended>>> {
    match write(db, batches).await {
        Ok(results) => return results.into_iter().map(Ok).collect(),
        Err(err) if batches.len() > 1 => {
            tracing::warn!(error = %err, batches = batches.len(), "a group of audit batches failed; writing them one by one");
        }
        Err(err) => return vec![Err(not_stored(batches, err))],
    }
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches.chunks(1) {
        out.push(match write(db, batch).await {
            Ok(mut stored) => Ok(stored.pop().unwrap_or_default()),
            Err(err) => Err(not_stored(batch, err)),
        });
    }
    out
}

/// The caller's error for batches that were not stored; the cause goes to the log.
fn not_stored(batches: &[Batch], err: Error) -> Error {
    let filters: Vec<&str> = batches.iter().map(|b| b.filter_id.as_str()).collect();
    tracing::error!(error = %err, ?filters, "an audit batch was not stored");
    Error::Unavailable("the audit batch was not stored".into())
}

/// Writes `batches` in one transaction: their events to the chains, in order, and each filter's
/// bookkeeping. Returns each batch's events as stored.
async fn write(db: &Db, batches: &[Batch]) -> Result<Vec<Vec<Appended>>> {
    let events: Vec<&Prepared> = batches.iter().flat_map(|b| &b.events).collect();
    let mut tx = db.begin().await?;
    let mut stored = store::append_prepared(&mut tx, &events).await?.into_iter();
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let own: Vec<Appended> = stored.by_ref().take(batch.events.len()).collect();
        registry::audit_batch(&mut tx, &batch.filter_id, own.len() as u64, batch.dropped).await?;
        out.push(own);
    }
    tx.commit().await?;
    Ok(out)
}
