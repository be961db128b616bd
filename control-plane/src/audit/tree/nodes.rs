//! Storage of the tree: every complete subtree's hash keyed by its in-order position, and the
//! tree's size and root per tenant. Appending leaf n touches only the O(log n) subtrees on the
//! tree's right edge (read back in one query), so the append path stays cheap at any size.

use std::collections::HashMap;

use intentgate_core::audit::merkle::{
    CompactRange, Hash, NodeId, decompose, empty_root, leaf_hash,
};
use sqlx::{AnyConnection, Row};

use crate::error::{Error, Result};
use crate::store::bulk;

/// The tree as recorded: how many events it holds and its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeState {
    pub size: u64,
    pub root: Hash,
}

impl TreeState {
    pub fn empty() -> Self {
        TreeState {
            size: 0,
            root: empty_root(),
        }
    }
}

/// The stored key of a subtree: its in-order position, `(index << (level + 1)) + 2^level - 1`,
/// unique across levels.
pub fn key(id: NodeId) -> Result<i64> {
    let level = u32::from(id.level);
    id.index
        .checked_shl(level + 1)
        .filter(|shifted| shifted >> (level + 1) == id.index)
        .and_then(|shifted| shifted.checked_add((1u64 << level) - 1))
        .and_then(|k| i64::try_from(k).ok())
        .ok_or_else(|| Error::Internal(format!("tree node {id:?} is out of range")))
}

/// The tenant's recorded tree: its size and root.
pub const STATE_SQL: &str = "SELECT size, root FROM audit_tree_heads WHERE tenant = $1";

/// The stored hashes of `count` subtrees, by key: the tenant is `$1`, the keys `$2` on.
pub fn fetch_sql(count: usize) -> String {
    let placeholders: Vec<String> = (0..count).map(|i| format!("${}", i + 2)).collect();
    format!(
        "SELECT node, hash FROM audit_tree_nodes WHERE tenant = $1 AND node IN ({})",
        placeholders.join(", ")
    )
}

/// The tenant's recorded tree (empty when it has none yet).
pub async fn state(conn: &mut AnyConnection, tenant: &str) -> Result<TreeState> {
    let row = sqlx::query(STATE_SQL)
        .bind(tenant)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => Ok(TreeState::empty()),
        Some(row) => recorded(row.try_get("size")?, row.try_get("root")?),
    }
}

/// The tree as a head row records it; no row (`None`s) is the empty tree.
pub fn recorded(size: Option<i64>, root: Option<Vec<u8>>) -> Result<TreeState> {
    match (size, root) {
        (Some(stored), Some(root)) => Ok(TreeState {
            size: self::size(stored)?,
            root: hash(root)?,
        }),
        _ => Ok(TreeState::empty()),
    }
}

/// Extends the tenant's tree to the chain's `chain_size` events, the last of which have the leaf
/// hashes `leaves` (of the canonical JSON just stored, in chain order). Runs inside the append's
/// transaction, after the chain head's lock, so one writer per tenant extends the tree. Events the
/// tree does not yet hold beyond those (a chain older than the tree) are read back from the chain
/// first.
pub async fn extend(
    conn: &mut AnyConnection,
    tenant: &str,
    chain_size: u64,
    leaves: &[Hash],
) -> Result<TreeState> {
    let before = state(conn, tenant).await?;
    let appended = u64::try_from(leaves.len()).unwrap_or(u64::MAX);
    let first_new = chain_size
        .checked_sub(appended)
        .ok_or_else(|| Error::Internal("more events appended than the chain holds".into()))?;
    if before.size > first_new {
        return Err(Error::Internal(format!(
            "tenant {tenant:?}: the Merkle tree holds {} events but the chain only {first_new}",
            before.size
        )));
    }
    let frontier_ids = decompose(0, before.size);
    let stored = fetch(conn, tenant, &frontier_ids).await?;
    let frontier = frontier_ids
        .iter()
        .map(|id| stored.get(id).copied().ok_or_else(|| missing(tenant, *id)))
        .collect::<Result<Vec<Hash>>>()?;
    let mut range = CompactRange::from_hashes(0, before.size, &frontier).map_err(internal)?;
    let mut added: Vec<(i64, Hash)> = Vec::new();
    let backlog = backlog(conn, tenant, before.size, first_new).await?;
    let backlog: Vec<Hash> = backlog.iter().map(|b| leaf_hash(b.as_bytes())).collect();
    for leaf in backlog.iter().chain(leaves) {
        let mut failed = None;
        range
            .append(*leaf, |id, hash| match key(id) {
                Ok(k) => added.push((k, *hash)),
                Err(err) => failed = Some(err),
            })
            .map_err(internal)?;
        if let Some(err) = failed {
            return Err(err);
        }
    }
    insert(conn, tenant, &added).await?;
    let after = TreeState {
        size: range.end(),
        root: range.root().map_err(internal)?,
    };
    sqlx::query(
        "INSERT INTO audit_tree_heads (tenant, size, root) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant) DO UPDATE SET size = excluded.size, root = excluded.root",
    )
    .bind(tenant)
    .bind(signed(after.size)?)
    .bind(after.root.to_vec())
    .execute(&mut *conn)
    .await?;
    Ok(after)
}

