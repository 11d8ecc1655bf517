-- SPEC 13 (who may do what): the owner's own cap on an app's spending for them, the resource
-- server behind each spend (idempotency keys and refunds are scoped to it), and when a device
-- authorization was approved (a consent created after it does not cover it).

ALTER TABLE clients ADD COLUMN owner_buzz_limit TEXT NOT NULL DEFAULT '[]';

ALTER TABLE device_authorizations ADD COLUMN approved_at INTEGER;

-- The idempotency key now includes the resource server, and SQLite cannot change a table's
-- UNIQUE constraint in place: rebuild the ledger. Entries recorded before this migration have
-- no resource server (NULL): they can be read, never replayed or refunded.
CREATE TABLE buzz_ledger_v2 (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    user_id         INTEGER NOT NULL,
    subject_type    TEXT    NOT NULL CHECK (subject_type IN ('oauth', 'apiKey')),
    subject_id      TEXT    NOT NULL,
    resource_server TEXT,
    purpose         TEXT    NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    description     TEXT,
    created_at      INTEGER NOT NULL,
    refunded_at     INTEGER,
    UNIQUE (user_id, subject_type, subject_id, resource_server, idempotency_key)
);
INSERT INTO buzz_ledger_v2 (seq, id, user_id, subject_type, subject_id, resource_server, purpose,
                            amount, currency, idempotency_key, description, created_at, refunded_at)
    SELECT seq, id, user_id, subject_type, subject_id, NULL, purpose, amount, currency,
           idempotency_key, description, created_at, refunded_at
    FROM buzz_ledger;
DROP TABLE buzz_ledger;
ALTER TABLE buzz_ledger_v2 RENAME TO buzz_ledger;
CREATE INDEX buzz_ledger_user ON buzz_ledger (user_id, seq);
CREATE INDEX buzz_ledger_windows ON buzz_ledger (user_id, subject_type, subject_id, created_at)
    WHERE purpose = 'ai_services' AND refunded_at IS NULL;
