-- The per-tenant Merkle tree over the audit chain (issue 7). Leaf i is the event with seq i + 1.

-- Every complete subtree, by its in-order position `(index << (level + 1)) + 2^level - 1`, so that
-- a proof is one primary-key lookup per hash it needs (about 2 log2(n)), never a walk of leaves.
CREATE TABLE audit_tree_nodes (
    tenant TEXT NOT NULL,
    node   INTEGER NOT NULL,
    hash   BLOB NOT NULL,
    PRIMARY KEY (tenant, node)
) WITHOUT ROWID;

-- How many events the tree holds and its root; written in the append's transaction.
CREATE TABLE audit_tree_heads (
    tenant TEXT PRIMARY KEY NOT NULL,
    size   INTEGER NOT NULL,
    root   BLOB NOT NULL
);

-- Signed tree heads as issued (scheduled and on demand). `timestamp` is unix milliseconds, signed.
CREATE TABLE audit_signed_tree_heads (
    pos       INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant    TEXT NOT NULL,
    tree_size INTEGER NOT NULL,
    root_hash BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE INDEX audit_signed_tree_heads_by_tenant ON audit_signed_tree_heads (tenant, pos);
