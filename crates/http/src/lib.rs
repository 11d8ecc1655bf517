//! `buzzgate-http`: the axum adapter. Every endpoint of SPEC section 3 under its canonical
//! path (`/api/auth/oauth/*`) and its aliases (`/api/oauth/*`, `/v1/oauth/*`, `/oauth/*`),
//! the JSON management APIs, the pages people use (sign-in, account, consent, device, admin:
//! docs/pages.md), health, and the
//! extractors an embedding resource server uses ([`auth::BearerToken`], [`auth::RequireScope`], [`auth::RequireNamed`]).
//!
//! Handlers parse, call one domain service, and map the result; the rules live in
//! `buzzgate-domain`. Errors map to statuses in one place ([`error`]).

pub mod account;
pub mod admin;
pub mod api;
pub mod auth;
pub mod discovery;
pub mod edge;
pub mod error;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod pages;
pub mod params;
pub mod protected;
pub mod responses;
pub mod views;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use buzzgate_domain::service::Buzzgate;

use crate::responses::{HealthBody, ReadyBody};

pub use auth::{BearerToken, RequireNamed, RequireScope, ScopeName};
pub use protected::ProtectedResource;

/// HTTP-only settings (everything the rules depend on is in the domain's `Config`).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Emit `scope` in token responses as Civitai's `["<decimal>"]` array.
    pub scope_as_array: bool,
    /// How many proxies of the operator's own stand in front of the server; the client
    /// address is the one the outermost of them saw (`X-Forwarded-For`). 0: the socket peer.
    pub trusted_proxies: usize,
    /// Mark cookies `Secure` (set when the issuer is https).
    pub secure_cookies: bool,
    /// The edge's time limits.
    pub limits: edge::Limits,
    /// `GET /metrics` (docs/operations.md, "Metrics"); `None`: answered `404`.
    pub metrics: Option<metrics::MetricsEndpoint>,
    /// Each request's span for an exporter of traces (docs/operations.md, "Traces");
    /// `None`: traces are off and the edge adds nothing.
    pub request_spans: Option<edge::RequestSpans>,
}

/// One dependency `/readyz` checks.
#[async_trait]
pub trait Readiness: Send + Sync {
    fn name(&self) -> &str;
    /// Whether the node cannot issue tokens without it (the durable store). A failing
    /// optional dependency (Redis: the node falls back to the database and the in-process
    /// limiter) is reported as degraded, with a 200 (SPEC 11).
    fn required(&self) -> bool {
        true
    }
    async fn check(&self) -> Result<(), String>;
}

/// The state every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub core: Buzzgate,
    pub settings: Arc<Settings>,
    pub checks: Arc<Vec<Arc<dyn Readiness>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(core: Buzzgate, settings: Settings, checks: Vec<Arc<dyn Readiness>>) -> Self {
        AppState {
            core,
            settings: Arc::new(settings),
            checks: Arc::new(checks),
        }
    }
}

impl FromRef<AppState> for Buzzgate {
    fn from_ref(s: &AppState) -> Buzzgate {
        s.core.clone()
    }
}

