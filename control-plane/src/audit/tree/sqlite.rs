//! The reads a proof makes, over a direct SQLite reader ([`crate::store::SqliteReaders`]): the same
//! statements as the sqlx path, run in one blocking task instead of a thread round trip each.

use std::collections::HashMap;

use intentgate_core::audit::merkle::{Hash, NodeId};
use rusqlite::{Connection, OptionalExtension, ToSql};

use super::nodes::{self, TreeState};
use super::proofs::{LEAF_SQL, Leaf};
use crate::error::Result;
use crate::store::sqlite_unavailable;

pub fn leaf(conn: &Connection, tenant: &str, event_id: &str) -> Result<Option<Leaf>> {
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
    let (size, root) = row.unzip();
    nodes::recorded(size, root)
}

/// The stored hashes of `ids` (absent ones are simply not in the map).
pub fn nodes(conn: &Connection, tenant: &str, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>> {
    let lookup = nodes::Lookup::new(ids)?;
    let mut params: Vec<&dyn ToSql> = Vec::with_capacity(lookup.keys.len() + 1);
    params.push(&tenant);
    params.extend(lookup.keys.iter().map(|k| k as &dyn ToSql));
    let rows = conn
        .prepare_cached(&nodes::fetch_sql(lookup.keys.len()))
        .and_then(|mut statement| {
            statement
                .query_map(params.as_slice(), |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(sqlite_unavailable)?;
    lookup.hashes(rows.into_iter().map(Ok))
}
