//! The protected-resource layer (RFC 9728, docs/mcp.md) over an in-memory core: the metadata
//! document, the 401 challenge that starts discovery, audiences checked strictly (and
//! leniently when asked), 403 `insufficient_scope` with `scope` and `resource_metadata`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use buzzgate_domain::client::{AuthMethod, ClientAuth, ClientRegistration};
use buzzgate_domain::memory::MemoryStore;
use buzzgate_domain::ports::{OsRandom, SystemClock};
use buzzgate_domain::service::api_keys::NewApiKey;
use buzzgate_domain::service::tokens::{GrantRequest, TokenRequest};
use buzzgate_domain::service::{Buzzgate, Caller, Config};
use buzzgate_domain::user::{NewUser, Username};
use buzzgate_http::{BearerToken, ProtectedResource};
use tower::ServiceExt;

const RESOURCE: &str = "https://rs.example/api";
const METADATA: &str = "https://rs.example/.well-known/oauth-protected-resource/api";

struct World {
    core: Buzzgate,
    client: ClientAuth,
    api_key: String,
}

async fn world() -> World {
    let store = MemoryStore::new(Arc::new(SystemClock));
    let core = Buzzgate::new(store.deps(Arc::new(OsRandom), Config::default()));
    let user = core
        .sessions()
        .create_user(NewUser {
            username: Username::parse("owner").unwrap(),
            email: None,
            email_verified: false,
            password: None,
            roles: vec![],
        })
        .await
        .unwrap();
    let owner = Caller::operator_for(user.id);
    let created = core
        .clients()
        .create(
            &owner,
            ClientRegistration {
                name: "Agent".into(),
                redirect_uris: vec!["https://agent.example/cb".into()],
                grants: Some(vec!["client_credentials".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (key, _) = core
        .api_keys()
        .create(
            &owner,
            NewApiKey {
                name: "k".into(),
                scope: None,
                buzz_limit: None,
                expires_in_days: None,
            },
        )
        .await
        .unwrap();
    World {
        client: ClientAuth {
            client_id: created.client.id.clone(),
            secret: created.secret.map(|s| s.expose().to_owned()),
            method: AuthMethod::Post,
        },
        core,
        api_key: key.expose().to_owned(),
    }
}

impl World {
    async fn token(&self, scope: &str, resources: &[&str]) -> String {
        self.core
            .tokens()
            .token(TokenRequest {
                client: self.client.clone(),
                origin: None,
                ip: None,
                grant: GrantRequest::ClientCredentials {
                    scope: Some(scope.into()),
                },
                resources: resources.iter().map(|r| r.to_string()).collect(),
            })
            .await
            .unwrap()
            .access_token
            .expose()
            .to_owned()
    }

    fn app(&self, layer: ProtectedResource) -> Router {
        let inner = Router::new().route(
            "/api",
            get(
                |axum::Extension(BearerToken(b)): axum::Extension<BearerToken>,
                 axum::Extension(c): axum::Extension<Caller>| async move {
                    format!("{} {}", b.user_id().0, c.kind())
                },
            ),
        );
        layer.protect(inner)
    }
}

async fn send(app: &Router, path: &str, token: Option<&str>) -> (StatusCode, String, String) {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = app
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let www = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, www, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_metadata_and_the_challenge_start_discovery() {
    let w = world().await;
    let layer = ProtectedResource::new(w.core.clone(), RESOURCE, &["UserRead"])
        .unwrap()
        .advertising(&["UserRead", "BuzzRead"])
        .named("Test API");
    assert_eq!(layer.metadata_url(), METADATA);
    let app = w.app(layer);
    let (s, _, body) = send(&app, "/.well-known/oauth-protected-resource/api", None).await;
    assert_eq!(s, StatusCode::OK);
    let m: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(m["resource"], RESOURCE);
    assert_eq!(m["authorization_servers"][0], "http://127.0.0.1:8080");
    assert_eq!(
        m["scopes_supported"],
        serde_json::json!(["UserRead", "BuzzRead"])
    );
    assert_eq!(m["bearer_methods_supported"], serde_json::json!(["header"]));
    assert_eq!(m["resource_name"], "Test API");
    let (s, www, _) = send(&app, "/api", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(www, format!(r#"Bearer resource_metadata="{METADATA}""#));
}

#[tokio::test]
async fn only_tokens_for_this_resource_pass() {
    let w = world().await;
    let app = w.app(ProtectedResource::new(w.core.clone(), RESOURCE, &["UserRead"]).unwrap());
    let ours = w.token("ReadOnly", &[RESOURCE]).await;
    let (s, _, body) = send(&app, "/api", Some(&ours)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body.ends_with(" appToken"),
        "the handler sees the caller: {body}"
    );
    let both = w
        .token("ReadOnly", &["https://other.example/", RESOURCE])
        .await;
    assert_eq!(send(&app, "/api", Some(&both)).await.0, StatusCode::OK);
    for (what, token) in [
        (
            "another audience",
            w.token("ReadOnly", &["https://other.example/"]).await,
        ),
        ("no audience", w.token("ReadOnly", &[]).await),
        ("an API key", w.api_key.clone()),
        ("garbage", "civitai_nope".into()),
    ] {
        let (s, www, body) = send(&app, "/api", Some(&token)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert!(
            www.starts_with(&format!(
                r#"Bearer resource_metadata="{METADATA}", error="invalid_token""#
            )),
            "{what}: {www}"
        );
    }
    // Lenient: a token without an audience passes; one for another resource still does not.
    let lenient = w.app(
        ProtectedResource::new(w.core.clone(), RESOURCE, &["UserRead"])
            .unwrap()
            .lenient(),
    );
    assert_eq!(
        send(&lenient, "/api", Some(&w.api_key)).await.0,
        StatusCode::OK
    );
    let other = w.token("ReadOnly", &["https://other.example/"]).await;
    assert_eq!(
        send(&lenient, "/api", Some(&other)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_token_without_the_scopes_is_403_with_the_scope_to_ask_for() {
    let w = world().await;
    let app =
        w.app(ProtectedResource::new(w.core.clone(), RESOURCE, &["AIServicesWrite"]).unwrap());
    let narrow = w.token("ReadOnly", &[RESOURCE]).await;
    let (s, www, body) = send(&app, "/api", Some(&narrow)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        www,
        format!(
            r#"Bearer resource_metadata="{METADATA}", error="insufficient_scope", scope="AIServicesWrite""#
        )
    );
    let wide = w.token("AIServices", &[RESOURCE]).await;
    assert_eq!(send(&app, "/api", Some(&wide)).await.0, StatusCode::OK);
    assert!(ProtectedResource::new(w.core.clone(), "/relative", &[]).is_err());
    assert!(ProtectedResource::new(w.core.clone(), RESOURCE, &["NoSuchScope"]).is_err());
}
