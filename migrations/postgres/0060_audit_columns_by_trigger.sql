-- The columns audit queries filter on stay derived from the hashed body, but from one parse of it
-- per row instead of one per column: as generated columns, each of the seven parsed the whole body
-- again, which made an event's insert cost several times its indexes. A trigger now sets them on
-- every insert and update, from the body alone, and refuses a statement that writes one of them:
-- as before, changing what a query sees means changing the body, which breaks the event's hash.
-- The values already stored are kept (DROP EXPRESSION does not rewrite them).

ALTER TABLE audit_events
    ALTER COLUMN tenant DROP EXPRESSION,
    ALTER COLUMN id DROP EXPRESSION,
    ALTER COLUMN ts DROP EXPRESSION,
    ALTER COLUMN event DROP EXPRESSION,
    ALTER COLUMN decision DROP EXPRESSION,
    ALTER COLUMN tool DROP EXPRESSION,
    ALTER COLUMN agent_id DROP EXPRESSION;

CREATE FUNCTION audit_events_derive() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    doc jsonb := NEW.body::jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF num_nonnulls(NEW.tenant, NEW.id, NEW.ts, NEW.event, NEW.decision, NEW.tool,
                        NEW.agent_id) > 0 THEN
            RAISE EXCEPTION 'audit_events: tenant, id, ts, event, decision, tool and agent_id are derived from body'
                USING ERRCODE = 'generated_always';
        END IF;
    ELSIF (NEW.tenant, NEW.id, NEW.ts, NEW.event, NEW.decision, NEW.tool, NEW.agent_id)
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

CREATE TRIGGER audit_events_derive BEFORE INSERT OR UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_derive();
