-- Email: the transactional outbox, one-time link tokens (verification, address change, password
-- reset), the verified state of an address, and the devices a user signed in from (for
-- "sign-in from a new device" notices).

ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;

-- A mail is written here in the transaction of the change that causes it (no mail for a
-- rolled-back change, no change without its mail) and delivered by a background sender that
-- claims rows with FOR UPDATE SKIP LOCKED (several instances never send one row twice at once).
-- Bodies are emptied once sent: a one-time link does not stay in the table after delivery.
CREATE TABLE email_outbox (
    id              UUID PRIMARY KEY,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    user_id         UUID REFERENCES users (id) ON DELETE SET NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ
);
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX email_outbox_status_idx ON email_outbox (status, id);
CREATE INDEX email_outbox_user_idx ON email_outbox (user_id);

-- One-time links: 256 random bits in the mail, SHA-256 here; spent by one conditional UPDATE.
CREATE TABLE email_tokens (
    token_hash BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify', 'change_email', 'password_reset')),
    email      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id, purpose);
CREATE INDEX email_tokens_email_idx ON email_tokens (lower(email), created_at);

-- Where a user signed in from: a browser family and a /24 or /48 network.
CREATE TABLE known_devices (
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent         TEXT NOT NULL,
    network       TEXT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, agent, network)
);
