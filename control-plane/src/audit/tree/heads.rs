//! Signed tree heads: the control plane's master key (the Ed25519 key of `keys::master`) signs
//! `{tenant, tree_size, root_hash, timestamp}`. Issued on demand, and on a schedule for every tenant
//! whose tree has grown since its last head (or whose last head another key signed), so that an
//! auditor holding only the public key can pin the log's state at regular points.

use std::time::Duration;

use intentgate_core::audit::merkle::{SignedTreeHead, TreeHead};
use intentgate_core::token::{IssuerKey, SigningKey};
use sqlx::Row;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::nodes::{self, hash, signed, size};
use crate::error::{Error, Result};
use crate::store::Db;
use crate::time;

/// Signs the tenant's tree as it is now and records the head.
pub async fn issue(db: &Db, issuer: &IssuerKey, tenant: &str) -> Result<SignedTreeHead> {
    let mut conn = db.pool().acquire().await?;
    let state = nodes::state(&mut conn, tenant).await?;
    let head = TreeHead {
        tenant: tenant.to_owned(),
        tree_size: state.size,
        root_hash: state.root,
        timestamp: time::now_ms(),
    };
    let sth = head
        .sign(&SigningKey::from_bytes(issuer.seed()))
        .map_err(|e| Error::Internal(format!("cannot sign the tree head: {e}")))?;
    sqlx::query(
        "INSERT INTO audit_signed_tree_heads \
         (tenant, tree_size, root_hash, timestamp, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(signed(sth.head.tree_size)?)
    .bind(sth.head.root_hash.to_vec())
    .bind(sth.head.timestamp)
    .bind(&sth.key_id)
    .bind(sth.signature.to_vec())
    .execute(&mut *conn)
    .await?;
    tracing::info!(%tenant, tree_size = sth.head.tree_size, "signed tree head issued");
    Ok(sth)
}

/// The tenant's most recent signed tree head; with `key_id`, the most recent that key signed.
pub async fn latest(db: &Db, tenant: &str, key_id: Option<&str>) -> Result<Option<SignedTreeHead>> {
    let row = sqlx::query(
        "SELECT tree_size, root_hash, timestamp, key_id, signature FROM audit_signed_tree_heads \
         WHERE tenant = $1 AND ($2 = '' OR key_id = $2) ORDER BY pos DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(key_id.unwrap_or_default())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let signature: Vec<u8> = row.try_get("signature")?;
    Ok(Some(SignedTreeHead {
        head: TreeHead {
            tenant: tenant.to_owned(),
            tree_size: size(row.try_get("tree_size")?)?,
            root_hash: hash(row.try_get("root_hash")?)?,
            timestamp: row.try_get("timestamp")?,
        },
        key_id: row.try_get("key_id")?,
        signature: signature
            .try_into()
            .map_err(|_| Error::Internal("a stored tree head signature is not 64 bytes".into()))?,
    }))
}

/// Issues a head for every tenant whose tree has no head of its current size by this key.
pub async fn issue_due(db: &Db, issuer: &IssuerKey) -> Result<usize> {
    let rows = sqlx::query(
        "SELECT h.tenant FROM audit_tree_heads h WHERE NOT EXISTS (\
           SELECT 1 FROM audit_signed_tree_heads s \
           WHERE s.tenant = h.tenant AND s.tree_size = h.size AND s.key_id = $1)",
    )
    .bind(issuer.kid())
    .fetch_all(db.pool())
    .await?;
    for row in &rows {
        let tenant: String = row.try_get("tenant")?;
        issue(db, issuer, &tenant).await?;
    }
    Ok(rows.len())
}

/// Runs [`issue_due`] at start and then every `every`, until `stop` turns true. A failed round is
/// logged and retried at the next tick: the heads already issued stay valid meanwhile.
pub fn schedule(
    db: Db,
    issuer: IssuerKey,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(err) = issue_due(&db, &issuer).await {
                tracing::error!(error = %err, "scheduled tree heads were not issued");
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    })
}

/// Seconds between scheduled tree heads when `INTENTGATE_AUDIT_TREE_HEAD_INTERVAL_SECS` is unset.
pub const DEFAULT_INTERVAL_SECS: u64 = 300;

/// `INTENTGATE_AUDIT_TREE_HEAD_INTERVAL_SECS` (0 to 86400; 0 turns the schedule off).
pub fn interval(get: &dyn Fn(&str) -> Option<String>) -> Result<Duration, String> {
    const NAME: &str = "INTENTGATE_AUDIT_TREE_HEAD_INTERVAL_SECS";
    match get(NAME) {
        None => Ok(Duration::from_secs(DEFAULT_INTERVAL_SECS)),
        Some(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|secs| *secs <= 86_400)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                format!("{NAME}: {text:?} is not a whole number of seconds from 0 to 86400")
            }),
    }
}
