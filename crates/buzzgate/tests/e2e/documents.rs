//! Client ID metadata documents over HTTP (SPEC 14, docs/mcp.md): a document served on
//! loopback (with the development switch on) is an app that completes the flow; a lying one
//! is refused with the reason; the consent page names the document's host and warns when
//! every redirect URI is loopback; without the switch an http document is an unknown client.

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::harness::{App, Env, REDIRECT};

/// A loopback listener for documents, and its base URL (documents name their own URL, so
/// the address comes first).
async fn document_host() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// Serves `docs` (path → JSON) on `listener`.
fn serve(listener: tokio::net::TcpListener, docs: Vec<(&'static str, Value)>) {
    let mut router = axum::Router::new();
    for (path, doc) in docs {
        let body = doc.to_string();
        router = router.route(
            path,
            axum::routing::get(move || {
                let body = body.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/json"),
                            (header::CACHE_CONTROL, "max-age=60"),
                        ],
                        body,
                    )
                        .into_response()
                }
            }),
        );
    }
    tokio::spawn(async move { axum::serve(listener, router).await });
}

fn doc(id: &str, name: &str, redirect: &str) -> Value {
    json!({
        "client_id": id,
        "client_name": name,
        "redirect_uris": [redirect],
        "scope": "UserRead BuzzRead",
        "token_endpoint_auth_method": "none",
    })
}

/// The development switch that admits `http://127.0.0.1` documents.
pub fn cimd_loopback(c: &mut buzzgate::Config) {
    c.cimd_allow_http_loopback = true;
}

async fn authorize_page(env: &Env, cookie: &str, client_id: &str, redirect: &str) -> (u16, String) {
    let res = env
        .http
        .get(env.url("/api/auth/oauth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", "UserRead"),
            ("state", "s"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

pub async fn a_metadata_document_client_completes_the_flow(env: &Env) {
    let (listener, base) = document_host().await;
    let good = format!("{base}/agent/client.json");
    let local = format!("{base}/agent/local.json");
    let liar = format!("{base}/agent/liar.json");
    serve(
        listener,
        vec![
            ("/agent/client.json", doc(&good, "Doc Agent", REDIRECT)),
            (
                "/agent/local.json",
                doc(&local, "Local Agent", "http://127.0.0.1:43111/callback"),
            ),
            (
                "/agent/liar.json",
                doc("https://trusted.example/client.json", "Trusted", REDIRECT),
            ),
        ],
    );

    let meta = env
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    let oidc = env.get_json("/.well-known/openid-configuration").await;
    assert_eq!(oidc["client_id_metadata_document_supported"], true);

    env.user("ada", 0).await;
    let cookie = env.login("ada").await;

    // The consent page says where the app's description came from, and no loopback warning
    // for an https redirect.
    let (status, html) = authorize_page(env, &cookie, &good, REDIRECT).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("describes itself in a document at"), "{html}");
    assert!(html.contains("127.0.0.1"), "{html}");
    assert!(!html.contains("data-warning=\"loopback\""), "{html}");

    // The whole flow: consent, code, token (public client: client_id only), a call.
    let app = App {
        id: good.clone(),
        secret: None,
    };
    let tokens = env.tokens("ada", &app, "UserRead", None).await;
    let access = tokens["access_token"].as_str().expect("access token");
    let me = env.bearer_json("/api/v1/me", access).await;
    assert_eq!(me["username"], "ada", "{me}");
    let listed = env
        .core
        .deps
        .clients
        .get(&buzzgate_domain::ids::ClientId::parse(&good).unwrap())
        .await
        .unwrap()
        .expect("the app is stored");
    assert!(listed.is_unowned() && !listed.is_verified);

    // Every redirect URI on loopback: the consent page warns.
    let (status, html) =
        authorize_page(env, &cookie, &local, "http://127.0.0.1:43111/callback").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("data-warning=\"loopback\""), "{html}");

    // A document whose client_id is not its URL: refused, with the reason, never redirected.
    let (status, html) = authorize_page(env, &cookie, &liar, REDIRECT).await;
    assert!((400..500).contains(&status), "{status} {html}");
    assert!(html.contains("client_id is not its own URL"), "{html}");
    let (status, body) = env
        .token_call(
            &App {
                id: liar.clone(),
                secret: None,
            },
            &[
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("code_verifier", &"v".repeat(43)),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    // invalid_client (400: the client did not authenticate with a header, RFC 6749 §5.2).
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_client");
}

pub async fn http_documents_are_refused_by_default(env: &Env) {
    let (listener, base) = document_host().await;
    let id = format!("{base}/client.json");
    serve(
        listener,
        vec![("/client.json", doc(&id, "Agent", REDIRECT))],
    );
    env.user("ada", 0).await;
    let cookie = env.login("ada").await;
    let (status, html) = authorize_page(env, &cookie, &id, REDIRECT).await;
    assert!((400..500).contains(&status), "{status} {html}");
    assert!(html.contains("Unknown client_id"), "{html}");
}
