-- Whether a pull source may reach non-public addresses: only when the superadmin set its endpoint
-- (a per-tenant admin's endpoint must not make the control plane fetch internal services).
-- Sources from before this column fail closed until the superadmin saves them again.
ALTER TABLE discovery_sources ADD COLUMN private_reach INTEGER NOT NULL DEFAULT 0;
