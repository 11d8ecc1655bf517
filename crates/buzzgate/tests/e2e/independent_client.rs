//! The flow driven by an independent client library, the `oauth2` crate, as a third-party Rust
//! app would: its authorize URL (PKCE S256, state), its code exchange, refresh and revocation.
//! Only the person's part (sign-in, consent) is done by hand.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
    Scope, TokenResponse, TokenUrl,
};

use crate::harness::{Backend, REDIRECT, env, location, query_param};

async fn run(backend: Backend) {
    let Some(env) = env(backend, |_| {}).await else {
        return;
    };
    let u = env.user("rustacean", 0).await;
    let app = env.app(u, false, None).await;
    let client = BasicClient::new(ClientId::new(app.id.clone()))
        .set_client_secret(ClientSecret::new(app.secret.clone().unwrap()))
        .set_auth_uri(AuthUrl::new(env.url("/api/auth/oauth/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(env.url("/api/auth/oauth/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("114689".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The person: sign in, open the app's URL, approve.
    let cookie = env.login("rustacean").await;
    let page = env
        .http
        .get(auth_url.as_str())
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "consent page");
    let html = page.text().await.unwrap();
    let r = env
        .answer_consent(&cookie, &html, &[("approved", "true")])
        .await;
    let loc = location(&r);
    assert_eq!(
        query_param(&loc, "state").as_deref(),
        Some(state.secret().as_str())
    );
    let code = query_param(&loc, "code").unwrap();

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("oauth2 crate exchanges the code");
    let access = token.access_token().secret().clone();
    let refresh = token.refresh_token().expect("a refresh token").clone();
    assert_eq!(
        token.scopes().map(|s| s[0].to_string()),
        Some("114689".to_string())
    );
    let info: serde_json::Value = env
        .get_bearer("/api/auth/oauth/userinfo", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["preferred_username"], "rustacean");

    let refreshed = client
        .exchange_refresh_token(&refresh)
        .request_async(&http)
        .await
        .expect("oauth2 crate refreshes");
    let access2 = refreshed.access_token().clone();
    assert_ne!(access2.secret(), &access);

    // The crate refuses non-https revocation URLs (a good default), so RFC 7009 by hand here.
    let r = http
        .post(env.url("/api/auth/oauth/revoke"))
        .basic_auth(&app.id, app.secret.as_ref())
        .form(&[
            ("token", access2.secret().as_str()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = env
        .get_bearer("/api/auth/oauth/userinfo", access2.secret())
        .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_crate_completes_the_flow_on_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_crate_completes_the_flow_on_postgres_and_redis() {
    run(Backend::PostgresRedis).await;
}
