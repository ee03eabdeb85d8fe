-- Account erasure (crypto-shredding) and keyed pseudonyms in audit metadata.

-- When the account was erased: its username and email are tombstones from then on, its data key
-- is destroyed, and erasing it again changes nothing.
ALTER TABLE users ADD COLUMN erased_at timestamptz;

-- One random salt per user for the pseudonyms that audit metadata carries instead of their
-- username or email (`audit::Auditor::pseudonym`). Erasure deletes the row: the pseudonyms in
-- chained audit rows stay, but nobody (not even with SECRET_KEY) can link them to a name again.
CREATE TABLE audit_salts (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    salt       bytea NOT NULL CHECK (length(salt) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Erasure drops a subscription's personal fields (the Stripe customer and subscription ids):
-- the row keeps only its status and dates.
ALTER TABLE subscriptions ALTER COLUMN customer_id DROP NOT NULL;
