//! The MCP tools (docs/mcp.md): seed 000's `civitai-oauth-exchange` and the read-only
//! `oauth-introspect` and `oauth-userinfo`, and `oauth-revoke`. Each turns its input into the
//! fields of one OAuth request, adds the bound client credentials when the input names no
//! client, and returns the server's JSON answer, or its OAuth error as a tool error
//! (`isError: true`) with the error body as it came.

use std::sync::Arc;

use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::Value;

use crate::{Backend, BoundClient, Failure, Fields};

/// The fields of a token request (RFC 6749 §4.1.3, §4.4.2, §6; RFC 8628 §3.4), as
/// `POST /api/auth/oauth/token` takes them.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
pub struct TokenRequestBody {
    /// The grant: `authorization_code`, `refresh_token`, `client_credentials` or
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    pub grant_type: String,
    /// authorization_code: the code the redirect brought back.
    #[serde(default)]
    pub code: Option<String>,
    /// authorization_code: the PKCE verifier whose S256 challenge started the flow.
    #[serde(default)]
    pub code_verifier: Option<String>,
    /// authorization_code: the redirect URI the authorization request used, exactly.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// refresh_token: the refresh token to rotate (it is single-use; the answer has the next one).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// refresh_token, client_credentials: an optional narrower scope (a decimal mask or names).
    #[serde(default)]
    pub scope: Option<String>,
    /// device_code grant: the device code from the device authorization response.
    #[serde(default)]
    pub device_code: Option<String>,
    /// The protected resources (RFC 8707 absolute URIs, e.g. an MCP server's URL) the access
    /// token is for; a subset of those the authorization named.
    #[serde(default)]
    pub resource: Option<Vec<String>>,
    /// The app's client ID. Omit it (and `client_secret`) to use the server's bound client.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The app's client secret (confidential apps). Omit it to use the bound client.
    #[serde(default)]
    pub client_secret: Option<String>,
}

/// `civitai-oauth-exchange`'s input: seed 000's `body`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct ExchangeInput {
    /// The token request's fields.
    pub body: TokenRequestBody,
}

/// `oauth-introspect`'s input (RFC 7662). The calling client must be a resource server.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct IntrospectInput {
    /// The access or refresh token to look at.
    pub token: String,
    /// `access_token` or `refresh_token`: a hint only.
    #[serde(default)]
    pub token_type_hint: Option<String>,
    /// The introspecting client's ID; omit it (and the secret) to use the bound client.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The introspecting client's secret.
    #[serde(default)]
    pub client_secret: Option<String>,
}

/// `oauth-userinfo`'s input.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct UserInfoInput {
    /// An access token with the UserRead scope.
    pub access_token: String,
}

/// `oauth-revoke`'s input (RFC 7009).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct RevokeInput {
    /// The access or refresh token to revoke (a refresh token takes its whole family with it).
    pub token: String,
    /// `access_token` or `refresh_token`: a hint only.
    #[serde(default)]
    pub token_type_hint: Option<String>,
    /// The client the token was issued to; omit it (and the secret) to use the bound client.
    #[serde(default)]
    pub client_id: Option<String>,
    /// That client's secret (confidential apps).
    #[serde(default)]
    pub client_secret: Option<String>,
}

/// The tool server: one per MCP session (cheap to clone).
#[derive(Clone)]
pub struct OAuthTools {
    backend: Arc<dyn Backend>,
    bound: Arc<BoundClient>,
    tool_router: ToolRouter<OAuthTools>,
}

impl std::fmt::Debug for OAuthTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthTools")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

fn push(form: &mut Fields, name: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        form.push((name.to_owned(), v.to_owned()));
    }
}

fn answer(result: Result<Value, Failure>) -> Result<CallToolResult, ErrorData> {
    Ok(match result {
        Ok(body) => CallToolResult::structured(body),
        Err(f) => CallToolResult::structured_error(f.body),
    })
}

#[tool_router]
impl OAuthTools {
    pub fn new(backend: Arc<dyn Backend>, bound: BoundClient) -> OAuthTools {
        OAuthTools {
            backend,
            bound: Arc::new(bound),
            tool_router: Self::tool_router(),
        }
    }

    /// Exchange an OAuth authorization code (with its PKCE verifier) or a refresh token for
    /// an access token; also client_credentials and the device code grant. Returns the token
    /// response (access_token, token_type, expires_in, scope, refresh_token); an OAuth error
    /// (invalid_grant for a used or expired code, …) comes back as a tool error.
    #[tool(
        name = "civitai-oauth-exchange",
        annotations(
            title = "Exchange an OAuth code or refresh token",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn exchange(
        &self,
        Parameters(ExchangeInput { body }): Parameters<ExchangeInput>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut form: Fields = vec![("grant_type".into(), body.grant_type.clone())];
        push(&mut form, "code", body.code.as_deref());
        push(&mut form, "code_verifier", body.code_verifier.as_deref());
        push(&mut form, "redirect_uri", body.redirect_uri.as_deref());
        push(&mut form, "refresh_token", body.refresh_token.as_deref());
        push(&mut form, "scope", body.scope.as_deref());
        push(&mut form, "device_code", body.device_code.as_deref());
        for r in body.resource.iter().flatten() {
            push(&mut form, "resource", Some(r));
        }
        push(&mut form, "client_id", body.client_id.as_deref());
        push(&mut form, "client_secret", body.client_secret.as_deref());
        self.bound.complete(&mut form);
        answer(self.backend.token(&form).await)
    }

    /// Look at a token (RFC 7662): whether it is active, and if so its scope, user, client,
    /// expiry and Buzz limit. For resource servers.
    #[tool(
        name = "oauth-introspect",
        annotations(
            title = "Introspect a token",
            read_only_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn introspect(
        &self,
        Parameters(input): Parameters<IntrospectInput>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut form: Fields = vec![("token".into(), input.token.clone())];
        push(
            &mut form,
            "token_type_hint",
            input.token_type_hint.as_deref(),
        );
        push(&mut form, "client_id", input.client_id.as_deref());
        push(&mut form, "client_secret", input.client_secret.as_deref());
        self.bound.complete(&mut form);
        answer(self.backend.introspect(&form).await)
    }

    /// The signed-in user behind an access token: sub, preferred_username, and the email
    /// and profile claims its scopes allow.
    #[tool(
        name = "oauth-userinfo",
        annotations(
            title = "Who an access token belongs to",
            read_only_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn userinfo(
        &self,
        Parameters(input): Parameters<UserInfoInput>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.backend.userinfo(&input.access_token).await)
    }

    /// Revoke an access or refresh token (RFC 7009); a refresh token takes every token of its
    /// grant with it. Revoking an unknown or already revoked token succeeds.
    #[tool(
        name = "oauth-revoke",
        annotations(
            title = "Revoke a token",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn revoke(
        &self,
        Parameters(input): Parameters<RevokeInput>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut form: Fields = vec![("token".into(), input.token.clone())];
        push(
            &mut form,
            "token_type_hint",
            input.token_type_hint.as_deref(),
        );
        push(&mut form, "client_id", input.client_id.as_deref());
        push(&mut form, "client_secret", input.client_secret.as_deref());
        self.bound.complete(&mut form);
        answer(self.backend.revoke(&form).await)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for OAuthTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("buzzgate", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "OAuth 2.0 for a Civitai-compatible platform: exchange an authorization code \
                 (with its PKCE verifier) or a refresh token for tokens with \
                 civitai-oauth-exchange; look tokens up with oauth-introspect and \
                 oauth-userinfo; revoke them with oauth-revoke. The server adds its own client \
                 credentials when a call names no client.",
            )
    }
}
