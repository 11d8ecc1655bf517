-- Budget windows by prefix sums (issue 10, W5; docs/benchmarks.md): a window's spend was the sum
-- of every ledger row in it, a scan that grew with each user's history. Now each capped
-- (`ai_services`) row carries `running`, the total of its chain (user, subject, currency) up to
-- and including itself, refunded rows included, and `buzz_spend_heads` keeps each chain's last
-- total and instant. A window's spend is head - (running of the last row before the window)
-- - (refunded rows inside it): two index probes per currency, whatever the history.
-- Rows are written only by the spend batch under the (user, subject) advisory lock, which
-- keeps `created_at` non-decreasing along a chain (crates/store-postgres/src/spends.rs).

ALTER TABLE buzz_ledger ADD COLUMN running BIGINT;

UPDATE buzz_ledger l SET running = r.running
FROM (
    SELECT id, LEAST(SUM(amount) OVER (
        PARTITION BY user_id, subject_type, subject_id, currency
        ORDER BY created_at, seq
    ), 9223372036854775807)::BIGINT AS running
    FROM buzz_ledger WHERE purpose = 'ai_services'
) r
WHERE l.id = r.id;

-- A node of an older version writes no `running`: its spends fail instead of being left out
-- of every window (upgrade all nodes together; docs/operations.md).
ALTER TABLE buzz_ledger ADD CONSTRAINT buzz_ledger_running_set
    CHECK (purpose <> 'ai_services' OR running IS NOT NULL);

CREATE TABLE buzz_spend_heads (
    user_id      BIGINT      NOT NULL,
    subject_type TEXT        NOT NULL,
    subject_id   TEXT        NOT NULL,
    currency     TEXT        NOT NULL,
    running      BIGINT      NOT NULL,
    last_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, subject_type, subject_id, currency)
);

INSERT INTO buzz_spend_heads (user_id, subject_type, subject_id, currency, running, last_at)
SELECT user_id, subject_type, subject_id, currency, MAX(running), MAX(created_at)
FROM buzz_ledger WHERE purpose = 'ai_services'
GROUP BY user_id, subject_type, subject_id, currency;

-- The last row before a window's start, per chain.
CREATE INDEX buzz_ledger_running_idx
    ON buzz_ledger (user_id, subject_type, subject_id, currency, created_at, running)
    WHERE purpose = 'ai_services';
-- Refunded capped rows (few): subtracted from the windows they fall in.
CREATE INDEX buzz_ledger_refunded_idx
    ON buzz_ledger (user_id, subject_type, subject_id, created_at)
    WHERE purpose = 'ai_services' AND refunded_at IS NOT NULL;
-- The scan index is no longer on the spend path; `window_spend` (reports) still uses it.
