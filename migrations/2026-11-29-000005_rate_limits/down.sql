CREATE OR REPLACE FUNCTION audit_aggregates_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.log_id <= audit_prune_through() THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit_aggregates: DELETE refused'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'only `rampart audit prune` removes audit rows';
    END IF;
    IF NEW.action IS DISTINCT FROM OLD.action
        OR NEW.ip IS DISTINCT FROM OLD.ip
        OR NEW.window_start IS DISTINCT FROM OLD.window_start
        OR NEW.event_count < OLD.event_count
        OR (OLD.log_id IS NOT NULL AND NEW.log_id IS DISTINCT FROM OLD.log_id) THEN
        RAISE EXCEPTION 'audit_aggregates: only event_count may grow, and log_id be set once'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
-- Scoped rows cannot all fit the old key: keep the first scope's row per (action, ip, minute).
-- DELETE is refused by the trigger outside prune, so the duplicates are folded by disabling it
-- for this statement only (a down migration is an operator action).
ALTER TABLE audit_aggregates DISABLE TRIGGER audit_aggregates_guard;
DELETE FROM audit_aggregates a USING audit_aggregates b
    WHERE a.action = b.action AND a.ip = b.ip AND a.window_start = b.window_start
      AND a.scope > b.scope;
ALTER TABLE audit_aggregates ENABLE TRIGGER audit_aggregates_guard;
ALTER TABLE audit_aggregates DROP CONSTRAINT audit_aggregates_pkey;
ALTER TABLE audit_aggregates ADD PRIMARY KEY (action, ip, window_start);
ALTER TABLE audit_aggregates DROP COLUMN scope;

DROP TABLE quota_usage;
