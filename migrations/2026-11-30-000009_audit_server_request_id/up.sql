-- The request id the server generated for the request that caused the row (issue 11, finding 15).
-- `request_id` keeps a client's well-formed `X-Request-Id` for correlation, which the client
-- chooses; this column is always the server's own UUID v7, so a row can be tied to the server's
-- logs whatever the client sent. NULL on rows written before this migration and on rows with no
-- request (CLI, background jobs). The chain covers it for rows that have it (src/audit/chain.rs).
-- Adding a nullable column without a default rewrites no row, so the append-only trigger is not
-- involved.
ALTER TABLE audit_logs
    ADD COLUMN server_request_id TEXT CHECK (char_length(server_request_id) <= 128);
