//! The token endpoint's grants, revocation, introspection, bearer validation and userinfo.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditKind};
use crate::buzz::BuzzLimit;
use crate::client::{AccessMode, Client, ClientAuth, GrantType};
use crate::consent::{self, Budgets};
use crate::error::Error;
use crate::grant::authorization_code::{self, CodeRedemption};
use crate::grant::client_credentials;
use crate::grant::device_code::DevicePoll;
use crate::grant::refresh_token::{RefreshRotation, RotationDecision};
use crate::ids::{ClientId, FamilyId, UserId};
use crate::pkce::CodeVerifier;
use crate::ports::{IdTokenClaims, InsertOutcome};
use crate::scope::{OidcScopes, RequestedScope, Scope};
use crate::token::{NewToken, TokenHash, TokenKind, TokenRecord, TokenResponse};
use crate::user::Role;

use super::Deps;
use super::caller::{Access, Caller, CallerService, Credentials};
use super::rate_limit::Bucket;

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

/// The claims `/userinfo` returns (`sub` is `id`); `None` where the token's OIDC scopes do
/// not release a claim or the user has no value for it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    pub id: UserId,
    /// Civitai's `username` (with `profile`).
    pub username: Option<String>,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
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

#[derive(Debug, Clone)]
pub struct TokenService {
    pub(crate) deps: Arc<Deps>,
}

/// Why a grant's tokens may not be issued after all, checked after the atomic take.
fn consent_gone() -> Error {
    Error::invalid_grant("Invalid grant: the user has revoked this app's access")
}

impl TokenService {
    pub fn new(deps: Arc<Deps>) -> Self {
        TokenService { deps }
    }

    /// Authenticates the client (failures throttled per address), counts the request in the
    /// client's bucket, and checks a browser `Origin` against a public client's list.
    async fn client_for(
        &self,
        auth: &ClientAuth,
        origin: Option<&str>,
        ip: Option<&str>,
    ) -> Result<Client, Error> {
        let deps = &self.deps;
        let client = deps.authenticate_client(auth, ip).await?;
        check_origin(deps, &client, origin, ip).await?;
        deps.check_rate(Bucket::TokenClient(&client.id)).await?;
        Ok(client)
    }

    /// `POST /token`, any grant.
    pub async fn token(&self, req: TokenRequest) -> Result<TokenResponse, Error> {
        let client = self
            .client_for(&req.client, req.origin.as_deref(), req.ip.as_deref())
            .await?;
        let ip = req.ip.as_deref();
        match &req.grant {
            GrantRequest::AuthorizationCode {
                code,
                code_verifier,
                redirect_uri,
            } => {
                self.exchange_code(&client, code, code_verifier, redirect_uri, ip)
                    .await
            }
            GrantRequest::RefreshToken {
                refresh_token,
                scope,
            } => self.refresh(&client, refresh_token, scope, ip).await,
            GrantRequest::ClientCredentials { scope } => {
                self.client_credentials(&client, scope, ip).await
            }
            GrantRequest::DeviceCode { device_code } => {
                self.device_token(&client, device_code, ip).await
            }
        }
    }

    /// The user tokens would act for, if the app's access mode admits them (SPEC 13: every
    /// way of getting a token). `disabled` is refused without a lookup; the user is loaded
    /// only when it matters (`testers`), and a banned user never gets tokens.
    async fn admit(&self, client: &Client, user: UserId) -> Result<(), Error> {
        client.check_enabled()?;
        if client.access_mode != AccessMode::Testers {
            return Ok(());
        }
        let user = self.deps.active_user(user).await?.ok_or_else(|| {
            Error::invalid_grant("Invalid grant: the user's account is not active")
        })?;
        client.admits_at_token(user.has_role(Role::Tester))
    }

    /// Whether (user, app) has a consent that covers a grant made at `granted_at` (see
    /// [`consent::covers_grant`]).
    async fn consent_stands(
        &self,
        user: UserId,
        client: &ClientId,
        granted_at: Option<OffsetDateTime>,
    ) -> Result<bool, Error> {
        let c = self.deps.consents.get(user, client).await?;
        Ok(consent::covers_grant(c.as_ref(), granted_at))
    }

