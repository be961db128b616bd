//! The reads a proof makes, over a direct SQLite reader ([`crate::db::SqliteReaders`]): the same
//! statements as the sqlx path, run in one blocking task instead of a thread round trip each.

use std::collections::HashMap;

use intentgate_core::audit::merkle::{Hash, NodeId};
use rusqlite::{Connection, OptionalExtension, ToSql};

use super::nodes::{self, TreeState};
use super::proofs::{LEAF_SQL, Leaf};
use crate::db::sqlite_unavailable;
use crate::error::Result;

/// Statements kept prepared per reader: the node query has a variant per count of subtrees.
const STATEMENTS: usize = 64;

pub fn leaf(conn: &Connection, tenant: &str, event_id: &str) -> Result<Option<Leaf>> {
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    let row = conn
        .prepare_cached(LEAF_SQL)
        .and_then(|mut statement| {
            statement
                .query_row((tenant, event_id), |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                        row.get::<_, Option<Vec<u8>>>(3)?,
                    ))
                })
                .optional()
        })
        .map_err(sqlite_unavailable)?;
    row.map(|(seq, body, size, root)| {
        Ok(Leaf {
            seq,
            body,
            state: nodes::recorded(size, root)?,
        })
    })
    .transpose()
}

pub fn state(conn: &Connection, tenant: &str) -> Result<TreeState> {
    let row = conn
        .prepare_cached(nodes::STATE_SQL)
        .and_then(|mut statement| {
            statement
                .query_row([tenant], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
                })
                .optional()
        })
        .map_err(sqlite_unavailable)?;
    match row {
        Some((size, root)) => nodes::recorded(Some(size), Some(root)),
        None => Ok(TreeState::empty()),
    }
}

/// The stored hashes of `ids` (absent ones are simply not in the map).
pub fn nodes(conn: &Connection, tenant: &str, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>> {
    let keys: Vec<i64> = ids
        .iter()
        .map(|id| nodes::key(*id))
        .collect::<Result<_>>()?;
    let by_key: HashMap<i64, NodeId> = keys.iter().copied().zip(ids.iter().copied()).collect();
    let mut params: Vec<&dyn ToSql> = Vec::with_capacity(keys.len() + 1);
    params.push(&tenant);
    params.extend(keys.iter().map(|k| k as &dyn ToSql));
    let rows = conn
        .prepare_cached(&nodes::fetch_sql(keys.len()))
        .and_then(|mut statement| {
            statement
                .query_map(params.as_slice(), |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(sqlite_unavailable)?;
    let mut out = HashMap::with_capacity(rows.len());
    for (key, hash) in rows {
        if let Some(id) = by_key.get(&key) {
            out.insert(*id, nodes::hash(hash)?);
        }
    }
    Ok(out)
}
