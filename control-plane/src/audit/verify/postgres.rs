//! Reading a Postgres chain for verify on a dedicated native connection in one repeatable-read,
//! read-only transaction (so the head and the rows agree), borrowing each row's bytes.

use futures::TryStreamExt;
use sqlx::{Connection, Executor, PgConnection, Row};
use tokio::sync::mpsc;

use super::Head;
use super::batch::{Batch, WalkEnd, Walker};
use crate::error::{Error, Result};

/// Walks `tenant`'s chain in `seq` order, sending batches to the checkers.
pub async fn read(
    url: &str,
    tenant: &str,
    out: mpsc::Sender<Batch>,
) -> Result<(Option<Head>, WalkEnd)> {
    let mut conn = PgConnection::connect(url).await?;
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let head = sqlx::query("SELECT seq, head, head_id FROM audit_chain_heads WHERE tenant = $1")
        .bind(tenant)
        .fetch_optional(&mut conn)
        .await?
        .map(|row| -> Result<Head> {
            Ok(Head {
                seq: row.try_get("seq")?,
                hash: row.try_get::<Vec<u8>, _>("head")?.try_into().ok(),
                id: row.try_get("head_id")?,
            })
        })
        .transpose()?;
    let mut walker = Walker::default();
    {
        let mut rows = sqlx::query(
            "SELECT seq, prev_hash, hash, body FROM audit_events WHERE tenant = $1 ORDER BY seq",
        )
        .bind(tenant)
        .fetch(&mut conn);
        while let Some(row) = rows.try_next().await? {
            let seq: i64 = row.try_get(0)?;
            let prev: Option<&[u8]> = row.try_get(1).ok();
            let hash: Option<&[u8]> = row.try_get(2).ok();
            let body: Option<&str> = row.try_get(3).ok();
            if let Some(full) = walker.push(seq, prev, hash, body.map(str::as_bytes)) {
                out.send(full)
                    .await
                    .map_err(|_| Error::Internal("verify checkers stopped".into()))?;
            }
        }
    }
    let (rest, end) = walker.finish();
    if let Some(rest) = rest {
        out.send(rest)
            .await
            .map_err(|_| Error::Internal("verify checkers stopped".into()))?;
    }
    conn.execute("COMMIT").await?;
    conn.close().await?;
    Ok((head, end))
}
