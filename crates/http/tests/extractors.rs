//! The embedders' extractors over an in-memory core: a valid token passes, a missing or
//! unknown one is 401 `invalid_token`, a narrow one is 403 `insufficient_scope` with the
//! contract's `WWW-Authenticate`; a platform's own catalogue names its scopes in the error,
//! by bits (`RequireScope`) or by name (`RequireNamed`).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use buzzgate_domain::catalogue::{BuzzSpend, Catalogue, ScopeDef};
use buzzgate_domain::memory::MemoryStore;
use buzzgate_domain::ports::{OsRandom, SystemClock};
use buzzgate_domain::service::api_keys::NewApiKey;
use buzzgate_domain::service::{Buzzgate, Caller, Config};
use buzzgate_domain::user::{NewUser, Username};
use buzzgate_domain::{Scope, ScopeValue};
use buzzgate_http::{BearerToken, RequireNamed, RequireScope, scope_name};
use tower::ServiceExt;

async fn setup(scope: Scope) -> (Router, String) {
    let (core, key) = core_and_key(Config::default(), scope.into()).await;
    let app = Router::new()
        .route(
            "/any",
            get(|BearerToken(b): BearerToken| async move { b.user_id().0.to_string() }),
        )
        .route(
            "/write",
            get(
                |RequireScope(_): RequireScope<{ Scope::AI_SERVICES_WRITE.bits() }>| async { "ok" },
            ),
        )
        .with_state(core);
    (app, key)
}

/// A core over `config` and a personal API key with `scope`.
async fn core_and_key(config: Config, scope: ScopeValue) -> (Buzzgate, String) {
    let store = MemoryStore::new(Arc::new(SystemClock));
    let core = Buzzgate::new(store.deps(Arc::new(OsRandom), config));
    let user = core
        .sessions()
        .create_user(NewUser {
            username: Username::parse("embed").unwrap(),
            email: None,
            email_verified: false,
            password: None,
            roles: vec![],
        })
        .await
        .unwrap();
    let (key, _) = core
        .api_keys()
        .create(
            &Caller::operator_for(user.id),
            NewApiKey {
                name: "k".into(),
                scope: Some(scope),
                buzz_limit: None,
                expires_in_days: None,
            },
        )
        .await
        .unwrap();
    (core, key.expose().to_owned())
}

fn req(path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn valid_token_passes_and_names_the_user() {
    let (app, key) = setup(Scope::READ_ONLY).await;
    let res = app.oneshot(req("/any", Some(&key))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn missing_or_unknown_token_is_401_invalid_token() {
    let (app, _) = setup(Scope::READ_ONLY).await;
    let res = app
        .clone()
        .oneshot(req("/any", Some("civitai_nope")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let www = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(www.contains(r#"error="invalid_token""#), "{www}");
    // No credentials at all: a bare challenge, no error code (RFC 6750 §3.1).
    let res = app.clone().oneshot(req("/any", None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer realm="buzzgate""#
    );
}

#[tokio::test]
async fn narrow_token_is_403_insufficient_scope() {
    let (app, key) = setup(Scope::READ_ONLY).await;
    let res = app
        .clone()
        .oneshot(req("/write", Some(&key)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer realm="buzzgate", error="insufficient_scope", scope="32768""#
    );
    let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["error_description"],
        "Token does not have AIServicesWrite scope"
    );
    let (app, key) = setup(Scope::AI_SERVICES).await;
    let res = app.oneshot(req("/write", Some(&key))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

fn def(name: &str, bit: u8, buzz: BuzzSpend) -> ScopeDef {
    ScopeDef {
        name: name.into(),
        bit,
        label: name.into(),
        description: String::new(),
        category: None,
        kind: None,
        aliases: vec![],
        buzz,
        reserved: false,
    }
}

scope_name!(Generations = "generations");
scope_name!(Characters = "CHARACTERS");

#[tokio::test]
async fn a_platform_s_catalogue_names_its_scopes_by_bits_or_by_name() {
    let catalogue = Catalogue::new(
        vec![
            def("profile", 0, BuzzSpend::None),
            def("generations", 40, BuzzSpend::Capped),
            def("characters", 41, BuzzSpend::None),
        ],
        vec![],
        "profile",
    )
    .unwrap();
    let config = Config {
        catalogue: Arc::new(catalogue),
        ..Config::default()
    };
    let names = ScopeValue::Names(vec!["profile".into(), "characters".into()]);
    let (core, key) = core_and_key(config, names).await;
    let app = Router::new()
        .route(
            "/generate",
            get(|_: RequireNamed<Generations>| async { "ok" }),
        )
        .route(
            "/characters",
            get(|_: RequireNamed<Characters>| async { "ok" }),
        )
        .route(
            "/generate-bits",
            get(|_: RequireScope<{ 1 << 40 }>| async { "ok" }),
        )
        .with_state(core);
    for path in ["/generate", "/generate-bits"] {
        let res = app.clone().oneshot(req(path, Some(&key))).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        let www = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(www.contains(r#"scope="1099511627776""#), "{www}");
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["error_description"],
            "Token does not have generations scope"
        );
    }
    let res = app
        .clone()
        .oneshot(req("/characters", Some(&key)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a name in any case");
}
