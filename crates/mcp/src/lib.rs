//! `buzzgate-mcp`: seed 000's MCP adapter (docs/mcp.md, SPEC 12). An MCP server over
//! streamable HTTP (rmcp) with the OAuth tools `civitai-oauth-exchange`, `oauth-introspect`,
//! `oauth-userinfo` and `oauth-revoke`, each calling one [`Backend`]: the core in-process
//! ([`InProcess`], under `buzzgate serve`) or an upstream Civitai-compatible server over HTTP
//! ([`Upstream`], under `buzzgate proxy`, which also serves the REST side: [`proxy`]).
//!
//! The tools add the bound client credentials (`CIVITAI_CLIENT_ID` / `CIVITAI_CLIENT_SECRET`)
//! when a call carries none, so an agent can finish a flow without ever holding the secret;
//! no tool output and no log line contains it.

pub mod account;
mod in_process;
pub mod proxy;
mod tools;
mod upstream;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

pub use in_process::InProcess;
pub use tools::{
    ExchangeInput, IntrospectInput, OAuthTools, RevokeInput, TokenRequestBody, UserInfoInput,
};
pub use upstream::{Upstream, UpstreamConfig};

/// A failed call: the HTTP status the authorization server answered with and its OAuth error
/// body (`{"error", "error_description"}`), passed through as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: u16,
    pub body: Value,
}

impl Failure {
    /// A failure of our own making (the upstream down or slow): `server_error` with `status`.
    pub fn server_error(status: u16, description: &str) -> Failure {
        Failure {
            status,
            body: serde_json::json!({ "error": "server_error", "error_description": description }),
        }
    }
}

/// Form fields of one call, in order.
pub type Fields = Vec<(String, String)>;

/// The authorization server the tools call: its token, introspection, userinfo and
/// revocation endpoints (RFC 6749, 7662, OIDC Core §5.3, 7009).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn token(&self, form: &Fields) -> Result<Value, Failure>;
    async fn introspect(&self, form: &Fields) -> Result<Value, Failure>;
    async fn userinfo(&self, access_token: &str) -> Result<Value, Failure>;
    async fn revoke(&self, form: &Fields) -> Result<Value, Failure>;
}

/// The client credentials the capability binds (seed 000's `binds`), used when a call
/// carries none. `Debug` never shows the secret.
#[derive(Clone, Default)]
pub struct BoundClient {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for BoundClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundClient")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl BoundClient {
    /// `form` with the bound credentials added when it names no client at all (neither
    /// `client_id` nor `client_secret`); a call that names its own client keeps it.
    pub fn complete(&self, form: &mut Fields) {
        let has = |k: &str| form.iter().any(|(name, v)| name == k && !v.is_empty());
        if has("client_id") || has("client_secret") {
            return;
        }
        if let Some(id) = &self.client_id {
            form.push(("client_id".into(), id.clone()));
            if let Some(secret) = &self.client_secret {
                form.push(("client_secret".into(), secret.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bound_credentials_fill_in_only_when_no_client_is_named() {
        let bound = BoundClient {
            client_id: Some("bound-id".into()),
            client_secret: Some("bound-secret".into()),
        };
        let mut none = form(&[("grant_type", "refresh_token")]);
        bound.complete(&mut none);
        assert_eq!(
            none,
            form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "bound-id"),
                ("client_secret", "bound-secret")
            ])
        );
        let mut own = form(&[("client_id", "mine")]);
        bound.complete(&mut own);
        assert_eq!(
            own,
            form(&[("client_id", "mine")]),
            "a named client keeps its own"
        );
        let mut empty = form(&[]);
        BoundClient::default().complete(&mut empty);
        assert!(empty.is_empty());
        assert!(
            !format!("{bound:?}").contains("bound-secret"),
            "Debug never shows it"
        );
    }
}

/// Settings of the MCP listener.
#[derive(Debug, Clone)]
pub struct McpSettings {
    /// `Host` values accepted (DNS-rebinding protection); empty: loopback names only.
    pub allowed_hosts: Vec<String>,
}

/// The MCP endpoint: `/mcp` on its own router (its own listener, `BUZZGATE_MCP_LISTEN`).
/// Streamable HTTP, stateless for 2026-07-28 clients and with sessions for older ones; a
/// browser `Origin` is refused (no web page may drive the tools with the bound secret).
pub fn router(
    backend: Arc<dyn Backend>,
    bound: BoundClient,
    settings: &McpSettings,
) -> axum::Router {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpService, session::local::LocalSessionManager,
    };
    let tools = OAuthTools::new(backend, bound);
    let service = StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(LocalSessionManager::default()),
        http_config(settings),
    );
    axum::Router::new().route_service("/mcp", service)
}

/// The streamable HTTP settings every MCP endpoint here shares: `Host` checked, any browser
/// `Origin` refused.
pub(crate) fn http_config(
    settings: &McpSettings,
) -> rmcp::transport::streamable_http_server::StreamableHttpServerConfig {
    let mut config = rmcp::transport::streamable_http_server::StreamableHttpServerConfig::default()
        .enforce_origin_validation();
    if !settings.allowed_hosts.is_empty() {
        config = config.with_allowed_hosts(settings.allowed_hosts.clone());
    }
    config
}
