-- An approval lives as long as someone can use it (SPEC §4). A held call's approval ends with its
-- hold: decided, 'timed_out', or 'abandoned' when its client (or the filter holding it) went away;
-- a parked one, and an approved one not used, 'expired' at `expires_at`.
--   held           1: a filter holds the call (`filter_id`), 0: parked, the agent retries with its id
--   expires_at     the held call's deadline, or the end of the tenant's approval lifetime
--   watched_until  (held) until when the holding filter is known to wait for the decision
--   ended_at       when it ended without being used: timed out, abandoned, expired
CREATE TABLE approvals_with_endings (
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
                             CHECK (status IN ('pending', 'approved', 'rejected', 'timed_out', 'abandoned', 'expired')),
    decided_by               TEXT,
    decided_at               INTEGER,
    decision_reason          TEXT,
    used_at                  INTEGER,
    held                     INTEGER NOT NULL DEFAULT 0,
    filter_id                TEXT NOT NULL DEFAULT '',
    expires_at               INTEGER NOT NULL,
    watched_until            INTEGER,
    ended_at                 INTEGER,
    end_reason               TEXT
);
-- Approvals from before had no stated lifetime: they get a day from their creation.
INSERT INTO approvals_with_endings (pos, id, tenant, agent_id, capability_token_id,
    root_capability_token_id, tool, arguments, arguments_sha256, escalating_rule, reason, created_at,
    status, decided_by, decided_at, decision_reason, used_at, expires_at)
    SELECT pos, id, tenant, agent_id, capability_token_id, root_capability_token_id, tool, arguments,
    arguments_sha256, escalating_rule, reason, created_at, status, decided_by, decided_at,
    decision_reason, used_at, created_at + 86400000
    FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_with_endings RENAME TO approvals;
CREATE INDEX approvals_by_status ON approvals (tenant, status, pos);
-- What the control plane's sweep reads every second: the approvals someone could still use.
CREATE INDEX approvals_live ON approvals (expires_at) WHERE status IN ('pending', 'approved') AND used_at IS NULL;
