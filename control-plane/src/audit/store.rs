//! Appending to the per-tenant hash chains: `hash = link(prev_hash, canonical_json(event))`.
//!
//! Appends to one tenant are serialised by the first statement of their transaction, an upsert
//! of the tenant's `audit_chain_heads` row: on Postgres it takes that row's lock until commit (so
//! several replicas can share one database); on SQLite it takes the database's write lock. Event
//! ids are idempotent per tenant: re-appending an id writes nothing and returns the stored row.
//! The tenant's Merkle tree is extended in the same transaction, under the same lock.
//!
//! A batch costs a few statements whatever its size: each event's canonical JSON and Merkle leaf
//! are computed before the lock (neither depends on where the event lands), the ids already stored
//! are looked up at once, the chain hashes are computed in the process, and the rows are written in
//! bulk ([`crate::store::bulk`]), with the columns queries filter on ([`super::columns`]).

use std::collections::HashMap;

use intentgate_core::audit::merkle::{Hash, leaf_hash};
use intentgate_core::audit::{AuditEvent, GENESIS, link};
use sqlx::{AnyConnection, Connection, Row};

use super::columns::Columns;
use super::tree;
use crate::error::{Error, Result};
use crate::store::{Db, bulk};
use crate::{time, validate};

pub const MAX_EVENT_ID_CHARS: usize = 128;

/// Where an event sits in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub id: String,
    pub tenant: String,
    /// 1-based position in the tenant's chain.
    pub seq: i64,
    pub hash: [u8; 32],
    /// False when the id was already stored (nothing was written).
    pub inserted: bool,
}

/// An event ready to be chained: what is hashed, computed before the chain's lock is taken.
pub struct Prepared {
    columns: Columns<'static>,
    body: String,
    leaf: Hash,
}

impl Prepared {
    /// Checks `event` against the store's rules and computes its canonical JSON and Merkle leaf.
    pub fn new(event: &AuditEvent) -> Result<Self> {
        check(event)?;
        let body = event.canonical();
        // Read back from the body, so that the columns are what verify will read there.
        let columns = Columns::of_body(body.as_bytes())
            .ok_or_else(|| Error::Internal("an event's body lacks its columns".into()))?
            .into_owned();
        Ok(Prepared {
            columns,
            leaf: leaf_hash(body.as_bytes()),
            body,
        })
    }

    pub fn tenant(&self) -> &str {
        &self.columns.tenant
    }

    fn id(&self) -> &str {
        &self.columns.id
    }
}

/// Appends events, each to its tenant's chain, in one transaction, and reports where each landed,
/// in input order. Every event is checked first: one invalid event rejects the whole call and
/// writes nothing.
pub async fn append(db: &Db, events: &[AuditEvent]) -> Result<Vec<Appended>> {
    let prepared = events
        .iter()
        .map(Prepared::new)
        .collect::<Result<Vec<_>>>()?;
    let mut tx = db.begin().await?;
    let appended = append_prepared(&mut tx, &prepared.iter().collect::<Vec<_>>()).await?;
    tx.commit().await?;
    Ok(appended)
}

/// Appends prepared events of any tenants inside the caller's transaction and reports where each
/// landed, in input order. Tenants' chains are locked in the order of their names, so that two
/// batches naming the same tenants never wait for each other in a cycle.
pub async fn append_prepared(
    conn: &mut AnyConnection,
    events: &[&Prepared],
) -> Result<Vec<Appended>> {
    let mut by_tenant: Vec<(&str, Vec<usize>)> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        match by_tenant.iter_mut().find(|(t, _)| *t == event.tenant()) {
            Some((_, indexes)) => indexes.push(index),
            None => by_tenant.push((event.tenant(), vec![index])),
        }
    }
    by_tenant.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: Vec<Option<Appended>> = vec![None; events.len()];
    for (tenant, indexes) in by_tenant {
        let group: Vec<&Prepared> = indexes
            .iter()
            .filter_map(|i| events.get(*i).copied())
            .collect();
        let appended = chain(conn, tenant, &group).await?;
        for (index, row) in indexes.into_iter().zip(appended) {
            if let Some(slot) = out.get_mut(index) {
                *slot = Some(row);
            }
        }
    }
    out.into_iter()
        .map(|row| row.ok_or_else(|| Error::Internal("an event was not appended".into())))
        .collect()
}

