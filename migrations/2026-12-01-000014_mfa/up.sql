-- Multi-factor authentication: TOTP factors, recovery codes, the pending second step of a
-- password login, and the assurance level and authentication time of every session.

-- One TOTP factor per user. The secret is Fernet-encrypted under the user's data key (erasure
-- destroys that key, and with it the secret). `confirmed_at` is NULL while enrolment waits for its
-- first code. `last_step` is the last accepted RFC 6238 time step: a code is accepted only for a
-- later step (one conditional UPDATE), so a code cannot be replayed within its window.
CREATE TABLE mfa_totp (
    user_id      UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    data_key_id  UUID NOT NULL,
    secret       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    confirmed_at TIMESTAMPTZ,
    last_step    BIGINT NOT NULL DEFAULT -1
);

-- Recovery codes: `lookup` is the code's first group (20 bits, not secret, only finds the row);
-- the other 80 bits are verified against `code_hash` (argon2id PHC string, its own salt). Each is
-- spent by one conditional UPDATE.
CREATE TABLE mfa_recovery_codes (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lookup     TEXT NOT NULL CHECK (length(lookup) = 4),
    code_hash  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX mfa_recovery_codes_user_idx ON mfa_recovery_codes (user_id, lookup);

-- The second step of a password sign-in: a 256-bit token shown once (SHA-256 stored), bound to
-- the user, the client IP and where it was issued (API or console), valid 5 minutes, spent once.
CREATE TABLE mfa_challenges (
    token_hash  BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('api', 'console')),
    ip          TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expires_idx ON mfa_challenges (expires_at);

-- Every session records how it was authenticated (aal 1 = one factor, 2 = two; amr as in
-- RFC 8176) and when the user last proved who they are (step-up refreshes it).
ALTER TABLE sessions
    ADD COLUMN aal SMALLINT NOT NULL DEFAULT 1 CHECK (aal IN (1, 2)),
    ADD COLUMN amr TEXT[] NOT NULL DEFAULT '{pwd}',
    ADD COLUMN authenticated_at TIMESTAMPTZ;
UPDATE sessions SET authenticated_at = created_at;
ALTER TABLE sessions ALTER COLUMN authenticated_at SET NOT NULL;

ALTER TABLE admin_sessions
    ADD COLUMN aal SMALLINT NOT NULL DEFAULT 1 CHECK (aal IN (1, 2)),
    ADD COLUMN authenticated_at TIMESTAMPTZ;
UPDATE admin_sessions SET authenticated_at = created_at;
ALTER TABLE admin_sessions ALTER COLUMN authenticated_at SET NOT NULL;
