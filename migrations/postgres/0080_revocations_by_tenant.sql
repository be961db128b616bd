-- Revocations are keyed by tenant and jti: a tenant revokes any jti, and only its own tokens are
-- refused. `expires_at` is the token's expiry when it was minted here (revocations of expired tokens
-- stop being sent to filters), NULL when unknown (minted elsewhere, or derived): kept.
ALTER TABLE revocations DROP CONSTRAINT revocations_jti_key;
ALTER TABLE revocations ADD CONSTRAINT revocations_tenant_jti_key UNIQUE (tenant, jti);
ALTER TABLE revocations ADD COLUMN expires_at BIGINT;
UPDATE revocations r SET expires_at = t.expires_at FROM tokens t
    WHERE t.jti = r.jti AND t.tenant = r.tenant;
