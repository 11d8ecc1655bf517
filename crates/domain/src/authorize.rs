//! Turning raw authorize parameters into a validated authorization request, in the order of
//! SPEC 3.1: client and redirect URI first (never redirected), then, for a signed-in user, the
//! access mode (JSON 403), then everything else (redirected with `error`, `state`, `iss`).

use serde::{Deserialize, Serialize};
use url::Url;

use crate::catalogue::Catalogue;
use crate::client::{Client, GrantType};
use crate::error::Error;
use crate::ids::ClientId;
use crate::pkce::{CodeChallenge, CodeChallengeMethod};
use crate::scope::{OidcScopes, Scope};

/// The parameters as they arrived (query on GET, form on POST). Duplicates are the HTTP
/// layer's to refuse before this point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    /// `resource` (RFC 8707), repeatable; empty when none was sent.
    pub resources: Vec<String>,
}

/// A request that passed every check: the consent page and code issuance work from this.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizationRequest {
    pub client_id: ClientId,
    /// As sent (a loopback URI keeps its port); the code binds to it.
    pub redirect_uri: String,
    /// What the client asked for, before trimming.
    pub requested_scope: Scope,
    /// Trimmed to the ceiling, with UserRead: what the consent page shows and the code carries.
    pub scope: Scope,
    /// The OpenID Connect scopes asked for (`openid`, `profile`, `email`, `offline_access`).
    pub oidc: OidcScopes,
    pub state: String,
    pub code_challenge: CodeChallenge,
    pub nonce: Option<String>,
    /// The resources (RFC 8707) the token will be for; the code carries them.
    pub resources: Vec<String>,
}

/// Where errors may be sent once the redirect URI is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTarget {
    pub redirect_uri: String,
    pub state: Option<String>,
}

/// An error the client learns about through its redirect URI (SPEC 3.1 step 4).
#[derive(Debug, Clone, PartialEq)]
pub struct RedirectError {
    pub target: RedirectTarget,
    pub error: Error,
}

impl RedirectError {
    /// `redirect_uri?error=…&error_description=…&state=…&iss=…`.
    pub fn location(&self, issuer: &str) -> String {
        let desc = self.error.description();
        let mut params: Vec<(&str, &str)> =
            vec![("error", self.error.code()), ("error_description", &desc)];
        if let Some(state) = &self.target.state {
            params.push(("state", state));
        }
        params.push(("iss", issuer));
        append_query(&self.target.redirect_uri, &params)
    }
}

/// Printable ASCII (RFC 6749 VSCHAR, 0x20–0x7E), bounded: what `state` and `nonce` may hold.
fn is_vschar(s: &str, max: usize) -> bool {
    s.len() <= max && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Step 1: the client and the redirect URI. Failures are JSON 400 and never redirect, since
/// an unverified redirect URI would make this server an open redirector.
pub fn resolve_client<'c>(
    params: &AuthorizeParams,
    client: Option<&'c Client>,
) -> Result<(&'c Client, RedirectTarget), Error> {
    if present(&params.client_id).is_none() {
        return Err(Error::invalid_request("Missing client_id"));
    }
    let client = client.ok_or_else(Error::unknown_client)?;
    let redirect_uri = present(&params.redirect_uri)
        .filter(|uri| client.match_redirect_uri(uri).is_some())
        .ok_or_else(|| Error::invalid_request("redirect_uri does not match any registered URI"))?;
    // A state that is not VSCHAR is not echoed back (it could inject into the redirect).
    let state = present(&params.state)
        .filter(|s| is_vschar(s, 1024))
        .map(str::to_owned);
    Ok((
        client,
        RedirectTarget {
            redirect_uri: redirect_uri.to_owned(),
            state,
        },
    ))
}

/// The parameter id the client used, for looking it up before [`resolve_client`].
pub fn client_id_param(params: &AuthorizeParams) -> Option<ClientId> {
    present(&params.client_id).and_then(ClientId::parse)
}

