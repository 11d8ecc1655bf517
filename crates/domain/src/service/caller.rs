//! Who is calling (SPEC 13). Every request is made by exactly one kind of caller, decided once
//! at the edge from the credentials it carried ([`CallerService::identify`]) and passed to the
//! services, which say which callers they admit through the methods of [`Caller`]. The table
//! of SPEC 13 lives here and only here; `docs/security.md` shows it with the test of each "no".

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::catalogue::{Catalogue, Need};
use crate::client::{Client, ClientAuth};
use crate::error::Error;
use crate::ids::{ClientId, UserId};

use crate::token::TokenHash;
use crate::user::Role;

use super::Deps;
use super::tokens::{Bearer, TokenService};

/// What a request carried, as the edge found it. Nothing here is trusted yet.
#[derive(Clone, Default)]
pub struct Credentials {
    /// `Authorization: Bearer …`.
    pub bearer: Option<String>,
    /// Client credentials (HTTP Basic, or `client_id` / `client_secret` in the body).
    pub client: Option<ClientAuth>,
    /// The session cookie's value.
    pub session: Option<String>,
    /// The session's anti-CSRF token as presented (form field `csrf_token` or header
    /// `X-CSRF-Token`). A JSON content type is not a proof of anything.
    pub csrf_token: Option<String>,
    /// The browser said the request comes from another site (`Sec-Fetch-Site: cross-site`).
    pub cross_site: bool,
    /// The caller's address, for throttling failed client authentication.
    pub ip: Option<String>,
    /// The browser's `Origin` header (checked against a public client's allowed origins).
    pub origin: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("Credentials")
            .field("bearer", &redacted(&self.bearer))
            .field("client", &self.client)
            .field("session", &redacted(&self.session))
            .field("csrf_token", &redacted(&self.csrf_token))
            .field("cross_site", &self.cross_site)
            .field("ip", &self.ip)
            .field("origin", &self.origin)
            .finish()
    }
}

/// A browser session of a signed-in user.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub user: UserId,
    /// The user holds the `admin` role.
    pub admin: bool,
    /// The session's id (hash): signing out deletes it.
    pub session: TokenHash,
    /// When the user signed in (OIDC `auth_time`).
    pub signed_in_at: OffsetDateTime,
    /// The session's anti-CSRF token, for the pages to embed in their forms.
    pub csrf_token: String,
    /// This request proved it comes from our own pages: it carried the session's CSRF token
    /// and the browser did not mark it cross-site. Every change needs it.
    pub proven: bool,
}

impl fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedIn")
            .field("user", &self.user)
            .field("admin", &self.admin)
            .field("signed_in_at", &self.signed_in_at)
            .field("proven", &self.proven)
            .finish_non_exhaustive()
    }
}

/// The one kind of caller behind a request (the rows of SPEC 13's table).
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// No credentials at all (or an expired session).
    Anonymous,
    /// A signed-in user (an admin is a signed-in user with the `admin` role).
    Session(SignedIn),
    /// A personal API key: the owner's account APIs within its scope, except minting keys.
    ApiKey(Bearer),
    /// An access token issued to a third-party app: resource APIs within its scope only.
    AppToken(Bearer),
    /// A client that authenticated at the token endpoint's standard (a resource server is a
    /// confidential client with the resource-server role).
    Client(Arc<Client>),
    /// In-process code with the operator's authority: the admin CLI, an embedder's trusted
    /// code, tests. It may act for one user (`acting_for`) and has admin rights.
    Operator { acting_for: Option<UserId> },
}

/// What an account endpoint does with the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

fn app_tokens_cannot() -> Error {
    Error::access_denied(
        "App tokens cannot manage the account: use a signed-in session or a personal API key",
    )
}

fn clients_cannot() -> Error {
    Error::access_denied(
        "Client credentials cannot manage an account: use a signed-in session or a personal API key",
    )
}

fn sign_in_first() -> Error {
    Error::NoCredentials("Sign in or send a personal API key".into())
}

fn unproven() -> Error {
    Error::access_denied(
        "Invalid or missing CSRF token (send the session's token as the csrf_token field or the X-CSRF-Token header)",
    )
}

