-- The resources (RFC 8707) a user approved an app's tokens for, as a JSON array: a remembered
-- consent covers a request only for these. Empty for every consent given before.
ALTER TABLE consents ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';