/// Steps 4 and 5: everything else, once the client, redirect URI, user and access mode are
/// settled. Errors here go back to the client through its redirect URI.
pub fn validate(
    params: &AuthorizeParams,
    client: &Client,
    target: &RedirectTarget,
    catalogue: &Catalogue,
) -> Result<AuthorizationRequest, RedirectError> {
    let fail = |error: Error| RedirectError {
        target: target.clone(),
        error,
    };
    check_response_type(params).map_err(fail)?;
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(fail(Error::UnauthorizedClient(
            "Client is not registered for the authorization_code grant".into(),
        )));
    }
    let code_challenge = check_pkce(params).map_err(fail)?;
    let state = check_state(params).map_err(fail)?;
    let nonce = check_nonce(params).map_err(fail)?;
    let resources = crate::resource::parse_resources(&params.resources).map_err(fail)?;
    let requested = match present(&params.scope) {
        None => {
            return Err(fail(Error::invalid_scope(
                "Invalid scope: scope is required",
            )));
        }
        Some(s) => catalogue.parse_request(s).map_err(|e| fail(e.into()))?,
    };
    let requested_scope = requested.scope;
    Ok(AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri: target.redirect_uri.clone(),
        requested_scope,
        scope: requested_scope.trim_to_ceiling(client.ceiling(), catalogue.always_granted()),
        oidc: requested.oidc,
        state,
        code_challenge,
        nonce,
        resources,
    })
}

/// What a front without the client registry can check of an authorization request (the
/// proxy of docs/mcp.md, before it redirects to its upstream): `client_id` and
/// `redirect_uri` present, `response_type=code`, PKCE with S256 and a well-formed
/// challenge, a printable `state` (and `nonce`). The scope and the redirect URI's
/// registration are the upstream's to judge.
pub fn check_without_client(params: &AuthorizeParams) -> Result<(), Error> {
    if present(&params.client_id).is_none() {
        return Err(Error::invalid_request("Missing client_id"));
    }
    if present(&params.redirect_uri).is_none() {
        return Err(Error::invalid_request("Missing redirect_uri"));
    }
    check_response_type(params)?;
    check_pkce(params)?;
    check_state(params)?;
    check_nonce(params)?;
    crate::resource::parse_resources(&params.resources)?;
    Ok(())
}

fn check_response_type(params: &AuthorizeParams) -> Result<(), Error> {
    match present(&params.response_type) {
        None => Err(Error::invalid_request("Missing response_type")),
        Some("code") => Ok(()),
        Some(_) => Err(Error::UnsupportedResponseType(
            "Only response_type=code is supported".into(),
        )),
    }
}

fn check_pkce(params: &AuthorizeParams) -> Result<CodeChallenge, Error> {
    let (Some(challenge), Some(method)) = (
        present(&params.code_challenge),
        present(&params.code_challenge_method),
    ) else {
        return Err(Error::invalid_request(
            "PKCE required: provide code_challenge and code_challenge_method=S256",
        ));
    };
    CodeChallengeMethod::parse(method)?;
    CodeChallenge::parse(challenge)
}

fn check_state(params: &AuthorizeParams) -> Result<String, Error> {
    match present(&params.state) {
        None => Err(Error::invalid_request("state parameter is required")),
        Some(s) if !is_vschar(s, 1024) => Err(Error::invalid_request(
            "state must be at most 1024 printable ASCII characters",
        )),
        Some(s) => Ok(s.to_owned()),
    }
}

fn check_nonce(params: &AuthorizeParams) -> Result<Option<String>, Error> {
    match present(&params.nonce) {
        Some(n) if !is_vschar(n, 512) => Err(Error::invalid_request(
            "nonce must be at most 512 printable ASCII characters",
        )),
        n => Ok(n.map(str::to_owned)),
    }
}

/// Appends parameters to a URI's query, keeping what is already there (a registered redirect
/// URI may carry a query of its own).
pub fn append_query(base: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(base) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            url.into()
        }
        // Registered URIs always parse; keep a defined answer anyway.
        Err(_) => {
            let sep = if base.contains('?') { '&' } else { '?' };
            let q: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect();
            format!("{base}{sep}{}", q.join("&"))
        }
    }
}

fn encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// The success redirect: `redirect_uri?code=…&state=…&iss=…`.
pub fn success_location(req: &AuthorizationRequest, code: &str, issuer: &str) -> String {
    append_query(
        &req.redirect_uri,
        &[("code", code), ("state", &req.state), ("iss", issuer)],
    )
}

