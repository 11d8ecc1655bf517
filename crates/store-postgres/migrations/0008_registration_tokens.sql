-- RFC 7592 (docs/mcp.md): the hash of a dynamically registered app's registration access
-- token, which lets its registrant read, update and delete it. NULL for every other app.
ALTER TABLE clients ADD COLUMN registration_token_hash TEXT;
