-- Resource indicators (RFC 8707): the resources an authorization code covers, and a token's
-- audience, as JSON arrays of URIs. Empty for everything issued before: a token without an
-- audience is valid at any resource, as it always was.
ALTER TABLE authorization_codes ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tokens ADD COLUMN audience TEXT NOT NULL DEFAULT '[]';
