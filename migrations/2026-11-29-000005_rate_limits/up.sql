-- Rate limits and quotas (issue 6).

-- Daily per-principal quotas, shared by every instance: one row per (subject, kind, UTC day).
-- Counting is a single UPSERT whose conditional increment (`WHERE used < limit`) makes concurrent
-- requests at the edge of the quota admit exactly the remaining number.
CREATE TABLE quota_usage (
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'api_key')),
    subject_id   UUID NOT NULL,
    kind         TEXT NOT NULL CHECK (kind ~ '^[a-z][a-z_]{0,63}$'),
    day          DATE NOT NULL,
    used         INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (subject_type, subject_id, kind, day)
);
-- Old days are only ever deleted (retention), newest first.
CREATE INDEX quota_usage_day_idx ON quota_usage (day);

-- Aggregated audit events gain a scope (the rate-limit policy, the quota kind …), so a flood is
-- one row per (action, ip, scope, minute) rather than one per (action, ip, minute) for all scopes.
ALTER TABLE audit_aggregates ADD COLUMN scope TEXT NOT NULL DEFAULT ''
    CHECK (char_length(scope) <= 64);
ALTER TABLE audit_aggregates DROP CONSTRAINT audit_aggregates_pkey;
ALTER TABLE audit_aggregates ADD PRIMARY KEY (action, ip, scope, window_start);

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
        OR NEW.scope IS DISTINCT FROM OLD.scope
        OR NEW.window_start IS DISTINCT FROM OLD.window_start
        OR NEW.event_count < OLD.event_count
        OR (OLD.log_id IS NOT NULL AND NEW.log_id IS DISTINCT FROM OLD.log_id) THEN
        RAISE EXCEPTION 'audit_aggregates: only event_count may grow, and log_id be set once'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
