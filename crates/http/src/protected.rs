//! Protected resources (RFC 9728, docs/mcp.md "Protecting your MCP server with Buzzgate"): a
//! layer an embedder puts in front of its routes so they take only Buzzgate tokens issued
//! for them. It serves `/.well-known/oauth-protected-resource<path>`, answers a request
//! without a usable token with 401 and `WWW-Authenticate: Bearer resource_metadata="…"` (the
//! start of an MCP client's discovery), one without the scopes with 403
//! `insufficient_scope`, `scope` and `resource_metadata`, and refuses a token whose audience
//! is another resource (the domain's `TokenService::validate_for`). Handlers find the
//! [`BearerToken`] and the domain [`Caller`] in the request's extensions.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use buzzgate_domain::catalogue::Need;
use buzzgate_domain::error::Error;
use buzzgate_domain::service::{Buzzgate, Caller};
use serde::Serialize;

use crate::auth::BearerToken;
use crate::error::quoted;
use crate::responses::ErrorBody;

/// RFC 9728 §2: the protected resource's metadata.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceMetadata {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub bearer_methods_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

/// One protected resource: its URI, the scopes it asks of every token, and how strict it is
/// about audiences. Cheap to clone.
#[derive(Clone)]
pub struct ProtectedResource {
    core: Buzzgate,
    metadata: Arc<ResourceMetadata>,
    metadata_url: Arc<str>,
    metadata_path: Arc<str>,
    need: Arc<Need>,
    /// The scope names every request needs (the `scope` of a 403 challenge).
    required: Arc<str>,
    strict: bool,
}

impl std::fmt::Debug for ProtectedResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtectedResource")
            .field("resource", &self.metadata.resource)
            .field("metadata_url", &self.metadata_url)
            .finish_non_exhaustive()
    }
}

impl ProtectedResource {
    /// `resource`: the absolute URL clients use (and name in `resource`); `scopes`: catalogue
    /// names every token must hold (all of them). Tokens must name this resource in their
    /// audience (RFC 8707): MCP servers must not take tokens issued for others.
    pub fn new(
        core: Buzzgate,
        resource: &str,
        scopes: &[&str],
    ) -> Result<ProtectedResource, String> {
        let url = url::Url::parse(resource)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.fragment().is_none())
            .ok_or_else(|| format!("a protected resource is an http(s) URL, got `{resource}`"))?;
        let catalogue = core.catalogue();
        let mut need_scope = buzzgate_domain::Scope::NONE;
        for name in scopes {
            need_scope = need_scope
                | catalogue
                    .lookup(name)
                    .ok_or_else(|| format!("`{name}` is not a scope of the catalogue"))?;
        }
        let need = catalogue.need(need_scope);
        let path = url.path().trim_end_matches('/');
        let metadata_path = format!("/.well-known/oauth-protected-resource{path}");
        let metadata_url = format!("{}{metadata_path}", url.origin().ascii_serialization());
        let metadata = ResourceMetadata {
            resource: resource.to_owned(),
            authorization_servers: vec![core.deps.config.issuer.clone()],
            scopes_supported: scopes.iter().map(|s| (*s).to_owned()).collect(),
            bearer_methods_supported: vec!["header"],
            resource_name: None,
        };
        Ok(ProtectedResource {
            core,
            metadata: Arc::new(metadata),
            metadata_url: metadata_url.into(),
            metadata_path: metadata_path.into(),
            need: Arc::new(need),
            required: scopes.join(" ").into(),
            strict: true,
        })
    }

    /// The scopes the metadata lists (`scopes_supported`, what clients will ask for), when
    /// more than the ones every request needs.
    pub fn advertising(mut self, scopes: &[&str]) -> ProtectedResource {
        Arc::make_mut(&mut self.metadata).scopes_supported =
            scopes.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// A name people read (RFC 9728 `resource_name`).
    pub fn named(mut self, name: &str) -> ProtectedResource {
        Arc::make_mut(&mut self.metadata).resource_name = Some(name.to_owned());
        self
    }

    /// Also admit tokens without an audience (issued before RFC 8707, or by clients that do
    /// not send `resource`). Off by default; never for MCP servers.
    pub fn lenient(mut self) -> ProtectedResource {
        self.strict = false;
        self
    }

    pub fn metadata(&self) -> &ResourceMetadata {
        &self.metadata
    }

    /// Where the metadata document is served (`https://host/.well-known/oauth-protected-resource/path`).
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// `inner` behind the check, and the metadata document beside it.
    pub fn protect(self, inner: Router) -> Router {
        let metadata = self.metadata.clone();
        let path = self.metadata_path.to_string();
        let guarded = inner.layer(axum::middleware::from_fn_with_state(self, guard));
        Router::new()
            .route(
                &path,
                get(move || {
                    let m = metadata.clone();
                    async move {
                        let mut res = axum::Json(m.as_ref().clone()).into_response();
                        res.headers_mut().insert(
                            header::ACCESS_CONTROL_ALLOW_ORIGIN,
                            HeaderValue::from_static("*"),
                        );
                        res
                    }
                }),
            )
            .merge(guarded)
    }

    /// The challenge of a refused request (RFC 6750 §3, RFC 9728 §5.1).
    fn challenge(&self, e: &Error) -> Response {
        let (status, params) = match e {
            Error::NoCredentials(_) => (StatusCode::UNAUTHORIZED, String::new()),
            Error::InsufficientScope { .. } => (
                StatusCode::FORBIDDEN,
                format!(
                    r#", error="insufficient_scope", scope="{}""#,
                    quoted(&self.required)
                ),
            ),
            Error::InvalidToken(d) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    r#", error="invalid_token", error_description="{}""#,
                    quoted(d)
                ),
            ),
            other => {
                return crate::error::ApiError::from(other.clone()).into_response();
            }
        };
        let mut res = (status, axum::Json(ErrorBody::of(e))).into_response();
        let www = format!(
            r#"Bearer resource_metadata="{}"{params}"#,
            quoted(&self.metadata_url)
        );
        if let Ok(v) = HeaderValue::from_str(&www) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        res
    }
}

async fn guard(State(p): State<ProtectedResource>, mut req: Request, next: Next) -> Response {
    let token = match crate::auth::require_bearer(req.headers()) {
        Ok(t) => t.to_owned(),
        Err(e) => return p.challenge(&e),
    };
    let bearer = match p
        .core
        .tokens()
        .validate_for(&token, &p.metadata.resource, &p.need, p.strict)
        .await
    {
        Ok(b) => b,
        Err(e) => return p.challenge(&e),
    };
    req.extensions_mut()
        .insert(Caller::of_bearer(bearer.clone()));
    req.extensions_mut().insert(BearerToken(bearer));
    next.run(req).await
}
