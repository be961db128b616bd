//! Delivery's durable state: per destination and tenant, the last chain position handed over
//! (`delivery_cursors`); per destination, counters, the last error and the lease that lets one
//! replica deliver at a time (`delivery_status`).
//!
//! The lease is a row, not a Postgres advisory lock: it works the same on SQLite, survives a
//! pooled connection being recycled, and expires by itself when its holder dies. Every commit of
//! progress checks, in its transaction, that the lease is still held, so a replica that lost it
//! (a long pause) cannot move the cursor; at worst the batch is delivered twice, never skipped.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::Row;

use super::config::Selection;
use super::event::Event;
use super::sink::Limits;
use crate::error::Result;
use crate::store::Db;
use crate::time;

/// Events to send, and where each tenant's cursor goes once they are delivered (past events the
/// selection skips, too).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub events: Vec<Event>,
    pub advance: BTreeMap<String, i64>,
}

pub async fn ensure(db: &Db, destination: &str) -> Result<()> {
    sqlx::query("INSERT INTO delivery_status (destination) VALUES ($1) ON CONFLICT (destination) DO NOTHING")
        .bind(destination)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Takes or renews the lease; false when another replica holds it.
pub async fn lease(db: &Db, destination: &str, owner: &str, ttl: Duration) -> Result<bool> {
    let now = time::now_ms();
    let until = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    let taken = sqlx::query(
        "UPDATE delivery_status SET lease_owner = $2, lease_until = $3 \
         WHERE destination = $1 AND (lease_owner = $2 OR lease_until < $4)",
    )
    .bind(destination)
    .bind(owner)
    .bind(until)
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// Gives the lease up (at shutdown) so another replica takes over at once.
pub async fn release(db: &Db, destination: &str, owner: &str) -> Result<()> {
    sqlx::query(
        "UPDATE delivery_status SET lease_until = 0 WHERE destination = $1 AND lease_owner = $2",
    )
    .bind(destination)
    .bind(owner)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The next events after the destination's cursors, tenants taken in turn from `start` (so one
/// busy tenant cannot starve the others), within `limits`.
pub async fn pending(
    db: &Db,
    destination: &str,
    selection: Selection,
    limits: Limits,
    start: usize,
) -> Result<Batch> {
    let behind = sqlx::query(
        "SELECT h.tenant, COALESCE(c.seq, 0) AS done FROM audit_chain_heads h \
         LEFT JOIN delivery_cursors c ON c.destination = $1 AND c.tenant = h.tenant \
         WHERE h.seq > COALESCE(c.seq, 0) ORDER BY h.tenant",
    )
    .bind(destination)
    .fetch_all(db.pool())
    .await?;
    let mut batch = Batch::default();
    let mut bytes = 0usize;
    let count = behind.len();
    for k in 0..count {
        let Some(row) = behind.get((start + k) % count.max(1)) else {
            continue;
        };
        let room = limits.max_events.saturating_sub(batch.events.len());
        if room == 0 || bytes >= limits.max_bytes {
            break;
        }
        let tenant: String = row.try_get("tenant")?;
        let done: i64 = row.try_get("done")?;
        let rows = sqlx::query(
            "SELECT seq, body FROM audit_events WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(&tenant)
        .bind(done)
        .bind(i64::try_from(room).unwrap_or(i64::MAX))
        .fetch_all(db.pool())
        .await?;
        for row in rows {
            let event = Event::new(tenant.clone(), row.try_get("seq")?, row.try_get("body")?);
            if event.selected(selection) {
                // The first event always fits: one larger than the limit goes on its own.
                if !batch.events.is_empty() && bytes + event.body.len() > limits.max_bytes {
                    return Ok(batch);
                }
                bytes += event.body.len();
                batch.advance.insert(tenant.clone(), event.seq);
                batch.events.push(event);
            } else {
                batch.advance.insert(tenant.clone(), event.seq);
            }
        }
    }
    Ok(batch)
}

/// Progress to record: cursors to move, events delivered and dropped, and an error to show
/// (`None` keeps the last one: `last_error` is the most recent error, with its time).
#[derive(Debug)]
pub struct Progress<'a> {
    pub advance: &'a BTreeMap<String, i64>,
    pub flushed: u64,
    pub dropped: u64,
    pub error: Option<String>,
}

/// Records progress in one transaction, only while `owner` holds the lease; false when it does
/// not (nothing is recorded).
pub async fn commit(
    db: &Db,
    destination: &str,
    owner: &str,
    progress: Progress<'_>,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    let flushed = i64::try_from(progress.flushed).unwrap_or(i64::MAX);
    let held = sqlx::query(
        "UPDATE delivery_status SET events_flushed = events_flushed + $3, \
           events_dropped = events_dropped + $4, last_error = COALESCE($5, last_error), \
           last_flush_at = CASE WHEN $3 > 0 THEN $6 ELSE last_flush_at END \
         WHERE destination = $1 AND lease_owner = $2",
    )
    .bind(destination)
    .bind(owner)
    .bind(flushed)
    .bind(i64::try_from(progress.dropped).unwrap_or(i64::MAX))
    .bind(progress.error.map(|e| stamped(&e)))
    .bind(time::now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !held {
        tx.rollback().await?;
        return Ok(false);
    }
    for (tenant, seq) in progress.advance {
        sqlx::query(
            "INSERT INTO delivery_cursors (destination, tenant, seq) VALUES ($1, $2, $3) \
             ON CONFLICT (destination, tenant) DO UPDATE SET seq = excluded.seq \
             WHERE delivery_cursors.seq < excluded.seq",
        )
        .bind(destination)
        .bind(tenant)
        .bind(*seq)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Records a failed attempt's error (progress is unchanged).
pub async fn failed(db: &Db, destination: &str, error: &str) -> Result<()> {
    sqlx::query("UPDATE delivery_status SET last_error = $2 WHERE destination = $1")
        .bind(destination)
        .bind(stamped(error))
        .execute(db.pool())
        .await?;
    Ok(())
}

/// `<RFC 3339 time>: <error>`, so `last_error` says when as well as what.
fn stamped(error: &str) -> String {
    format!("{}: {error}", crate::time::rfc3339(time::now_ms()))
}

/// A destination's state as `GET /v1/admin/integrations` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub last_flush_at: Option<i64>,
    pub events_flushed: u64,
    pub events_dropped: u64,
    pub last_error: Option<String>,
    /// Events in the chains the destination has not yet handed over or skipped.
    pub lag: u64,
}

pub async fn state(db: &Db, destination: &str) -> Result<State> {
    // One statement, so one snapshot: the counters and the cursors a commit moves together are
    // never read half before and half after it.
    let row = sqlx::query(
        "SELECT s.events_flushed, s.events_dropped, s.last_flush_at, s.last_error, \
           (SELECT CAST(COALESCE(SUM(h.seq - COALESCE(c.seq, 0)), 0) AS BIGINT) \
              FROM audit_chain_heads h \
              LEFT JOIN delivery_cursors c ON c.destination = $1 AND c.tenant = h.tenant) AS lag \
         FROM (SELECT 1 AS one) AS o LEFT JOIN delivery_status s ON s.destination = $1",
    )
    .bind(destination)
    .fetch_one(db.pool())
    .await?;
    let count = |column: &str| -> Result<u64> {
        let value: Option<i64> = row.try_get(column)?;
        Ok(value.map_or(0, |v| u64::try_from(v).unwrap_or_default()))
    };
    Ok(State {
        last_flush_at: row.try_get("last_flush_at")?,
        events_flushed: count("events_flushed")?,
        events_dropped: count("events_dropped")?,
        last_error: row.try_get("last_error")?,
        lag: count("lag")?,
    })
}
