-- Approvals are used once (issue 6): the time an approved approval let its call through.
ALTER TABLE approvals ADD COLUMN used_at BIGINT;