impl Caller {
    /// An operator (admin CLI, trusted in-process code) with no user.
    /// The caller a validated bearer token is: an app's token, or a personal API key.
    pub fn of_bearer(bearer: Bearer) -> Caller {
        if bearer.record.client_id.is_some() {
            Caller::AppToken(bearer)
        } else {
            Caller::ApiKey(bearer)
        }
    }

    pub fn operator() -> Caller {
        Caller::Operator { acting_for: None }
    }

    /// An operator acting for `user` (e.g. `buzzgate client add --owner alice`).
    pub fn operator_for(user: UserId) -> Caller {
        Caller::Operator {
            acting_for: Some(user),
        }
    }

    /// The kind of caller, for audit metadata and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Session(s) if s.admin => "admin",
            Caller::Session(_) => "session",
            Caller::ApiKey(_) => "apiKey",
            Caller::AppToken(_) => "appToken",
            Caller::Client(c) if c.is_resource_server && c.is_confidential() => "resourceServer",
            Caller::Client(_) => "client",
            Caller::Operator { .. } => "operator",
        }
    }

    /// Whether the caller has admin rights (an admin's session, or an operator).
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Caller::Session(SignedIn { admin: true, .. }) | Caller::Operator { .. }
        )
    }

    /// The user's own account (apps, Connected Apps, API keys): a signed-in user (changes
    /// need the CSRF proof), or a personal API key with `UserRead` to read and `UserWrite` to
    /// change. App tokens and clients never.
    pub fn account(&self, access: Access, catalogue: &Catalogue) -> Result<UserId, Error> {
        match self {
            Caller::Session(s) => {
                if access == Access::Write && !s.proven {
                    return Err(unproven());
                }
                Ok(s.user)
            }
            Caller::ApiKey(key) => {
                key.require(&match access {
                    Access::Read => catalogue.need_profile(),
                    Access::Write => catalogue.need_account_write(),
                })?;
                Ok(key.user_id())
            }
            Caller::AppToken(_) => Err(app_tokens_cannot()),
            Caller::Client(_) => Err(clients_cannot()),
            Caller::Operator {
                acting_for: Some(u),
            } => Ok(*u),
            Caller::Operator { acting_for: None } => Err(Error::invalid_request(
                "An operator must name the user it acts for",
            )),
            Caller::Anonymous => Err(sign_in_first()),
        }
    }

    /// What only a person at our own pages may do: mint API keys, answer consent, approve a
    /// device, sign out. A signed-in user (changes need the CSRF proof); never a token.
    pub fn signed_in(&self, access: Access) -> Result<&SignedIn, Error> {
        match self {
            Caller::Session(s) if access == Access::Write && !s.proven => Err(unproven()),
            Caller::Session(s) => Ok(s),
            Caller::ApiKey(_) => Err(Error::access_denied(
                "Only a signed-in session may do this, not an API key",
            )),
            Caller::AppToken(_) => Err(app_tokens_cannot()),
            Caller::Client(_) => Err(clients_cannot()),
            Caller::Operator { .. } | Caller::Anonymous => {
                Err(Error::NoCredentials("Sign in first".into()))
            }
        }
    }

    /// Minting a personal API key: a signed-in user with the CSRF proof, or an operator acting
    /// for the user. A token must never mint a longer-lived credential for itself.
    pub fn key_minter(&self) -> Result<UserId, Error> {
        match self {
            Caller::Operator {
                acting_for: Some(u),
            } => Ok(*u),
            Caller::ApiKey(_) => Err(Error::access_denied(
                "API keys can only be created from a signed-in session",
            )),
            other => other.signed_in(Access::Write).map(|s| s.user),
        }
    }

    /// Admin APIs (verify apps, access modes, credits, audit): an admin's session (changes
    /// need the CSRF proof) or an operator. API keys and tokens never, whatever their scope.
    pub fn admin(&self, access: Access) -> Result<(), Error> {
        match self {
            Caller::Operator { .. } => Ok(()),
            Caller::Session(s) if s.admin => {
                if access == Access::Write && !s.proven {
                    Err(unproven())
                } else {
                    Ok(())
                }
            }
            Caller::Anonymous => Err(sign_in_first()),
            _ => Err(Error::access_denied("Administrators only")),
        }
    }

    /// Resource APIs (userinfo, `/api/v1/me`, Buzz balance, an app's own limits): a bearer
    /// token (app token or API key) that meets `need`.
    pub fn bearer(&self, need: &Need) -> Result<&Bearer, Error> {
        match self {
            Caller::ApiKey(b) | Caller::AppToken(b) => {
                b.require(need)?;
                Ok(b)
            }
            Caller::Anonymous => Err(Error::NoCredentials("Missing bearer token".into())),
            _ => Err(Error::invalid_token("This endpoint takes a bearer token")),
        }
    }

    /// An authenticated client (introspection of its own tokens, revocation).
    pub fn client(&self) -> Result<&Client, Error> {
        match self {
            Caller::Client(c) => Ok(c),
            _ => Err(Error::invalid_client(false)),
        }
    }

    /// A resource server: a confidential client with the resource-server role (introspect any
    /// token, spend, refund its own spends).
    pub fn resource_server(&self) -> Result<&Client, Error> {
        let c = self.client()?;
        c.require_confidential()?;
        if !c.is_resource_server {
            return Err(Error::UnauthorizedClient(
                "Client does not have the resource-server role".into(),
            ));
        }
        Ok(c)
    }

    /// The app a token caller belongs to (a token of an app may never change that app's
    /// own consent cap).
    pub fn token_client(&self) -> Option<&ClientId> {
        match self {
            Caller::AppToken(b) => b.record.client_id.as_ref(),
            _ => None,
        }
    }
}

