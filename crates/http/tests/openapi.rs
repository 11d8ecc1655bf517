//! The OpenAPI document (`GET /openapi.json`, crates/http/src/openapi.rs) against the router,
//! both ways: every (method, path) the document names is routed (probed in-process: the
//! router's own 404 "No such endpoint" and 405 never come back), and every route of the
//! router's source (`crates/http/src/lib.rs`, read the way `xtask tidy` reads it, nested OAuth
//! routes under each `.nest` prefix) with each of its methods is in the document.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use buzzgate_domain::memory::MemoryStore;
use buzzgate_domain::ports::{OsRandom, SystemClock};
use buzzgate_domain::service::{Buzzgate, Config};
use buzzgate_http::{AppState, Settings, router};
use serde_json::Value;
use tower::ServiceExt;

const METHODS: [&str; 6] = ["get", "post", "put", "patch", "delete", "options"];

fn app() -> axum::Router {
    let store = MemoryStore::new(Arc::new(SystemClock));
    let core = Buzzgate::new(store.deps(Arc::new(OsRandom), Config::default()));
    router(AppState::new(core, Settings::default(), vec![]))
}

/// The document as the server serves it.
async fn served_document() -> Value {
    let res = app()
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    let cache = res.headers()[header::CACHE_CONTROL].to_str().unwrap();
    assert!(cache.starts_with("public"), "cacheable: {cache}");
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 22)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Every (METHOD, path) of the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// `{anything}` written `{}`: path parameters compare by position.
fn erased(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The (METHOD, path) of each `.route("PATH", …)` in `src`, with the methods its method
/// router names (`get(`, `.post(`, `routing::delete(`, …).
fn routes_in(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for chunk in src.split(".route(").skip(1) {
        let Some(path) = chunk
            .trim_start()
            .strip_prefix('"')
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        // The route's arguments end where the next builder call starts.
        let args = chunk
            .split(".nest(")
            .next()
            .unwrap_or(chunk)
            .split(";\n")
            .next()
            .unwrap_or(chunk);
        let bytes = args.as_bytes();
        let mut found = false;
        for m in METHODS {
            for (i, _) in args.match_indices(&format!("{m}(")) {
                let before = if i == 0 { b'(' } else { bytes[i - 1] };
                if matches!(before, b'(' | b' ' | b'.' | b':' | b'\n') {
                    out.push((m.to_uppercase(), path.to_owned()));
                    found = true;
                }
            }
        }
        assert!(found, "no method found for {path} in the router's source");
    }
    out
}

/// Every (METHOD, path) the router's source declares.
fn routed() -> BTreeSet<(String, String)> {
    let src = include_str!("../src/lib.rs");
    let (_, after) = src.split_once("fn oauth_routes()").unwrap();
    let (nested_src, rest) = after.split_once("pub fn router(").unwrap();
    let (router_src, _) = rest.split_once("edge::wrap(").unwrap();
    let prefixes: Vec<&str> = router_src
        .split(".nest(\"")
        .skip(1)
        .filter_map(|r| r.split('"').next())
        .collect();
    assert!(prefixes.len() >= 4, "the OAuth prefixes: {prefixes:?}");
    let mut out = BTreeSet::new();
    for (m, p) in routes_in(nested_src) {
        for prefix in &prefixes {
            out.insert((m.clone(), erased(&format!("{prefix}{p}"))));
        }
    }
    for (m, p) in routes_in(router_src) {
        out.insert((m, erased(&p)));
    }
    out
}

#[tokio::test]
async fn every_route_of_the_router_is_documented_and_nothing_else() {
    let doc = served_document().await;
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = documented(&doc)
        .into_iter()
        .map(|(m, p)| (m, erased(&p)))
        .collect();
    let routed = routed();
    assert!(
        routed.len() > 100,
        "the source parse found {}",
        routed.len()
    );
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented but not in the router's source: {extra:?}"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let doc = served_document().await;
    let ops = documented(&doc);
    assert!(ops.len() > 100);
    for (method, path) in ops {
        let uri: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let uri = if uri.is_empty() { "/".to_owned() } else { uri };
        let req = Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let res = app().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 22)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let said = body["error_description"].as_str().unwrap_or("");
        assert!(
            !(status == StatusCode::NOT_FOUND && said == "No such endpoint"),
            "{method} {uri}: the router has no such route"
        );
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: the route has no such method"
        );
        assert!(
            !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri}: {status}"
        );
    }
}

#[test]
fn the_source_parse_sees_methods() {
    let src = r#".route("/a", get(x::a).post(x::b)).route("/b/{id}", axum::routing::delete(x::keys_delete)).route("/c", post(x::delete_app))"#;
    assert_eq!(
        routes_in(src),
        vec![
            ("GET".to_owned(), "/a".to_owned()),
            ("POST".to_owned(), "/a".to_owned()),
            ("DELETE".to_owned(), "/b/{id}".to_owned()),
            ("POST".to_owned(), "/c".to_owned()),
        ]
    );
}