/// Chain events `from..to` (0-based leaf indexes) not yet in the tree, in chain order.
async fn backlog(
    conn: &mut AnyConnection,
    tenant: &str,
    from: u64,
    to: u64,
) -> Result<Vec<String>> {
    if from >= to {
        return Ok(Vec::new());
    }
    tracing::warn!(%tenant, from, to, "adding chain events the Merkle tree did not hold yet");
    let rows = sqlx::query(
        "SELECT body FROM audit_events WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
    )
    .bind(tenant)
    .bind(signed(from)?)
    .bind(signed(to)?)
    .fetch_all(&mut *conn)
    .await?;
    let bodies = rows
        .iter()
        .map(|r| r.try_get::<String, _>("body"))
        .collect::<Result<Vec<_>, _>>()?;
    if u64::try_from(bodies.len()).ok() != Some(to - from) {
        return Err(Error::Internal(format!(
            "tenant {tenant:?}: chain positions {from}..{to} are not all stored"
        )));
    }
    Ok(bodies)
}

/// The stored hashes of `ids` (absent ones are simply not in the map).
pub async fn fetch(
    conn: &mut AnyConnection,
    tenant: &str,
    ids: &[NodeId],
) -> Result<HashMap<NodeId, Hash>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let lookup = Lookup::new(ids)?;
    let sql = fetch_sql(lookup.keys.len());
    let mut query = sqlx::query(&sql).bind(tenant);
    for k in &lookup.keys {
        query = query.bind(*k);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    lookup.hashes(
        rows.iter()
            .map(|row| Ok((row.try_get("node")?, row.try_get("hash")?))),
    )
}

/// Subtrees asked for by their stored keys, and the way back from a key to its subtree: shared by
/// the sqlx reader above and the direct SQLite one.
pub struct Lookup {
    /// The keys to bind after the tenant, in [`fetch_sql`]'s order.
    pub keys: Vec<i64>,
    by_key: HashMap<i64, NodeId>,
}

impl Lookup {
    pub fn new(ids: &[NodeId]) -> Result<Self> {
        let keys = ids
            .iter()
            .map(|id| key(*id))
            .collect::<Result<Vec<i64>>>()?;
        let by_key = keys.iter().copied().zip(ids.iter().copied()).collect();
        Ok(Lookup { keys, by_key })
    }

    /// The stored `(key, hash)` rows as subtree hashes; absent subtrees are simply not in the map.
    pub fn hashes(
        &self,
        rows: impl IntoIterator<Item = Result<(i64, Vec<u8>)>>,
    ) -> Result<HashMap<NodeId, Hash>> {
        let mut out = HashMap::with_capacity(self.keys.len());
        for row in rows {
            let (node, stored) = row?;
            if let Some(id) = self.by_key.get(&node) {
                out.insert(*id, hash(stored)?);
            }
        }
        Ok(out)
    }
}

async fn insert(conn: &mut AnyConnection, tenant: &str, nodes: &[(i64, Hash)]) -> Result<()> {
    let statement = bulk::Insert {
        into: "INSERT INTO audit_tree_nodes (tenant, node, hash) VALUES",
        columns: 3,
        conflict: "",
    };
    bulk::insert(conn, &statement, nodes, |query, (k, h)| {
        query.bind(tenant.to_owned()).bind(*k).bind(&h[..])
    })
    .await?;
    Ok(())
}

fn missing(tenant: &str, id: NodeId) -> Error {
    Error::Internal(format!(
        "tenant {tenant:?}: the Merkle tree lacks its subtree at level {}, index {}",
        id.level, id.index
    ))
}

fn internal(err: intentgate_core::audit::merkle::MerkleError) -> Error {
    Error::Internal(format!("Merkle tree: {err}"))
}

pub fn hash(bytes: Vec<u8>) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| Error::Internal("a stored tree hash is not 32 bytes".into()))
}

pub fn size(stored: i64) -> Result<u64> {
    u64::try_from(stored).map_err(|_| Error::Internal("a stored tree size is negative".into()))
}

pub fn signed(size: u64) -> Result<i64> {
    i64::try_from(size).map_err(|_| Error::Internal("a tree size exceeds i64".into()))
}
