//! The edge (crates/http/src/edge.rs) over the real router: every response carries a request
//! id and the security headers, nothing is cached unless a handler says so, and responses no
//! handler wrote (unknown route, wrong method, a timeout) still have the one error shape.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use buzzgate_domain::memory::MemoryStore;
use buzzgate_domain::ports::{OsRandom, SystemClock};
use buzzgate_domain::service::{Buzzgate, Config};
use buzzgate_http::edge::Limits;
use buzzgate_http::{AppState, Readiness, Settings, router};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A readiness check that takes `delay` to answer.
struct Slow(Duration);

#[async_trait]
impl Readiness for Slow {
    fn name(&self) -> &str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        tokio::time::sleep(self.0).await;
        Ok(())
    }
}

fn app(limits: Limits, check_delay: Duration) -> axum::Router {
    let store = MemoryStore::new(Arc::new(SystemClock));
    let core = Buzzgate::new(store.deps(Arc::new(OsRandom), Config::default()));
    let settings = Settings {
        limits,
        ..Settings::default()
    };
    router(AppState::new(
        core,
        settings,
        vec![Arc::new(Slow(check_delay))],
    ))
}

async fn send(app: axum::Router, req: Request<Body>) -> (Response<()>, Value) {
    let res = app.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (Response::from_parts(parts, ()), json)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn every_answer_has_a_request_id_and_the_security_headers() {
    let (res, _) = send(app(Limits::default(), Duration::ZERO), get("/healthz")).await;
    let h = res.headers();
    let id = h["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a fresh UUID: {id}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["pragma"], "no-cache");
    // A caller's own id is kept (tracing across services).
    let mut req = get("/healthz");
    req.headers_mut()
        .insert("x-request-id", "trace-me-123".parse().unwrap());
    let (res, _) = send(app(Limits::default(), Duration::ZERO), req).await;
    assert_eq!(res.headers()["x-request-id"], "trace-me-123");
}

#[tokio::test]
async fn what_a_handler_marks_cacheable_stays_cacheable() {
    let (res, body) = send(
        app(Limits::default(), Duration::ZERO),
        get("/.well-known/oauth-authorization-server"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body["issuer"].is_string());
    assert_eq!(res.headers()["cache-control"], "public, max-age=3600");
    assert!(res.headers().get("pragma").is_none());
}

#[tokio::test]
async fn an_unknown_route_and_a_wrong_method_have_the_error_shape() {
    let (res, body) = send(app(Limits::default(), Duration::ZERO), get("/nope")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": "not_found", "error_description": "No such endpoint"})
    );
    assert!(res.headers().contains_key("x-request-id"));
    let (res, body) = send(
        app(Limits::default(), Duration::ZERO),
        get("/api/auth/oauth/token"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "invalid_request");
    assert!(
        res.headers()["allow"].to_str().unwrap().contains("POST"),
        "the Allow header survives"
    );
}

#[tokio::test]
async fn a_request_past_the_time_limit_is_503_with_retry_after() {
    let limits = Limits {
        request: Duration::from_millis(50),
        ..Limits::default()
    };
    let (res, body) = send(app(limits, Duration::from_secs(5)), get("/readyz")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(res.headers()["retry-after"], "1");
}

#[tokio::test]
async fn a_body_that_arrives_too_slowly_is_408() {
    let limits = Limits {
        body: Duration::from_millis(50),
        ..Limits::default()
    };
    let slow = futures::stream::once(async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"grant_type=x"))
    });
    let req = Request::post("/api/auth/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from_stream(slow))
        .unwrap();
    let (res, body) = send(app(limits, Duration::ZERO), req).await;
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT, "{body}");
    assert_eq!(body["error"], "invalid_request");
}
