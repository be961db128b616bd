//! Verifying a tenant's chain: walked in storage order (the order appends wrote it), every event's
//! hash is recomputed from its stored body and previous hash, every link and position (`seq`) is
//! checked, and the end of the walk is compared with the recorded chain head (which catches events
//! removed from the end). Reports the first broken event.
//!
//! The chain is cut into ranges checked in parallel, one database connection each (see
//! [`checker`]); this is what makes verify scale with cores rather than with one decoder thread.
//!
//! The same walk recomputes the Merkle tree's root from the stored events, and the root at the
//! size of the tenant's latest signed tree head (signed by this control plane's key): a log
//! rewritten from some event on, chain hashes and head included, still hashes to a different root
//! than the head signed before, which only the key holder could have signed.

mod checker;
mod postgres;
mod sqlite;

use std::time::Instant;

use serde::Serialize;
use sqlx::Row;

use checker::{Edge, Range};
use intentgate_core::audit::merkle::SignedTreeHead;
use intentgate_core::token::{IssuerKey, PublicKeys};

use super::tree;
use crate::error::{Error, Result};
use crate::store::Db;

/// Chains shorter than this are checked by one worker: a connection per range costs more.
const MIN_EVENTS_PER_WORKER: i64 = 50_000;

/// The recorded head of a chain.
#[derive(Debug, Clone)]
struct Head {
    seq: i64,
    hash: Option<[u8; 32]>,
    id: String,
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
    /// Why the chain breaks at that event (or why the log does not match its signed tree head).
    pub reason: Option<String>,
    /// Events in the Merkle tree recomputed from the walk.
    pub tree_size: u64,
    /// Its root, hex; `None` when the chain is broken.
    pub tree_root: Option<String>,
    /// The latest tree head this control plane's key signed for the tenant.
    pub signed_tree_head: Option<SignedTreeHead>,
    /// Whether the walked events under that head hash to its root and its signature holds;
    /// `None` without a head or when the chain is broken.
    pub signed_tree_head_matches: Option<bool>,
}

/// Where the chain breaks: a stored event (found by a column), or one no longer stored.
enum Broken {
    At(&'static str, i64, String),
    Missing(String, String),
}

pub async fn verify(db: &Db, issuer: &IssuerKey, tenant: &str) -> Result<Report> {
    let started = Instant::now();
    let signed_head = tree::latest(db, tenant, Some(issuer.kid())).await?;
    let cut = signed_head.as_ref().map_or(0, |sth| sth.head.tree_size);
    // The head and the stored positions in one snapshot; later appends land beyond `last`.
    let mut tx = db.pool().begin().await?;
    let head = sqlx::query("SELECT seq, head, head_id FROM audit_chain_heads WHERE tenant = $1")
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| -> Result<Head> {
            Ok(Head {
                seq: row.try_get("seq")?,
                hash: row.try_get::<Vec<u8>, _>("head")?.try_into().ok(),
                id: row.try_get("head_id")?,
            })
        })
        .transpose()?;
    // Two subqueries: each is one index probe, where a MIN/MAX pair would scan the tenant's index.
    let bounds = sqlx::query(
        "SELECT (SELECT MIN(pos) FROM audit_events WHERE tenant = $1) AS first, \
                (SELECT MAX(pos) FROM audit_events WHERE tenant = $1) AS last",
    )
    .bind(tenant)
    .fetch_one(&mut *tx)
    .await?;
    let (first, last): (Option<i64>, Option<i64>) =
        (bounds.try_get("first")?, bounds.try_get("last")?);
    tx.commit().await?;

