//! Verifying a tenant's chain: every event's hash recomputed from its stored body and previous
//! hash, every link checked, and the end of the walk compared with the recorded chain head (which
//! catches events removed from the end). Reports the first broken event.

mod batch;
mod postgres;
mod sqlite;

use std::time::Instant;

use serde::Serialize;
use sqlx::Row;
use tokio::sync::mpsc;

use batch::{Batch, WalkEnd};

use crate::db::{Backend, Db};
use crate::error::{Error, Result};

/// The recorded head of a chain.
#[derive(Debug, Clone)]
pub struct Head {
    pub seq: i64,
    pub hash: Option<[u8; 32]>,
    pub id: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub tenant: String,
    pub verified: bool,
    pub events_checked: u64,
    pub chain_head_id: Option<String>,
    pub chain_head_at: Option<String>,
    pub duration_ms: u64,
    pub first_broken_event_id: Option<String>,
    /// Why the chain breaks at that event.
    pub reason: Option<String>,
}

/// Where the chain breaks: the event (by `seq`, or by id when it is no longer stored) and why.
enum Broken {
    AtSeq(i64, String),
    Missing(String, String),
}

pub async fn verify(db: &Db, tenant: &str) -> Result<Report> {
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<Batch>(4);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let checker = tokio::task::spawn_blocking(move || batch::check_all(rx, threads));
    let (head, end) = match db.backend() {
        Backend::Sqlite => {
            let path = db.sqlite_path()?;
            let owned = tenant.to_owned();
            tokio::task::spawn_blocking(move || sqlite::read(&path, &owned, tx))
                .await
                .map_err(|e| Error::Internal(format!("verify reader: {e}")))??
        }
        Backend::Postgres => postgres::read(db.url(), tenant, tx).await?,
    };
    let found = checker
        .await
        .map_err(|e| Error::Internal(format!("verify checker: {e}")))?;
    let broken = match found {
        Some(b) => Some(Broken::AtSeq(b.seq, b.kind.describe().into())),
        None => check_end(head.as_ref(), &end),
    };
    let (first_broken_event_id, reason) = match broken {
        None => (None, None),
        Some(Broken::AtSeq(seq, why)) => (
            event_at(db, tenant, seq).await?.map(|(id, _)| id),
            Some(why),
        ),
        Some(Broken::Missing(id, why)) => (Some(id), Some(why)),
    };
    let last = match end.last_seq {
        Some(seq) => event_at(db, tenant, seq).await?,
        None => None,
    };
    let (chain_head_id, chain_head_at) = last.unzip();
    Ok(Report {
        tenant: tenant.to_owned(),
        verified: reason.is_none(),
        events_checked: end.count,
        chain_head_id,
        chain_head_at,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        first_broken_event_id,
        reason,
    })
}

/// Every link held; does the walk end where the recorded head says the chain ends?
fn check_end(head: Option<&Head>, end: &WalkEnd) -> Option<Broken> {
    let count = i64::try_from(end.count).unwrap_or(i64::MAX);
    let Some(head) = head else {
        return (count > 0).then(|| {
            Broken::AtSeq(
                1,
                "the chain has events but no recorded head (it was removed)".into(),
            )
        });
    };
    if head.seq > count {
        return Some(Broken::Missing(
            head.id.clone(),
            "the chain ends before its recorded head: events were removed from the end".into(),
        ));
    }
    if head.seq < count {
        return Some(Broken::AtSeq(
            head.seq + 1,
            "events follow the recorded chain head (appended outside the control plane)".into(),
        ));
    }
    if count > 0 && head.hash != Some(end.last_hash) {
        return end.last_seq.map(|seq| {
            Broken::AtSeq(
                seq,
                "the last event does not match the recorded chain head".into(),
            )
        });
    }
    None
}

/// The id and `ts` of the event at `seq`.
async fn event_at(db: &Db, tenant: &str, seq: i64) -> Result<Option<(String, String)>> {
    let row = sqlx::query("SELECT id, ts FROM audit_events WHERE tenant = $1 AND seq = $2")
        .bind(tenant)
        .bind(seq)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("ts")?)))
        .transpose()
}
