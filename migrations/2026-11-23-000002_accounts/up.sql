-- Accounts, sessions (refresh-token families) and per-account lockout state.

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    username        text NOT NULL CHECK (username ~ '^[A-Za-z0-9_-]{3,50}$'),
    email           text NOT NULL CHECK (email = lower(email) AND length(email) <= 254),
    password_hash   text NOT NULL,
    role            text NOT NULL DEFAULT 'team_member' CHECK (role IN ('admin', 'team_member', 'demo')),
    active          boolean NOT NULL DEFAULT true,
    display_name    text CHECK (length(display_name) <= 100),
    -- Lockout (DESIGN §3): consecutive failures and the end of the current lock.
    failed_logins   integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
-- Usernames are unique case-insensitively; emails are stored lower-case.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_created_at_id_idx ON users (created_at DESC, id DESC);

CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL,
    last_used_at    timestamptz NOT NULL,
    -- Absolute end of the session; the idle limit is checked against last_used_at.
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text,
    ip              text,
    user_agent      text CHECK (length(user_agent) <= 512)
);
-- The per-request check is a primary-key lookup joined to users by primary key.
CREATE INDEX sessions_user_live_idx ON sessions (user_id, id DESC) WHERE revoked_at IS NULL;

-- Every refresh token ever issued for a session (its family), stored as SHA-256 only.
CREATE TABLE refresh_tokens (
    token_hash      bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id      uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL,
    spent_at        timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