    let ranges = match (first, last) {
        (Some(first), Some(last)) => {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let wanted = usize::try_from((last - first + 1) / MIN_EVENTS_PER_WORKER).unwrap_or(1);
            checker::split(first, last, wanted.clamp(1, cores))
        }
        _ => Vec::new(),
    };
    let workers: Vec<_> = ranges
        .into_iter()
        .map(|(lo, hi)| {
            let (db, tenant) = (db.clone(), tenant.to_owned());
            tokio::task::spawn_blocking(move || check_range(&db, &tenant, lo, hi, cut))
        })
        .collect();
    let mut checked = Vec::with_capacity(workers.len());
    for worker in workers {
        checked.push(
            worker
                .await
                .map_err(|e| Error::Internal(format!("verify worker: {e}")))??,
        );
    }
    let (found, count, last_event) = checker::stitch(&checked);
    let broken = match found {
        Some(b) => Some(Broken::At("pos", b.pos, b.kind.describe().into())),
        None => check_end(head.as_ref(), count, last_event, &checked),
    };
    let intact = broken.is_none();
    let roots = intact.then(|| checker::tree_roots(&checked, cut)).flatten();
    let matches = match (&signed_head, intact) {
        (Some(sth), true) => Some(head_matches(sth, issuer, roots.and_then(|(_, at)| at))),
        _ => None,
    };
    let (first_broken_event_id, mut reason) = match broken {
        None => (None, None),
        Some(Broken::At(column, value, why)) => (
            event_at(db, tenant, column, value).await?.map(|(id, _)| id),
            Some(why),
        ),
        Some(Broken::Missing(id, why)) => (Some(id), Some(why)),
    };
    let (chain_head_id, chain_head_at) = match last_event {
        Some(edge) => event_at(db, tenant, "pos", edge.pos).await?.unzip(),
        None => (None, None),
    };
    if matches == Some(false) {
        reason = Some(
            "the events under the latest signed tree head do not hash to its root (or its \
             signature does not verify): the log was rewritten after the head was signed"
                .into(),
        );
    }
    Ok(Report {
        tenant: tenant.to_owned(),
        verified: reason.is_none(),
        events_checked: count,
        chain_head_id,
        chain_head_at,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        first_broken_event_id,
        reason,
        tree_size: count,
        tree_root: roots.map(|(root, _)| hex::encode(root)),
        signed_tree_head: signed_head,
        signed_tree_head_matches: matches,
    })
}

/// The head's signature holds under the control plane's key, and the walk reached its size with
/// the same root.
fn head_matches(sth: &SignedTreeHead, issuer: &IssuerKey, root_at_size: Option<[u8; 32]>) -> bool {
    let mut trusted = PublicKeys::new();
    trusted.insert(issuer.public());
    sth.verify(&trusted).is_ok() && root_at_size == Some(sth.head.root_hash)
}

/// Runs on a blocking thread: checking is CPU-bound.
fn check_range(db: &Db, tenant: &str, first: i64, last: i64, cut: u64) -> Result<Range> {
    match db.sqlite_readers() {
        Some(readers) => sqlite::check_range(readers.path(), tenant, first, last, cut),
        None => tokio::runtime::Handle::current().block_on(postgres::check_range(
            db.url(),
            tenant,
            first,
            last,
            cut,
        )),
    }
}

/// Every link held; does the walk end where the recorded head says the chain ends?
fn check_end(
    head: Option<&Head>,
    count: u64,
    last: Option<Edge>,
    ranges: &[Range],
) -> Option<Broken> {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let Some(head) = head else {
        let first = ranges.iter().find_map(|r| r.first)?;
        return Some(Broken::At(
            "pos",
            first.pos,
            "the chain has events but no recorded head (it was removed)".into(),
        ));
    };
    if head.seq > count {
        return Some(Broken::Missing(
            head.id.clone(),
            "the chain ends before its recorded head: events were removed from the end".into(),
        ));
    }
    if head.seq < count {
        return Some(Broken::At(
            "seq",
            head.seq + 1,
            "events follow the recorded chain head (appended outside the control plane)".into(),
        ));
    }
    let last = last?;
    (head.hash != Some(last.hash)).then(|| {
        Broken::At(
            "pos",
            last.pos,
            "the last event does not match the recorded chain head".into(),
        )
    })
}

/// The id and `ts` of the tenant's event whose `column` (`pos` or `seq`) is `value`.
async fn event_at(
    db: &Db,
    tenant: &str,
    column: &'static str,
    value: i64,
) -> Result<Option<(String, String)>> {
    let sql = format!("SELECT id, ts FROM audit_events WHERE tenant = $1 AND {column} = $2");
    let row = sqlx::query(&sql)
        .bind(tenant)
        .bind(value)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("ts")?)))
        .transpose()
}
