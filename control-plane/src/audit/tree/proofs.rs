//! Inclusion and consistency proofs from the stored subtrees: the core plans which subtrees a
//! proof needs (about 2 log2(n)), the upper ones come from memory and one query fetches the rest,
//! the core folds them into the proof.
//! Subtrees never change once stored, so no transaction is needed against concurrent appends.

use intentgate_core::audit::merkle::{
    ConsistencyProof, InclusionProof, MerkleError, Plan, leaf_hash,
};
use sqlx::Row;

use super::cache::UpperNodes;
use super::nodes::{self, TreeState};
use crate::db::Db;
use crate::error::{Error, Result};

/// That event `event_id` of `tenant` is in the tree of `tree_size` events (default: all of them).
pub async fn inclusion(
    db: &Db,
    cache: &UpperNodes,
    tenant: &str,
    event_id: &str,
    tree_size: Option<u64>,
) -> Result<InclusionProof> {
    let mut conn = db.pool().acquire().await?;
    // The event and the tree's size in one round trip: at millions of events the queries, not the
    // hashing, are what a proof costs.
    let row = sqlx::query(
        "SELECT e.seq, e.body, h.size, h.root FROM audit_events e \
         LEFT JOIN audit_tree_heads h ON h.tenant = e.tenant WHERE e.tenant = $1 AND e.id = $2",
    )
    .bind(tenant)
    .bind(event_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::not_found(format!("no audit event {event_id:?} in this tenant")))?;
    let seq: i64 = row.try_get("seq")?;
    let body: String = row.try_get("body")?;
    let state = match (
        row.try_get::<Option<i64>, _>("size")?,
        row.try_get::<Option<Vec<u8>>, _>("root")?,
    ) {
        (Some(size), Some(root)) => TreeState {
            size: nodes::size(size)?,
            root: nodes::hash(root)?,
        },
        _ => TreeState::empty(),
    };
    let size = within(tree_size.unwrap_or(state.size), &state, "tree_size")?;
    let leaf_index = u64::try_from(seq - 1)
        .map_err(|_| Error::Internal("a stored chain position is not positive".into()))?;
    if leaf_index >= size {
        return Err(Error::bad_request(format!(
            "event {event_id:?} is leaf {leaf_index}: it is not in the tree of {size} events"
        )));
    }
    let plan = Plan::inclusion(leaf_index, size).map_err(bad_request)?;
    let stored = cache.fetch(&mut conn, tenant, &plan.nodes()).await?;
    let path = plan.build(&stored).map_err(internal)?;
    Ok(InclusionProof {
        tenant: tenant.to_owned(),
        event_id: event_id.to_owned(),
        leaf_index,
        tree_size: size,
        leaf_hash: hex::encode(leaf_hash(body.as_bytes())),
        audit_path: path.iter().map(hex::encode).collect(),
        event: Some(body),
    })
}

/// That `tenant`'s tree of `first` events is a prefix of its tree of `second` (default: all).
pub async fn consistency(
    db: &Db,
    cache: &UpperNodes,
    tenant: &str,
    first: u64,
    second: Option<u64>,
) -> Result<ConsistencyProof> {
    let mut conn = db.pool().acquire().await?;
    let state = nodes::state(&mut conn, tenant).await?;
    let second = within(second.unwrap_or(state.size), &state, "second")?;
    if first == 0 || first > second {
        return Err(Error::bad_request(format!(
            "first must be between 1 and second ({second})"
        )));
    }
    let plan = Plan::consistency(first, second).map_err(bad_request)?;
    let stored = cache.fetch(&mut conn, tenant, &plan.nodes()).await?;
    let proof = plan.build(&stored).map_err(internal)?;
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
