//! Who is calling: client credentials (Basic or body), bearer tokens, browser sessions, and
//! the axum extractors resource servers use (`BearerToken`, `RequireScope`).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine;
use buzzgate_domain::Scope;
use buzzgate_domain::client::{AuthMethod, ClientAuth};
use buzzgate_domain::error::Error;
use buzzgate_domain::ids::ClientId;
use buzzgate_domain::service::tokens::Bearer;
use buzzgate_domain::service::{Buzzgate, Caller, Credentials};

use crate::AppState;
use crate::error::ApiError;
use crate::params::{Params, form_decode};

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
    bearer_of(headers).ok_or_else(|| Error::NoCredentials("Missing bearer token".into()))
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
        .map(|(_, rest)| rest.trim());
    let body_id = params.get("client_id").filter(|s| !s.is_empty());
    let body_secret = params.get("client_secret");
    if let Some(b64) = basic {
        let bad = || Error::invalid_client(true);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| bad())?;
        let colon = raw.iter().position(|b| *b == b':').ok_or_else(bad)?;
        let id = form_decode(&raw[..colon]).ok_or_else(bad)?;
        let secret = form_decode(&raw[colon + 1..]).ok_or_else(bad)?;
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
    ClientAuth::from_fields(body_id, body_secret)
}

/// One cookie's value (every `Cookie` header, parsed by the `cookie` crate).
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    // Most API calls carry no cookie: no jar to build for them.
    if !headers.contains_key(header::COOKIE) {
        return None;
    }
    CookieJar::from_headers(headers)
        .get(name)
        .map(|c| c.value().to_owned())
}

/// The `Set-Cookie` of one of our cookies: `HttpOnly`, `SameSite=Lax`, `Secure` when the
/// issuer is https, living `max_age` seconds (0: deleted).
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> HeaderValue {
    let c = Cookie::build((name.to_owned(), value.to_owned()))
        .path(path.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(time::Duration::seconds(max_age))
        .build();
    HeaderValue::from_str(&c.encoded().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

/// The anti-CSRF header a script sends on session-authenticated JSON requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Whether the browser marked the request as coming from another site (`Sec-Fetch-Site:
/// cross-site`). Browsers that do not send the header are judged by the CSRF token alone.
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("cross-site"))
}

/// The session's CSRF token as the request presents it: the `X-CSRF-Token` header, else the
/// body's `csrf_token` field.
fn csrf_of(headers: &HeaderMap, body: Option<&Params>) -> Option<String> {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| body.and_then(|p| p.owned("csrf_token")))
}

/// Everything a request carries that could say who is calling, for the domain to judge
/// ([`buzzgate_domain::service::caller::CallerService::identify`]). `body` adds the form or
/// JSON fields: client credentials and the `csrf_token` field. The header `X-CSRF-Token` is
/// read either way.
pub fn credentials(
    headers: &HeaderMap,
    ip: &ClientIp,
    body: Option<&Params>,
) -> Result<Credentials, Error> {
    let empty = Params::default();
    let params = body.unwrap_or(&empty);
    let authorization = headers.get(header::AUTHORIZATION).is_some();
    let bearer = bearer_of(headers).map(str::to_owned);
    if authorization && bearer.is_none() && !is_basic(headers) {
        require_bearer(headers)?;
    }
    let client = if bearer.is_none() && (is_basic(headers) || params.has("client_id")) {
        Some(client_auth(headers, params)?)
    } else {
        None
    };
    Ok(Credentials {
        bearer,
        client,
        session: cookie(headers, SESSION_COOKIE),
        csrf_token: csrf_of(headers, body),
        cross_site: is_cross_site(headers),
        ip: ip.0.clone(),
        origin: headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    })
}

fn is_basic(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
}

/// Only the browser session's credentials (cookie, CSRF token, `Sec-Fetch-Site`): for the
/// pages and the consent form, whose fields (`client_id`, …) are not client credentials.
pub fn session_credentials(
    headers: &HeaderMap,
    ip: &ClientIp,
    body: Option<&Params>,
) -> Credentials {
    Credentials {
        session: cookie(headers, SESSION_COOKIE),
        csrf_token: csrf_of(headers, body),
        cross_site: is_cross_site(headers),
        ip: ip.0.clone(),
        ..Credentials::default()
    }
}

