-- Control plane state. Times are unix milliseconds; `pos` orders lists and pages them.

CREATE TABLE settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- Every token minted here, so revocation can be scoped to the token's tenant.
CREATE TABLE tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    tenant     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    kid        TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX tokens_by_tenant ON tokens (tenant);

CREATE TABLE revocations (
    pos        INTEGER PRIMARY KEY AUTOINCREMENT,
    jti        TEXT NOT NULL UNIQUE,
    tenant     TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    revoked_by TEXT NOT NULL
);
CREATE INDEX revocations_by_tenant ON revocations (tenant, pos);

CREATE TABLE policy_drafts (
    pos         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    rego_source TEXT NOT NULL,
    rego_sha256 TEXT NOT NULL
);
CREATE INDEX policy_drafts_by_tenant ON policy_drafts (tenant, pos);

-- The promotion history, a stack per tenant: rollback pops the top. Each entry is a snapshot of
-- the draft (source and compiled bytecode), so editing or deleting the draft later changes nothing.
CREATE TABLE policy_promotions (
    pos            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant         TEXT NOT NULL,
    draft_id       TEXT NOT NULL,
    name           TEXT NOT NULL,
    rego_source    TEXT NOT NULL,
    rego_sha256    TEXT NOT NULL,
    bytecode       BLOB NOT NULL,
    promoted_by    TEXT NOT NULL,
    promoted_at    INTEGER NOT NULL,
    rolled_back_at INTEGER
);
CREATE INDEX policy_promotions_by_tenant ON policy_promotions (tenant, pos);

-- The active pointer. A NULL promotion (or no row) means no active policy: filters fail closed.
-- Policy changes lock this row first, which serialises them per tenant.
CREATE TABLE active_policies (
    tenant        TEXT PRIMARY KEY NOT NULL,
    promotion_pos INTEGER REFERENCES policy_promotions (pos)
);

CREATE TABLE approvals (
    pos                      INTEGER PRIMARY KEY AUTOINCREMENT,
    id                       TEXT NOT NULL UNIQUE,
    tenant                   TEXT NOT NULL,
    agent_id                 TEXT NOT NULL,
    capability_token_id      TEXT NOT NULL,
    root_capability_token_id TEXT NOT NULL,
    tool                     TEXT NOT NULL,
    arguments                TEXT NOT NULL,
    arguments_sha256         TEXT NOT NULL,
    escalating_rule          TEXT NOT NULL,
    reason                   TEXT NOT NULL,
    created_at               INTEGER NOT NULL,
    status                   TEXT NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by               TEXT,
    decided_at               INTEGER,
    decision_reason          TEXT
);
CREATE INDEX approvals_by_status ON approvals (tenant, status, pos);

-- The head of each tenant's hash chain. Appends lock this row first (SPEC §5).
CREATE TABLE audit_chain_heads (
    tenant  TEXT PRIMARY KEY NOT NULL,
    seq     INTEGER NOT NULL,
    head    BLOB NOT NULL,
    head_id TEXT NOT NULL,
    head_ts TEXT NOT NULL
);

-- `body` is the event's canonical JSON exactly as hashed. The queryable columns are generated
-- from it, so none of them can be edited on its own: changing what a query sees means changing
-- the body, which breaks the event's hash.
CREATE TABLE audit_events (
    pos       INTEGER PRIMARY KEY AUTOINCREMENT,
    seq       INTEGER NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL,
    body      TEXT NOT NULL,
    tenant    TEXT GENERATED ALWAYS AS (json_extract(body, '$.tenant')) STORED,
    id        TEXT GENERATED ALWAYS AS (json_extract(body, '$.id')) STORED,
    ts        TEXT GENERATED ALWAYS AS (json_extract(body, '$.ts')) STORED,
    event     TEXT GENERATED ALWAYS AS (json_extract(body, '$.event')) STORED,
    decision  TEXT GENERATED ALWAYS AS (json_extract(body, '$.decision')) STORED,
    tool      TEXT GENERATED ALWAYS AS (json_extract(body, '$.tool')) STORED,
    agent_id  TEXT GENERATED ALWAYS AS (json_extract(body, '$.agent_id')) STORED
);
CREATE UNIQUE INDEX audit_events_by_seq ON audit_events (tenant, seq);
CREATE UNIQUE INDEX audit_events_by_id ON audit_events (tenant, id);
CREATE INDEX audit_events_by_ts ON audit_events (tenant, ts);
CREATE INDEX audit_events_by_pos ON audit_events (tenant, pos);
