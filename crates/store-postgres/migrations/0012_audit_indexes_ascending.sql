-- Audit indexes in ascending order (issue 10, W1; docs/benchmarks.md). A new event has the
-- latest `at`, so in a DESC index it went in at the left edge of its range: a full page there
-- splits in half and logs half a page of WAL, and the index stays half empty. Ascending, it
-- goes in at the right edge, where Postgres splits 90/10 and logs only the small right page:
-- about half the splits, a fraction of their WAL, and denser indexes. `ORDER BY at DESC, id
-- DESC` reads the same index backwards. The SQLite schema's indexes were already ascending.
-- On a large audit table this rebuilds three indexes (docs/operations.md, "Schema and
-- migrations").
DROP INDEX audit_events_at_idx;
CREATE INDEX audit_events_at_idx ON audit_events (at, id);
DROP INDEX audit_events_client_idx;
CREATE INDEX audit_events_client_idx ON audit_events (client_id, at, id) WHERE client_id IS NOT NULL;
DROP INDEX audit_events_user_idx;
CREATE INDEX audit_events_user_idx ON audit_events (user_id, at, id) WHERE user_id IS NOT NULL;
