-- Revocations are keyed by tenant and jti: a tenant revokes any jti, and only its own tokens are
-- refused. `expires_at` is the token's expiry when it was minted here (revocations of expired tokens
-- stop being sent to filters), NULL when unknown (minted elsewhere, or derived): kept.
CREATE TABLE revocations_keyed (
    pos        INTEGER PRIMARY KEY AUTOINCREMENT,
    jti        TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    revoked_by TEXT NOT NULL,
    expires_at INTEGER,
    UNIQUE (tenant, jti)
);
INSERT INTO revocations_keyed (pos, jti, tenant, revoked_at, reason, revoked_by, expires_at)
    SELECT r.pos, r.jti, r.tenant, r.revoked_at, r.reason, r.revoked_by, t.expires_at
    FROM revocations r LEFT JOIN tokens t ON t.jti = r.jti AND t.tenant = r.tenant;
DROP TABLE revocations;
ALTER TABLE revocations_keyed RENAME TO revocations;
CREATE INDEX revocations_by_tenant ON revocations (tenant, pos);
