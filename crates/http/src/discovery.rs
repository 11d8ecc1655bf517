//! RFC 8414 / OIDC discovery and the JWKS (SPEC 3.7). Advertises only what works.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use buzzgate_domain::Catalogue;
use serde::Serialize;

use crate::AppState;
use crate::responses::{ErrorBody, MetadataBody};

/// What a server offers beyond the fixed endpoints, as its metadata advertises it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offers {
    /// An id_token signing key (JWKS, `id_token_signing_alg_values_supported`).
    pub signer: bool,
    /// Dynamic client registration is open (`registration_endpoint`).
    pub registration: bool,
    /// Client ID metadata documents are fetched (`client_id_metadata_document_supported`).
    pub documents: bool,
}

/// The metadata document for `issuer`; `scopes_supported` is the catalogue's
/// ([`Catalogue::supported`], docs/scopes.md).
pub fn metadata(issuer: &str, catalogue: &Catalogue, offers: Offers) -> MetadataBody {
    let Offers {
        signer: has_signer,
        registration,
        documents,
    } = offers;
    const CLIENT_AUTH: &[&str] = &["client_secret_basic", "client_secret_post", "none"];
    let base = format!("{issuer}/api/auth/oauth");
    let scopes = catalogue.supported();
    MetadataBody {
        authorization_endpoint: format!("{base}/authorize"),
        authorization_response_iss_parameter_supported: true,
        claims_supported: &[
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "name",
            "preferred_username",
            "picture",
            "email",
            "email_verified",
        ],
        client_id_metadata_document_supported: documents,
        code_challenge_methods_supported: &["S256"],
        device_authorization_endpoint: format!("{base}/device"),
        grant_types_supported: &[
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        id_token_signing_alg_values_supported: has_signer.then_some(&["ES256"]),
        introspection_endpoint: format!("{base}/introspect"),
        introspection_endpoint_auth_methods_supported: &[
            "client_secret_basic",
            "client_secret_post",
        ],
        issuer: issuer.to_owned(),
        jwks_uri: has_signer.then(|| format!("{issuer}/.well-known/jwks.json")),
        registration_endpoint: registration.then(|| format!("{base}/register")),
        response_modes_supported: &["query"],
        response_types_supported: &["code"],
        revocation_endpoint: format!("{base}/revoke"),
        revocation_endpoint_auth_methods_supported: CLIENT_AUTH,
        scopes_supported: scopes,
        service_documentation: format!("{issuer}/docs/api.md"),
        subject_types_supported: &["public"],
        token_endpoint: format!("{base}/token"),
        token_endpoint_auth_methods_supported: CLIENT_AUTH,
        userinfo_endpoint: format!("{base}/userinfo"),
    }
}

fn cached(v: impl Serialize, secs: u32) -> Response {
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
        metadata(
            &deps.config.issuer,
            &deps.config.catalogue,
            Offers {
                signer: deps.id_tokens.is_some(),
                registration: deps.config.registration_open,
                documents: deps.documents.is_some(),
            },
        ),
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
            axum::Json(ErrorBody {
                error: "not_found",
                error_description: "No signing keys are configured".into(),
            }),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_advertises_s256_only_and_every_grant() {
        let m = serde_json::to_value(metadata(
            "https://auth.example",
            &Catalogue::civitai(),
            Offers {
                signer: true,
                registration: true,
                documents: true,
            },
        ))
        .unwrap();
        assert_eq!(m["client_id_metadata_document_supported"], true);
        assert_eq!(
            m["registration_endpoint"],
            "https://auth.example/api/auth/oauth/register"
        );
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
        let m =
            serde_json::to_value(metadata("x", &Catalogue::civitai(), Offers::default())).unwrap();
        assert!(m.get("jwks_uri").is_none());
        assert!(m.get("registration_endpoint").is_none(), "registration off");
        assert!(m.get("id_token_signing_alg_values_supported").is_none());
    }
}
