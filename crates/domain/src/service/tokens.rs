//! The token endpoint's grants, revocation, introspection, bearer validation and userinfo.

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditKind};
use crate::buzz::BuzzLimit;
use crate::client::{Client, ClientAuth, GrantType};
use crate::error::Error;
use crate::grant::authorization_code::{self, CodeRedemption};
use crate::grant::client_credentials;
use crate::grant::device_code::DevicePoll;
use crate::grant::refresh_token::{RefreshRotation, RotationDecision};
use crate::ids::{ClientId, FamilyId, UserId};
use crate::pkce::CodeVerifier;
use crate::ports::{IdTokenClaims, InsertOutcome};
use crate::scope::Scope;
use crate::token::{NewToken, TokenHash, TokenKind, TokenRecord, TokenResponse};

use super::Deps;

/// One call of the token endpoint, parsed. `origin` is the browser `Origin` header.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub client: ClientAuth,
    pub origin: Option<String>,
    pub ip: Option<String>,
    pub grant: GrantRequest,
}

/// The grant-specific parameters, still as sent.
#[derive(Debug, Clone)]
pub enum GrantRequest {
    AuthorizationCode {
        code: Option<String>,
        code_verifier: Option<String>,
        redirect_uri: Option<String>,
    },
    RefreshToken {
        refresh_token: Option<String>,
        scope: Option<String>,
    },
    ClientCredentials {
        scope: Option<String>,
    },
    DeviceCode {
        device_code: Option<String>,
    },
}

