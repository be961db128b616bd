//! Budget leases (SPEC §3, budget): slices of a token's `max_calls` handed to filters, so the calls
//! allowed across every Envoy never exceed the limit. Each counter's bookkeeping happens under that
//! counter's row lock (Postgres) or the write lock (SQLite), so replicas never over-grant.
//!
//! A lease given back returns its unused calls; a lease not given back by its expiry counts as fully
//! used (the filter may have used it all before disappearing). Grants shrink as the budget runs low,
//! so little is stranded in one filter while another is refused.

use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::Db;
use crate::{ids, time};

/// How long a filter may use a lease.
pub const TTL_MS: u32 = 10_000;
/// How long after its expiry a lease can still be given back: filters give back on a timer tick,
/// measured from when they received the lease.
const GIVEBACK_GRACE_MS: i64 = 5_000;
/// Most calls one request may ask for.
const MAX_WANT: u64 = 10_000;

/// A filter's request for calls of one budget counter, giving back what it did not use of an
/// earlier lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseRequest {
    /// `calls/<jti of the block that set max_calls>`.
    pub counter: String,
    pub tenant: String,
    /// The token's `max_calls`; 0 only gives back.
    pub limit: u64,
    pub want: u64,
    pub filter_id: String,
    /// The lease given back (empty: none) and its calls left unused.
    pub returning_lease_id: String,
    pub returning_unused: u64,
}

/// What was granted (nothing when `lease_id` is empty), and the counter's use including it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lease {
    pub lease_id: String,
    pub granted: u64,
    pub used: u64,
    pub ttl_ms: u32,
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub async fn lease(db: &Db, request: &LeaseRequest) -> Result<Lease> {
    if request.counter.is_empty() || request.counter.len() > 256 {
        return Err(Error::bad_request("counter must be 1 to 256 characters"));
    }
    let now = time::now_ms();
    let mut tx = db.begin().await?;
    // The first statement takes the counter's lock; a giveback for an unknown counter creates
    // nothing (limit 0 would be wrong), so it only updates.
    if request.limit > 0 {
        sqlx::query(
            "INSERT INTO budget_counters (counter, tenant, limit_calls, used) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (counter) DO UPDATE SET limit_calls = CASE \
             WHEN budget_counters.limit_calls < $3 THEN budget_counters.limit_calls ELSE $3 END",
        )
        .bind(&request.counter)
        .bind(&request.tenant)
        .bind(signed(request.limit))
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query("UPDATE budget_counters SET used = used WHERE counter = $1")
            .bind(&request.counter)
            .execute(&mut *tx)
            .await?;
    }
    if !request.returning_lease_id.is_empty() {
        give_back(&mut tx, request).await?;
    }
    // Leases past their expiry (and the give-back grace) stay counted as used; they are only
    // marked settled.
    sqlx::query("UPDATE budget_leases SET settled = 1 WHERE counter = $1 AND settled = 0 AND expires_at <= $2")
        .bind(&request.counter)
        .bind(now - GIVEBACK_GRACE_MS)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM budget_leases WHERE counter = $1 AND settled = 1 AND expires_at <= $2",
    )
    .bind(&request.counter)
    .bind(now - i64::from(TTL_MS) * 6)
    .execute(&mut *tx)
    .await?;
    let counter = sqlx::query("SELECT limit_calls, used FROM budget_counters WHERE counter = $1")
        .bind(&request.counter)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(counter) = counter else {
        tx.commit().await?;
        return Ok(Lease::default());
    };
    let limit = u64::try_from(counter.try_get::<i64, _>("limit_calls")?).unwrap_or(0);
    let used = u64::try_from(counter.try_get::<i64, _>("used")?).unwrap_or(0);
    let remaining = limit.saturating_sub(used);
    // Near the end of a budget, hand out less, so that little is stranded in one filter.
    let grant = request
        .want
        .min(MAX_WANT)
        .min(remaining)
        .min((remaining / 4).max(1));
    let lease_id = if grant > 0 {
        let id = ids::new_id()?;
        sqlx::query(
            "INSERT INTO budget_leases (id, counter, filter_id, granted, expires_at, settled) VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(&id)
        .bind(&request.counter)
        .bind(&request.filter_id)
        .bind(signed(grant))
        .bind(now + i64::from(TTL_MS))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE budget_counters SET used = used + $2 WHERE counter = $1")
            .bind(&request.counter)
            .bind(signed(grant))
            .execute(&mut *tx)
            .await?;
        id
    } else {
        String::new()
    };
    tx.commit().await?;
    Ok(Lease {
        lease_id,
        granted: grant,
        used: used + grant,
        ttl_ms: TTL_MS,
    })
}

/// Returns a lease's unused calls, once, and only while the lease is unsettled (up to its expiry
/// plus the grace).
async fn give_back(tx: &mut sqlx::AnyConnection, request: &LeaseRequest) -> Result<()> {
    let lease = sqlx::query(
        "SELECT granted FROM budget_leases WHERE id = $1 AND counter = $2 AND settled = 0 AND expires_at > $3",
    )
    .bind(&request.returning_lease_id)
    .bind(&request.counter)
    .bind(time::now_ms() - GIVEBACK_GRACE_MS)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(lease) = lease else {
        return Ok(());
    };
    let granted = u64::try_from(lease.try_get::<i64, _>("granted")?).unwrap_or(0);
    let unused = request.returning_unused.min(granted);
    sqlx::query("UPDATE budget_leases SET settled = 1 WHERE id = $1")
        .bind(&request.returning_lease_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE budget_counters SET used = used - $2 WHERE counter = $1 AND used >= $2")
        .bind(&request.counter)
        .bind(signed(unused))
        .execute(&mut *tx)
        .await?;
    Ok(())
}
