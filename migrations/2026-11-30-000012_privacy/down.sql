UPDATE subscriptions SET customer_id = 'erased-' || user_id::text WHERE customer_id IS NULL;
ALTER TABLE subscriptions ALTER COLUMN customer_id SET NOT NULL;
DROP TABLE audit_salts;
ALTER TABLE users DROP COLUMN erased_at;
