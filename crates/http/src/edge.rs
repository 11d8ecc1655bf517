//! The edge every request and response passes, as tower-http layers in one stack
//! (docs/ARCHITECTURE.md, "Entry points"): a request id, time limits, the security headers,
//! `Cache-Control: no-store` unless a handler chose caching, and one error shape for the
//! responses no handler wrote (unknown route, wrong method, a timeout, a panic).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use buzzgate_domain::error::Error;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;
use tracing::Instrument;

use crate::error::{ApiError, Where};

/// The header carrying the request id: taken from the caller when it sends one, otherwise a
/// new UUID; echoed on the response and recorded on the request's log span.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long the edge waits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For the whole answer; past it the caller gets `503 temporarily_unavailable`.
    pub request: Duration,
    /// For the request body to arrive; past it `408 invalid_request` (slow senders).
    pub body: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request: Duration::from_secs(30),
            body: Duration::from_secs(10),
        }
    }
}

/// The standard name of `m`, or `None` for an extension method: the one mapping behind the
/// metrics' `method` label and the trace spans' names, each with its own fallback
/// (docs/operations.md, "Metrics" and "Traces"), so a client cannot mint series or span names.
pub fn standard_method(m: &axum::http::Method) -> Option<&'static str> {
    use axum::http::Method;
    Some(match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => return None,
    })
}

/// Opens the span of one request for an exporter of traces (docs/operations.md, "Traces"):
/// given the request (its `traceparent` header says the caller's trace) and the route
/// pattern the router matched (`None`: no route did). [`wrap`] records on it, once the answer
/// is ready, `http.response.status_code`, the `buzzgate.request_id` the answer carries, and
/// `otel.status_code = "ERROR"` for a 5xx. The composition root makes it; the edge knows no
/// exporter.
#[derive(Clone)]
pub struct RequestSpans(pub Arc<MakeSpan>);

/// What [`RequestSpans`] holds: the request and the matched route pattern to a span.
pub type MakeSpan = dyn Fn(&Request<Body>, Option<&str>) -> tracing::Span + Send + Sync;

impl std::fmt::Debug for RequestSpans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestSpans")
    }
}

/// Wraps every route of `router` in the edge (outermost first). With `spans` (traces
/// exported), each request also runs inside the span it makes, outermost of all; without,
/// the edge has no such layer at all.
pub fn wrap<S>(router: Router<S>, limits: Limits, spans: Option<RequestSpans>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let stack = ServiceBuilder::new()
        // Outermost: counts every answer with the status the caller saw (crate::metrics).
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(span))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        // RFC 6749 §5.1 asks token responses for both; every answer of an authorization
        // server is about someone, so nothing is cached unless a handler said so
        // (discovery, JWKS, the API reference).
        .layer(SetResponseHeaderLayer::overriding(
            header::PRAGMA,
            |res: &Response<Body>| {
                let cached = res
                    .headers()
                    .get(header::CACHE_CONTROL)
                    .is_some_and(|v| v != "no-store");
                (!cached).then(|| HeaderValue::from_static("no-cache"))
            },
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(axum::middleware::map_response(bare_errors))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::from(Error::ServerError("Internal error".into())).into_response()
            },
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request,
        ))
        .layer(RequestBodyTimeoutLayer::new(limits.body));
    let router = router.layer(stack);
    match spans {
        Some(spans) => router.layer(axum::middleware::from_fn_with_state(spans, traced)),
        None => router,
    }
}

/// Runs the request inside the span [`RequestSpans`] makes, then records the answer on it.
async fn traced(
    State(spans): State<RequestSpans>,
    req: Request<Body>,
    next: Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let span = (spans.0)(&req, route);
    let res = next.run(req).instrument(span.clone()).await;
    let status = res.status();
    // As an i64: OpenTelemetry's integer (a u64 would be recorded as text).
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if let Some(id) = res.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()) {
        span.record("buzzgate.request_id", id);
    }
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    res
}

/// The log span of a request: method, path (never the query, which can carry codes and
/// states) and the request id.
fn span(req: &Request<Body>) -> tracing::Span {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
}

/// An error status that no handler gave a body (axum's 404 and 405, tower-http's timeouts)
/// gets the body of the one error mapping, keeping its headers (`Allow`).
async fn bare_errors<B>(res: Response<B>) -> Response<Body>
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error())
        || res.headers().contains_key(header::CONTENT_TYPE)
    {
        return res.map(Body::new);
    }
    let error = match status {
        StatusCode::NOT_FOUND => Error::not_found("No such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => {
            Error::invalid_request("Method not allowed on this endpoint")
        }
        StatusCode::REQUEST_TIMEOUT => Error::invalid_request("The request body took too long"),
        StatusCode::PAYLOAD_TOO_LARGE => Error::invalid_request("Request body too large"),
        StatusCode::SERVICE_UNAVAILABLE => Error::TemporarilyUnavailable {
            description: "The server took too long to answer; retry".into(),
            retry_after: 1,
        },
        s if s.is_server_error() => Error::ServerError("Internal error".into()),
        _ => Error::invalid_request("Bad request"),
    };
    let (parts, _) = res.into_parts();
    let mut out = ApiError {
        error,
        at: Where::Status(status),
    }
    .into_response();
    for (name, value) in &parts.headers {
        if !out.headers().contains_key(name) {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}
