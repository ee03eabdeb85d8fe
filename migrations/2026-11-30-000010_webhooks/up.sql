-- Issue 13: the verified webhook inbox, external identities (shared with the identity-provider
-- issue), and subscriptions.

-- Accounts created from an identity provider (a Clerk `user.created`) have no password: they sign
-- in through their provider. A missing hash verifies as a mismatch at the cost of a dummy hash.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;

-- One row per external identity, found by (issuer, subject) and never by email.
CREATE TABLE user_identities (
    id            uuid PRIMARY KEY,
    provider      text NOT NULL CHECK (provider IN ('clerk', 'supabase')),
    issuer        text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 512),
    subject       text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email         text,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    UNIQUE (issuer, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

-- Every verified delivery, once: a redelivery (same provider and event id) hits the unique key.
CREATE TABLE webhook_events (
    id                 uuid PRIMARY KEY,
    provider           text NOT NULL CHECK (provider IN ('stripe', 'clerk')),
    event_id           text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
    event_type         text NOT NULL CHECK (length(event_type) <= 255),
    received_at        timestamptz NOT NULL,
    -- Which configured secret matched (0 = the newest) and the signed timestamp.
    signature          text NOT NULL,
    signed_at          timestamptz NOT NULL,
    outcome            text NOT NULL CHECK (outcome IN ('processed', 'duplicate', 'ignored', 'failed')),
    error              text,
    deliveries         integer NOT NULL DEFAULT 1,
    last_delivery_at   timestamptz NOT NULL,
    processed_at       timestamptz,
    replays            integer NOT NULL DEFAULT 0,
    -- The body exactly as signed (bounded by the route's body limit): evidence.
    raw_body           bytea NOT NULL,
    headers            jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id         text,
    source_ip          inet,
    UNIQUE (provider, event_id)
);
CREATE INDEX webhook_events_received ON webhook_events (received_at DESC, id DESC);
CREATE INDEX webhook_events_failed ON webhook_events (received_at) WHERE outcome = 'failed';

-- Stripe subscriptions, matched by the customer id recorded at checkout (never by email).
CREATE TABLE subscriptions (
    user_id               uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    customer_id           text NOT NULL UNIQUE CHECK (length(customer_id) BETWEEN 1 AND 255),
    subscription_id       text,
    price_id              text,
    status                text NOT NULL,
    current_period_end    timestamptz,
    cancel_at_period_end  boolean NOT NULL DEFAULT false,
    last_payment_failed_at timestamptz,
    -- Stripe's `created` of the newest event applied: an older event arriving late changes nothing.
    event_created_at      timestamptz NOT NULL,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);
