-- Agent discovery, inventory ownership and attestation (issue 8). Times are unix milliseconds.

-- A log source that pushes to /api/discovery/ingest or is pulled by /api/discovery/sync. The
-- bearer token is stored as its SHA-256 only; pull credentials are sealed with a key derived from
-- the master key and never returned.
CREATE TABLE discovery_sources (
    pos                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT NOT NULL UNIQUE,
    tenant             TEXT NOT NULL,
    name               TEXT NOT NULL,
    vendor             TEXT NOT NULL
                       CHECK (vendor IN ('zscaler', 'netskope', 'mdca', 'infoblox', 'generic')),
    mode               TEXT NOT NULL CHECK (mode IN ('push', 'pull')),
    enabled            INTEGER NOT NULL,
    endpoint           TEXT,
    credentials        TEXT,
    interval_seconds   INTEGER,
    token_sha256       BLOB NOT NULL,
    created_by         TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    next_poll_at       INTEGER,
    last_poll_at       INTEGER,
    last_error         TEXT,
    last_ingest_at     INTEGER,
    records_received   INTEGER NOT NULL DEFAULT 0,
    records_discovered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX discovery_sources_by_tenant ON discovery_sources (tenant, pos);
CREATE INDEX discovery_sources_due ON discovery_sources (mode, enabled, next_poll_at);

-- One row per agent seen in a source's logs, merged across sources.
CREATE TABLE discovered_agents (
    pos              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT NOT NULL,
    agent            TEXT NOT NULL,
    kind             TEXT NOT NULL,
    user_name        TEXT NOT NULL,
    device           TEXT NOT NULL,
    client_ip        TEXT NOT NULL,
    user_agent       TEXT NOT NULL,
    first_seen       INTEGER NOT NULL,
    last_seen        INTEGER NOT NULL,
    sightings        INTEGER NOT NULL,
    blocked          INTEGER NOT NULL,
    low_trust        INTEGER NOT NULL,
    threat           INTEGER NOT NULL,
    last_source_id   TEXT NOT NULL,
    last_vendor      TEXT NOT NULL,
    gateway_agent_id TEXT,
    UNIQUE (tenant, agent)
);

-- The AI services and MCP endpoints each discovered agent talks to.
CREATE TABLE discovered_services (
    tenant     TEXT NOT NULL,
    agent      TEXT NOT NULL,
    service    TEXT NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    sightings  INTEGER NOT NULL,
    PRIMARY KEY (tenant, agent, service)
);

-- Who answers for an agent, discovered or governed.
CREATE TABLE agent_owners (
    tenant      TEXT NOT NULL,
    agent       TEXT NOT NULL,
    owner       TEXT NOT NULL,
    assigned_by TEXT NOT NULL,
    assigned_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, agent)
);

CREATE TABLE attestation_campaigns (
    pos         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    due_at      INTEGER
);
CREATE INDEX attestation_campaigns_by_tenant ON attestation_campaigns (tenant, pos);

-- The agents a campaign asks about, snapshotted at creation, and each answer.
CREATE TABLE attestation_items (
    campaign_id TEXT NOT NULL REFERENCES attestation_campaigns (id),
    tenant      TEXT NOT NULL,
    agent       TEXT NOT NULL,
    owner       TEXT NOT NULL,
    decision    TEXT CHECK (decision IN ('certify', 'revoke')),
    evidence    TEXT,
    attested_by TEXT,
    attested_at INTEGER,
    PRIMARY KEY (campaign_id, agent)
);
CREATE INDEX attestation_items_by_agent ON attestation_items (tenant, agent, attested_at);

-- The inventory and reports group the audit log by agent and by tool.
CREATE INDEX audit_events_by_agent ON audit_events (tenant, agent_id, ts);
