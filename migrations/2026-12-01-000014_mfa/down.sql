ALTER TABLE admin_sessions DROP COLUMN authenticated_at, DROP COLUMN aal;
ALTER TABLE sessions DROP COLUMN authenticated_at, DROP COLUMN amr, DROP COLUMN aal;
DROP TABLE mfa_challenges;
DROP TABLE mfa_recovery_codes;
DROP TABLE mfa_totp;
