-- Tokens keyed by their hash (issue 10, W1; docs/benchmarks.md): every lookup of a token is
-- by its hash, yet each insert also wrote a random UUID into the primary key's index, one
-- more random leaf page (and, after each checkpoint, one more full-page image in the WAL)
-- per token issued. The hash's unique index becomes the primary key; the id keeps a unique
-- index only where it is looked up, API keys (revoked by id from the account page).
ALTER TABLE tokens DROP CONSTRAINT tokens_pkey;
ALTER TABLE tokens ADD CONSTRAINT tokens_pkey PRIMARY KEY USING INDEX tokens_hash_key;
CREATE UNIQUE INDEX tokens_api_key_id_key ON tokens (id) WHERE kind = 'apiKey';