/// The user said no: `error=access_denied` with state and iss.
pub fn denied_location(req: &AuthorizationRequest, issuer: &str) -> String {
    RedirectError {
        target: RedirectTarget {
            redirect_uri: req.redirect_uri.clone(),
            state: Some(req.state.clone()),
        },
        error: Error::access_denied("The user denied the authorization request"),
    }
    .location(issuer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::fixtures::{confidential, public};
    use crate::pkce::CodeVerifier;
    use crate::ports::SeededRandom;

    fn challenge() -> String {
        CodeChallenge::from_verifier(&CodeVerifier::generate(&SeededRandom::new(1)))
            .as_str()
            .to_owned()
    }

    fn params() -> AuthorizeParams {
        AuthorizeParams {
            response_type: Some("code".into()),
            client_id: Some("app".into()),
            redirect_uri: Some("https://app.example.com/cb".into()),
            scope: Some("114689".into()),
            state: Some("xyz".into()),
            code_challenge: Some(challenge()),
            code_challenge_method: Some("S256".into()),
            nonce: None,
            resources: Vec::new(),
        }
    }

    fn run(p: &AuthorizeParams) -> Result<AuthorizationRequest, Error> {
        let c = confidential("app");
        let (c, target) = resolve_client(p, Some(&c))?;
        validate(p, c, &target, &Catalogue::civitai()).map_err(|e| e.error)
    }

    #[test]
    fn a_complete_request_validates() {
        let r = run(&params()).unwrap();
        assert_eq!(r.scope, Scope::AI_SERVICES);
        assert_eq!(r.state, "xyz");
        assert_eq!(r.redirect_uri, "https://app.example.com/cb");
    }

    #[test]
    fn missing_client_id_is_invalid_request_json() {
        let p = AuthorizeParams {
            client_id: None,
            ..params()
        };
        assert_eq!(
            resolve_client(&p, None).unwrap_err(),
            Error::invalid_request("Missing client_id")
        );
    }

    #[test]
    fn unknown_client_is_invalid_client_json() {
        assert_eq!(
            resolve_client(&params(), None).unwrap_err().code(),
            "invalid_client"
        );
    }

    #[test]
    fn unregistered_or_missing_redirect_uri_is_invalid_request_never_redirected() {
        let c = confidential("app");
        for uri in [
            None,
            Some("https://evil.example.com/cb".to_owned()),
            Some("https://app.example.com/cb/x".to_owned()),
        ] {
            let p = AuthorizeParams {
                redirect_uri: uri,
                ..params()
            };
            assert_eq!(
                resolve_client(&p, Some(&c)).unwrap_err().code(),
                "invalid_request"
            );
        }
    }

    #[test]
    fn loopback_redirect_with_any_port_is_accepted_and_kept_as_sent() {
        let p = AuthorizeParams {
            redirect_uri: Some("http://127.0.0.1:53111/cb".into()),
            ..params()
        };
        assert_eq!(run(&p).unwrap().redirect_uri, "http://127.0.0.1:53111/cb");
    }

    #[test]
    fn unsupported_response_type_is_redirected() {
        let p = AuthorizeParams {
            response_type: Some("token".into()),
            ..params()
        };
        let c = confidential("app");
        let (c, t) = resolve_client(&p, Some(&c)).unwrap();
        let e = validate(&p, c, &t, &Catalogue::civitai()).unwrap_err();
        assert_eq!(e.error.code(), "unsupported_response_type");
        let loc = e.location("https://auth.example.com");
        assert!(loc.starts_with("https://app.example.com/cb?error=unsupported_response_type"));
        assert!(loc.contains("state=xyz"));
        assert!(loc.contains("iss=https%3A%2F%2Fauth.example.com"));
    }

    #[test]
    fn missing_response_type_is_invalid_request() {
        assert_eq!(
            run(&AuthorizeParams {
                response_type: None,
                ..params()
            })
            .unwrap_err()
            .code(),
            "invalid_request"
        );
    }

    #[test]
    fn pkce_is_mandatory_even_for_confidential_clients() {
        let e = run(&AuthorizeParams {
            code_challenge: None,
            ..params()
        })
        .unwrap_err();
        assert_eq!(
            e,
            Error::invalid_request(
                "PKCE required: provide code_challenge and code_challenge_method=S256"
            )
        );
        let e = run(&AuthorizeParams {
            code_challenge_method: None,
            ..params()
        })
        .unwrap_err();
        assert_eq!(e.code(), "invalid_request");
    }

    #[test]
    fn plain_pkce_is_refused() {
        let e = run(&AuthorizeParams {
            code_challenge_method: Some("plain".into()),
            ..params()
        })
        .unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        assert!(e.description().contains("S256"));
    }

    #[test]
    fn malformed_challenge_is_refused_at_authorize() {
        let e = run(&AuthorizeParams {
            code_challenge: Some("abc".into()),
            ..params()
        })
        .unwrap_err();
        assert_eq!(e.code(), "invalid_request");
    }

    #[test]
    fn missing_or_unprintable_state_is_invalid_request() {
        assert_eq!(
            run(&AuthorizeParams {
                state: None,
                ..params()
            })
            .unwrap_err(),
            Error::invalid_request("state parameter is required")
        );
        assert_eq!(
            run(&AuthorizeParams {
                state: Some("a\u{7f}b".into()),
                ..params()
            })
            .unwrap_err()
            .code(),
            "invalid_request"
        );
        assert_eq!(
            run(&AuthorizeParams {
                state: Some("é".into()),
                ..params()
            })
            .unwrap_err()
            .code(),
            "invalid_request"
        );
    }

    #[test]
    fn unprintable_state_is_not_echoed_in_the_error_redirect() {
        let p = AuthorizeParams {
            state: Some("a\nb".into()),
            ..params()
        };
        let c = confidential("app");
        let (_, t) = resolve_client(&p, Some(&c)).unwrap();
        assert_eq!(t.state, None);
    }

    #[test]
    fn bad_scope_is_invalid_scope() {
        for s in ["-1", "abc", "99999999999", "33554432", ""] {
            let e = run(&AuthorizeParams {
                scope: Some(s.into()),
                ..params()
            })
            .unwrap_err();
            assert_eq!(e.code(), "invalid_scope", "{s:?}");
        }
    }

    #[test]
    fn scope_beyond_the_ceiling_is_trimmed_and_user_read_added() {
        let mut c = confidential("app");
        c.allowed_scopes = Scope::BUZZ_READ | Scope::AI_SERVICES_READ;
        let p = AuthorizeParams {
            scope: Some("AIServices VaultWrite".into()),
            ..params()
        };
        let (c, t) = resolve_client(&p, Some(&c)).unwrap();
        let r = validate(&p, c, &t, &Catalogue::civitai()).unwrap();
        assert_eq!(
            r.scope,
            Scope::USER_READ | Scope::BUZZ_READ | Scope::AI_SERVICES_READ
        );
        assert_eq!(r.requested_scope, Scope::AI_SERVICES | Scope::VAULT_WRITE);
    }

    #[test]
    fn clients_without_the_code_grant_are_unauthorized_client() {
        let mut c = confidential("app");
        c.grants = vec![GrantType::ClientCredentials];
        let p = params();
        let (c, t) = resolve_client(&p, Some(&c)).unwrap();
        assert_eq!(
            validate(&p, c, &t, &Catalogue::civitai())
                .unwrap_err()
                .error
                .code(),
            "unauthorized_client"
        );
    }

    #[test]
    fn overlong_nonce_is_refused_and_a_good_one_kept() {
        let e = run(&AuthorizeParams {
            nonce: Some("n".repeat(513)),
            ..params()
        })
        .unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        assert_eq!(
            run(&AuthorizeParams {
                nonce: Some("n-1".into()),
                ..params()
            })
            .unwrap()
            .nonce
            .as_deref(),
            Some("n-1")
        );
    }

    #[test]
    fn success_redirect_keeps_an_existing_query_and_adds_code_state_iss() {
        let p = params();
        let mut req = run(&p).unwrap();
        req.redirect_uri = "https://app.example.com/cb?tenant=a".into();
        let loc = success_location(&req, "c0de", "http://127.0.0.1:8080");
        assert_eq!(
            loc,
            "https://app.example.com/cb?tenant=a&code=c0de&state=xyz&iss=http%3A%2F%2F127.0.0.1%3A8080"
        );
    }

    #[test]
    fn private_use_scheme_redirects_carry_parameters() {
        let c = public("spa");
        let p = AuthorizeParams {
            client_id: Some("spa".into()),
            redirect_uri: Some("com.example.app:/cb".into()),
            ..params()
        };
        let (c, t) = resolve_client(&p, Some(&c)).unwrap();
        let req = validate(&p, c, &t, &Catalogue::civitai()).unwrap();
        assert!(
            denied_location(&req, "https://i")
                .starts_with("com.example.app:/cb?error=access_denied")
        );
    }
}
