//! Traces over OTLP/HTTP (issue 15 item 3, docs/operations.md "Traces"): the real binary with
//! `BUZZGATE_OTLP_ENDPOINT` pointing at a fake collector in this test (an HTTP server taking
//! `POST /v1/traces` and decoding the protobuf with the OTLP messages). A client-credentials
//! token request that carries a W3C `traceparent`, an introspection, an authorize request
//! with a query and an unknown path are served; after a graceful stop (SIGTERM: the last
//! spans are flushed then, since the batch delay is set far longer than the test) the
//! collector must hold one server span per request, named by its route pattern, the token
//! request's a child of the caller's span, the store calls children of their request, and no
//! secret, token, query or raw path anywhere in the bytes exported. Then a collector that is
//! down, and one that accepts connections but never answers: requests are served as fast as
//! ever, the failure is logged once, counted in /metrics, and the node still stops promptly.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Running, free_port};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::Value;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";
const REQUEST_ID: &str = "traces-test-request-0001";
const QUERY_SECRET: &str = "state-value-never-exported-7781";
const PATH_SECRET: &str = "raw-path-never-exported-5512";

/// What the fake collector received: (path, content type, body) of each post.
type Posts = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// An OTLP/HTTP collector on a loopback port: keeps every post, answers an empty
/// `ExportTraceServiceResponse`.
async fn collector() -> (SocketAddr, Posts) {
    let posts: Posts = Arc::default();
    let kept = posts.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let kept = kept.clone();
        async move {
            let path = req.uri().path().to_owned();
            let content_type = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = axum::body::to_bytes(req.into_body(), 64 << 20)
                .await
                .unwrap();
            kept.lock()
                .unwrap()
                .push((path, content_type, body.to_vec()));
            (
                [("content-type", "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, posts)
}

/// A collector that accepts connections and never answers (nor reads).
async fn black_hole() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

struct App {
    id: String,
    secret: String,
}

/// `buzzgate serve` over `dir`, on `listen`, exporting to `endpoint`.
fn node(dir: &Path, listen: &str, endpoint: &str) -> Command {
    let mut c = common::buzzgate(dir);
    c.arg("serve")
        .env("BUZZGATE_LISTEN", listen)
        .env("BUZZGATE_OTLP_ENDPOINT", endpoint)
        .env("BUZZGATE_RATE_LIMIT_TOKEN", "off")
        .env("OTEL_SERVICE_NAME", "buzzgate-traces-test")
        .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
        .env_remove("RUST_LOG");
    c
}

/// A user and two apps made with the CLI: one with client credentials, one resource server.
fn apps(dir: &Path) -> (App, App) {
    let cli = |args: &[&str], stdin: Option<&str>| {
        let (code, out, err) = common::output(common::buzzgate(dir).args(args), stdin);
        assert_eq!(code, 0, "buzzgate {args:?}: {err}");
        out
    };
    cli(
        &[
            "user",
            "add",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        Some("traces test pass phrase 4\n"),
    );
    let app = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "add",
            "--owner",
            "alice",
            "--name",
            "Traces app",
            "--redirect-uri",
            "http://127.0.0.1:9/callback",
            "--json",
        ];
        args.extend_from_slice(extra);
        let v: Value = serde_json::from_str(cli(&args, None).trim()).unwrap();
        App {
            id: v["clientId"].as_str().unwrap().to_owned(),
            secret: v["clientSecret"].as_str().unwrap().to_owned(),
        }
    };
    (
        app(&["--grant", "client_credentials"]),
        app(&["--resource-server"]),
    )
}

async fn until_up(http: &reqwest::Client, base: &str) {
    let start = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "the node starts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM, then the node's exit status within `limit`.
fn stop(node: &mut Running, limit: Duration) -> i32 {
    let pid = node.0.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success(), "SIGTERM sent");
    let start = Instant::now();
    loop {
        if let Some(status) = node.0.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(
            start.elapsed() < limit,
            "the node stops within {limit:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text_attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attr(span, key) {
        Some(AnyValue::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn int_attr(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(AnyValue::IntValue(n)) => Some(*n),
        _ => None,
    }
}

async fn token(http: &reqwest::Client, base: &str, app: &App) -> (u16, Value) {
    let res = http
        .post(format!("{base}/api/auth/oauth/token"))
        .basic_auth(&app.id, Some(&app.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_store_calls_are_exported_without_secrets() {
    let dir = common::fresh_dir("bg-traces", "export");
    let (app, rs) = apps(&dir);
    let (collector, posts) = collector().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let mut node = Running(
        node(&dir, &listen, &format!("http://{collector}"))
            // Only the flush at shutdown exports: it is what this test sees.
            .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("server.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    until_up(&http, &base).await;

    // A token request inside the caller's trace.
    let res = http
        .post(format!("{base}/api/auth/oauth/token"))
        .basic_auth(&app.id, Some(&app.secret))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .header("x-request-id", REQUEST_ID)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();

    // Its introspection by the resource server (a trace of its own).
    let res = http
        .post(format!("{base}/api/auth/oauth/introspect"))
        .basic_auth(&rs.id, Some(&rs.secret))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], true, "{body}");

    // A query and an unknown path: neither may be exported.
    let res = http
        .get(format!(
            "{base}/api/auth/oauth/authorize?client_id={}&state={QUERY_SECRET}",
            app.id
        ))
        .send()
        .await
        .unwrap();
    assert!(res.status().as_u16() < 500, "{}", res.status());
    let res = http
        .get(format!("{base}/no-such-route/{PATH_SECRET}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    assert_eq!(stop(&mut node, Duration::from_secs(15)), 0, "a clean stop");
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    let posts = posts.lock().unwrap().clone();
    assert!(
        !posts.is_empty(),
        "the spans were flushed at shutdown:\n{log}"
    );

    let mut spans = Vec::new();
    for (path, content_type, body) in &posts {
        assert_eq!(path, "/v1/traces");
        assert_eq!(content_type, "application/x-protobuf");
        // No secret anywhere in what left the node, in any encoding a header would carry.
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", app.id, app.secret));
        for (what, secret) in [
            ("client secret", app.secret.as_str()),
            ("resource server secret", rs.secret.as_str()),
            ("access token", access.as_str()),
            ("basic credentials", basic.as_str()),
            ("query value", QUERY_SECRET),
            ("raw path", PATH_SECRET),
        ] {
            assert!(
                !body.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the {what} was exported"
            );
        }
        let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        for rs in req.resource_spans {
            let resource = rs.resource.unwrap();
            let service = resource
                .attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.clone());
            assert_eq!(
                service,
                Some(AnyValue::StringValue("buzzgate-traces-test".into())),
                "OTEL_SERVICE_NAME names the service"
            );
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();

    // Only the fields the edge and the decorators declare; never a log span's `path`.
    let allowed: BTreeSet<&str> = [
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "buzzgate.request_id",
        "buzzgate.port",
        "buzzgate.method",
        "error.type",
    ]
    .into();
    for s in &spans {
        for kv in &s.attributes {
            assert!(
                allowed.contains(kv.key.as_str()),
                "span {} has attribute {}",
                s.name,
                kv.key
            );
        }
        assert!(s.events.is_empty(), "span {} has events", s.name);
    }

    // The token request: a server span named by its route, in the caller's trace.
    let token_span = spans
        .iter()
        .find(|s| s.name == "POST /api/auth/oauth/token")
        .unwrap_or_else(|| panic!("no token span in {names:?}"));
    assert_eq!(token_span.kind, SpanKind::Server as i32);
    assert_eq!(hex(&token_span.trace_id), TRACE_ID, "traceparent's trace");
    assert_eq!(
        hex(&token_span.parent_span_id),
        PARENT_ID,
        "traceparent's span"
    );
    assert_eq!(
        text_attr(token_span, "http.route"),
        Some("/api/auth/oauth/token")
    );
    assert_eq!(text_attr(token_span, "http.request.method"), Some("POST"));
    assert_eq!(int_attr(token_span, "http.response.status_code"), Some(200));
    assert_eq!(
        text_attr(token_span, "buzzgate.request_id"),
        Some(REQUEST_ID)
    );
    // Its store calls are its children.
    let children: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == token_span.span_id)
        .collect();
    assert!(
        children
            .iter()
            .any(|s| s.name.starts_with("TokenStore.insert")
                && text_attr(s, "buzzgate.port") == Some("TokenStore")),
        "the token's insert is a child of the request: {:?}",
        children.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(children.iter().all(|s| s.trace_id == token_span.trace_id));

    // The introspection: a trace of its own, its token-cache lookup a child.
    let introspect = spans
        .iter()
        .find(|s| s.name == "POST /api/auth/oauth/introspect")
        .unwrap_or_else(|| panic!("no introspection span in {names:?}"));
    assert!(introspect.parent_span_id.is_empty(), "a root span");
    assert_ne!(introspect.trace_id, token_span.trace_id);
    assert_eq!(int_attr(introspect, "http.response.status_code"), Some(200));
    assert!(
        text_attr(introspect, "buzzgate.request_id").is_some_and(|id| !id.is_empty()),
        "the request id the edge gave it"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.name == "TokenCache.get" && s.parent_span_id == introspect.span_id),
        "the cache lookup is a child of the introspection: {names:?}"
    );

    // The authorize request by its pattern; the unknown path by its method alone.
    let authorize = spans
        .iter()
        .find(|s| s.name == "GET /api/auth/oauth/authorize")
        .unwrap_or_else(|| panic!("no authorize span in {names:?}"));
    assert_eq!(
        text_attr(authorize, "http.route"),
        Some("/api/auth/oauth/authorize")
    );
    let unknown = spans
        .iter()
        .find(|s| s.name == "GET" && int_attr(s, "http.response.status_code") == Some(404))
        .unwrap_or_else(|| panic!("no span for the unknown path in {names:?}"));
    assert_eq!(text_attr(unknown, "http.route"), None);

    // The log says where traces go, and holds no span made for them.
    assert!(log.contains("buzzgate is listening"), "{log}");
    assert!(
        !log.contains("TokenStore."),
        "trace spans are not logged:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Token requests against a node whose collector is `endpoint`: every one answered 200,
/// none slower than `limit`.
async fn served_regardless(http: &reqwest::Client, base: &str, app: &App, n: usize) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let start = Instant::now();
        let (status, body) = token(http, base, app).await;
        assert_eq!(status, 200, "{body}");
        slowest = slowest.max(start.elapsed());
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_or_hangs_costs_requests_nothing() {
    for (tag, endpoint) in [
        // Nothing listens there: every post is refused.
        ("down", format!("http://127.0.0.1:{}", free_port())),
        // Connections are accepted and never answered: posts wait for their time limit.
        ("hangs", format!("http://{}/v1/traces", black_hole().await)),
    ] {
        let dir = common::fresh_dir("bg-traces", tag);
        let (app, _) = apps(&dir);
        let listen = format!("127.0.0.1:{}", free_port());
        let base = format!("http://{listen}");
        let log_path = dir.join("server.log");
        let mut node = Running(
            node(&dir, &listen, &endpoint)
                .env("OTEL_BSP_SCHEDULE_DELAY", "100")
                .stdout(Stdio::null())
                .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
                .spawn()
                .unwrap(),
        );
        let http = reqwest::Client::new();
        until_up(&http, &base).await;

        let slowest = served_regardless(&http, &base, &app, 40).await;
        assert!(
            slowest < Duration::from_secs(2),
            "{tag}: a request took {slowest:?}"
        );
        if tag == "down" {
            // Batches keep failing (one every 100 ms and its retries); the warning is said
            // once, the lost spans counted.
            let start = Instant::now();
            let warning = "the collector did not take a batch";
            while !std::fs::read_to_string(&log_path)
                .unwrap()
                .contains(warning)
            {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "the failure is logged"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for _ in 0..4 {
                served_regardless(&http, &base, &app, 10).await;
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
            let log = std::fs::read_to_string(&log_path).unwrap();
            assert_eq!(log.matches(warning).count(), 1, "logged once:\n{log}");
            let metrics = http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let failed: f64 = metrics
                .lines()
                .find_map(|l| l.strip_prefix("buzzgate_traces_failed_spans_total "))
                .unwrap_or_else(|| panic!("the failed spans are counted:\n{metrics}"))
                .trim()
                .parse()
                .unwrap();
            assert!(failed > 0.0, "{failed}");
        } else {
            // Keep serving while an export is stuck on the collector.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let slowest = served_regardless(&http, &base, &app, 40).await;
            assert!(
                slowest < Duration::from_secs(2),
                "{tag}: a request took {slowest:?}"
            );
        }
        // Stopping waits at most 5 s for the last batch.
        assert_eq!(
            stop(&mut node, Duration::from_secs(12)),
            0,
            "{tag}: a clean stop"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
