//! Reading a SQLite chain for verify through rusqlite: sqlx's per-row decoding, not hashing, would
//! dominate a walk of millions of events, while rusqlite lends each row's bytes without copying.
//! One read transaction covers the head and the rows, so concurrent appends do not skew them.

use std::path::Path;
use std::time::Duration;

use rusqlite::{OpenFlags, OptionalExtension};
use tokio::sync::mpsc;

use super::Head;
use super::batch::{Batch, WalkEnd, Walker};
use crate::error::{Error, Result};

/// Walks `tenant`'s chain in `seq` order, sending batches to the checkers. Blocking.
pub fn read(
    path: &Path,
    tenant: &str,
    out: mpsc::Sender<Batch>,
) -> Result<(Option<Head>, WalkEnd)> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(unavailable)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(unavailable)?;
    conn.execute_batch("BEGIN").map_err(unavailable)?;
    let head = conn
        .query_row(
            "SELECT seq, head, head_id FROM audit_chain_heads WHERE tenant = ?1",
            [tenant],
            |row| {
                Ok(Head {
                    seq: row.get(0)?,
                    hash: row.get::<_, Vec<u8>>(1)?.try_into().ok(),
                    id: row.get(2)?,
                })
            },
        )
        .optional()
        .map_err(unavailable)?;
    let mut statement = conn
        .prepare(
            "SELECT seq, prev_hash, hash, body FROM audit_events WHERE tenant = ?1 ORDER BY seq",
        )
        .map_err(unavailable)?;
    let mut rows = statement.query([tenant]).map_err(unavailable)?;
    let mut walker = Walker::default();
    while let Some(row) = rows.next().map_err(unavailable)? {
        let seq = row
            .get_ref(0)
            .ok()
            .and_then(|v| v.as_i64().ok())
            .unwrap_or(-1);
        let bytes = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_bytes().ok());
        if let Some(full) = walker.push(seq, bytes(1), bytes(2), bytes(3)) {
            out.blocking_send(full)
                .map_err(|_| Error::Internal("verify checkers stopped".into()))?;
        }
    }
    let (rest, end) = walker.finish();
    if let Some(rest) = rest {
        out.blocking_send(rest)
            .map_err(|_| Error::Internal("verify checkers stopped".into()))?;
    }
    Ok((head, end))
}

fn unavailable(err: rusqlite::Error) -> Error {
    tracing::error!(error = %err, "verify could not read the SQLite chain");
    Error::Unavailable("database unavailable".into())
}
