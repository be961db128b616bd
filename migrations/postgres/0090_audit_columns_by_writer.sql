-- The columns audit queries filter on are written with each row by the control plane, from the
-- event it has just built: a per-row trigger parsing every body again cost more than the row's
-- indexes. Verify reads each row's columns against its body and reports the event whose columns
-- disagree, so a row written around the control plane cannot show queries something its hashed
-- body does not say. An UPDATE still takes them from the body and refuses a statement that sets
-- one of them, so editing what a query sees still means editing the body, which breaks the hash.

DROP TRIGGER audit_events_derive ON audit_events;

CREATE OR REPLACE FUNCTION audit_events_derive() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    doc jsonb := NEW.body::jsonb;
BEGIN
    IF (NEW.tenant, NEW.id, NEW.ts, NEW.event, NEW.decision, NEW.tool, NEW.agent_id)
       IS DISTINCT FROM
       (OLD.tenant, OLD.id, OLD.ts, OLD.event, OLD.decision, OLD.tool, OLD.agent_id) THEN
        RAISE EXCEPTION 'audit_events: tenant, id, ts, event, decision, tool and agent_id are derived from body'
            USING ERRCODE = 'generated_always';
    END IF;
    NEW.tenant := doc ->> 'tenant';
    NEW.id := doc ->> 'id';
    NEW.ts := doc ->> 'ts';
    NEW.event := doc ->> 'event';
    NEW.decision := doc ->> 'decision';
    NEW.tool := doc ->> 'tool';
    NEW.agent_id := doc ->> 'agent_id';
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_events_derive BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_derive();

ALTER TABLE audit_events
    ALTER COLUMN tenant SET NOT NULL,
    ALTER COLUMN id SET NOT NULL,
    ALTER COLUMN ts SET NOT NULL,
    ALTER COLUMN event SET NOT NULL,
    ALTER COLUMN decision SET NOT NULL,
    ALTER COLUMN tool SET NOT NULL,
    ALTER COLUMN agent_id SET NOT NULL;
