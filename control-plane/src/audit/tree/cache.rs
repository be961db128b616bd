//! The upper levels of each tenant's tree, kept in memory for proofs. A proof needs one subtree
//! per level; stored by in-order position, the low ones sit beside the leaf (one or two pages of the
//! node table) but each high one is a B-tree descent to a page of its own, and those descents were
//! most of a proof's time on a 10-million-event tree. Above [`LEVEL`] a tree of n events has only
//! about n / 2^(LEVEL-1) subtrees, so they fit in memory.
//!
//! A stored subtree never changes (it covers events already in the log), so a cached hash cannot go
//! stale while the log is intact; a log rewritten underneath (a restored backup, tampering) makes
//! proofs fail against the new signed heads rather than hide it, and a restart starts empty.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use intentgate_core::audit::merkle::{Hash, NodeId};
use sqlx::AnyConnection;

use super::nodes;
use crate::error::Result;

/// Subtrees at this level (2^LEVEL events) and above are cached.
pub const LEVEL: u8 = 8;

/// At most this many subtrees in all (about 100 MiB): past it, proofs read them from the database.
const CAPACITY: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct UpperNodes {
    inner: Arc<RwLock<Cached>>,
    capacity: usize,
}

impl Default for UpperNodes {
    fn default() -> Self {
        UpperNodes::with_capacity(CAPACITY)
    }
}

#[derive(Debug, Default)]
struct Cached {
    by_tenant: HashMap<String, HashMap<NodeId, Hash>>,
    len: usize,
}

impl UpperNodes {
    fn with_capacity(capacity: usize) -> Self {
        UpperNodes {
            inner: Arc::default(),
            capacity,
        }
    }

    /// The stored hashes of `ids`, from memory where cached, else from the database (absent ones
    /// are simply not in the map, as with [`nodes::fetch`]).
    pub async fn fetch(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        ids: &[NodeId],
    ) -> Result<HashMap<NodeId, Hash>> {
        let (found, missing) = self.lookup(tenant, ids);
        if missing.is_empty() {
            return Ok(found);
        }
        let fetched = nodes::fetch(conn, tenant, &missing).await?;
        Ok(self.complete(tenant, found, fetched))
    }

    /// [`Self::fetch`] with a blocking reader of the missing ones.
    pub fn fetch_with(
        &self,
        tenant: &str,
        ids: &[NodeId],
        read: impl FnOnce(&[NodeId]) -> Result<HashMap<NodeId, Hash>>,
    ) -> Result<HashMap<NodeId, Hash>> {
        let (found, missing) = self.lookup(tenant, ids);
        if missing.is_empty() {
            return Ok(found);
        }
        let fetched = read(&missing)?;
        Ok(self.complete(tenant, found, fetched))
    }

    fn complete(
        &self,
        tenant: &str,
        mut found: HashMap<NodeId, Hash>,
        fetched: HashMap<NodeId, Hash>,
    ) -> HashMap<NodeId, Hash> {
        self.remember(tenant, &fetched);
        found.extend(fetched);
        found
    }

    /// The cached ones among `ids`, and the rest. A poisoned lock is a cache that misses.
    fn lookup(&self, tenant: &str, ids: &[NodeId]) -> (HashMap<NodeId, Hash>, Vec<NodeId>) {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        let cached = self.inner.read().ok();
        let tree = cached.as_ref().and_then(|c| c.by_tenant.get(tenant));
        for id in ids {
            match tree.and_then(|t| t.get(id)) {
                Some(hash) => {
                    found.insert(*id, *hash);
                }
                None => missing.push(*id),
            }
        }
        (found, missing)
    }

    fn remember(&self, tenant: &str, fetched: &HashMap<NodeId, Hash>) {
        let mut upper = fetched
            .iter()
            .filter(|(id, _)| id.level >= LEVEL)
            .peekable();
        if upper.peek().is_none() {
            return;
        }
        let Ok(mut cached) = self.inner.write() else {
            return;
        };
        let Cached { by_tenant, len } = &mut *cached;
        let tree = match by_tenant.get_mut(tenant) {
            Some(tree) => tree,
            None => by_tenant.entry(tenant.to_owned()).or_default(),
        };
        for (id, hash) in upper {
            if *len >= self.capacity {
                return;
            }
            if tree.insert(*id, *hash).is_none() {
                *len += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }

    #[test]
    fn only_subtrees_at_or_above_the_cached_level_are_kept_per_tenant() {
        let cache = UpperNodes::default();
        let low = node(LEVEL - 1, 3);
        let high = node(LEVEL, 1);
        cache.remember("acme", &HashMap::from([(low, [1; 32]), (high, [2; 32])]));
        let (found, missing) = cache.lookup("acme", &[low, high]);
        assert_eq!(found, HashMap::from([(high, [2; 32])]));
        assert_eq!(missing, vec![low]);
        let (found, missing) = cache.lookup("other", &[high]);
        assert!(found.is_empty());
        assert_eq!(missing, vec![high]);
    }

    #[test]
    fn the_cache_stops_growing_at_its_capacity() {
        let cache = UpperNodes::with_capacity(4);
        let many: HashMap<NodeId, Hash> = (0..10).map(|i| (node(LEVEL, i), [0; 32])).collect();
        cache.remember("acme", &many);
        cache.remember("other", &HashMap::from([(node(LEVEL + 1, 0), [9; 32])]));
        let len = cache.inner.read().map(|c| c.len).unwrap_or_default();
        assert_eq!(len, 4);
        let (found, _) = cache.lookup("other", &[node(LEVEL + 1, 0)]);
        assert!(found.is_empty());
    }
}
