//! Reading a range of a SQLite chain for verify through rusqlite: sqlx's per-row decoding, not
//! hashing, would dominate a walk of millions of events, while rusqlite lends each row's bytes
//! without copying. A range is one rowid-range scan over a memory-mapped file: sequential pages, no
//! per-row index seek, no system call per page.

use std::path::Path;

use rusqlite::types::ValueRef;

use super::checker::{Checker, Range};
use crate::audit::columns;
use crate::error::Result;
use crate::store::{open_reader, sqlite_unavailable as unavailable};

/// Checks `tenant`'s events stored at positions `first..=last`, their Merkle leaves split at `cut`. Blocking.
pub fn check_range(path: &Path, tenant: &str, first: i64, last: i64, cut: u64) -> Result<Range> {
    let conn = open_reader(path).map_err(unavailable)?;
    let mut statement = conn
        .prepare(&format!(
            "SELECT pos, seq, prev_hash, hash, body, {} FROM audit_events NOT INDEXED \
             WHERE pos BETWEEN ?1 AND ?2 AND tenant = ?3 ORDER BY pos",
            columns::READ_BACK
        ))
        .map_err(unavailable)?;
    let mut rows = statement
        .query(rusqlite::params![first, last, tenant])
        .map_err(unavailable)?;
    let mut checker = Checker::new(cut);
    while let Some(row) = rows.next().map_err(unavailable)? {
        let int = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_i64().ok());
        let bytes = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_bytes().ok());
        let text = |i: usize| match row.get_ref(i) {
            Ok(ValueRef::Text(text)) => Some(text),
            _ => None,
        };
        let [id, ts, event, decision, tool, agent_id] = std::array::from_fn(|k| text(5 + k));
        checker.push(
            int(0).unwrap_or_default(),
            int(1).unwrap_or(-1),
            bytes(2),
            bytes(3),
            bytes(4),
            [
                Some(tenant.as_bytes()),
                id,
                ts,
                event,
                decision,
                tool,
                agent_id,
            ],
        );
    }
    Ok(checker.finish())
}
