//! A resource server that embeds the Buzzgate core and protects its own routes with the
//! `BearerToken`, `RequireScope` and `RequireNamed` extractors: no network hop to validate a
//! token.
//!
//! Run it with `cargo run -p buzzgate-http --example resource_server`; it mints an API key
//! for a demo user, prints a curl line, and serves on 127.0.0.1:3000:
//!
//! - `GET /whoami` needs any valid bearer token;
//! - `GET /generate` needs `AIServicesWrite` (403 `insufficient_scope` otherwise);
//! - `GET /models` needs the scope the catalogue calls `ModelsRead` (by name: a platform with
//!   its own catalogue names its own scopes the same way, docs/scopes.md);
//! - `GET /api/profile` sits behind the RFC 9728 layer (`ProtectedResource`): its metadata is
//!   at `/.well-known/oauth-protected-resource/api/profile`, a request without a token gets the
//!   401 challenge pointing there (docs/mcp.md, "Protecting your MCP server with Buzzgate").
//!   The layer is lenient here, since the demo's API key has no audience; an MCP server keeps
//!   it strict and takes only tokens minted with `resource=<its URL>`.
//!
//! In production the `Buzzgate` would be built over your own stores (your user directory,
//! your Buzz ledger) through the domain's ports; the in-memory store stands in for them here.

use std::io::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use buzzgate_domain::Scope;
use buzzgate_domain::memory::MemoryStore;
use buzzgate_domain::ports::{OsRandom, SystemClock};
use buzzgate_domain::service::api_keys::NewApiKey;
use buzzgate_domain::service::{Buzzgate, Caller, Config};
use buzzgate_domain::user::{NewUser, Username};
use buzzgate_http::{BearerToken, ProtectedResource, RequireNamed, RequireScope, scope_name};

scope_name!(ModelsRead = "ModelsRead");

async fn whoami(State(core): State<Buzzgate>, BearerToken(bearer): BearerToken) -> String {
    format!(
        "user {} with scope {}\n",
        bearer.user_id().0,
        core.catalogue().names_string(bearer.scope())
    )
}

async fn models(RequireNamed(bearer, _): RequireNamed<ModelsRead>) -> String {
    format!("models for user {}\n", bearer.user_id().0)
}

async fn generate(
    RequireScope(bearer): RequireScope<{ Scope::AI_SERVICES_WRITE.bits() }>,
) -> String {
    format!("generating for user {}\n", bearer.user_id().0)
}

async fn profile(axum::Extension(BearerToken(bearer)): axum::Extension<BearerToken>) -> String {
    format!("profile of user {}\n", bearer.user_id().0)
}

/// The routes of the embedding service; its state only has to yield a `Buzzgate`.
fn app(core: Buzzgate) -> Result<Router, String> {
    let protected = ProtectedResource::new(
        core.clone(),
        "http://127.0.0.1:3000/api/profile",
        &["UserRead"],
    )?
    .lenient()
    .protect(Router::new().route("/api/profile", get(profile)));
    Ok(Router::new()
        .route("/whoami", get(whoami))
        .route("/generate", get(generate))
        .route("/models", get(models))
        .with_state(core)
        .merge(protected))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new(Arc::new(SystemClock));
    let core = Buzzgate::new(store.deps(Arc::new(OsRandom), Config::default()));
    let user = core
        .sessions()
        .create_user(NewUser {
            username: Username::parse("demo")?,
            email: None,
            email_verified: false,
            password: None,
            roles: vec![],
        })
        .await?;
    let (key, _) = core
        .api_keys()
        .create(
            &Caller::operator_for(user.id),
            NewApiKey {
                name: "example".into(),
                scope: Some(Scope::READ_ONLY.into()),
                buzz_limit: None,
                expires_in_days: Some(1),
            },
        )
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    writeln!(
        std::io::stdout(),
        "curl -H 'Authorization: Bearer {}' http://127.0.0.1:3000/whoami   (and /generate: 403)",
        key.expose()
    )?;
    axum::serve(listener, app(core)?).await?;
    Ok(())
}
