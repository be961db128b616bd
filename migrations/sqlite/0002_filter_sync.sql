-- Filter sync (issue 5). Times are unix milliseconds.

-- The version of the state filters follow. One row, bumped inside the transaction of every change
-- filters must learn, so versions only grow, across restarts and across replicas.
CREATE TABLE sync_version (
    id      INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO sync_version (id, version) VALUES (1, 0);

-- What each version changed, so any replica can send the same deltas.
--   kind 'tenant': the tenant's policy or settings; 'revocation': jti; 'keys': the trusted key set.
CREATE TABLE sync_changes (
    version    INTEGER PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Signing keys. 'active' signs new tokens (exactly one); 'trusted' still verifies (a rotation's
-- grace window); 'retired' is no longer sent to filters.
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY NOT NULL,
    seed       TEXT NOT NULL,
    public_key TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'trusted', 'retired')),
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);

-- Per-tenant settings and intent rules pushed to filters (JSON as intentgate-core reads them).
CREATE TABLE tenant_settings (
    tenant       TEXT PRIMARY KEY NOT NULL,
    settings     TEXT NOT NULL,
    intent_rules TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    updated_by   TEXT NOT NULL
);

-- max_calls budgets: calls used or leased out per counter ("calls/<jti>").
CREATE TABLE budget_counters (
    counter     TEXT PRIMARY KEY NOT NULL,
    tenant      TEXT NOT NULL,
    limit_calls INTEGER NOT NULL,
    used        INTEGER NOT NULL
);

-- Slices of a counter held by filters. A lease not given back by expiry counts as fully used.
CREATE TABLE budget_leases (
    id         TEXT PRIMARY KEY NOT NULL,
    counter    TEXT NOT NULL,
    filter_id  TEXT NOT NULL,
    granted    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    settled    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX budget_leases_by_counter ON budget_leases (counter, settled);

-- Every filter VM that subscribed: the version it acknowledged, and its audit delivery health.
CREATE TABLE filters (
    filter_id       TEXT PRIMARY KEY NOT NULL,
    connected       INTEGER NOT NULL,
    acked_version   INTEGER NOT NULL,
    acked_at        INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,
    events_received INTEGER NOT NULL,
    events_dropped  INTEGER NOT NULL,
    last_batch_at   INTEGER
);
