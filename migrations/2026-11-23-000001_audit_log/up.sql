-- Tamper-evident audit log (issue 3). The design is explained in src/audit/mod.rs.
--
-- Each row carries `hash` = HMAC-SHA256(audit key, prev_hash || canonical encoding of the row),
-- where the audit key is derived from SECRET_KEY, which the database never sees. Ids are dense
-- (the writer assigns previous id + 1 while holding an advisory lock), so a gap means deletion.
--
-- Append-only: the triggers below refuse every UPDATE and TRUNCATE of audit_logs and
-- audit_checkpoints, and every DELETE except the prefix deletion of `rampart audit prune`, which
-- sets the transaction-local setting `rampart.audit_prune_through` to the last id it removes.
-- The triggers stop mistakes and injected SQL running as the application role; they cannot stop a
-- role that sets that setting itself, owns the table (an owner may DISABLE TRIGGER) or is a
-- superuser. The HMAC chain detects what such a role does; a stricter deployment also takes the
-- privileges away (the migrations run as the owner, the app as rampart_app, pruning as
-- rampart_audit_admin):
--
--   REVOKE ALL ON audit_logs, audit_checkpoints, audit_aggregates FROM PUBLIC;
--   GRANT SELECT, INSERT ON audit_logs, audit_checkpoints TO rampart_app;
--   GRANT SELECT, INSERT, UPDATE ON audit_aggregates TO rampart_app;
--   GRANT SELECT, INSERT, DELETE ON audit_logs, audit_aggregates TO rampart_audit_admin;
--   GRANT SELECT, INSERT ON audit_checkpoints TO rampart_audit_admin;
--   GRANT USAGE ON SEQUENCE audit_checkpoints_id_seq TO rampart_audit_admin;

-- The id up to which the current transaction may delete (set only by `rampart audit prune`).
CREATE FUNCTION audit_prune_through() RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    raw text := current_setting('rampart.audit_prune_through', true);
BEGIN
    IF raw IS NULL OR raw = '' THEN
        RETURN NULL;
    END IF;
    RETURN raw::bigint;
EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    RETURN NULL;
END;
$$;

CREATE TABLE audit_logs (
    id          BIGINT PRIMARY KEY CHECK (id > 0),
    occurred_at TIMESTAMPTZ NOT NULL,
    actor_type  TEXT NOT NULL
                CHECK (actor_type IN ('user', 'api_key', 'admin', 'system', 'anonymous')),
    actor_id    TEXT CHECK (char_length(actor_id) <= 128),
    action      TEXT NOT NULL
                CHECK (char_length(action) <= 64 AND action ~ '^[a-z][a-z_]*(\.[a-z][a-z_]*)+$'),
    outcome     TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    target_type TEXT CHECK (char_length(target_type) <= 64),
    target_id   TEXT CHECK (char_length(target_id) <= 128),
    ip          INET,
    user_agent  TEXT CHECK (char_length(user_agent) <= 512),
    request_id  TEXT CHECK (char_length(request_id) <= 128),
    metadata    JSONB NOT NULL CHECK (jsonb_typeof(metadata) = 'object'),
    prev_hash   BYTEA NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash        BYTEA NOT NULL CHECK (octet_length(hash) = 32),
    CHECK ((target_type IS NULL) = (target_id IS NULL))
);

-- The console's filters, each ending in id so that keyset pagination (id < cursor ORDER BY id
-- DESC) stays an index scan; the primary key serves the unfiltered list.
CREATE INDEX audit_logs_occurred_at_idx ON audit_logs (occurred_at, id);
CREATE INDEX audit_logs_action_idx ON audit_logs (action, id);
CREATE INDEX audit_logs_actor_idx ON audit_logs (actor_type, actor_id, id);
CREATE INDEX audit_logs_target_idx ON audit_logs (target_type, target_id, id)
    WHERE target_type IS NOT NULL;
CREATE INDEX audit_logs_ip_idx ON audit_logs (ip, id) WHERE ip IS NOT NULL;

CREATE FUNCTION audit_logs_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.id <= audit_prune_through() THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only: % of row % refused', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'only `rampart audit prune` removes audit rows';
END;
$$;

CREATE TRIGGER audit_logs_append_only
    BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_guard();

-- Row triggers do not fire on TRUNCATE.
CREATE FUNCTION audit_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_logs_no_truncate
    BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();

-- One row per prune: where the retained chain starts. `mac` = HMAC(audit key, prev_mac ||
-- fields), so a checkpoint cannot be forged or dropped without the key; never updated or deleted.
CREATE TABLE audit_checkpoints (
    id               BIGSERIAL PRIMARY KEY,
    created_at       TIMESTAMPTZ NOT NULL,
    pruned_before    TIMESTAMPTZ NOT NULL,
    last_pruned_id   BIGINT NOT NULL CHECK (last_pruned_id > 0),
    last_pruned_hash BYTEA NOT NULL CHECK (octet_length(last_pruned_hash) = 32),
    pruned_count     BIGINT NOT NULL CHECK (pruned_count > 0),
    prev_mac         BYTEA NOT NULL CHECK (octet_length(prev_mac) = 32),
    mac              BYTEA NOT NULL CHECK (octet_length(mac) = 32)
);

CREATE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();

CREATE TRIGGER audit_checkpoints_no_truncate
    BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();

-- Noise control: repeated events of one action from one IP within one minute. The first is a
-- chained audit_logs row (log_id); the rest only raise event_count here, which readers add to that
-- row's metadata as `count`. The count is not covered by the chain, so it may only grow.
CREATE TABLE audit_aggregates (
    action       TEXT NOT NULL,
    ip           INET NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    event_count  BIGINT NOT NULL CHECK (event_count > 0),
    last_seen_at TIMESTAMPTZ NOT NULL,
    log_id       BIGINT REFERENCES audit_logs (id),
    PRIMARY KEY (action, ip, window_start)
);

CREATE UNIQUE INDEX audit_aggregates_log_id_idx ON audit_aggregates (log_id);

CREATE FUNCTION audit_aggregates_guard() RETURNS trigger
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

CREATE TRIGGER audit_aggregates_guard
    BEFORE UPDATE OR DELETE ON audit_aggregates
    FOR EACH ROW EXECUTE FUNCTION audit_aggregates_guard();

CREATE TRIGGER audit_aggregates_no_truncate
    BEFORE TRUNCATE ON audit_aggregates
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();
