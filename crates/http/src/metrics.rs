//! Prometheus metrics of the HTTP edge (docs/operations.md, "Metrics"): every request counted
//! by route, method and status with its latency, rate-limit refusals, and `GET /metrics`, the
//! text the composition root's recorder renders.
//!
//! The route label is the route's pattern as the router matched it (`/api/v1/oauth/clients/{id}`,
//! never the path a caller sent), or `unmatched`; the method label is one of the standard
//! methods or `other`: every label has a bounded set of values whatever the traffic.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use buzzgate_domain::error::Error;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

/// Requests answered, by `route`, `method` and `status`.
pub const REQUESTS: &str = "buzzgate_http_requests_total";
/// Seconds from the request's arrival to its response head, by `route` and `method`.
pub const DURATION: &str = "buzzgate_http_request_duration_seconds";
/// Requests answered `429` (a rate limit), by `route`.
pub const RATE_LIMITED: &str = "buzzgate_rate_limited_total";

/// What `GET /metrics` serves (set by the composition root; `None`: `404`).
#[derive(Clone)]
pub struct MetricsEndpoint {
    /// Renders the Prometheus text exposition of every series.
    pub render: Arc<dyn Fn() -> String + Send + Sync>,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

fn method_label(m: &Method) -> &'static str {
    crate::edge::standard_method(m).unwrap_or("other")
}

/// The series of one route, made once and reused: a request then costs two read-locked
/// lookups and two atomic updates, not the labels' allocation and the registry's hashing
/// (docs/benchmarks.md).
struct RouteSeries {
    /// The route label.
    route: String,
    /// By method label.
    durations: RwLock<HashMap<&'static str, ::metrics::Histogram>>,
    /// By method label and status.
    requests: RwLock<HashMap<(&'static str, u16), ::metrics::Counter>>,
    rate_limited: OnceLock<::metrics::Counter>,
}

/// Every route's series, by route label (a bounded set: the router's patterns), for the
/// recorder they were made with: when the process's recorder changes (installed after a
/// first request, or a test's own), the series are made again.
#[derive(Default)]
struct Routes {
    recorder: usize,
    series: HashMap<Box<str>, Arc<RouteSeries>>,
}

static ROUTES: LazyLock<RwLock<Routes>> = LazyLock::new(RwLock::default);

/// The value under `key`, made by `make` the first time.
fn cached<K: Eq + std::hash::Hash, V: Clone>(
    map: &RwLock<HashMap<K, V>>,
    key: K,
    make: impl FnOnce() -> V,
) -> V {
    // Every critical section leaves the map consistent, so a poisoned lock is usable.
    if let Some(v) = map.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return v.clone();
    }
    map.write()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_insert_with(make)
        .clone()
}

fn route_series(route: &str) -> Arc<RouteSeries> {
    let recorder = ::metrics::with_recorder(|r| std::ptr::from_ref(r).cast::<()>() as usize);
    {
        let routes = ROUTES.read().unwrap_or_else(|p| p.into_inner());
        if routes.recorder == recorder
            && let Some(s) = routes.series.get(route)
        {
            return s.clone();
        }
    }
    let mut routes = ROUTES.write().unwrap_or_else(|p| p.into_inner());
    if routes.recorder != recorder {
        routes.series.clear();
        routes.recorder = recorder;
    }
    routes
        .series
        .entry(route.into())
        .or_insert_with(|| {
            Arc::new(RouteSeries {
                route: route.to_owned(),
                durations: RwLock::default(),
                requests: RwLock::default(),
                rate_limited: OnceLock::new(),
            })
        })
        .clone()
}

/// The middleware counting every request (outermost in the edge, so timeouts, panics and
/// unknown routes are counted with the status the caller saw).
pub async fn track(req: Request<Body>, next: Next) -> Response {
    let series = route_series(
        req.extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str),
    );
    let method = method_label(req.method());
    let start = Instant::now();
    let res = next.run(req).await;
    let status = res.status();
    let route = &series.route;
    cached(&series.requests, (method, status.as_u16()), || {
        ::metrics::counter!(REQUESTS, "route" => route.clone(), "method" => method, "status" => status.as_str().to_owned())
    })
    .increment(1);
    cached(
        &series.durations,
        method,
        || ::metrics::histogram!(DURATION, "route" => route.clone(), "method" => method),
    )
    .record(start.elapsed().as_secs_f64());
    if status == StatusCode::TOO_MANY_REQUESTS {
        series
            .rate_limited
            .get_or_init(|| ::metrics::counter!(RATE_LIMITED, "route" => route.clone()))
            .increment(1);
    }
    res
}

/// `GET /metrics`: the Prometheus text format; `404` when the operator turned metrics off
/// (`BUZZGATE_METRICS=off`), `401` without the right bearer token when one is configured
/// (`BUZZGATE_METRICS_TOKEN`, compared in constant time).
pub async fn serve(State(st): State<AppState>, req: Request<Body>) -> Response {
    let Some(endpoint) = st.settings.metrics.as_ref() else {
        return ApiError::from(Error::not_found("Metrics are turned off on this server"))
            .into_response();
    };
    if let Some(expected) = &endpoint.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, t)| t.trim())
            })
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            let mut res = (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({
                    "error": "invalid_token",
                    "error_description": "The metrics endpoint needs its bearer token",
                })),
            )
                .into_response();
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            );
            return res;
        }
    }
    let text = (endpoint.render)();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
