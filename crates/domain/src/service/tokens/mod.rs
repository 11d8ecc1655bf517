//! The token endpoint's grants, revocation, introspection, bearer validation and userinfo.
//!
//! Here: the request types, the `TokenService`, the dispatch of `POST /token` to one file per
//! grant (`authorization_code`, `refresh_token`, `client_credentials`, `device_code`), and what
//! every grant shares (client authentication, the access-mode and consent checks, and `issue`,
//! which mints and stores a grant's tokens from one `Issue`). `revoke`, `introspect`,
//! `bearer` and `userinfo` hold the other endpoints.

mod authorization_code;
mod bearer;
mod client_credentials;
mod device_code;
mod introspect;
mod refresh_token;
mod revoke;
mod userinfo;

use std::sync::Arc;

use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditKind};
use crate::client::{AccessMode, Client, ClientAuth, GrantType};
use crate::consent;
use crate::error::Error;
use crate::ids::{ClientId, FamilyId, UserId};
use crate::ports::{InsertOutcome, OutcomeEvents};
use crate::scope::{OidcScopes, Scope};
use crate::token::{NewToken, TokenKind, TokenResponse};
use crate::user::Role;

use super::Deps;

pub use bearer::{Bearer, Subject};
pub use introspect::Introspection;
pub use revoke::Revoked;
pub use userinfo::{Me, UserInfo};

/// One call of the token endpoint, parsed. `origin` is the browser `Origin` header.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub client: ClientAuth,
    pub origin: Option<String>,
    pub ip: Option<String>,
    pub grant: GrantRequest,
    /// The `resource` values (RFC 8707), as sent; empty when none.
    pub resources: Vec<String>,
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

    /// The request of grant `kind` from its fields as sent (a form, a JSON body, an MCP tool's
    /// `body`): `field(name)` gives each parameter of RFC 6749 / RFC 8628 by its name.
    pub fn from_fields(kind: GrantType, field: impl Fn(&str) -> Option<String>) -> GrantRequest {
        match kind {
            GrantType::AuthorizationCode => GrantRequest::AuthorizationCode {
                code: field("code"),
                code_verifier: field("code_verifier"),
                redirect_uri: field("redirect_uri"),
            },
            GrantType::RefreshToken => GrantRequest::RefreshToken {
                refresh_token: field("refresh_token"),
                scope: field("scope"),
            },
            GrantType::ClientCredentials => GrantRequest::ClientCredentials {
                scope: field("scope"),
            },
            GrantType::DeviceCode => GrantRequest::DeviceCode {
                device_code: field("device_code"),
            },
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
    ) -> Result<Arc<Client>, Error> {
        let deps = &self.deps;
        let client = deps.authenticate_and_count(auth, ip, true).await?;
        check_origin(deps, &client, origin, ip).await?;
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
                self.exchange_code(
                    &client,
                    code,
                    code_verifier,
                    redirect_uri,
                    &req.resources,
                    ip,
                )
                .await
            }
            GrantRequest::RefreshToken {
                refresh_token,
                scope,
            } => {
                self.refresh(&client, refresh_token, scope, &req.resources, ip)
                    .await
            }
            GrantRequest::ClientCredentials { scope } => {
                self.client_credentials(&client, scope, &req.resources, ip)
                    .await
            }
            GrantRequest::DeviceCode { device_code } => {
                // A device grant names no resources: asking for one cannot be covered.
                crate::resource::narrow(&[], &crate::resource::parse_resources(&req.resources)?)?;
                self.device_token(&client, device_code, ip).await
            }
        }
    }

    /// The user tokens would act for, if the app's access mode admits them (SPEC 13: every
    /// way of getting a token). `disabled` is refused without a lookup; a banned (or unknown)
    /// user never gets tokens, whatever the mode: a code or device grant approved before a
    /// ban, a refresh, or an app's `client_credentials` acting for its banned owner
    /// (`AdminService::set_banned`). The user is read through the node's read cache.
    async fn admit(&self, client: &Client, user: UserId) -> Result<(), Error> {
        client.check_enabled()?;
        let user = self.deps.active_user(user).await?.ok_or_else(|| {
            Error::invalid_grant("Invalid grant: the user's account is not active")
        })?;
        if client.access_mode != AccessMode::Testers {
            return Ok(());
        }
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
            audience: match kind {
                TokenKind::Refresh => issue.grant_audience.clone(),
                _ => issue.audience.clone(),
            },
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
        let event = |kind| {
            AuditEvent::new(kind, now)
                .user(issue.user_id)
                .client(&issue.client.id)
                .scope(issue.scope)
                .ip(issue.ip)
                .meta("grant", issue.grant)
        };
        let events = OutcomeEvents {
            inserted: event(AuditKind::TokenIssued),
            family_revoked: event(AuditKind::TokenRevoked)
                .meta("reason", "code_replayed_before_issue"),
        };
        let (outcome, recorded) = if deps.config.audit_with_tokens {
            deps.tokens.insert_audited(&rows, &events).await?
        } else {
            (deps.tokens.insert(&rows).await?, false)
        };
        if !recorded {
            deps.audit(events.of(outcome).clone()).await;
        }
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
    /// The access token's audience (RFC 8707; empty: any).
    pub audience: Vec<String>,
    /// The refresh token's: every resource the grant covers, so a later refresh may pick.
    pub grant_audience: Vec<String>,
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
