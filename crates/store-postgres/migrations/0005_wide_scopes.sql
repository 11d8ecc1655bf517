-- Scopes widen from Civitai's 25 bits to the 63 an operator's catalogue may use
-- (docs/scopes.md): every scope column becomes BIGINT. Civitai's values are unchanged.
ALTER TABLE clients ALTER COLUMN allowed_scopes TYPE BIGINT;
ALTER TABLE consents ALTER COLUMN scope TYPE BIGINT;
ALTER TABLE tokens ALTER COLUMN scope TYPE BIGINT;
ALTER TABLE auth_codes ALTER COLUMN scope TYPE BIGINT;
ALTER TABLE device_authorizations ALTER COLUMN scope TYPE BIGINT;
ALTER TABLE audit_events ALTER COLUMN scope TYPE BIGINT;
