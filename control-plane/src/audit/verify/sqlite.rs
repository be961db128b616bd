//! Reading a range of a SQLite chain for verify through rusqlite: sqlx's per-row decoding, not
//! hashing, would dominate a walk of millions of events, while rusqlite lends each row's bytes
//! without copying. A range is one rowid-range scan over a memory-mapped file: sequential pages, no
//! per-row index seek, no system call per page.

use std::path::Path;
use std::time::Duration;

use rusqlite::OpenFlags;

use super::checker::{Checker, Range};
use crate::error::{Error, Result};

/// Checks `tenant`'s events stored at positions `first..=last`, their Merkle leaves split at `cut`. Blocking.
pub fn check_range(path: &Path, tenant: &str, first: i64, last: i64, cut: u64) -> Result<Range> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(unavailable)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(unavailable)?;
    conn.execute_batch("PRAGMA mmap_size = 17179869184")
        .map_err(unavailable)?;
    let mut statement = conn
        .prepare(
            "SELECT pos, seq, prev_hash, hash, body FROM audit_events NOT INDEXED \
             WHERE pos BETWEEN ?1 AND ?2 AND tenant = ?3 ORDER BY pos",
        )
        .map_err(unavailable)?;
    let mut rows = statement
        .query(rusqlite::params![first, last, tenant])
        .map_err(unavailable)?;
    let mut checker = Checker::new(cut);
    while let Some(row) = rows.next().map_err(unavailable)? {
        let int = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_i64().ok());
        let bytes = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_bytes().ok());
        checker.push(
            int(0).unwrap_or_default(),
            int(1).unwrap_or(-1),
            bytes(2),
            bytes(3),
            bytes(4),
        );
    }
    Ok(checker.finish())
}

fn unavailable(err: rusqlite::Error) -> Error {
    tracing::error!(error = %err, "verify could not read the SQLite chain");
    Error::Unavailable("database unavailable".into())
}