/// The OAuth endpoints, mounted under each prefix of SPEC 3.
fn oauth_routes() -> Router<AppState> {
    Router::new()
        .route("/authorize", get(oauth::authorize).post(oauth::authorize))
        .route("/token", post(oauth::token).options(oauth::preflight))
        .route("/revoke", post(oauth::revoke).options(oauth::preflight))
        .route(
            "/introspect",
            post(oauth::introspect).options(oauth::preflight),
        )
        .route("/userinfo", get(oauth::userinfo).post(oauth::userinfo))
        .route("/device", post(oauth::device).options(oauth::preflight))
        .route(
            "/device-token",
            post(oauth::device_token).options(oauth::preflight),
        )
        .route("/device-info", post(oauth::device_info))
        .route("/device-approve", post(oauth::device_approve))
        .route("/register", post(oauth::register))
        .route(
            "/register/{client_id}",
            get(oauth::registration_read)
                .put(oauth::registration_update)
                .delete(oauth::registration_delete),
        )
        .route("/jwks", get(discovery::jwks))
        // Seed 004's app management under the same prefixes (`/oauth/clients`).
        .route("/clients", get(api::clients_list).post(api::clients_create))
        .route(
            "/clients/{id}",
            get(api::clients_get)
                .patch(api::clients_update)
                .put(api::clients_update)
                .delete(api::clients_delete),
        )
        .route("/clients/{id}/reset-secret", post(api::clients_rotate))
        .route("/clients/{id}/rotate-secret", post(api::clients_rotate))
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let oauth = oauth_routes();
    let routes = Router::new()
        .nest("/api/auth/oauth", oauth.clone())
        .nest("/api/oauth", oauth.clone())
        .nest("/v1/oauth", oauth.clone())
        .nest("/oauth", oauth.clone())
        .nest("/api/v1/oauth", oauth.clone())
        // Seed 004 (Serika.dev) documents its endpoints under this prefix.
        .nest("/api/openai/v1/oauth", oauth)
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::well_known),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::well_known),
        )
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route("/docs/api.md", get(discovery::api_docs))
        .route("/openapi.json", get(openapi::serve))
        .route("/api/auth/jwks", get(discovery::jwks))
        .route("/api/v1/me", get(oauth::me))
        .route("/api/v1/session", get(api::session_info))
        .route("/api/v1/buzz", get(api::buzz_overview))
        .route("/api/trpc/buzz.getUserAccount", get(api::trpc_buzz_account))
        .route("/api/v1/buzz/spend", post(api::buzz_spend))
        .route("/api/v1/buzz/spend/{id}/refund", post(api::buzz_refund))
        .route("/api/v1/buzz/limits", get(api::buzz_limits))
        .route("/api/v1/oauth/consents", get(api::consents_list))
        .route(
            "/api/v1/oauth/consents/{id}",
            axum::routing::delete(api::consents_revoke),
        )
        .route(
            "/api/v1/oauth/consents/{id}/buzz-limit",
            axum::routing::put(api::consents_set_limit),
        )
        .route(
            "/api/v1/api-keys",
            get(api::keys_list).post(api::keys_create),
        )
        .route(
            "/api/v1/api-keys/{id}",
            axum::routing::delete(api::keys_delete),
        )
        .route(
            "/api/v1/admin/oauth/clients/{id}",
            axum::routing::patch(api::admin_client),
        )
        .route("/api/v1/admin/audit", get(admin::audit_api))
        .route("/", get(pages::home))
        .route("/login", get(pages::login_page).post(pages::login_submit))
        .route(
            "/signup",
            get(pages::signup_page).post(pages::signup_submit),
        )
        .route("/logout", post(pages::logout))
        .route("/account", get(account::page))
        .route("/account/apps", post(account::create_app))
        .route("/account/apps/new", get(account::new_app))
        .route("/account/apps/{id}", post(account::save_app))
        .route("/account/apps/{id}/edit", get(account::edit_app))
        .route(
            "/account/apps/{id}/rotate",
            get(account::confirm_rotate).post(account::rotate),
        )
        .route(
            "/account/apps/{id}/delete",
            get(account::confirm_delete).post(account::delete_app),
        )
        .route(
            "/account/connected/{id}/limit",
            get(account::edit_limit).post(account::save_limit),
        )
        .route(
            "/account/connected/{id}/revoke",
            get(account::confirm_revoke).post(account::revoke),
        )
        .route("/account/keys", post(account::create_key))
        .route(
            "/account/keys/{id}/delete",
            get(account::confirm_delete_key).post(account::delete_key),
        )
        .route("/admin", get(admin::page))
        .route("/admin/apps/{id}/verify", post(admin::verify))
        .route("/admin/apps/{id}/access-mode", post(admin::access_mode))
        .route(
            "/static/buzzgate.css",
            get(|| async { views::asset(views::STYLESHEET, "text/css; charset=utf-8") }),
        )
        .route(
            "/static/buzzgate.js",
            get(|| async { views::asset(views::SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/login/oauth/authorize",
            get(oauth::authorize).post(oauth::authorize),
        )
        .route(
            "/login/oauth/device",
            get(pages::device_page).post(pages::device_submit),
        )
        .route("/metrics", get(metrics::serve))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    let spans = state.settings.request_spans.clone();
    edge::wrap(routes, state.settings.limits, spans).with_state(state)
}

/// `/healthz`: the process is up.
async fn healthz() -> Response {
    axum::Json(HealthBody { status: "ok" }).into_response()
}

/// `/readyz`: "not ready" (503) only when the node cannot issue tokens, i.e. a required
/// store (the database) does not answer; an optional one (Redis) that fails is reported as
/// degraded with a 200, because an orchestrator that saw every node unready would take the
/// whole service down while it still works (SPEC 11).
async fn readyz(State(st): State<AppState>) -> Response {
    let mut failures = BTreeMap::new();
    let mut degraded = BTreeMap::new();
    for c in st.checks.iter() {
        if let Err(e) = c.check().await {
            let bucket = if c.required() {
                &mut failures
            } else {
                &mut degraded
            };
            bucket.insert(c.name().to_owned(), e);
        }
    }
    if failures.is_empty() && degraded.is_empty() {
        axum::Json(ReadyBody {
            degraded: None,
            failing: None,
            status: "ready",
        })
        .into_response()
    } else if failures.is_empty() {
        axum::Json(ReadyBody {
            degraded: Some(degraded),
            failing: None,
            status: "degraded",
        })
        .into_response()
    } else {
        let mut res = (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(ReadyBody {
                degraded: None,
                failing: Some(failures),
                status: "unavailable",
            }),
        )
            .into_response();
        res.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        res
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
