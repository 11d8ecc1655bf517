-- The OpenID Connect scopes of a grant (openid, profile, email, offline_access as bits 0-3):
-- `openid` asks for an id_token, and userinfo releases claims by them. 0 for everything issued
-- before: a Civitai-style grant, whose tokens read the whole profile with UserRead.
ALTER TABLE auth_codes ADD COLUMN oidc SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN oidc SMALLINT NOT NULL DEFAULT 0;
