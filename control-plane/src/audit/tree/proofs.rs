//! Inclusion and consistency proofs from the stored subtrees: the core plans which subtrees a
//! proof needs (about 2 log2(n)), the upper ones come from memory and one query fetches the rest,
//! the core folds them into the proof. The reads are the same on both databases; on SQLite they
//! run on a direct reader ([`super::sqlite`]).
//! Subtrees never change once stored, so no transaction is needed against concurrent appends.

use std::collections::HashMap;

use intentgate_core::audit::merkle::{
    ConsistencyProof, Hash, InclusionProof, MerkleError, NodeId, Plan, leaf_hash,
};
use sqlx::Row;

use super::cache::UpperNodes;
use super::nodes::{self, TreeState};
use super::sqlite;
use crate::error::{Error, Result};
use crate::store::Db;

/// The event a proof is about: its chain position and canonical JSON, with the tree as recorded.
pub struct Leaf {
    pub seq: i64,
    pub body: String,
    pub state: TreeState,
}

/// The event and the tree's size in one statement: at millions of events the reads, not the
/// hashing, are what a proof costs.
pub const LEAF_SQL: &str = "SELECT e.seq, e.body, h.size, h.root FROM audit_events e \
     LEFT JOIN audit_tree_heads h ON h.tenant = e.tenant WHERE e.tenant = $1 AND e.id = $2";

/// That event `event_id` of `tenant` is in the tree of `tree_size` events (default: all of them).
/// On SQLite the reads run on a direct reader, in one blocking task.
pub async fn inclusion(
    db: &Db,
    cache: &UpperNodes,
    tenant: &str,
    event_id: &str,
    tree_size: Option<u64>,
) -> Result<InclusionProof> {
    if let Some(readers) = db.sqlite_readers() {
        let (cache, tenant, event_id) = (cache.clone(), tenant.to_owned(), event_id.to_owned());
        return readers
            .read(move |conn| {
                let leaf = sqlite::leaf(conn, &tenant, &event_id)?;
                let inclusion = Inclusion::plan(&event_id, leaf, tree_size)?;
                let stored = cache.fetch_with(&tenant, &inclusion.plan.nodes(), |ids| {
                    sqlite::nodes(conn, &tenant, ids)
                })?;
                inclusion.prove(&tenant, &event_id, &stored)
            })
            .await;
    }
    let mut conn = db.pool().acquire().await?;
    let leaf = sqlx::query(LEAF_SQL)
        .bind(tenant)
        .bind(event_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| -> Result<Leaf> {
            Ok(Leaf {
                seq: row.try_get("seq")?,
                body: row.try_get("body")?,
                state: nodes::recorded(row.try_get("size")?, row.try_get("root")?)?,
            })
        })
        .transpose()?;
    let inclusion = Inclusion::plan(event_id, leaf, tree_size)?;
    let stored = cache
        .fetch(&mut conn, tenant, &inclusion.plan.nodes())
        .await?;
    inclusion.prove(tenant, event_id, &stored)
}

/// An inclusion proof before its subtrees are read.
struct Inclusion {
    leaf_index: u64,
    size: u64,
    body: String,
    plan: Plan,
}

impl Inclusion {
    fn plan(event_id: &str, leaf: Option<Leaf>, tree_size: Option<u64>) -> Result<Self> {
        let leaf = leaf.ok_or_else(|| {
            Error::not_found(format!("no audit event {event_id:?} in this tenant"))
        })?;
        let size = within(
            tree_size.unwrap_or(leaf.state.size),
            &leaf.state,
            "tree_size",
        )?;
        let leaf_index = u64::try_from(leaf.seq - 1)
            .map_err(|_| Error::Internal("a stored chain position is not positive".into()))?;
        if leaf_index >= size {
            return Err(Error::bad_request(format!(
                "event {event_id:?} is leaf {leaf_index}: it is not in the tree of {size} events"
            )));
        }
        Ok(Inclusion {
            leaf_index,
            size,
            body: leaf.body,
            plan: Plan::inclusion(leaf_index, size).map_err(bad_request)?,
        })
    }

    fn prove(
        self,
        tenant: &str,
        event_id: &str,
        stored: &HashMap<NodeId, Hash>,
    ) -> Result<InclusionProof> {
        let path = self.plan.build(stored).map_err(internal)?;
        Ok(InclusionProof {
            tenant: tenant.to_owned(),
            event_id: event_id.to_owned(),
            leaf_index: self.leaf_index,
            tree_size: self.size,
            leaf_hash: hex::encode(leaf_hash(self.body.as_bytes())),
            audit_path: path.iter().map(hex::encode).collect(),
            event: Some(self.body),
        })
    }
}

/// That `tenant`'s tree of `first` events is a prefix of its tree of `second` (default: all).
pub async fn consistency(
    db: &Db,
    cache: &UpperNodes,
    tenant: &str,
    first: u64,
    second: Option<u64>,
) -> Result<ConsistencyProof> {
    if let Some(readers) = db.sqlite_readers() {
        let (cache, tenant) = (cache.clone(), tenant.to_owned());
        return readers
            .read(move |conn| {
                let (second, plan) =
                    consistency_plan(first, second, &sqlite::state(conn, &tenant)?)?;
                let stored = cache.fetch_with(&tenant, &plan.nodes(), |ids| {
                    sqlite::nodes(conn, &tenant, ids)
                })?;
                prove_consistency(&tenant, first, second, &plan, &stored)
            })
            .await;
    }
    let mut conn = db.pool().acquire().await?;
    let state = nodes::state(&mut conn, tenant).await?;
    let (second, plan) = consistency_plan(first, second, &state)?;
    let stored = cache.fetch(&mut conn, tenant, &plan.nodes()).await?;
    prove_consistency(tenant, first, second, &plan, &stored)
}

/// The second size (default: the whole tree) and the plan, once both sizes are checked.
fn consistency_plan(first: u64, second: Option<u64>, state: &TreeState) -> Result<(u64, Plan)> {
    let second = within(second.unwrap_or(state.size), state, "second")?;
    if first == 0 || first > second {
        return Err(Error::bad_request(format!(
            "first must be between 1 and second ({second})"
        )));
    }
    Ok((
        second,
        Plan::consistency(first, second).map_err(bad_request)?,
    ))
}

fn prove_consistency(
    tenant: &str,
    first: u64,
    second: u64,
    plan: &Plan,
    stored: &HashMap<NodeId, Hash>,
) -> Result<ConsistencyProof> {
    let proof = plan.build(stored).map_err(internal)?;
    Ok(ConsistencyProof {
        tenant: tenant.to_owned(),
        first,
        second,
        proof: proof.iter().map(hex::encode).collect(),
    })
}

fn within(size: u64, state: &TreeState, name: &str) -> Result<u64> {
    if size > state.size {
        return Err(Error::bad_request(format!(
            "{name} {size} exceeds the tree's {} events",
            state.size
        )));
    }
    Ok(size)
}

fn bad_request(err: MerkleError) -> Error {
    Error::bad_request(err.to_string())
}

/// A subtree the plan needs is not stored: the tree is damaged, which proofs must not hide.
fn internal(err: MerkleError) -> Error {
    tracing::error!(error = %err, "cannot build a Merkle proof");
    Error::Internal(err.to_string())
}
