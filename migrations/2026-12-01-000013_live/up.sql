-- Live delivery over WebSocket: one-time upgrade tickets and the connections the caps count.

-- A ticket is 256 random bits shown once; only its SHA-256 is stored. It is bound to the user,
-- the credential that asked for it (a session, an API key or a provider identity) and the client
-- IP, and spent by one conditional UPDATE (two upgrades with one ticket: exactly one wins).
CREATE TABLE ws_tickets (
    token_hash   BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id   UUID,
    api_key_id   UUID,
    identity_id  UUID,
    ip           TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ,
    CONSTRAINT ws_tickets_one_credential CHECK (
        (session_id IS NOT NULL)::int + (api_key_id IS NOT NULL)::int + (identity_id IS NOT NULL)::int = 1
    )
);
CREATE INDEX ws_tickets_expires_idx ON ws_tickets (expires_at);

-- Open sockets, across instances: the per-user and per-IP caps count these rows. Each instance
-- refreshes `seen_at` of its own rows; rows of an instance that died stop counting after a minute.
CREATE TABLE ws_connections (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    ip           TEXT NOT NULL,
    instance_id  UUID NOT NULL,
    opened_at    TIMESTAMPTZ NOT NULL,
    seen_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX ws_connections_user_idx ON ws_connections (user_id, seen_at);
CREATE INDEX ws_connections_ip_idx ON ws_connections (ip, seen_at);
CREATE INDEX ws_connections_instance_idx ON ws_connections (instance_id);
