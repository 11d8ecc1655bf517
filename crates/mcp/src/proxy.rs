//! Proxy mode's REST side (`buzzgate proxy --upstream <url>`, docs/mcp.md): seed 000's
//! `GET /v1/oauth/authorize` (checked as far as a front can, then redirected to the upstream)
//! and `POST /v1/oauth/token` (forwarded through the same [`Backend`] as the MCP tools, with
//! the bound client credentials added when the request has none).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use buzzgate_domain::authorize::check_without_client;
use buzzgate_http::params::Params;
use buzzgate_http::responses::ErrorBody;

use crate::{Backend, BoundClient, Failure, Fields};

#[derive(Clone)]
struct Proxy {
    backend: Arc<dyn Backend>,
    bound: Arc<BoundClient>,
    /// The upstream's authorize URL.
    authorize: Arc<str>,
}

/// The REST router of proxy mode.
pub fn router(
    backend: Arc<dyn Backend>,
    bound: BoundClient,
    upstream_authorize: &str,
) -> axum::Router {
    let state = Proxy {
        backend,
        bound: Arc::new(bound),
        authorize: upstream_authorize.into(),
    };
    axum::Router::new()
        .route("/v1/oauth/authorize", get(authorize))
        .route("/v1/oauth/token", post(token))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
        .with_state(state)
}

fn json(status: u16, body: serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /v1/oauth/authorize`: a request that fails the local checks is 400 JSON (never a
/// redirect: the redirect URI is not known to be registered); otherwise 302 to the upstream's
/// authorize with the same query.
async fn authorize(State(p): State<Proxy>, params: Params) -> Response {
    let ap = buzzgate_http::oauth::authorize_params(&params);
    if let Err(e) = check_without_client(&ap) {
        return json(
            400,
            serde_json::to_value(ErrorBody::of(&e)).unwrap_or_default(),
        );
    }
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params.0 {
        q.append_pair(k, v);
    }
    let location = format!("{}?{}", p.authorize, q.finish());
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// `POST /v1/oauth/token` (form or JSON): forwarded; HTTP Basic credentials become form
/// fields; the upstream's answer, or its OAuth error, passes through with its status.
async fn token(State(p): State<Proxy>, headers: HeaderMap, params: Params) -> Response {
    let mut form: Fields = params
        .0
        .iter()
        .filter(|(k, _)| k != "client_id" && k != "client_secret")
        .cloned()
        .collect();
    let names_client = headers.contains_key(header::AUTHORIZATION)
        || params.has("client_id")
        || params.has("client_secret");
    if names_client {
        match buzzgate_http::auth::client_auth(&headers, &params) {
            Ok(c) => {
                form.push(("client_id".into(), c.client_id.as_str().to_owned()));
                if let Some(s) = c.secret {
                    form.push(("client_secret".into(), s));
                }
            }
            Err(e) => {
                let f = Failure {
                    status: 401,
                    body: serde_json::to_value(ErrorBody::of(&e)).unwrap_or_default(),
                };
                let status =
                    buzzgate_http::error::status_of(&e, buzzgate_http::error::Where::TokenEndpoint);
                return json(status.as_u16(), f.body);
            }
        }
    } else {
        p.bound.complete(&mut form);
    }
    match p.backend.token(&form).await {
        Ok(body) => json(200, body),
        Err(f) => json(f.status, f.body),
    }
}
