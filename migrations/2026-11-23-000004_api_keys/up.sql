-- API keys (DESIGN §3): the key itself is never stored, only its display prefix and
-- HMAC-SHA256(API_KEY_HASH_SECRET, key). Lookup is by that HMAC through the unique index.

CREATE TABLE api_keys (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- `rk_` + the first 8 random characters: enough to recognise a key, useless to use one.
    prefix          text NOT NULL CHECK (prefix ~ '^rk_[0-9A-Za-z]{8}$'),
    key_hash        bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    -- Permission names; never NULL elements (the application reads them as text[] NOT NULL).
    scopes          text[] NOT NULL CHECK (array_position(scopes, NULL) IS NULL),
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz,
    -- Written at most once a minute per key, not per request.
    last_used_at    timestamptz,
    revoked_at      timestamptz,
    -- Who revoked it (the owner or an admin). Deliberately not a foreign key: the record of who
    -- revoked a key must survive that account's deletion.
    revoked_by      uuid,
    revoke_reason   text CHECK (length(revoke_reason) <= 500),
    -- After a rotation: the replacement, and until when this (old) key keeps working.
    rotated_to      uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    grace_until     timestamptz,
    CHECK (rotated_to IS NULL OR grace_until IS NOT NULL)
);
-- A user's keys, newest first (listing, and counting the live ones).
CREATE INDEX api_keys_user_idx ON api_keys (user_id, id DESC);
