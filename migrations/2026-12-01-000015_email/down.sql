DROP TABLE known_devices;
DROP TABLE email_tokens;
DROP TABLE email_outbox;
ALTER TABLE users DROP COLUMN email_verified_at;
