//! Who is calling: client credentials (Basic or body), bearer tokens, browser sessions, and
//! the axum extractors resource servers use (`BearerToken`, `RequireScope`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::{HeaderMap, header, request::Parts};
use base64::Engine;
use buzzgate_domain::Scope;
use buzzgate_domain::client::{AuthMethod, ClientAuth};
use buzzgate_domain::error::Error;
use buzzgate_domain::ids::ClientId;
use buzzgate_domain::service::tokens::Bearer;
use buzzgate_domain::service::{Buzzgate, Caller, Via};
use buzzgate_domain::user::{Role, Session, User};

use crate::AppState;
use crate::error::ApiError;
use crate::params::Params;

/// The session cookie. `HttpOnly`, `SameSite=Lax`, `Secure` over https.
pub const SESSION_COOKIE: &str = "bg_session";
/// The pre-login anti-CSRF cookie (double submit), for the login form only.
pub const LOGIN_CSRF_COOKIE: &str = "bg_login_csrf";

/// The value of the `Authorization: Bearer` header, if any.
pub fn bearer_of(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// The bearer token or `invalid_token` (401 with `WWW-Authenticate`).
pub fn require_bearer(headers: &HeaderMap) -> Result<&str, Error> {
    bearer_of(headers).ok_or_else(|| Error::invalid_token("Missing bearer token"))
}

fn form_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Client authentication of RFC 6749 §2.3: `client_secret_basic`, `client_secret_post`, or
/// `none`. Two methods at once, or a Basic `client_id` that differs from the body's, is
/// `invalid_request`.
pub fn client_auth(headers: &HeaderMap, params: &Params) -> Result<ClientAuth, Error> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim().to_owned());
    let body_id = params.get("client_id").filter(|s| !s.is_empty());
    let body_secret = params.get("client_secret");
    if let Some(b64) = basic {
        let bad = || Error::invalid_client(true);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (id, secret) = text.split_once(':').ok_or_else(bad)?;
        let id = form_decode(id).ok_or_else(bad)?;
        let secret = form_decode(secret).ok_or_else(bad)?;
        if body_secret.is_some() {
            return Err(Error::invalid_request(
                "Use one client authentication method, not both Basic and client_secret",
            ));
        }
        if body_id.is_some_and(|b| b != id) {
            return Err(Error::invalid_request(
                "client_id in the body differs from the Basic credentials",
            ));
        }
        let client_id = ClientId::parse(&id).ok_or_else(bad)?;
        return Ok(ClientAuth {
            client_id,
            secret: Some(secret),
            method: AuthMethod::Basic,
        });
    }
    let id = body_id.ok_or_else(|| Error::invalid_request("Missing client_id"))?;
    let client_id = ClientId::parse(id).ok_or_else(Error::unknown_client)?;
    Ok(match body_secret {
        Some(s) => ClientAuth {
            client_id,
            secret: Some(s.to_owned()),
            method: AuthMethod::Post,
        },
        None => ClientAuth {
            client_id,
            secret: None,
            method: AuthMethod::None,
        },
    })
}

/// One cookie's value.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The signed-in user behind the session cookie, if any.
pub async fn session(
    core: &Buzzgate,
    headers: &HeaderMap,
) -> Result<Option<(Session, User)>, Error> {
    match cookie(headers, SESSION_COOKIE) {
        Some(c) => core.sessions().resolve(c).await,
        None => Ok(None),
    }
}

/// The caller's address: the socket peer, or the first `X-Forwarded-For` hop when the server
/// is configured to trust its proxy.
#[derive(Debug, Clone)]
pub struct ClientIp(pub Option<String>);

impl ClientIp {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.settings.trust_forwarded
            && let Some(first) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 64)
        {
            return Ok(ClientIp(Some(first.to_owned())));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(ClientIp(peer))
    }
}

/// A validated bearer token (an active access token or personal API key), for any handler
/// of an embedding service whose state yields a [`Buzzgate`]. Rejects with the contract's
/// 401 `invalid_token` and `WWW-Authenticate`.
#[derive(Debug, Clone)]
pub struct BearerToken(pub Bearer);

impl<S> FromRequestParts<S> for BearerToken
where
    Buzzgate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let core = Buzzgate::from_ref(state);
        let token = require_bearer(&parts.headers)?;
        Ok(BearerToken(core.tokens().validate_bearer(token).await?))
    }
}

/// A bearer token that holds every bit of `BITS`, else 403 `insufficient_scope` with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="<BITS>"`. Write it as
/// `RequireScope<{ Scope::BUZZ_READ.bits() }>`.
#[derive(Debug, Clone)]
pub struct RequireScope<const BITS: u32>(pub Bearer);

impl<S, const BITS: u32> FromRequestParts<S> for RequireScope<BITS>
where
    Buzzgate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let BearerToken(bearer) = BearerToken::from_request_parts(parts, state).await?;
        bearer.require(Scope::from_bits_truncate(BITS))?;
        Ok(RequireScope(bearer))
    }
}

/// The caller of a management endpoint: a bearer token (OAuth token or API key) when an
/// `Authorization` header is present, else the browser session. Admin rights come only with a
/// session of an admin user.
#[derive(Debug, Clone)]
pub struct ApiCaller(pub Caller);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let core = &state.core;
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let token = require_bearer(&parts.headers)?;
            let bearer = core.tokens().validate_bearer(token).await?;
            return Ok(ApiCaller(Caller {
                user_id: bearer.user_id(),
                via: Via::Token {
                    client: bearer.record.client_id.clone(),
                    scope: bearer.scope(),
                },
                is_admin: false,
            }));
        }
        match session(core, &parts.headers).await? {
            Some((_, user)) => Ok(ApiCaller(Caller {
                user_id: user.id,
                via: Via::Session,
                is_admin: user.has_role(Role::Admin),
            })),
            None => Err(Error::invalid_token("Sign in or send a bearer token").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let h = headers(&basic("abc", "s%3Aecret"));
        let a = client_auth(&h, &Params::default()).unwrap();
        assert_eq!(a.client_id.as_str(), "abc");
        assert_eq!(a.secret.as_deref(), Some("s:ecret"));
        assert_eq!(a.method, AuthMethod::Basic);
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let h = headers(&basic("abc", "x"));
        let p = Params(vec![("client_secret".into(), "y".into())]);
        assert_eq!(client_auth(&h, &p).unwrap_err().code(), "invalid_request");
        let p = Params(vec![("client_id".into(), "other".into())]);
        assert_eq!(client_auth(&h, &p).unwrap_err().code(), "invalid_request");
    }

    #[test]
    fn malformed_basic_is_invalid_client_401() {
        let e = client_auth(&headers("Basic !!!"), &Params::default()).unwrap_err();
        assert_eq!(e, Error::invalid_client(true));
    }

    #[test]
    fn body_credentials_and_none() {
        let p = Params(vec![("client_id".into(), "abc".into())]);
        let a = client_auth(&HeaderMap::new(), &p).unwrap();
        assert_eq!(a.method, AuthMethod::None);
        let e = client_auth(&HeaderMap::new(), &Params::default()).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_of(&headers("bearer abc")), Some("abc"));
        assert_eq!(bearer_of(&headers("Bearer   ")), None);
        assert_eq!(bearer_of(&headers("Basic abc")), None);
    }

    #[test]
    fn cookies_are_found_among_many() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; bg_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
