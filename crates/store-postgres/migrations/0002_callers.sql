-- SPEC 13 (who may do what): the owner's own cap on an app's spending for them, the resource
-- server behind each spend (idempotency keys and refunds are scoped to it), and when a device
-- authorization was approved (a consent created after it does not cover it).

ALTER TABLE clients ADD COLUMN owner_buzz_limit JSONB NOT NULL DEFAULT '[]';

ALTER TABLE device_authorizations ADD COLUMN approved_at TIMESTAMPTZ;

-- Entries recorded before this migration have no resource server (NULL): they can be read,
-- never replayed or refunded.
ALTER TABLE buzz_ledger ADD COLUMN resource_server TEXT;
DROP INDEX buzz_ledger_idempotency_key;
CREATE UNIQUE INDEX buzz_ledger_idempotency_key
    ON buzz_ledger (user_id, subject_type, subject_id, resource_server, idempotency_key);
