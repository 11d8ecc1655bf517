//! The account MCP server (SPEC 14, docs/mcp.md): `/mcp/account` on the MCP listener, a
//! protected resource (RFC 9728 layer of `buzzgate_http::protected`, audience = its URL) with
//! `whoami` (UserRead) and `buzz-balance` (BuzzRead): what a platform team's own MCP server
//! looks like, and proof that an agent holding nothing but this URL can sign a user in and act
//! within the caps they set.

use std::sync::Arc;

use axum::http::request::Parts;
use buzzgate_domain::error::Error;
use buzzgate_domain::service::{Buzzgate, Caller};
use buzzgate_http::ProtectedResource;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use serde_json::json;

use crate::McpSettings;

/// Where the account server lives on the MCP listener.
pub const PATH: &str = "/mcp/account";

#[derive(Clone)]
pub struct AccountTools {
    core: Buzzgate,
    tool_router: ToolRouter<AccountTools>,
}

impl std::fmt::Debug for AccountTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountTools").finish_non_exhaustive()
    }
}

fn failure(e: &Error) -> CallToolResult {
    CallToolResult::structured_error(json!({
        "error": e.code(),
        "error_description": e.description(),
    }))
}

/// The caller the protected-resource layer put on the request.
fn caller(parts: &Parts) -> Result<Caller, CallToolResult> {
    parts
        .extensions
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| failure(&Error::invalid_token("No token reached the tool")))
}

#[tool_router]
impl AccountTools {
    pub fn new(core: Buzzgate) -> AccountTools {
        AccountTools {
            core,
            tool_router: Self::tool_router(),
        }
    }

    /// Who the signed-in user is: their id and username.
    #[tool(
        name = "whoami",
        annotations(
            title = "Who am I",
            read_only_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn whoami(
        &self,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = match caller(&parts) {
            Ok(c) => c,
            Err(res) => return Ok(res),
        };
        Ok(match self.core.tokens().me(&caller).await {
            Ok(me) => CallToolResult::structured(json!({
                "id": me.id.0,
                "username": me.username,
            })),
            Err(e) => failure(&e),
        })
    }

    /// The user's Buzz balances, and what this app may still spend of them: each cap the user
    /// set on it, with what was spent in its window and what remains (BuzzRead).
    #[tool(
        name = "buzz-balance",
        annotations(
            title = "Buzz balance and caps",
            read_only_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn buzz_balance(
        &self,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = match caller(&parts) {
            Ok(c) => c,
            Err(res) => return Ok(res),
        };
        let buzz = self.core.buzz();
        let accounts = match buzz.accounts(&caller).await {
            Ok(a) => a,
            Err(e) => return Ok(failure(&e)),
        };
        let caps = match buzz.limits(&caller).await {
            Ok(c) => c,
            Err(e) => return Ok(failure(&e)),
        };
        Ok(CallToolResult::structured(json!({
            "balances": accounts.iter().map(|a| json!({
                "currency": a.currency.as_str(),
                "balance": a.balance,
            })).collect::<Vec<_>>(),
            "caps": caps.iter().map(|c| json!({
                "limit": c.limit,
                "spent": c.spend,
                "remaining": c.remaining,
                "window": c.budget.window_label(),
            })).collect::<Vec<_>>(),
            "unlimited": caps.is_empty(),
        })))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AccountTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "buzzgate-account",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "The signed-in user's account: whoami (who they are) and buzz-balance (their \
                 Buzz and what this app may still spend of it).",
            )
    }
}

/// The account server behind its protected-resource layer, at `public_base` + [`PATH`]
/// (`public_base`: the MCP listener's URL as clients reach it, no trailing slash).
pub fn router(
    core: Buzzgate,
    public_base: &str,
    settings: &McpSettings,
) -> Result<axum::Router, String> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpService, session::local::LocalSessionManager,
    };
    let resource = format!("{}{PATH}", public_base.trim_end_matches('/'));
    let protection = ProtectedResource::new(core.clone(), &resource, &["UserRead"])?
        .advertising(&["UserRead", "BuzzRead"])
        .named("Buzzgate account");
    let tools = AccountTools::new(core);
    let service = StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(LocalSessionManager::default()),
        crate::http_config(settings),
    );
    Ok(protection.protect(axum::Router::new().route_service(PATH, service)))
}
