-- Reverts 2026-11-23-000001_audit_log completely (tables take their triggers with them).
DROP TABLE IF EXISTS audit_aggregates;
DROP TABLE IF EXISTS audit_checkpoints;
DROP TABLE IF EXISTS audit_logs;
DROP FUNCTION IF EXISTS audit_aggregates_guard();
DROP FUNCTION IF EXISTS audit_refuse_change();
DROP FUNCTION IF EXISTS audit_refuse_truncate();
DROP FUNCTION IF EXISTS audit_logs_guard();
DROP FUNCTION IF EXISTS audit_prune_through();