/// Turns credentials into a [`Caller`].
#[derive(Debug, Clone)]
pub struct CallerService {
    pub(crate) deps: Arc<Deps>,
}

impl CallerService {
    /// One caller per request, in this order: a bearer token (an invalid one is
    /// `invalid_token`, never a fallback to the session), client credentials (a failure is
    /// `invalid_client` and counts against the address), the session cookie (an expired or
    /// unknown session is anonymous), else anonymous.
    pub async fn identify(&self, creds: &Credentials) -> Result<Caller, Error> {
        let deps = &self.deps;
        if let Some(token) = creds.bearer.as_deref() {
            let bearer = TokenService::new(deps.clone())
                .validate_bearer(token)
                .await?;
            return Ok(Caller::of_bearer(bearer));
        }
        if let Some(auth) = &creds.client {
            let client = deps.authenticate_client(auth, creds.ip.as_deref()).await?;
            return Ok(Caller::Client(client));
        }
        let Some(cookie) = creds.session.as_deref() else {
            return Ok(Caller::Anonymous);
        };
        let sessions = super::sessions::SessionService { deps: deps.clone() };
        let Some((session, user)) = sessions.resolve(cookie).await? else {
            return Ok(Caller::Anonymous);
        };
        let proven = !creds.cross_site && session.check_csrf(creds.csrf_token.as_deref()).is_ok();
        Ok(Caller::Session(SignedIn {
            user: user.id,
            admin: user.has_role(Role::Admin),
            session: session.id_hash,
            signed_in_at: session.created_at,
            csrf_token: session.csrf_token,
            proven,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TokenId;
    use crate::token::{TokenKind, TokenRecord};
    use time::macros::datetime;

    use crate::scope::Scope;

    fn civitai() -> Catalogue {
        Catalogue::civitai()
    }

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

    fn bearer(client: Option<&str>, scope: Scope) -> Bearer {
        Bearer {
            record: TokenRecord {
                id: TokenId(uuid::Uuid::nil()),
                hash: TokenHash([1; 32]),
                kind: if client.is_some() {
                    TokenKind::Access
                } else {
                    TokenKind::ApiKey
                },
                client_id: client.map(|c| ClientId::parse(c).unwrap()),
                user_id: UserId(7),
                scope,
                family_id: None,
                name: None,
                buzz_limit: None,
                issued_at: T0,
                expires_at: None,
                revoked_at: None,
                rotated_at: None,
                auth_time: None,
                oidc: Default::default(),
                audience: Vec::new(),
            },
        }
    }

    fn session(admin: bool, proven: bool) -> Caller {
        Caller::Session(SignedIn {
            user: UserId(7),
            admin,
            session: TokenHash([2; 32]),
            signed_in_at: T0,
            csrf_token: "t".into(),
            proven,
        })
    }

    fn client(resource_server: bool) -> Caller {
        let mut c = crate::grant::fixtures::confidential("rs");
        c.is_resource_server = resource_server;
        Caller::Client(Arc::new(c))
    }

    #[test]
    fn a_session_manages_its_account_but_changes_need_the_csrf_proof() {
        assert_eq!(
            session(false, false).account(Access::Read, &civitai()),
            Ok(UserId(7))
        );
        assert_eq!(
            session(false, true).account(Access::Write, &civitai()),
            Ok(UserId(7))
        );
        assert_eq!(
            session(false, false)
                .account(Access::Write, &civitai())
                .unwrap_err()
                .code(),
            "access_denied"
        );
    }

    #[test]
    fn an_api_key_needs_user_read_and_user_write() {
        let key = Caller::ApiKey(bearer(None, Scope::USER_READ));
        assert_eq!(key.account(Access::Read, &civitai()), Ok(UserId(7)));
        assert_eq!(
            key.account(Access::Write, &civitai()),
            Err(Error::InsufficientScope {
                required: Scope::USER_WRITE,
                name: "UserWrite".into()
            })
        );
        let key = Caller::ApiKey(bearer(None, Scope::USER_WRITE));
        assert_eq!(
            key.account(Access::Read, &civitai()).unwrap_err().code(),
            "insufficient_scope"
        );
        let key = Caller::ApiKey(bearer(None, Scope::FULL));
        assert_eq!(key.account(Access::Write, &civitai()), Ok(UserId(7)));
        assert_eq!(key.key_minter().unwrap_err().code(), "access_denied");
        assert_eq!(key.admin(Access::Read).unwrap_err().code(), "access_denied");
    }

    #[test]
    fn an_app_token_never_manages_the_account_whatever_its_scope() {
        let token = Caller::AppToken(bearer(Some("app"), Scope::FULL));
        for access in [Access::Read, Access::Write] {
            let e = token.account(access, &civitai()).unwrap_err();
            assert_eq!(e.code(), "access_denied");
            assert!(e.description().contains("App tokens cannot manage"));
        }
        assert!(token.signed_in(Access::Read).is_err());
        assert!(token.key_minter().is_err());
        assert!(token.admin(Access::Read).is_err());
        assert!(token.resource_server().is_err());
        assert_eq!(
            token
                .bearer(&civitai().need(Scope::BUZZ_READ))
                .unwrap()
                .user_id(),
            UserId(7)
        );
    }

    #[test]
    fn clients_and_resource_servers_never_manage_accounts() {
        for c in [client(false), client(true)] {
            assert_eq!(
                c.account(Access::Read, &civitai()).unwrap_err().code(),
                "access_denied"
            );
            assert!(c.admin(Access::Read).is_err());
            assert!(c.bearer(&Need::nothing()).is_err());
        }
        assert!(client(true).resource_server().is_ok());
        assert_eq!(
            client(false).resource_server().unwrap_err().code(),
            "unauthorized_client"
        );
        assert_eq!(client(true).kind(), "resourceServer");
    }

    #[test]
    fn admin_apis_need_an_admin_session_with_proof_or_an_operator() {
        assert!(session(true, true).admin(Access::Write).is_ok());
        assert!(session(true, false).admin(Access::Read).is_ok());
        assert!(session(true, false).admin(Access::Write).is_err());
        assert!(session(false, true).admin(Access::Write).is_err());
        assert!(Caller::operator().admin(Access::Write).is_ok());
        assert_eq!(
            Caller::Anonymous.admin(Access::Read).unwrap_err().code(),
            "invalid_token"
        );
    }

    #[test]
    fn anonymous_callers_are_asked_to_sign_in() {
        assert_eq!(
            Caller::Anonymous
                .account(Access::Read, &civitai())
                .unwrap_err()
                .code(),
            "invalid_token"
        );
        assert!(Caller::Anonymous.bearer(&Need::nothing()).is_err());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let creds = Credentials {
            bearer: Some("civitai_secret".into()),
            session: Some("bgs_cookie".into()),
            csrf_token: Some("csrf".into()),
            ..Default::default()
        };
        let text = format!("{creds:?}");
        assert!(!text.contains("secret") && !text.contains("cookie") && !text.contains("\"csrf\""));
        let text = format!("{:?}", session(false, true));
        assert!(!text.contains("csrf_token"));
    }
}
