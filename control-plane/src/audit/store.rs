//! Appending to the per-tenant hash chains: `hash = link(prev_hash, canonical_json(event))`.
//!
//! Appends to one tenant are serialised by the first statement of their transaction, an upsert
//! of the tenant's `audit_chain_heads` row: on Postgres it takes that row's lock until commit (so
//! several replicas can share one database); on SQLite it takes the database's write lock. Event
//! ids are idempotent per tenant: re-appending an id writes nothing and returns the stored row.
//! The tenant's Merkle tree is extended in the same transaction, under the same lock.

use intentgate_core::audit::{AuditEvent, GENESIS, link};
use sqlx::{AnyConnection, Row};

use super::tree;
use crate::error::{Error, Result};
use crate::store::Db;
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

/// Appends events, each to its tenant's chain, and reports where each landed, in input order.
/// Every event is checked first: one invalid event rejects the whole call and writes nothing.
/// Each tenant's events commit in one transaction.
pub async fn append(db: &Db, events: &[AuditEvent]) -> Result<Vec<Appended>> {
    for event in events {
        check(event)?;
    }
    let mut tenants: Vec<&str> = Vec::new();
    for event in events {
        if !tenants.contains(&event.tenant.as_str()) {
            tenants.push(&event.tenant);
        }
    }
    let mut out: Vec<Option<Appended>> = vec![None; events.len()];
    for tenant in tenants {
        let (indexes, group): (Vec<usize>, Vec<AuditEvent>) = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.tenant == tenant)
            .map(|(i, e)| (i, e.clone()))
            .unzip();
        let mut tx = db.begin().await?;
        let appended = append_in(&mut tx, &group).await?;
        tx.commit().await?;
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
    let Some(tenant) = events.first().map(|e| e.tenant.clone()) else {
        return Ok(Vec::new());
    };
    for event in events {
        check(event)?;
        if event.tenant != tenant {
            return Err(Error::Internal(
                "append_in takes events of one tenant".into(),
            ));
        }
    }
    let head_row = sqlx::query(
        "INSERT INTO audit_chain_heads (tenant, seq, head, head_id, head_ts) \
         VALUES ($1, 0, $2, '', '') \
         ON CONFLICT (tenant) DO UPDATE SET tenant = excluded.tenant \
         RETURNING seq, head",
    )
    .bind(&tenant)
    .bind(GENESIS.to_vec())
    .fetch_one(&mut *conn)
    .await?;
    let mut seq: i64 = head_row.try_get("seq")?;
    let mut head = hash32(head_row.try_get("head")?)?;
    let mut out = Vec::with_capacity(events.len());
    let mut last: Option<&AuditEvent> = None;
    let mut bodies: Vec<String> = Vec::with_capacity(events.len());
    for event in events {
        let body = event.canonical();
        let hash = link(&head, body.as_bytes());
        let inserted = sqlx::query(
            "INSERT INTO audit_events (seq, prev_hash, hash, body) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant, id) DO NOTHING",
        )
        .bind(seq + 1)
        .bind(head.to_vec())
        .bind(hash.to_vec())
        .bind(&body)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            bodies.push(body);
            seq += 1;
            head = hash;
            last = Some(event);
            out.push(Appended {
                id: event.id.clone(),
                tenant: tenant.clone(),
                seq,
                hash,
                inserted: true,
            });
        } else {
            out.push(existing(conn, &tenant, &event.id).await?);
        }
    }
    if let Some(event) = last {
        sqlx::query(
            "UPDATE audit_chain_heads SET seq = $2, head = $3, head_id = $4, head_ts = $5 \
             WHERE tenant = $1",
        )
        .bind(&tenant)
        .bind(seq)
        .bind(head.to_vec())
        .bind(&event.id)
        .bind(&event.ts)
        .execute(&mut *conn)
        .await?;
        // The Merkle tree holds the same events as the chain, committed with them.
        let size = u64::try_from(seq)
            .map_err(|_| Error::Internal("the chain position is negative".into()))?;
        tree::extend(conn, &tenant, size, &bodies).await?;
    }
    Ok(out)
}

async fn existing(conn: &mut AnyConnection, tenant: &str, id: &str) -> Result<Appended> {
    let row = sqlx::query("SELECT seq, hash FROM audit_events WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Appended {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        seq: row.try_get("seq")?,
        hash: hash32(row.try_get("hash")?)?,
        inserted: false,
    })
}

fn hash32(bytes: Vec<u8>) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| Error::Internal("stored chain hash is not 32 bytes".into()))
}

/// What every stored event must satisfy: the generated columns and filters rely on it.
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
    // Postgres cannot extract a NUL into the generated text columns.
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