    /// Tokens were written for a grant whose consent may have been revoked meanwhile: a
    /// revocation deletes the consent first and the tokens second, so either it saw our rows
    /// or we see that the consent is gone here. Then revoke what we wrote and refuse.
    async fn confirm_consent(
        &self,
        user: UserId,
        client: &Client,
        granted_at: Option<OffsetDateTime>,
        family: Option<FamilyId>,
    ) -> Result<(), Error> {
        if self.consent_stands(user, &client.id, granted_at).await? {
            return Ok(());
        }
        if let Some(family) = family {
            let revoked = self
                .deps
                .tokens
                .revoke_family(family, self.deps.now())
                .await?;
            self.deps.invalidate(&revoked).await?;
        }
        Err(consent_gone())
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
        self.admit(client, record.user_id).await?;
        if !self
            .consent_stands(record.user_id, &client.id, Some(record.issued_at))
            .await?
        {
            return Err(consent_gone());
        }
        let with_refresh = client.allows_grant(GrantType::RefreshToken);
        let issue = Issue {
            client,
            user_id: record.user_id,
            scope,
            family: Some(family),
            auth_time: Some(record.auth_time),
            with_refresh,
            grant: "authorization_code",
            ip,
            oidc: record.oidc,
        };
        // The code was taken by this request and no other: it answers with tokens. If a
        // replay of the code revoked the family before our rows were written, they are
        // refused by the family's tombstone: the tokens are issued and revoked at once, as
        // RFC 6749 §4.1.2 asks, and exactly one request ever sees a token response.
        let (mut response, _) = self.issue(issue).await?;
        self.confirm_consent(record.user_id, client, Some(record.issued_at), Some(family))
            .await?;
        // OIDC: an id_token when the request asked for `openid`, and (as Civitai does) when it
        // carried a nonce.
        let wants_id_token = record.nonce.is_some() || record.oidc.contains(OidcScopes::OPENID);
        if let (true, Some(signer)) = (wants_id_token, deps.id_tokens.as_ref()) {
            let mut claims = IdTokenClaims {
                iss: deps.config.issuer.clone(),
                sub: record.user_id.to_string(),
                aud: client.id.to_string(),
                iat: now.unix_timestamp(),
                exp: (now + deps.config.minter.ttls.access).unix_timestamp(),
                nonce: record.nonce,
                auth_time: record.auth_time.unix_timestamp(),
                name: None,
                preferred_username: None,
                picture: None,
                email: None,
                email_verified: None,
            };
            if record.oidc.contains(OidcScopes::PROFILE) || record.oidc.contains(OidcScopes::EMAIL)
            {
                let info = self.user_info(record.user_id, record.oidc).await?;
                claims.name = info.name;
                claims.preferred_username = info.preferred_username;
                claims.picture = info.picture;
                claims.email = info.email;
                claims.email_verified = info.email_verified;
            }
            response.id_token = Some(signer.sign(&claims)?);
        }
        Ok(response)
    }

