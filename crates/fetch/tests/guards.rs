//! The fetcher's guards (SPEC 14): URL forms, non-public addresses (also after DNS
//! resolution), redirects, size and time limits, the cache and coalescing. Loopback servers
//! stand in for the internet through the development switch; with it off they are refused.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use buzzgate_domain::ports::{ClientMetadataDocuments, FetchError};
use buzzgate_fetch::{FetchSettings, Fetcher, check_url, is_public};

async fn server(hits: Arc<AtomicUsize>) -> String {
    let doc_hits = hits.clone();
    let app = Router::new()
        .route(
            "/doc",
            get(move || {
                let hits = doc_hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let mut res = r#"{"client_id":"x"}"#.into_response();
                    res.headers_mut().insert(
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("max-age=120"),
                    );
                    res
                }
            }),
        )
        .route(
            "/redirect",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "http://10.0.0.1/doc")],
                )
            }),
        )
        .route("/big", get(|| async { "x".repeat(6 * 1024) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "{}"
            }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn dev() -> Fetcher {
    Fetcher::new(FetchSettings {
        allow_http_loopback: true,
        timeout: Duration::from_secs(1),
        capacity: 100,
    })
}

fn is_refused(r: &Result<Arc<Vec<u8>>, FetchError>) -> bool {
    matches!(r, Err(FetchError::Refused(_)))
}

#[test]
fn only_public_addresses() {
    for ip in [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "2001:db8::1",
        "64:ff9b::a00:1",
        "ff02::1",
    ] {
        assert!(!is_public(ip.parse::<IpAddr>().unwrap()), "{ip}");
    }
    for ip in [
        "93.184.216.34",
        "8.8.8.8",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
    ] {
        assert!(is_public(ip.parse::<IpAddr>().unwrap()), "{ip}");
    }
}

#[test]
fn only_https_urls_with_a_path() {
    assert!(check_url("https://app.example/client.json", false).is_ok());
    for bad in [
        "http://app.example/client.json",
        "https://app.example/",
        "https://app.example",
        "https://user:pw@app.example/c.json",
        "https://app.example/c.json#x",
        "ftp://app.example/c.json",
        "not a url",
    ] {
        assert!(check_url(bad, false).is_err(), "{bad}");
    }
    assert!(
        check_url("http://127.0.0.1:9/c.json", false).is_err(),
        "switch off"
    );
    assert!(
        check_url("http://127.0.0.1:9/c.json", true).is_ok(),
        "development switch"
    );
    assert!(
        check_url("http://10.0.0.1/c.json", true).is_err(),
        "loopback only"
    );
}

#[tokio::test]
async fn non_public_addresses_are_refused_also_after_resolution() {
    let f = Fetcher::new(FetchSettings::default());
    for url in [
        "https://10.0.0.1/client.json",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/client.json",
        "https://[::ffff:192.168.0.1]/client.json",
        // A name that resolves to loopback: refused after resolution.
        "https://localhost/client.json",
    ] {
        let r = f.fetch(url).await;
        assert!(is_refused(&r), "{url}: {r:?}");
    }
}

#[tokio::test]
async fn a_loopback_document_only_with_the_development_switch() {
    let base = server(Arc::new(AtomicUsize::new(0))).await;
    let strict = Fetcher::new(FetchSettings::default());
    assert!(is_refused(&strict.fetch(&format!("{base}/doc")).await));
    let body = dev().fetch(&format!("{base}/doc")).await.unwrap();
    assert_eq!(body.as_slice(), br#"{"client_id":"x"}"#);
}

#[tokio::test]
async fn redirects_oversize_slow_and_failing_documents_are_refused() {
    let base = server(Arc::new(AtomicUsize::new(0))).await;
    let f = dev();
    let r = f.fetch(&format!("{base}/redirect")).await;
    assert!(
        matches!(&r, Err(FetchError::Refused(w)) if w.contains("redirect")),
        "{r:?}"
    );
    let r = f.fetch(&format!("{base}/big")).await;
    assert!(
        matches!(&r, Err(FetchError::Refused(w)) if w.contains("5 KiB")),
        "{r:?}"
    );
    let started = std::time::Instant::now();
    let r = f.fetch(&format!("{base}/slow")).await;
    assert!(
        matches!(&r, Err(FetchError::Unreachable(w)) if w.contains("too long")),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the timeout"
    );
    let r = f.fetch(&format!("{base}/missing")).await;
    assert!(
        matches!(&r, Err(FetchError::Unreachable(w)) if w.contains("404")),
        "{r:?}"
    );
}

#[tokio::test]
async fn documents_are_cached_and_concurrent_fetches_coalesce() {
    let hits = Arc::new(AtomicUsize::new(0));
    let base = server(hits.clone()).await;
    let f = dev();
    let url = format!("{base}/doc");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let f = f.clone();
            let url = url.clone();
            tokio::spawn(async move { f.fetch(&url).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "ten callers, one request");
    f.fetch(&url).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1, "served from the cache");
    // Failures are not cached: a second try fetches again.
    let r1 = f.fetch(&format!("{base}/missing")).await;
    let r2 = f.fetch(&format!("{base}/missing")).await;
    assert!(r1.is_err() && r2.is_err());
}
