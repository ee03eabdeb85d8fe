-- The admin console (issue 7): server-side sessions, and indexes for the console's filters.

-- One row per signed-in admin browser. The cookie holds a random 256-bit token; only its SHA-256
-- is stored, so reading this table gives nobody a usable cookie. Idle and absolute limits are
-- checked against last_seen_at and expires_at on every request.
CREATE TABLE admin_sessions (
    token_hash   BYTEA PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    ip           TEXT CHECK (char_length(ip) <= 64),
    user_agent   TEXT CHECK (char_length(user_agent) <= 512)
);
CREATE INDEX admin_sessions_user_idx ON admin_sessions (user_id);

-- Audit filters by actor id, target id or outcome alone, newest first (keyset on id).
CREATE INDEX audit_logs_actor_id_idx ON audit_logs (actor_id, id) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_logs_target_id_idx ON audit_logs (target_id, id) WHERE target_id IS NOT NULL;
CREATE INDEX audit_logs_outcome_idx ON audit_logs (outcome, id);

-- User search by username or email prefix (LIKE 'abc%' can use these whatever the collation).
CREATE INDEX users_username_prefix_idx ON users (lower(username) text_pattern_ops);
CREATE INDEX users_email_prefix_idx ON users (email text_pattern_ops);

-- Live sessions across users for the console, newest first.
CREATE INDEX sessions_live_idx ON sessions (id DESC) WHERE revoked_at IS NULL;