impl GrantRequest {
    /// Maps `grant_type` to a request shape, or `unsupported_grant_type`.
    pub fn grant_type(grant_type: Option<&str>) -> Result<GrantType, Error> {
        match grant_type {
            None | Some("") => Err(Error::invalid_request("Missing grant_type")),
            Some(g) => GrantType::parse(g).ok_or_else(|| {
                Error::UnsupportedGrantType(
                    format!("Unsupported grant_type `{}`", truncate(g, 64)).into(),
                )
            }),
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, Error> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid_request(format!("Missing {name}")))
}

/// The authenticated identity behind a bearer token.
#[derive(Debug, Clone, PartialEq)]
pub struct Bearer {
    pub record: TokenRecord,
}

impl Bearer {
    pub fn user_id(&self) -> UserId {
        self.record.user_id
    }
    pub fn scope(&self) -> Scope {
        self.record.scope
    }
    /// The insufficient-scope contract: 403 naming the missing scope.
    pub fn require(&self, required: Scope) -> Result<(), Error> {
        if self.record.scope.contains(required) {
            Ok(())
        } else {
            Err(Error::InsufficientScope { required })
        }
    }
    /// `{"type":"oauth","id":<client>}` or `{"type":"apiKey","id":<key id>}`.
    pub fn subject(&self) -> Subject {
        match &self.record.client_id {
            Some(c) => Subject::OAuth(c.clone()),
            None => Subject::ApiKey(self.record.id.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    OAuth(ClientId),
    ApiKey(String),
}

/// RFC 7662 response. Inactive tokens report only `active: false`.
#[derive(Debug, Clone, PartialEq)]
pub struct Introspection {
    pub active: bool,
    pub record: Option<TokenRecord>,
    pub username: Option<String>,
    pub buzz_limit: Option<BuzzLimit>,
}

/// The claims `/userinfo` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    pub id: UserId,
    pub username: String,
    pub picture: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
}

/// What `/api/v1/me` returns about a bearer.
#[derive(Debug, Clone, PartialEq)]
pub struct Me {
    pub id: UserId,
    pub username: String,
    pub token_scope: Scope,
    pub buzz_limit: Option<BuzzLimit>,
    pub subject: Subject,
}

/// Who asks to revoke.
#[derive(Debug, Clone)]
pub enum RevokeCaller {
    Client {
        auth: ClientAuth,
        origin: Option<String>,
    },
    /// A signed-in user revoking one of their own tokens.
    User(UserId),
}

#[derive(Debug, Clone)]
pub struct TokenService {
    pub(crate) deps: Arc<Deps>,
}

impl TokenService {
    pub fn new(deps: Arc<Deps>) -> Self {
        TokenService { deps }
    }

    /// Authenticates the client (and its Origin, for public browser clients).
    async fn client_for(
        &self,
        auth: &ClientAuth,
        origin: Option<&str>,
        ip: Option<&str>,
    ) -> Result<Client, Error> {
        let client = self.deps.authenticate_client(auth).await?;
        if let Err(e) = client.check_origin(origin) {
            let ev = AuditEvent::new(AuditKind::OriginRejected, self.deps.now())
                .client(&client.id)
                .ip(ip)
                .meta("origin", truncate(origin.unwrap_or(""), 256));
            self.deps.audit(ev).await;
            return Err(e);
        }
        Ok(client)
    }

    /// `POST /token`, any grant.
    pub async fn token(&self, req: TokenRequest) -> Result<TokenResponse, Error> {
        let client = self
            .client_for(&req.client, req.origin.as_deref(), req.ip.as_deref())
            .await?;
        match &req.grant {
            GrantRequest::AuthorizationCode {
                code,
                code_verifier,
                redirect_uri,
            } => {
                self.exchange_code(
                    &client,
                    code,
                    code_verifier,
                    redirect_uri,
                    req.ip.as_deref(),
                )
                .await
            }
            GrantRequest::RefreshToken {
                refresh_token,
                scope,
            } => {
                self.refresh(&client, refresh_token, scope, req.ip.as_deref())
                    .await
            }
            GrantRequest::ClientCredentials { scope } => {
                self.client_credentials(&client, scope, req.ip.as_deref())
                    .await
            }
            GrantRequest::DeviceCode { device_code } => {
                self.device_token(&client, device_code, req.ip.as_deref())
                    .await
            }
        }
    }

    async fn exchange_code(
        &self,
        client: &Client,
        code: &Option<String>,
        verifier: &Option<String>,
        redirect_uri: &Option<String>,
        ip: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(Error::UnauthorizedClient(
                "Unauthorized client: authorization_code is not registered".into(),
            ));
        }
        let code = required(code, "code")?;
        let verifier = required(verifier, "code_verifier")?;
        let redirect_uri = required(redirect_uri, "redirect_uri")?;
        let hash = TokenHash::of_presented(code)
            .ok_or_else(|| Error::invalid_grant("Invalid grant: authorization code is invalid"))?;
        let deps = &self.deps;
        let family = FamilyId::generate(deps.random.as_ref());
        let record = match deps.codes.redeem(&hash, family).await? {
            CodeRedemption::Redeemed(r) => r,
            CodeRedemption::NotFound => {
                return Err(Error::invalid_grant(
                    "Invalid grant: authorization code is invalid",
                ));
            }
            CodeRedemption::AlreadyRedeemed { family } => {
                if let Some(family) = family {
                    let now = deps.now();
                    let revoked = deps.tokens.revoke_family(family, now).await?;
                    deps.invalidate(&revoked).await?;
                    let ev = AuditEvent::new(AuditKind::TokenReuseDetected, now)
                        .client(&client.id)
                        .ip(ip)
                        .meta("grant", "authorization_code")
                        .meta("revoked", revoked.len());
                    deps.audit(ev).await;
                }
                return Err(Error::invalid_grant(
                    "Invalid grant: authorization code has already been used",
                ));
            }
        };
        let now = deps.now();
        let scope = authorization_code::validate_redeemed(
            &record,
            client,
            redirect_uri,
            CodeVerifier::parse(verifier),
            now,
        )?;
        let with_refresh = client.allows_grant(GrantType::RefreshToken);
        let mut response = self
            .issue(
                client,
                record.user_id,
                scope,
                Some(family),
                Some(record.auth_time),
                with_refresh,
                "authorization_code",
                ip,
            )
            .await?;
        if let (Some(nonce), Some(signer)) = (record.nonce, deps.id_tokens.as_ref()) {
            let claims = IdTokenClaims {
                iss: deps.config.issuer.clone(),
                sub: record.user_id.to_string(),
                aud: client.id.to_string(),
                iat: now.unix_timestamp(),
                exp: (now + deps.config.minter.ttls.access).unix_timestamp(),
                nonce: Some(nonce),
                auth_time: record.auth_time.unix_timestamp(),
            };
            response.id_token = Some(signer.sign(&claims)?);
        }
        Ok(response)
    }

    /// Mints an access token (and a refresh token when asked) and stores them together.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn issue(
        &self,
        client: &Client,
        user_id: UserId,
        scope: Scope,
        family: Option<FamilyId>,
        auth_time: Option<time::OffsetDateTime>,
        with_refresh: bool,
        grant: &str,
        ip: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let deps = &self.deps;
        let now = deps.now();
        let new = |kind| NewToken {
            kind,
            client_id: Some(client.id.clone()),
            user_id,
            scope,
            family_id: family,
            auth_time,
        };
        let (access, access_rec) =
            deps.config
                .minter
                .mint(new(TokenKind::Access), now, deps.random.as_ref());
        let mut rows = vec![access_rec];
        let refresh = with_refresh.then(|| {
            let (plain, rec) =
                deps.config
                    .minter
                    .mint(new(TokenKind::Refresh), now, deps.random.as_ref());
            rows.push(rec);
            plain
        });
        if deps.tokens.insert(&rows).await? == InsertOutcome::FamilyRevoked {
            return Err(Error::invalid_grant("Invalid grant: the grant was revoked"));
        }
        let ev = AuditEvent::new(AuditKind::TokenIssued, now)
            .user(user_id)
            .client(&client.id)
            .scope(scope)
            .ip(ip)
            .meta("grant", grant);
        deps.audit(ev).await;
        Ok(TokenResponse {
            access_token: access,
            expires_in: deps.config.minter.ttls.access.whole_seconds(),
            refresh_token: refresh,
            scope,
            id_token: None,
        })
    }

