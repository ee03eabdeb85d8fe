ALTER TABLE users DROP COLUMN admin_granted_by;
