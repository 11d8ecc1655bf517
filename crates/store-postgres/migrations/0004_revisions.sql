-- Revisions for compare-and-set writes (ClientStore::update, ConsentStore::save): an edit
-- made from a stale read is refused and redone instead of undoing a concurrent one.
ALTER TABLE clients ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE consents ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