/// Appends events of one tenant inside the caller's transaction, so that a change and the event
/// recording it commit together ([`super::change`]). Must be the last lock but the version row's.
pub(super) async fn append_in(
    conn: &mut AnyConnection,
    events: &[AuditEvent],
) -> Result<Vec<Appended>> {
    let prepared = events
        .iter()
        .map(Prepared::new)
        .collect::<Result<Vec<_>>>()?;
    if prepared
        .iter()
        .any(|p| Some(p.tenant()) != events.first().map(|e| e.tenant.as_str()))
    {
        return Err(Error::Internal(
            "append_in takes events of one tenant".into(),
        ));
    }
    append_prepared(conn, &prepared.iter().collect::<Vec<_>>()).await
}

/// A row of `audit_events` as written.
struct ChainRow<'e> {
    seq: i64,
    prev: [u8; 32],
    hash: [u8; 32],
    event: &'e Prepared,
}

/// Where a batch's events go, given the chain's head and the ids already stored.
struct Placement<'e> {
    rows: Vec<ChainRow<'e>>,
    leaves: Vec<Hash>,
    out: Vec<Appended>,
    /// The new head: its position and hash, and the event there.
    head: Option<(i64, [u8; 32], &'e Prepared)>,
}

/// Places `events` after the head (`seq`, `head`): ids in `stored` (or earlier in the batch) are
/// not written again; the others are chained in order.
fn place<'e>(
    tenant: &str,
    (mut seq, mut head): (i64, [u8; 32]),
    events: &[&'e Prepared],
    stored: &HashMap<&'e str, (i64, [u8; 32])>,
) -> Result<Placement<'e>> {
    let mut placed = stored.clone();
    let mut placement = Placement {
        rows: Vec::with_capacity(events.len()),
        leaves: Vec::with_capacity(events.len()),
        out: Vec::with_capacity(events.len()),
        head: None,
    };
    for event in events {
        let inserted = !placed.contains_key(event.id());
        if inserted {
            let hash = link(&head, event.body.as_bytes());
            seq += 1;
            placement.rows.push(ChainRow {
                seq,
                prev: head,
                hash,
                event,
            });
            placement.leaves.push(event.leaf);
            placed.insert(event.id(), (seq, hash));
            head = hash;
            placement.head = Some((seq, hash, event));
        }
        let (at, hash) = placed
            .get(event.id())
            .copied()
            .ok_or_else(|| Error::Internal("an appended event has no position".into()))?;
        placement.out.push(Appended {
            id: event.id().to_owned(),
            tenant: tenant.to_owned(),
            seq: at,
            hash,
            inserted,
        });
    }
    Ok(placement)
}

