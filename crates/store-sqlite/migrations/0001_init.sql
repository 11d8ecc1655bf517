-- Buzzgate's durable state in SQLite. Timestamps are INTEGER Unix microseconds (UTC); token,
-- code, device and session hashes are 32-byte BLOBs (SHA-256: no plaintext ever reaches the
-- database); structured values (redirect URIs, grants, roles, Buzz limits, audit metadata) are
-- JSON text.
--
-- Users are not referenced by foreign keys: an embedder may keep its users elsewhere. Rows that
-- belong to an app reference `clients` with ON DELETE CASCADE, so deleting an app removes its
-- tokens, consents, authorization codes and device authorizations in one statement. The audit
-- log and the Buzz ledger have no foreign keys: they outlive apps.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Unique regardless of ASCII case (the `Username` alphabet is ASCII).
    username       TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    email          TEXT,
    email_verified INTEGER NOT NULL DEFAULT 0,
    password_hash  TEXT,
    picture        TEXT,
    roles          TEXT    NOT NULL DEFAULT '[]',
    created_at     INTEGER NOT NULL,
    banned_at      INTEGER
);

CREATE TABLE clients (
    id                 TEXT    PRIMARY KEY NOT NULL,
    owner_id           INTEGER NOT NULL,
    name               TEXT    NOT NULL,
    description        TEXT    NOT NULL,
    redirect_uris      TEXT    NOT NULL,
    allowed_origins    TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash        TEXT,
    grants             TEXT    NOT NULL,
    allowed_scopes     INTEGER NOT NULL,
    access_mode        TEXT    NOT NULL,
    is_verified        INTEGER NOT NULL,
    is_resource_server INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX clients_owner ON clients (owner_id, created_at);

CREATE TABLE consents (
    user_id    INTEGER NOT NULL,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      INTEGER NOT NULL,
    remembered INTEGER NOT NULL,
    buzz_limit TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client ON consents (client_id);

-- Access tokens, refresh tokens and personal API keys (client_id NULL).
CREATE TABLE tokens (
    hash       BLOB    PRIMARY KEY NOT NULL,
    id         TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('access', 'refresh', 'apiKey')),
    client_id  TEXT    REFERENCES clients (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL,
    scope      INTEGER NOT NULL,
    family_id  TEXT,
    name       TEXT,
    buzz_limit TEXT,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    rotated_at INTEGER,
    auth_time  INTEGER
);
CREATE INDEX tokens_client ON tokens (client_id);
CREATE INDEX tokens_user_client ON tokens (user_id, client_id);
CREATE INDEX tokens_family ON tokens (family_id) WHERE family_id IS NOT NULL;
CREATE INDEX tokens_api_keys ON tokens (user_id, issued_at) WHERE kind = 'apiKey';
-- For bounded sweeping.
CREATE INDEX tokens_expires ON tokens (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX tokens_revoked ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;

-- Tombstones of revoked refresh-token families: an insert into a family listed here is
-- refused, even when the revocation came before any of the family's rows.
CREATE TABLE revoked_families (
    family_id  TEXT    NOT NULL UNIQUE,
    revoked_at INTEGER NOT NULL
);
CREATE INDEX revoked_families_at ON revoked_families (revoked_at);

CREATE TABLE authorization_codes (
    hash            BLOB    PRIMARY KEY NOT NULL,
    client_id       TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL,
    redirect_uri    TEXT    NOT NULL,
    scope           INTEGER NOT NULL,
    code_challenge  TEXT    NOT NULL,
    nonce           TEXT,
    auth_time       INTEGER NOT NULL,
    issued_at       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    -- Set by the single-use take: the family the redemption created.
    redeemed_family TEXT
);
CREATE INDEX authorization_codes_client ON authorization_codes (client_id);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);

CREATE TABLE device_authorizations (
    device_hash        BLOB    PRIMARY KEY NOT NULL,
    -- Not unique: a user code may be reused once its authorization is dead; lookups take the
    -- newest row.
    user_code          TEXT    NOT NULL,
    client_id          TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope              INTEGER NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    approved_user_id   INTEGER,
    approved_auth_time INTEGER,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    interval_secs      INTEGER NOT NULL,
    last_polled_at     INTEGER
);
CREATE INDEX device_authorizations_user_code ON device_authorizations (user_code);
CREATE INDEX device_authorizations_client ON device_authorizations (client_id);
CREATE INDEX device_authorizations_expires ON device_authorizations (expires_at);

CREATE TABLE sessions (
    id_hash    BLOB    PRIMARY KEY NOT NULL,
    user_id    INTEGER NOT NULL,
    csrf_token TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE buzz_balances (
    user_id    INTEGER NOT NULL,
    currency   TEXT    NOT NULL,
    balance    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, currency)
) WITHOUT ROWID;

CREATE TABLE buzz_ledger (
    -- Insertion order: history is newest first by it.
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    user_id         INTEGER NOT NULL,
    subject_type    TEXT    NOT NULL CHECK (subject_type IN ('oauth', 'apiKey')),
    subject_id      TEXT    NOT NULL,
    purpose         TEXT    NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    description     TEXT,
    created_at      INTEGER NOT NULL,
    refunded_at     INTEGER,
    UNIQUE (user_id, subject_type, subject_id, idempotency_key)
);
CREATE INDEX buzz_ledger_user ON buzz_ledger (user_id, seq);
-- The window sums of a spend: capped, not-refunded spends of one (user, subject).
CREATE INDEX buzz_ledger_windows ON buzz_ledger (user_id, subject_type, subject_id, created_at)
    WHERE purpose = 'ai_services' AND refunded_at IS NULL;

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    user_id   INTEGER,
    client_id TEXT,
    scope     INTEGER,
    ip        TEXT,
    metadata  TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_user ON audit_log (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX audit_log_client ON audit_log (client_id) WHERE client_id IS NOT NULL;
CREATE INDEX audit_log_kind ON audit_log (kind);

-- Fixed-window rate-limit counters, one row per key (its current window only; window_start
-- in Unix seconds).
CREATE TABLE rate_limits (
    key          TEXT    PRIMARY KEY NOT NULL,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX rate_limits_window ON rate_limits (window_start);
