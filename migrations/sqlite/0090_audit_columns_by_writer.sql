-- The columns audit queries filter on are written with each row by the control plane, from the
-- event it has just built: as generated columns, each of the seven parsed the body again on every
-- insert. Verify reads each row's columns against its body and reports the event whose columns
-- disagree, so a row written around the control plane cannot show queries something its hashed
-- body does not say. An UPDATE still takes them from the body and refuses a statement that sets
-- one of them to anything else, so editing what a query sees still means editing the body, which
-- breaks the hash. A generated column cannot be altered in place: the table is rebuilt, its rows
-- and positions kept.

CREATE TABLE audit_events_written (
    pos       INTEGER PRIMARY KEY AUTOINCREMENT,
    seq       INTEGER NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL,
    body      TEXT NOT NULL,
    tenant    TEXT NOT NULL,
    id        TEXT NOT NULL,
    ts        TEXT NOT NULL,
    event     TEXT NOT NULL,
    decision  TEXT NOT NULL,
    tool      TEXT NOT NULL,
    agent_id  TEXT NOT NULL
);
INSERT INTO audit_events_written
    (pos, seq, prev_hash, hash, body, tenant, id, ts, event, decision, tool, agent_id)
    SELECT pos, seq, prev_hash, hash, body, tenant, id, ts, event, decision, tool, agent_id
    FROM audit_events ORDER BY pos;
DROP TABLE audit_events;
ALTER TABLE audit_events_written RENAME TO audit_events;
CREATE UNIQUE INDEX audit_events_by_seq ON audit_events (tenant, seq);
CREATE UNIQUE INDEX audit_events_by_id ON audit_events (tenant, id);
CREATE INDEX audit_events_by_ts ON audit_events (tenant, ts);
CREATE INDEX audit_events_by_pos ON audit_events (tenant, pos);
CREATE INDEX audit_events_by_agent ON audit_events (tenant, agent_id, ts);

CREATE TRIGGER audit_events_columns_from_body
    BEFORE UPDATE OF tenant, id, ts, event, decision, tool, agent_id ON audit_events
    WHEN (NEW.tenant, NEW.id, NEW.ts, NEW.event, NEW.decision, NEW.tool, NEW.agent_id)
         IS NOT (OLD.tenant, OLD.id, OLD.ts, OLD.event, OLD.decision, OLD.tool, OLD.agent_id)
     AND (NEW.tenant, NEW.id, NEW.ts, NEW.event, NEW.decision, NEW.tool, NEW.agent_id)
         IS NOT (json_extract(NEW.body, '$.tenant'), json_extract(NEW.body, '$.id'),
                 json_extract(NEW.body, '$.ts'), json_extract(NEW.body, '$.event'),
                 json_extract(NEW.body, '$.decision'), json_extract(NEW.body, '$.tool'),
                 json_extract(NEW.body, '$.agent_id'))
BEGIN
    SELECT RAISE(ABORT, 'audit_events: tenant, id, ts, event, decision, tool and agent_id are derived from body');
END;

CREATE TRIGGER audit_events_body_rederives
    AFTER UPDATE OF body ON audit_events
BEGIN
    UPDATE audit_events SET
        tenant = json_extract(NEW.body, '$.tenant'),
        id = json_extract(NEW.body, '$.id'),
        ts = json_extract(NEW.body, '$.ts'),
        event = json_extract(NEW.body, '$.event'),
        decision = json_extract(NEW.body, '$.decision'),
        tool = json_extract(NEW.body, '$.tool'),
        agent_id = json_extract(NEW.body, '$.agent_id')
    WHERE pos = NEW.pos;
END;
