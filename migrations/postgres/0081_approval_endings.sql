-- An approval lives as long as someone can use it (SPEC §4). A held call's approval ends with its
-- hold: decided, 'timed_out', or 'abandoned' when its client (or the filter holding it) went away;
-- a parked one, and an approved one not used, 'expired' at `expires_at`.
--   held           1: a filter holds the call (`filter_id`), 0: parked, the agent retries with its id
--   expires_at     the held call's deadline, or the end of the tenant's approval lifetime
--   watched_until  (held) until when the holding filter is known to wait for the decision
--   ended_at       when it ended without being used: timed out, abandoned, expired
ALTER TABLE approvals DROP CONSTRAINT approvals_status_check;
ALTER TABLE approvals ADD CONSTRAINT approvals_status_check
    CHECK (status IN ('pending', 'approved', 'rejected', 'timed_out', 'abandoned', 'expired'));
ALTER TABLE approvals ADD COLUMN held BIGINT NOT NULL DEFAULT 0;
ALTER TABLE approvals ADD COLUMN filter_id TEXT NOT NULL DEFAULT '';
-- Approvals from before had no stated lifetime: they get a day from their creation.
ALTER TABLE approvals ADD COLUMN expires_at BIGINT;
UPDATE approvals SET expires_at = created_at + 86400000;
ALTER TABLE approvals ALTER COLUMN expires_at SET NOT NULL;
ALTER TABLE approvals ADD COLUMN watched_until BIGINT;
ALTER TABLE approvals ADD COLUMN ended_at BIGINT;
ALTER TABLE approvals ADD COLUMN end_reason TEXT;
-- What the control plane's sweep reads every second: the approvals someone could still use.
CREATE INDEX approvals_live ON approvals (expires_at) WHERE status IN ('pending', 'approved') AND used_at IS NULL;
