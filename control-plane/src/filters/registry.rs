//! The filters that subscribed, as every replica sees them (kept in the database): which version
//! each acknowledged and when, and how its audit delivery goes.

use serde::Serialize;
use sqlx::Row;

use crate::delivery::Integration;
use crate::error::Result;
use crate::store::Db;
use crate::time;

/// The name of the filters' audit ingest in `GET /v1/admin/integrations`.
pub const AUDIT_INGEST: &str = "filters";

/// A subscription (or a resubscription) began.
pub async fn connected(db: &Db, filter_id: &str) -> Result<()> {
    let now = time::now_ms();
    sqlx::query(
        "INSERT INTO filters (filter_id, connected, acked_version, acked_at, last_seen, events_received, events_dropped) \
         VALUES ($1, 1, 0, 0, $2, 0, 0) \
         ON CONFLICT (filter_id) DO UPDATE SET connected = 1, last_seen = $2",
    )
    .bind(filter_id)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn disconnected(db: &Db, filter_id: &str) -> Result<()> {
    sqlx::query("UPDATE filters SET connected = 0, last_seen = $2 WHERE filter_id = $1")
        .bind(filter_id)
        .bind(time::now_ms())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The filter applied `version`.
pub async fn acked(db: &Db, filter_id: &str, version: u64) -> Result<()> {
    let now = time::now_ms();
    sqlx::query(
        "UPDATE filters SET acked_version = $2, acked_at = $3, last_seen = $3 WHERE filter_id = $1 AND acked_version < $2",
    )
    .bind(filter_id)
    .bind(i64::try_from(version).unwrap_or(i64::MAX))
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// An audit batch arrived: `received` events, and `dropped` the filter had to drop meanwhile.
pub async fn audit_batch(db: &Db, filter_id: &str, received: u64, dropped: u64) -> Result<()> {
    let now = time::now_ms();
    sqlx::query(
        "INSERT INTO filters (filter_id, connected, acked_version, acked_at, last_seen, events_received, events_dropped, last_batch_at) \
         VALUES ($1, 0, 0, 0, $2, $3, $4, $2) \
         ON CONFLICT (filter_id) DO UPDATE SET last_seen = $2, last_batch_at = $2, \
         events_received = filters.events_received + $3, events_dropped = filters.events_dropped + $4",
    )
    .bind(filter_id)
    .bind(now)
    .bind(i64::try_from(received).unwrap_or(i64::MAX))
    .bind(i64::try_from(dropped).unwrap_or(i64::MAX))
    .execute(db.pool())
    .await?;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct FilterStatus {
    pub filter_id: String,
    pub connected: bool,
    pub acked_version: u64,
    pub acked_at: Option<String>,
    pub last_seen: String,
    pub events_received: u64,
    pub events_dropped: u64,
    pub last_batch_at: Option<String>,
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub async fn list(db: &Db) -> Result<Vec<FilterStatus>> {
    sqlx::query(
        "SELECT filter_id, connected, acked_version, acked_at, last_seen, events_received, events_dropped, last_batch_at \
         FROM filters ORDER BY filter_id",
    )
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        let acked_at: i64 = row.try_get("acked_at")?;
        let last_batch: Option<i64> = row.try_get("last_batch_at")?;
        let connected: i64 = row.try_get("connected")?;
        Ok(FilterStatus {
            filter_id: row.try_get("filter_id")?,
            connected: connected != 0,
            acked_version: unsigned(row.try_get("acked_version")?),
            acked_at: (acked_at > 0).then(|| time::rfc3339(acked_at)),
            last_seen: time::rfc3339(row.try_get("last_seen")?),
            events_received: unsigned(row.try_get("events_received")?),
            events_dropped: unsigned(row.try_get("events_dropped")?),
            last_batch_at: last_batch.map(time::rfc3339),
        })
    })
    .collect()
}

/// The filters' audit ingest as one entry of `GET /v1/admin/integrations`: events received from
/// every filter, and events a filter had to drop because its buffer overflowed while the control
/// plane was away (never silent: the count and the last error say so).
pub async fn audit_ingest(db: &Db) -> Result<Integration> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS filters, CAST(COALESCE(SUM(events_received), 0) AS BIGINT) AS received, \
         CAST(COALESCE(SUM(events_dropped), 0) AS BIGINT) AS dropped, MAX(last_batch_at) AS last_batch \
         FROM filters",
    )
    .fetch_one(db.pool())
    .await?;
    let filters: i64 = row.try_get("filters")?;
    let dropped = unsigned(row.try_get("dropped")?);
    let last_batch: Option<i64> = row.try_get("last_batch")?;
    Ok(Integration {
        name: AUDIT_INGEST,
        configured: filters > 0,
        endpoint: None,
        last_flush_ts: last_batch.map(time::rfc3339),
        events_flushed: unsigned(row.try_get("received")?),
        events_dropped: dropped,
        last_error: (dropped > 0).then(|| {
            format!("filters dropped {dropped} audit events when their buffers overflowed; GET /v1/admin/filters names them")
        }),
        lag: None,
    })
}
