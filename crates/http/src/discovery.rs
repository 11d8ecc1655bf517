//! RFC 8414 / OIDC discovery and the JWKS (SPEC 3.7). Advertises only what works.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use buzzgate_domain::{OidcScopes, Scope};
use serde_json::{Value, json};

use crate::AppState;

/// The metadata document for `issuer`.
pub fn metadata(issuer: &str, has_signer: bool) -> Value {
    let base = format!("{issuer}/api/auth/oauth");
    let mut scopes: Vec<String> = Scope::FLAGS
        .iter()
        .map(|f| f.scope.bits().to_string())
        .collect();
    scopes.extend(Scope::FLAGS.iter().map(|f| f.name.to_owned()));
    scopes.extend(Scope::PRESETS.iter().map(|p| p.name.to_owned()));
    scopes.extend(OidcScopes::NAMED.iter().map(|(n, _)| (*n).to_owned()));
    let mut m = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "revocation_endpoint": format!("{base}/revoke"),
        "introspection_endpoint": format!("{base}/introspect"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "device_authorization_endpoint": format!("{base}/device"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code", "refresh_token", "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code"
        ],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "authorization_response_iss_parameter_supported": true,
        "scopes_supported": scopes,
        "subject_types_supported": ["public"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce",
            "name", "preferred_username", "picture", "email", "email_verified"
        ],
        "service_documentation": format!("{issuer}/docs/api.md"),
    });
    if has_signer {
        m["jwks_uri"] = json!(format!("{issuer}/.well-known/jwks.json"));
        m["id_token_signing_alg_values_supported"] = json!(["ES256"]);
    }
    m
}

fn cached(v: Value, secs: u32) -> Response {
    let mut res = axum::Json(v).into_response();
    if let Ok(h) = HeaderValue::from_str(&format!("public, max-age={secs}")) {
        res.headers_mut().insert(header::CACHE_CONTROL, h);
    }
    res.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}

pub async fn well_known(State(st): State<AppState>) -> Response {
    let deps = &st.core.deps;
    cached(
        metadata(&deps.config.issuer, deps.id_tokens.is_some()),
        3600,
    )
}

/// The API reference this server advertises as `service_documentation` (`docs/api.md`).
pub const API_DOCS: &str = include_str!("../../../docs/api.md");

/// `GET /docs/api.md`: the API reference, as Markdown.
pub async fn api_docs() -> Response {
    let mut res = API_DOCS.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/markdown; charset=utf-8"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

pub async fn jwks(State(st): State<AppState>) -> Response {
    match &st.core.deps.id_tokens {
        Some(s) => cached(s.jwks(), 300),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "not_found", "error_description": "No signing keys are configured"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_advertises_s256_only_and_every_grant() {
        let m = metadata("https://auth.example", true);
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["grant_types_supported"].as_array().unwrap().len(), 4);
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(
            m["token_endpoint"],
            "https://auth.example/api/auth/oauth/token"
        );
        let scopes = m["scopes_supported"].as_array().unwrap();
        assert!(scopes.contains(&json!("1")) && scopes.contains(&json!("UserRead")));
        for oidc in ["openid", "profile", "email", "offline_access"] {
            assert!(scopes.contains(&json!(oidc)), "{oidc}");
        }
        assert!(metadata("x", false).get("jwks_uri").is_none());
    }
}
