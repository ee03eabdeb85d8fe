DROP INDEX sessions_live_idx;
DROP INDEX users_email_prefix_idx;
DROP INDEX users_username_prefix_idx;
DROP INDEX audit_logs_outcome_idx;
DROP INDEX audit_logs_target_id_idx;
DROP INDEX audit_logs_actor_id_idx;
DROP TABLE admin_sessions;