/// Writes the placed rows; returns how many were new (a row whose id is stored is skipped).
async fn write(conn: &mut AnyConnection, rows: &[ChainRow<'_>]) -> Result<usize> {
    let statement = bulk::Insert {
        into: "INSERT INTO audit_events \
               (seq, prev_hash, hash, body, tenant, id, ts, event, decision, tool, agent_id) VALUES",
        columns: 11,
        conflict: "ON CONFLICT (tenant, id) DO NOTHING",
    };
    let written = bulk::insert(conn, &statement, rows, |query, row| {
        let columns = &row.event.columns;
        query
            .bind(row.seq)
            .bind(&row.prev[..])
            .bind(&row.hash[..])
            .bind(row.event.body.as_str())
            .bind(columns.tenant.as_ref())
            .bind(columns.id.as_ref())
            .bind(columns.ts.as_ref())
            .bind(columns.event.as_ref())
            .bind(columns.decision.as_ref())
            .bind(columns.tool.as_ref())
            .bind(columns.agent_id.as_ref())
    })
    .await?;
    Ok(usize::try_from(written).unwrap_or(usize::MAX))
}

/// Appends one tenant's events after taking its chain's lock.
async fn chain(
    conn: &mut AnyConnection,
    tenant: &str,
    events: &[&Prepared],
) -> Result<Vec<Appended>> {
    let head_row = sqlx::query(
        "INSERT INTO audit_chain_heads (tenant, seq, head, head_id, head_ts) \
         VALUES ($1, 0, $2, '', '') \
         ON CONFLICT (tenant) DO UPDATE SET tenant = excluded.tenant \
         RETURNING seq, head",
    )
    .bind(tenant)
    .bind(GENESIS.to_vec())
    .fetch_one(&mut *conn)
    .await?;
    let head = (
        head_row.try_get::<i64, _>("seq")?,
        hash32(head_row.try_get("head")?)?,
    );
    // A batch is new events but for a resent one: it is written as new, within a savepoint; an id
    // already stored makes the insert skip its row, and then the batch is placed again knowing
    // which ids are stored. Looking every id up first would cost each batch an index probe per
    // event, and a query plan that degrades as the chain grows.
    let mut placement = place(tenant, head, events, &HashMap::new())?;
    let mut attempt = conn.begin().await?;
    if write(&mut attempt, &placement.rows).await? == placement.rows.len() {
        attempt.commit().await?;
    } else {
        attempt.rollback().await?;
        let stored = stored(conn, tenant, events).await?;
        placement = place(tenant, head, events, &stored)?;
        if write(conn, &placement.rows).await? != placement.rows.len() {
            return Err(Error::Internal(format!(
                "tenant {tenant:?}: an event id was stored while its chain was locked"
            )));
        }
    }
    let Some((seq, hash, last)) = placement.head else {
        return Ok(placement.out);
    };
    sqlx::query(
        "UPDATE audit_chain_heads SET seq = $2, head = $3, head_id = $4, head_ts = $5 \
         WHERE tenant = $1",
    )
    .bind(tenant)
    .bind(seq)
    .bind(hash.to_vec())
    .bind(last.id())
    .bind(last.columns.ts.as_ref())
    .execute(&mut *conn)
    .await?;
    // The Merkle tree holds the same events as the chain, committed with them.
    let size =
        u64::try_from(seq).map_err(|_| Error::Internal("the chain position is negative".into()))?;
    tree::extend(conn, tenant, size, &placement.leaves).await?;
    Ok(placement.out)
}

/// The chain positions and hashes of those of `events` already stored, by id.
async fn stored<'e>(
    conn: &mut AnyConnection,
    tenant: &str,
    events: &[&'e Prepared],
) -> Result<HashMap<&'e str, (i64, [u8; 32])>> {
    let marks = bulk::Marks::of(conn);
    let mut found = HashMap::new();
    let mut rest = events;
    for size in bulk::chunks(events.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let sql = format!(
            "SELECT id, seq, hash FROM audit_events WHERE tenant = {} AND id IN ({})",
            marks.list(1, 1),
            marks.list(2, size)
        );
        let query = chunk
            .iter()
            .fold(sqlx::query(&sql).bind(tenant), |q, e| q.bind(e.id()));
        for row in query.fetch_all(&mut *conn).await? {
            let id: String = row.try_get("id")?;
            if let Some(event) = chunk.iter().find(|e| e.id() == id) {
                found.insert(
                    event.id(),
                    (row.try_get("seq")?, hash32(row.try_get("hash")?)?),
                );
            }
        }
    }
    Ok(found)
}

fn hash32(bytes: Vec<u8>) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| Error::Internal("stored chain hash is not 32 bytes".into()))
}

/// What every stored event must satisfy: the queryable columns and filters rely on it.
pub fn check(event: &AuditEvent) -> Result<()> {
    let bad = |why: String| Error::bad_request(format!("audit event {:?}: {why}", event.id));
    if event.id.is_empty() || event.id.chars().count() > MAX_EVENT_ID_CHARS {
        return Err(bad(format!(
            "id must be 1 to {MAX_EVENT_ID_CHARS} characters"
        )));
    }
    if event.id.chars().any(char::is_control) {
        return Err(bad("id must not contain control characters".into()));
    }
    validate::tenant(&event.tenant).map_err(bad)?;
    // Postgres cannot store a NUL in the text columns.
    if [&event.tool, &event.agent_id]
        .iter()
        .any(|f| f.contains('\0'))
    {
        return Err(bad("tool and agent_id must not contain NUL".into()));
    }
    if time::parse_audit_ts(&event.ts).is_none() {
        return Err(bad(
            "ts must be RFC 3339 UTC with milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ)".into(),
        ));
    }
    Ok(())
}