    /// Mints an access token (and a refresh token when asked) and stores them together.
    /// Returns the response and whether the rows were stored (`FamilyRevoked`: a replay
    /// revoked the family first, so the tokens are dead on arrival).
    pub(crate) async fn issue(
        &self,
        issue: Issue<'_>,
    ) -> Result<(TokenResponse, InsertOutcome), Error> {
        let deps = &self.deps;
        let now = deps.now();
        let new = |kind| NewToken {
            kind,
            client_id: Some(issue.client.id.clone()),
            user_id: issue.user_id,
            scope: issue.scope,
            family_id: issue.family,
            auth_time: issue.auth_time,
            oidc: issue.oidc,
        };
        let (access, access_rec) =
            deps.config
                .minter
                .mint(new(TokenKind::Access), now, deps.random.as_ref());
        let mut rows = vec![access_rec];
        let refresh = issue.with_refresh.then(|| {
            let (plain, rec) =
                deps.config
                    .minter
                    .mint(new(TokenKind::Refresh), now, deps.random.as_ref());
            rows.push(rec);
            plain
        });
        let outcome = deps.tokens.insert(&rows).await?;
        let kind = match outcome {
            InsertOutcome::Inserted => AuditKind::TokenIssued,
            InsertOutcome::FamilyRevoked => AuditKind::TokenRevoked,
        };
        let ev = AuditEvent::new(kind, now)
            .user(issue.user_id)
            .client(&issue.client.id)
            .scope(issue.scope)
            .ip(issue.ip)
            .meta("grant", issue.grant);
        let ev = if outcome == InsertOutcome::FamilyRevoked {
            ev.meta("reason", "code_replayed_before_issue")
        } else {
            ev
        };
        deps.audit(ev).await;
        Ok((
            TokenResponse {
                access_token: access,
                expires_in: deps.config.minter.ttls.access.whole_seconds(),
                refresh_token: refresh,
                scope: issue.scope,
                id_token: None,
            },
            outcome,
        ))
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
            Some(s) => RequestedScope::parse_permissions(s)?,
            None => None,
        };
        let hash = TokenHash::of_presented(token)
            .ok_or_else(|| Error::invalid_grant("Invalid grant: refresh token is invalid"))?;
        let deps = &self.deps;
        client.check_enabled()?;
        if client.access_mode == AccessMode::Testers {
            // Only this mode needs to know the user before rotating.
            if let Some(row) = deps.tokens.find(&hash).await?
                && row.client_id.as_ref() == Some(&client.id)
            {
                self.admit(client, row.user_id).await?;
            }
        }
        let now = deps.now();
        let blank = |kind| NewToken {
            kind,
            client_id: None,
            user_id: UserId(0),
            scope: Scope::NONE,
            family_id: None,
            auth_time: None,
            oidc: OidcScopes::NONE,
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
                self.confirm_consent(rec.user_id, client, None, rec.family_id)
                    .await?;
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
            Some(s) => RequestedScope::parse_permissions(s)?,
            None => None,
        };
        let scope = client_credentials::grant_scope(client, requested)?;
        self.admit(client, client.owner).await?;
        let issue = Issue {
            client,
            user_id: client.owner,
            scope,
            family: None,
            auth_time: None,
            with_refresh: false,
            grant: "client_credentials",
            ip,
            oidc: OidcScopes::NONE,
        };
        Ok(self.issue(issue).await?.0)
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
        client.check_enabled()?;
        let deps = &self.deps;
        let poll = DevicePoll {
            client_id: client.id.clone(),
            now: deps.now(),
        };
        let grant = deps.devices.poll(&hash, &poll).await?.result?;
        self.admit(client, grant.user_id).await?;
        if !self
            .consent_stands(grant.user_id, &client.id, Some(grant.approved_at))
            .await?
        {
            return Err(consent_gone());
        }
        let family = FamilyId::generate(deps.random.as_ref());
        let scope = grant.scope.trim_to_ceiling(client.ceiling());
        let issue = Issue {
            client,
            user_id: grant.user_id,
            scope,
            family: Some(family),
            auth_time: Some(grant.auth_time),
            with_refresh: client.allows_grant(GrantType::RefreshToken),
            grant: "device_code",
            ip,
            oidc: OidcScopes::NONE,
        };
        let (response, _) = self.issue(issue).await?;
        self.confirm_consent(grant.user_id, client, Some(grant.approved_at), Some(family))
            .await?;
        Ok(response)
    }

    /// RFC 7009, for the client the token was issued to, or the signed-in user it belongs to
    /// (with the CSRF proof). Always `Ok(())` for unknown or foreign tokens; revoking a
    /// refresh token revokes its whole family. Counted per address before anything else.
    pub async fn revoke(&self, creds: &Credentials, token: Option<&str>) -> Result<(), Error> {
        let deps = &self.deps;
        let ip = creds.ip.as_deref();
        if let Some(ip) = ip {
            deps.check_rate(Bucket::RevokeIp(ip)).await?;
        }
        let caller = CallerService { deps: deps.clone() }.identify(creds).await?;
        let may_revoke: Box<dyn Fn(&TokenRecord) -> bool + Send + Sync> = match &caller {
            Caller::Client(c) => {
                check_origin(deps, c, creds.origin.as_deref(), ip).await?;
                let id = c.id.clone();
                Box::new(move |r| r.client_id.as_ref() == Some(&id))
            }
            Caller::Session(_) => {
                let user = caller.signed_in(Access::Write)?.user;
                Box::new(move |r| r.user_id == user)
            }
            Caller::Anonymous => return Err(Error::invalid_request("Missing client_id")),
            _ => return Err(Error::invalid_client(false)),
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
        if !may_revoke(&record) {
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
            .meta("kind", record.kind.as_str())
            .meta("by", caller.kind());
        if let Some(c) = &record.client_id {
            ev = ev.client(c);
        }
        deps.audit(ev).await;
        Ok(())
    }

    /// Validates a bearer token: an active access token or API key. Served from the cache
    /// when it can be; the cache never outlives the token, never takes back a token revoked
    /// after this read (its tombstone refuses the put), and cache failures fall back to the
    /// store.
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

    /// The Buzz budgets behind a bearer: the API key's own, or for an app token the consent's
    /// (and the owner's cap when the user owns the app). Fail closed: an app token without a
    /// consent (and not its owner's) may spend nothing (SPEC 13).
    pub async fn budgets_of(&self, record: &TokenRecord) -> Result<Budgets, Error> {
        let Some(client_id) = &record.client_id else {
            return Ok(Budgets::Within(
                record.buzz_limit.clone().unwrap_or_default(),
            ));
        };
        let deps = &self.deps;
        let consent = deps.consents.get(record.user_id, client_id).await?;
        let owner_limit = match deps.clients.get(client_id).await? {
            Some(c) if c.owner == record.user_id => Some(c.owner_buzz_limit),
            Some(_) => None,
            // The app is gone (deleted while this token was cached): nothing may be spent.
            None => return Ok(Budgets::NoConsent),
        };
        Ok(Budgets::for_app(
            consent.as_ref(),
            owner_limit.is_some(),
            &owner_limit.unwrap_or_default(),
        ))
    }

    /// RFC 7662. A resource server may introspect any token; any other confidential client
    /// only the tokens issued to itself; everything else is `{"active": false}`, as is a
    /// refresh token rotated out past the grace window.
    pub async fn introspect(
        &self,
        caller: &Caller,
        token: Option<&str>,
    ) -> Result<Introspection, Error> {
        let deps = &self.deps;
        let client = caller.client()?;
        client.require_confidential()?;
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
        let now = deps.now();
        let visible = client.is_resource_server || record.client_id.as_ref() == Some(&client.id);
        let rotated_out = record.kind == TokenKind::Refresh
            && record
                .rotated_at
                .is_some_and(|at| now - at >= deps.config.refresh_grace);
        if !visible || !record.is_active(now) || rotated_out {
            return Ok(inactive);
        }
        let Some(user) = deps.active_user(record.user_id).await? else {
            return Ok(inactive);
        };
        let buzz_limit = self.budgets_of(&record).await?.reported();
        Ok(Introspection {
            active: true,
            record: Some(record),
            username: Some(user.username.to_string()),
            buzz_limit,
        })
    }

    /// `/userinfo`: a bearer with `UserRead`. A token of an OpenID Connect grant gets the
    /// claims its OIDC scopes release (`sub` always; `profile`: name, preferred_username,
    /// picture and Civitai's `id` and `username`; `email`: email and email_verified); any
    /// other token, every claim (`UserRead` reads the whole profile).
    pub async fn userinfo(&self, caller: &Caller) -> Result<UserInfo, Error> {
        let bearer = caller.bearer(Scope::USER_READ)?;
        self.user_info(bearer.user_id(), bearer.record.oidc).await
    }

    /// The claims of `user` that `oidc` releases (see [`TokenService::userinfo`]).
    async fn user_info(&self, user: UserId, oidc: OidcScopes) -> Result<UserInfo, Error> {
        let user = self
            .deps
            .active_user(user)
            .await?
            .ok_or_else(|| Error::invalid_token("Invalid or expired token"))?;
        let everything = oidc.is_empty();
        let profile = everything || oidc.contains(OidcScopes::PROFILE);
        let email = everything || oidc.contains(OidcScopes::EMAIL);
        let username = user.username.to_string();
        Ok(UserInfo {
            id: user.id,
            username: profile.then(|| username.clone()),
            name: profile.then(|| username.clone()),
            preferred_username: profile.then_some(username),
            picture: user.picture.filter(|_| profile),
            email_verified: user
                .email
                .as_ref()
                .filter(|_| email)
                .map(|_| user.email_verified),
            email: user.email.filter(|_| email),
        })
    }

    /// `/api/v1/me`: who the bearer is and what it may do.
    pub async fn me(&self, caller: &Caller) -> Result<Me, Error> {
        let bearer = caller.bearer(Scope::NONE)?;
        let user = self
            .deps
            .active_user(bearer.user_id())
            .await?
            .ok_or_else(|| Error::invalid_token("Invalid or expired token"))?;
        let buzz_limit = self.budgets_of(&bearer.record).await?.reported();
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

/// What [`TokenService::issue`] mints.
#[derive(Debug, Clone)]
pub(crate) struct Issue<'a> {
    pub client: &'a Client,
    pub user_id: UserId,
    pub scope: Scope,
    pub family: Option<FamilyId>,
    pub auth_time: Option<OffsetDateTime>,
    pub with_refresh: bool,
    pub grant: &'static str,
    pub ip: Option<&'a str>,
    /// The OpenID Connect scopes the tokens carry (userinfo releases claims by them).
    pub oidc: OidcScopes,
}

/// The browser `Origin` check of SPEC 3.2 (public clients with registered origins), with an
/// audit event when it refuses.
pub(crate) async fn check_origin(
    deps: &Deps,
    client: &Client,
    origin: Option<&str>,
    ip: Option<&str>,
) -> Result<(), Error> {
    if let Err(e) = client.check_origin(origin) {
        let ev = AuditEvent::new(AuditKind::OriginRejected, deps.now())
            .client(&client.id)
            .ip(ip)
            .meta("origin", truncate(origin.unwrap_or(""), 256));
        deps.audit(ev).await;
        return Err(e);
    }
    Ok(())
}
