-- Reverts 2026-11-30-000009_audit_server_request_id. Rows written with a server request id no
-- longer verify afterwards (the chain covered the column): revert only together with the code.
ALTER TABLE audit_logs DROP COLUMN IF EXISTS server_request_id;
