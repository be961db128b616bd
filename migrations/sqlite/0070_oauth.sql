-- The OAuth authorization server: agent clients, the issuers a tenant trusts, the rules that map
-- their JWTs to capability tokens, and the assertion ids already used. Times are unix milliseconds;
-- list-valued columns hold JSON arrays (objects for conditions and JWK Sets).

-- An agent client of the token endpoint. A secret client's secret is stored as its SHA-256 only;
-- a private_key_jwt client has its public keys inline (jwks) or at a URL (jwks_uri), which reaches
-- internal addresses only when the superadmin set it (private_reach).
CREATE TABLE oauth_clients (
    pos               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    tenant            TEXT NOT NULL,
    name              TEXT NOT NULL,
    subject           TEXT NOT NULL,
    auth_method       TEXT NOT NULL
                      CHECK (auth_method IN ('client_secret_basic', 'client_secret_post', 'private_key_jwt')),
    secret_sha256     BLOB,
    jwks              TEXT,
    jwks_uri          TEXT,
    private_reach     INTEGER NOT NULL DEFAULT 0,
    grant_types       TEXT NOT NULL,
    tools             TEXT,
    ttl_seconds       INTEGER NOT NULL,
    max_calls         INTEGER,
    step_up           INTEGER NOT NULL DEFAULT 0,
    enabled           INTEGER NOT NULL,
    created_by        TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    secret_rotated_at INTEGER
);
CREATE INDEX oauth_clients_by_tenant ON oauth_clients (tenant, pos);

-- A JWT issuer a tenant trusts (an IdP, a Kubernetes cluster's service-account issuer), with its
-- keys and the audiences its JWTs must carry to be accepted here.
CREATE TABLE oauth_trusted_issuers (
    pos           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    issuer        TEXT NOT NULL,
    jwks          TEXT,
    jwks_uri      TEXT,
    private_reach INTEGER NOT NULL DEFAULT 0,
    audiences     TEXT,
    enabled       INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (tenant, issuer)
);
CREATE INDEX oauth_trusted_issuers_by_tenant ON oauth_trusted_issuers (tenant, pos);
CREATE INDEX oauth_trusted_issuers_by_issuer ON oauth_trusted_issuers (issuer);

-- How a trusted issuer's JWT becomes a capability token: which claim names the agent, which
-- claims must hold, and the most the token may grant. Lowest priority first.
CREATE TABLE oauth_exchange_rules (
    pos               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    tenant            TEXT NOT NULL,
    name              TEXT NOT NULL,
    trusted_issuer_id TEXT NOT NULL,
    subject_claim     TEXT NOT NULL,
    conditions        TEXT NOT NULL,
    tools             TEXT,
    ttl_seconds       INTEGER NOT NULL,
    max_calls         INTEGER,
    step_up           INTEGER NOT NULL DEFAULT 0,
    priority          INTEGER NOT NULL,
    enabled           INTEGER NOT NULL,
    created_by        TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX oauth_exchange_rules_by_tenant ON oauth_exchange_rules (tenant, pos);
CREATE INDEX oauth_exchange_rules_by_issuer ON oauth_exchange_rules (trusted_issuer_id, priority);

-- Single-use assertions (client assertions, identity assertion grants): each (issuer, jti) is
-- accepted once, and remembered until the assertion expires.
CREATE TABLE oauth_used_assertions (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX oauth_used_assertions_by_expiry ON oauth_used_assertions (expires_at);