    async fn refresh(
        &self,
        client: &Client,
        token: &Option<String>,
        scope: &Option<String>,
        ip: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        if !client.allows_grant(GrantType::RefreshToken) {
            return Err(Error::UnauthorizedClient(
                "Unauthorized client: refresh_token is not registered".into(),
            ));
        }
        let token = required(token, "refresh_token")?;
        let requested = match scope.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(Scope::parse(s)?),
            None => None,
        };
        let hash = TokenHash::of_presented(token)
            .ok_or_else(|| Error::invalid_grant("Invalid grant: refresh token is invalid"))?;
        let deps = &self.deps;
        let now = deps.now();
        let blank = |kind| NewToken {
            kind,
            client_id: None,
            user_id: UserId(0),
            scope: Scope::NONE,
            family_id: None,
            auth_time: None,
        };
        let (access, new_access) =
            deps.config
                .minter
                .mint(blank(TokenKind::Access), now, deps.random.as_ref());
        let (refresh, new_refresh) =
            deps.config
                .minter
                .mint(blank(TokenKind::Refresh), now, deps.random.as_ref());
        let rotation = RefreshRotation {
            client_id: client.id.clone(),
            ceiling: client.ceiling(),
            requested,
            now,
            grace: deps.config.refresh_grace,
            new_access,
            new_refresh,
        };
        match deps.tokens.rotate_refresh(&hash, &rotation).await? {
            RotationDecision::Rotate { access: rec, .. } => {
                let ev = AuditEvent::new(AuditKind::TokenRefreshed, now)
                    .user(rec.user_id)
                    .client(&client.id)
                    .scope(rec.scope)
                    .ip(ip);
                deps.audit(ev).await;
                Ok(TokenResponse {
                    access_token: access,
                    expires_in: deps.config.minter.ttls.access.whole_seconds(),
                    refresh_token: Some(refresh),
                    scope: rec.scope,
                    id_token: None,
                })
            }
            RotationDecision::RevokeFamily { family, presented } => {
                let revoked = deps.tokens.revoke_family(family, now).await?;
                deps.invalidate(&revoked).await?;
                let ev = AuditEvent::new(AuditKind::TokenReuseDetected, now)
                    .user(presented.user_id)
                    .client(&client.id)
                    .ip(ip)
                    .meta("grant", "refresh_token")
                    .meta("family", family)
                    .meta("revoked", revoked.len());
                deps.audit(ev).await;
                Err(Error::invalid_grant(
                    "Invalid grant: refresh token has already been used",
                ))
            }
            RotationDecision::Reject(e) => Err(e),
        }
    }

