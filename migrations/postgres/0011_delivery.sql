-- SIEM and webhook delivery (issue 7).

-- How far each destination has delivered each tenant's chain: the last `seq` handed over (or
-- skipped by its selection). Per tenant because appends are serialised per tenant: a tenant's
-- events commit in `seq` order, so nothing can appear behind a cursor.
CREATE TABLE delivery_cursors (
    destination TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (destination, tenant)
);

-- Counters and health per destination, and the lease that lets one replica deliver at a time.
CREATE TABLE delivery_status (
    destination    TEXT PRIMARY KEY,
    events_flushed BIGINT NOT NULL DEFAULT 0,
    events_dropped BIGINT NOT NULL DEFAULT 0,
    last_flush_at  BIGINT,
    last_error     TEXT,
    lease_owner    TEXT NOT NULL DEFAULT '',
    lease_until    BIGINT NOT NULL DEFAULT 0
);
