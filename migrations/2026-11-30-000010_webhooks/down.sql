DROP TABLE subscriptions;
DROP TABLE webhook_events;
DROP TABLE user_identities;
DELETE FROM users WHERE password_hash IS NULL;
ALTER TABLE users ALTER COLUMN password_hash SET NOT NULL;