/// The caller of a page or the consent form: the signed-in user, or anonymous.
pub async fn session_caller(
    core: &Buzzgate,
    headers: &HeaderMap,
    ip: &ClientIp,
    body: Option<&Params>,
) -> Result<Caller, Error> {
    core.callers()
        .identify(&session_credentials(headers, ip, body))
        .await
}

/// The caller of a resource API: the bearer token, which must be there (401 otherwise).
pub async fn bearer_caller(core: &Buzzgate, headers: &HeaderMap) -> Result<Caller, Error> {
    let token = require_bearer(headers)?;
    core.callers()
        .identify(&Credentials {
            bearer: Some(token.to_owned()),
            ..Credentials::default()
        })
        .await
}

/// The caller behind `headers` (and the body's fields, when given), as the domain sees it.
pub async fn caller(
    core: &Buzzgate,
    headers: &HeaderMap,
    ip: &ClientIp,
    body: Option<&Params>,
) -> Result<Caller, Error> {
    core.callers()
        .identify(&credentials(headers, ip, body)?)
        .await
}

/// The caller's address: the socket peer, or, behind `trusted_proxies` proxies of the
/// operator's own, the address the outermost of them saw (RFC 7239 §7.4: each proxy appends
/// the address it received the request from, so only the last `trusted_proxies` entries of
/// `X-Forwarded-For` were written by someone we trust; anything left of them is whatever
/// the client chose to send).
#[derive(Debug, Clone, Default)]
pub struct ClientIp(pub Option<String>);

