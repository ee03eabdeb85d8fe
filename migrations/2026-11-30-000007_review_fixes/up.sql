-- Issue 11 (outside review): who made an admin an admin.
--
-- Self-registration never grants admin any more (an ADMIN_EMAILS match creates a team_member):
-- nobody has proved they own the address. An admin made by an operator (create-admin, its
-- --promote, users import) — or, later, by a verified address — records how, and only such an
-- admin holding SUPER_ADMIN_EMAIL gets the super admin's protection.
ALTER TABLE users
    ADD COLUMN admin_granted_by TEXT CHECK (admin_granted_by IN ('operator', 'verified_email'));

-- Admins that exist today and were created by an operator command (audited with the system actor
-- as `user.registered` or `user.imported`) keep their standing; admins who registered an
-- ADMIN_EMAILS address themselves do not (an operator re-confirms them with
-- `rampart create-admin --promote USER`).
UPDATE users SET admin_granted_by = 'operator'
WHERE role = 'admin'
  AND id::text IN (
      SELECT target_id FROM audit_logs
      WHERE actor_type = 'system'
        AND action IN ('user.registered', 'user.imported')
        AND target_type = 'user'
  );