    async fn client_credentials(
        &self,
        client: &Client,
        scope: &Option<String>,
        ip: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let requested = match scope.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(Scope::parse(s)?),
            None => None,
        };
        let scope = client_credentials::grant_scope(client, requested)?;
        self.issue(
            client,
            client.owner,
            scope,
            None,
            None,
            false,
            "client_credentials",
            ip,
        )
        .await
    }

    async fn device_token(
        &self,
        client: &Client,
        device_code: &Option<String>,
        ip: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        if !client.allows_grant(GrantType::DeviceCode) {
            return Err(Error::UnauthorizedClient(
                "Client not authorized for device flow".into(),
            ));
        }
        let code = required(device_code, "device_code")?;
        let hash = TokenHash::of_presented(code)
            .ok_or_else(|| Error::invalid_grant("Invalid grant: unknown device_code"))?;
        let deps = &self.deps;
        let poll = DevicePoll {
            client_id: client.id.clone(),
            now: deps.now(),
        };
        let grant = deps.devices.poll(&hash, &poll).await?.result?;
        let family = FamilyId::generate(deps.random.as_ref());
        let scope = grant.scope.trim_to_ceiling(client.ceiling());
        let with_refresh = client.allows_grant(GrantType::RefreshToken);
        self.issue(
            client,
            grant.user_id,
            scope,
            Some(family),
            Some(grant.auth_time),
            with_refresh,
            "device_code",
            ip,
        )
        .await
    }

    /// RFC 7009. Always `Ok(())` for unknown or foreign tokens; revoking a refresh token revokes
    /// its whole family.
    pub async fn revoke(
        &self,
        caller: RevokeCaller,
        token: Option<&str>,
        ip: Option<&str>,
    ) -> Result<(), Error> {
        let deps = &self.deps;
        let client = match &caller {
            RevokeCaller::Client { auth, origin } => {
                Some(self.client_for(auth, origin.as_deref(), ip).await?)
            }
            RevokeCaller::User(_) => None,
        };
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::invalid_request("Missing token parameter"))?;
        let Some(hash) = TokenHash::of_presented(token) else {
            return Ok(());
        };
        let Some(record) = deps.tokens.find(&hash).await? else {
            return Ok(());
        };
        let owned = match (&caller, &client) {
            (RevokeCaller::Client { .. }, Some(c)) => record.client_id.as_ref() == Some(&c.id),
            (RevokeCaller::User(u), _) => record.user_id == *u,
            _ => false,
        };
        if !owned {
            return Ok(());
        }
        let now = deps.now();
        let revoked = match (record.kind, record.family_id) {
            (TokenKind::Refresh, Some(family)) => deps.tokens.revoke_family(family, now).await?,
            _ => {
                deps.tokens.revoke(&hash, now).await?;
                vec![hash]
            }
        };
        deps.invalidate(&revoked).await?;
        let mut ev = AuditEvent::new(AuditKind::TokenRevoked, now)
            .user(record.user_id)
            .ip(ip)
            .meta("kind", record.kind.as_str());
        if let Some(c) = &record.client_id {
            ev = ev.client(c);
        }
        deps.audit(ev).await;
        Ok(())
    }

    /// Validates a bearer token: an active access token or API key. Served from the cache
    /// when it can be; the cache never outlives the token, and cache failures fall back to
    /// the store.
    pub async fn validate_bearer(&self, token: &str) -> Result<Bearer, Error> {
        let invalid = || Error::invalid_token("Invalid or expired token");
        let hash = TokenHash::of_presented(token).ok_or_else(invalid)?;
        let deps = &self.deps;
        let now = deps.now();
        let cached = deps.cache.get(&hash).await.ok().flatten();
        let record = match cached {
            Some(r) => r,
            None => {
                let r = deps.tokens.find(&hash).await?.ok_or_else(invalid)?;
                if r.is_active(now) && r.kind.is_bearer() {
                    let until = r.expires_at.map_or(now + deps.config.cache_ttl, |e| {
                        e.min(now + deps.config.cache_ttl)
                    });
                    let _ = deps.cache.put(&r, until).await;
                }
                r
            }
        };
        if !record.kind.is_bearer() || !record.is_active(now) {
            return Err(invalid());
        }
        Ok(Bearer { record })
    }

    /// The Buzz limit that applies to a bearer: the API key's own, or the consent's.
    pub async fn buzz_limit_of(&self, record: &TokenRecord) -> Result<Option<BuzzLimit>, Error> {
        Ok(match &record.client_id {
            None => record.buzz_limit.clone(),
            Some(client) => self
                .deps
                .consents
                .get(record.user_id, client)
                .await?
                .map(|c| c.buzz_limit),
        })
    }

    /// RFC 7662, for resource servers (confidential clients).
    pub async fn introspect(
        &self,
        auth: &ClientAuth,
        token: Option<&str>,
    ) -> Result<Introspection, Error> {
        let deps = &self.deps;
        let caller = deps.authenticate_client(auth).await?;
        caller.require_confidential()?;
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::invalid_request("Missing token parameter"))?;
        let inactive = Introspection {
            active: false,
            record: None,
            username: None,
            buzz_limit: None,
        };
        let Some(hash) = TokenHash::of_presented(token) else {
            return Ok(inactive);
        };
        let Some(record) = deps.tokens.find(&hash).await? else {
            return Ok(inactive);
        };
        if !record.is_active(deps.now()) {
            return Ok(inactive);
        }
        let Some(user) = deps
            .users
            .get(record.user_id)
            .await?
            .filter(|u| !u.is_banned())
        else {
            return Ok(inactive);
        };
        let buzz_limit = self.buzz_limit_of(&record).await?;
        Ok(Introspection {
            active: true,
            record: Some(record),
            username: Some(user.username.to_string()),
            buzz_limit,
        })
    }

    /// `/userinfo`: needs `UserRead`.
    pub async fn userinfo(&self, token: &str) -> Result<UserInfo, Error> {
        let bearer = self.validate_bearer(token).await?;
        bearer.require(Scope::USER_READ)?;
        let user = self
            .deps
            .users
            .get(bearer.user_id())
            .await?
            .filter(|u| !u.is_banned())
            .ok_or_else(|| Error::invalid_token("Invalid or expired token"))?;
        Ok(UserInfo {
            id: user.id,
            username: user.username.to_string(),
            picture: user.picture,
            email_verified: user.email.as_ref().map(|_| user.email_verified),
            email: user.email,
        })
    }

    /// `/api/v1/me`: who the bearer is and what it may do.
    pub async fn me(&self, token: &str) -> Result<Me, Error> {
        let bearer = self.validate_bearer(token).await?;
        let user = self
            .deps
            .users
            .get(bearer.user_id())
            .await?
            .filter(|u| !u.is_banned())
            .ok_or_else(|| Error::invalid_token("Invalid or expired token"))?;
        let buzz_limit = self.buzz_limit_of(&bearer.record).await?;
        Ok(Me {
            id: user.id,
            username: user.username.to_string(),
            token_scope: bearer.scope(),
            buzz_limit,
            subject: bearer.subject(),
        })
    }

    /// Revokes every token of (user, client) and drops them from caches.
    pub(crate) async fn revoke_user_client(
        &self,
        user: UserId,
        client: &ClientId,
    ) -> Result<usize, Error> {
        let revoked = self
            .deps
            .tokens
            .revoke_for_user_client(user, client, self.deps.now())
            .await?;
        self.deps.invalidate(&revoked).await?;
        Ok(revoked.len())
    }
}