impl ClientIp {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The client address from the socket `peer` and the `X-Forwarded-For` headers, trusting
    /// the last `trusted_proxies` hops. A chain shorter than that, or an entry that is not an
    /// IP address, means the request did not come through every proxy: the peer is used.
    pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, trusted_proxies: usize) -> ClientIp {
        let from_peer = || ClientIp(peer.map(|p| p.to_string()));
        if trusted_proxies == 0 {
            return from_peer();
        }
        // Several X-Forwarded-For headers are one list, in order (RFC 9110 §5.3).
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let Some(index) = hops.len().checked_sub(trusted_proxies) else {
            return from_peer();
        };
        match hops[index].parse::<IpAddr>() {
            Ok(ip) => ClientIp(Some(ip.to_string())),
            Err(_) => from_peer(),
        }
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp::resolve(
            peer,
            &parts.headers,
            state.settings.trusted_proxies,
        ))
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
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="<BITS>"` and the description
/// naming the scope as the catalogue calls it. Write it as
/// `RequireScope<{ Scope::BUZZ_READ.bits() }>`; to name a scope of your own catalogue
/// instead, use [`RequireNamed`] (docs/scopes.md, "Protecting your own routes").
#[derive(Debug, Clone)]
pub struct RequireScope<const BITS: u64>(pub Bearer);

impl<S, const BITS: u64> FromRequestParts<S> for RequireScope<BITS>
where
    Buzzgate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let core = Buzzgate::from_ref(state);
        let BearerToken(bearer) = BearerToken::from_request_parts(parts, state).await?;
        bearer.require(&core.catalogue().need(Scope::from_bits_truncate(BITS)))?;
        Ok(RequireScope(bearer))
    }
}

/// A scope named in the catalogue, as a type: declare one with [`scope_name!`] and ask for it
/// with [`RequireNamed`].
pub trait ScopeName {
    /// A scope, alias or preset name of the catalogue (any case).
    const NAME: &'static str;
}

/// Declares a [`ScopeName`]: `scope_name!(Generations = "generations");`.
#[macro_export]
macro_rules! scope_name {
    ($(#[$meta:meta])* $vis:vis $ty:ident = $name:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $ty;
        impl $crate::ScopeName for $ty {
            const NAME: &'static str = $name;
        }
    };
}

/// A bearer token that holds the scope the catalogue calls `N::NAME` (every bit of it, for
/// a preset), else 403 `insufficient_scope` naming it. A name the catalogue does not define
/// is met by no token.
#[derive(Debug, Clone)]
pub struct RequireNamed<N: ScopeName>(pub Bearer, pub std::marker::PhantomData<N>);

impl<S, N> FromRequestParts<S> for RequireNamed<N>
where
    Buzzgate: FromRef<S>,
    S: Send + Sync,
    N: ScopeName + Send,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let core = Buzzgate::from_ref(state);
        let BearerToken(bearer) = BearerToken::from_request_parts(parts, state).await?;
        bearer.require(&core.catalogue().need_named(N::NAME))?;
        Ok(RequireNamed(bearer, std::marker::PhantomData))
    }
}

/// The caller of a JSON endpoint, from its headers alone: a bearer token, HTTP Basic client
/// credentials, or the session cookie (whose changes need the `X-CSRF-Token` header). What
/// each caller may do is the domain's decision (SPEC 13), not this extractor's.
#[derive(Debug, Clone)]
pub struct ApiCaller(pub Caller);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = ClientIp::from_request_parts(parts, state)
            .await
            .unwrap_or_default();
        Ok(ApiCaller(
            caller(&state.core, &parts.headers, &ip, None).await?,
        ))
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
        // `+` is a space; only the first colon splits (a secret may hold one, escaped or not).
        let a = client_auth(&headers(&basic("abc", "a+b:c")), &Params::default()).unwrap();
        assert_eq!(a.secret.as_deref(), Some("a b:c"));
        // Bytes that are not UTF-8, raw or escaped, on either side: invalid_client.
        for raw in [&b"abc:\xff"[..], b"\xffbc:x", b"abc:%FF", b"%C3:x"] {
            let v = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            );
            let e = client_auth(&headers(&v), &Params::default()).unwrap_err();
            assert_eq!(e, Error::invalid_client(true), "{raw:?}");
        }
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

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_is_ignored_without_trusted_proxies() {
        let peer = Some("10.0.0.9".parse().unwrap());
        let ip = ClientIp::resolve(peer, &xff(&["1.2.3.4"]), 0);
        assert_eq!(ip.as_deref(), Some("10.0.0.9"));
    }

    #[test]
    fn the_client_cannot_choose_its_address_behind_a_proxy() {
        let peer = Some("10.0.0.9".parse().unwrap());
        // The client sent "6.6.6.6"; our proxy appended the address it saw.
        let ip = ClientIp::resolve(peer, &xff(&["6.6.6.6, 203.0.113.7"]), 1);
        assert_eq!(ip.as_deref(), Some("203.0.113.7"));
        // Two proxies: the outer one's view is second from the right.
        let ip = ClientIp::resolve(peer, &xff(&["6.6.6.6, 203.0.113.7", "10.0.0.2"]), 2);
        assert_eq!(ip.as_deref(), Some("203.0.113.7"));
    }

    #[test]
    fn a_short_or_garbled_chain_falls_back_to_the_peer() {
        let peer = Some("10.0.0.9".parse().unwrap());
        assert_eq!(
            ClientIp::resolve(peer, &xff(&["203.0.113.7"]), 2).as_deref(),
            Some("10.0.0.9")
        );
        assert_eq!(
            ClientIp::resolve(peer, &xff(&["not-an-ip"]), 1).as_deref(),
            Some("10.0.0.9")
        );
        assert_eq!(
            ClientIp::resolve(peer, &HeaderMap::new(), 1).as_deref(),
            Some("10.0.0.9")
        );
    }

    #[test]
    fn sec_fetch_site_cross_site_is_flagged() {
        let mut h = HeaderMap::new();
        assert!(!is_cross_site(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(!is_cross_site(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(is_cross_site(&h));
    }

    #[test]
    fn csrf_comes_from_the_header_or_the_form_field() {
        let mut h = HeaderMap::new();
        h.insert(CSRF_HEADER, HeaderValue::from_static("from-header"));
        let c = credentials(&h, &ClientIp::default(), None).unwrap();
        assert_eq!(c.csrf_token.as_deref(), Some("from-header"));
        let p = Params(vec![("csrf_token".into(), "from-form".into())]);
        let c = credentials(&HeaderMap::new(), &ClientIp::default(), Some(&p)).unwrap();
        assert_eq!(c.csrf_token.as_deref(), Some("from-form"));
    }

    #[test]
    fn cookies_are_found_among_many() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; bg_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
