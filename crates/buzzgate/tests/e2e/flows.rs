//! The scenarios, each a plain async fn over a running server.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Env, REDIRECT, location, query_param};

fn www(res: &reqwest::Response) -> String {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

pub async fn discovery_advertises_what_works(env: &Env) {
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m: Value = env.get(path).await.json().await.unwrap();
        assert_eq!(m["issuer"], env.base);
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(m["id_token_signing_alg_values_supported"], json!(["ES256"]));
    }
    let jwks: Value = env.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
    let h = env.get("/healthz").await;
    assert_eq!(h.status(), 200);
}

pub async fn browser_flow_with_pkce_refresh_reuse_and_revoke(env: &Env) {
    let u = env.user("alice", 0).await;
    let app = env.app(u, false, None).await;
    // Not signed in: 303 to the login page with a returnUrl back to authorize.
    let res = env
        .http
        .get(env.url("/api/auth/oauth/authorize"))
        .query(&[("client_id", app.id.as_str()), ("redirect_uri", REDIRECT)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with("/login?returnUrl=%2Fapi%2Fauth%2Foauth%2Fauthorize"));

    let cookie = env.login("alice").await;
    let (loc, verifier) = env.consent(&cookie, &app, "AIServices", None, None).await;
    assert!(loc.starts_with(REDIRECT), "{loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-123"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(env.base.as_str()));
    let code = query_param(&loc, "code").unwrap();

    // A wrong verifier burns the code.
    let (s, body) = env.exchange(&app, &code, &"x".repeat(43)).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let (s, _) = env.exchange(&app, &code, verifier.as_str()).await;
    assert_eq!(s, 400, "a burnt code stays burnt");

    // A fresh code, exchanged properly.
    let (loc, verifier) = env.consent(&cookie, &app, "AIServices", None, None).await;
    let code = query_param(&loc, "code").unwrap();
    let res = env
        .code_exchange(&app, &code, verifier.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["scope"], "114689");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("civitai_") && access.len() == 8 + 64);

    // Code replay: refused, and what it issued is revoked.
    let (s, _) = env.exchange(&app, &code, verifier.as_str()).await;
    assert_eq!(s, 400);
    let r = env.get_bearer("/api/auth/oauth/userinfo", &access).await;
    assert_eq!(r.status(), 401, "replaying a code revokes its tokens");

    // Again, cleanly, and this time use the tokens.
    let t = env.tokens("alice", &app, "AIServices", None).await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh1 = t["refresh_token"].as_str().unwrap().to_owned();
    let r = env.get_bearer("/api/auth/oauth/userinfo", &access).await;
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["preferred_username"], "alice");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["sub"], u.0.to_string());

    // Rotation: a new pair; the old refresh token is now spent (grace 0 here).
    let (s, t2) = env.refresh(&app, refresh1.as_str()).await;
    assert_eq!(s, 200, "{t2}");
    let refresh2 = t2["refresh_token"].as_str().unwrap().to_owned();
    let access2 = t2["access_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh1, refresh2);
    // Narrowing works; widening does not.
    let (s, e) = env
        .token_call(
            &app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh2.as_str()),
                ("scope", "Full"),
            ],
        )
        .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_scope")));
    // Reuse of the rotated token outside grace: theft, the whole family dies.
    let (s, e) = env.refresh(&app, refresh1.as_str()).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    let r = env.get_bearer("/api/auth/oauth/userinfo", &access2).await;
    assert_eq!(r.status(), 401, "family revoked");
    let (s, _) = env.refresh(&app, refresh2.as_str()).await;
    assert_eq!(s, 400);
    let _ = refresh;

    // Revoke (RFC 7009): 200 {}, and the token is refused at once, even for unknown tokens.
    let t = env.tokens("alice", &app, "AIServices", None).await;
    let access = t["access_token"].as_str().unwrap();
    for token in [access, "civitai_unknown"] {
        let r = env
            .app_form(&app, "/api/auth/oauth/revoke", &[("token", token)])
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap(), json!({}));
    }
    let r = env.get_bearer("/api/auth/oauth/userinfo", access).await;
    assert_eq!(r.status(), 401);
    assert!(www(&r).contains("invalid_token"), "{}", www(&r));
}

pub async fn grace_retry(env: &Env) {
    let u = env.user("gina", 0).await;
    let app = env.app(u, false, None).await;
    let t = env.tokens("gina", &app, "AIServices", None).await;
    let r1 = t["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", r1)];
    let (s1, a) = env.token_call(&app, &form).await;
    let (s2, b) = env.token_call(&app, &form).await;
    assert_eq!(
        (s1, s2),
        (200, 200),
        "a retry inside the grace window succeeds"
    );
    assert_ne!(a["access_token"], b["access_token"]);
}

pub async fn id_token_when_nonce(env: &Env) {
    let u = env.user("olga", 0).await;
    let app = env.app(u, false, None).await;
    let cookie = env.login("olga").await;
    let (loc, verifier) = env
        .consent(&cookie, &app, "1", Some("n-0S6_WzA2Mj"), None)
        .await;
    let code = query_param(&loc, "code").unwrap();
    let (s, t) = env.exchange(&app, &code, verifier.as_str()).await;
    assert_eq!(s, 200);
    let jwt = t["id_token"].as_str().expect("id_token");
    let payload = jwt.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["aud"], app.id);
    assert_eq!(claims["iss"], env.base);
    // Without a nonce, no id_token.
    let t = env.tokens("olga", &app, "1", None).await;
    assert!(t.get("id_token").is_none());
}

pub async fn client_credentials_acts_as_owner(env: &Env) {
    let u = env.user("cora", 0).await;
    let app = env
        .app(
            u,
            false,
            Some(&["authorization_code", "refresh_token", "client_credentials"]),
        )
        .await;
    let (s, t) = env
        .token_call(&app, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(s, 200, "{t}");
    assert!(t.get("refresh_token").is_none());
    assert_eq!(t["scope"], "33554431", "default scope is the ceiling");
    let me: Value = env
        .bearer_json("/api/v1/me", t["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me["username"], "cora");
    assert_eq!(me["subject"], json!({"type": "oauth", "id": app.id}));
    // A public client may not; nor an app without the grant.
    let public = env.app(u, true, None).await;
    let (s, e) = env
        .token_call(&public, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(s, 400, "{e}");
    let plain = env.app(u, false, None).await;
    let (s, e) = env
        .token_call(&plain, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("unauthorized_client")));
    // Wrong secret over Basic: 401 with WWW-Authenticate.
    let r = env
        .http
        .post(env.url("/api/auth/oauth/token"))
        .basic_auth(&app.id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(www(&r).starts_with("Basic"));
}

pub async fn device_flow_pending_then_approved(env: &Env) {
    let u = env.user("dave", 0).await;
    let app = env
        .app(
            u,
            true,
            Some(&[
                "urn:ietf:params:oauth:grant-type:device_code",
                "refresh_token",
            ]),
        )
        .await;
    let r = env
        .http
        .post(env.url("/api/auth/oauth/device"))
        .form(&[("client_id", app.id.as_str()), ("scope", "AIServices")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["expires_in"], 900);
    assert_eq!(d["interval"], 5);
    let user_code = d["user_code"].as_str().unwrap().to_owned();
    let device_code = d["device_code"].as_str().unwrap().to_owned();
    assert!(
        d["verification_uri_complete"]
            .as_str()
            .unwrap()
            .ends_with(&user_code)
    );
    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code.as_str()),
    ];
    let (s, e) = env.token_call(&app, &poll).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    // The person approves on the verification page.
    let cookie = env.login("dave").await;
    let page = env
        .http
        .get(env.url(&format!("/login/oauth/device?code={user_code}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let r = env
        .approve_device(&cookie, &page.text().await.unwrap())
        .await;
    assert_eq!(r.status(), 200);
    // Polling again within the 5 s interval would be slow_down; wait it out. Civitai's
    // polling endpoint then hands out the tokens, once.
    tokio::time::sleep(std::time::Duration::from_millis(5200)).await;
    let r = env
        .http
        .post(env.url("/api/auth/oauth/device-token"))
        .form(&[poll[0], poll[1], ("client_id", app.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert!(t["refresh_token"].is_string());
    let (s, _) = env.token_call(&app, &poll).await;
    assert_eq!(s, 400, "a device code grants once");
}

pub async fn introspection_for_resource_servers(env: &Env) {
    let u = env.user("ivan", 0).await;
    let app = env.app(u, false, None).await;
    let rs = env.app(u, false, None).await;
    env.make_resource_server(&rs).await;
    let t = env.tokens("ivan", &app, "AIServices", None).await;
    let access = t["access_token"].as_str().unwrap();
    let r = env
        .app_form(&rs, "/api/auth/oauth/introspect", &[("token", access)])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let i: Value = r.json().await.unwrap();
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], app.id);
    assert_eq!(i["sub"], u.0.to_string());
    assert_eq!(i["scope"], "114689");
    assert_eq!(
        i["token_type"], "Bearer",
        "RFC 7662: the RFC 6749 token type"
    );
    assert_eq!(i["token_kind"], "access_token");
    assert!(i["exp"].as_i64().unwrap() > i["iat"].as_i64().unwrap());
    let r = env
        .http
        .post(env.url("/api/auth/oauth/introspect"))
        .basic_auth(&rs.id, rs.secret.as_ref())
        .json(&json!({"token": "civitai_nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"active": false}));
    // A public client may not introspect.
    let public = env.app(u, true, None).await;
    let r = env
        .http
        .post(env.url("/api/auth/oauth/introspect"))
        .form(&[("token", access), ("client_id", public.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

async fn spend(
    env: &Env,
    rs: &crate::harness::App,
    token: &str,
    amount: u64,
    key: &str,
) -> (u16, Value) {
    let r = env
        .http
        .post(env.url("/api/v1/buzz/spend"))
        .basic_auth(&rs.id, rs.secret.as_ref())
        .json(&json!({"token": token, "amount": amount, "purpose": "ai_services", "idempotency_key": key}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

pub async fn buzz_spend_against_a_cap(env: &Env) {
    let u = env.user("bea", 1000).await;
    let app = env.app(u, false, None).await;
    let rs = env.app(u, false, None).await;
    env.make_resource_server(&rs).await;
    let cap = r#"[{"type":"absolute","limit":100}]"#;
    let t = env
        .tokens("bea", &app, "AIServices BuzzRead", Some(cap))
        .await;
    let token = t["access_token"].as_str().unwrap();
    let (s, r) = spend(env, &rs, token, 60, "k1").await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["balance"], 940);
    assert_eq!(r["limits"][0]["remaining"], 40);
    let (s, r) = spend(env, &rs, token, 60, "k1").await;
    assert_eq!(
        (s, r["replayed"].as_bool()),
        (200, Some(true)),
        "same key: no second charge"
    );
    let (s, r) = spend(env, &rs, token, 60, "k2").await;
    assert_eq!((s, r["error"].as_str()), (403, Some("insufficient_funds")));
    let (s, r) = spend(env, &rs, token, 40, "k3").await;
    assert_eq!((s, r["balance"].as_i64()), (200, Some(900)));
    // Concurrent spends against the exhausted cap all fail; refunds reopen it.
    let limits: Value = env.bearer_json("/api/v1/buzz/limits", token).await;
    assert_eq!(limits["limits"][0]["spend"], 100);
    let id = r["id"].as_str().unwrap();
    let r = env
        .app_post(&rs, &format!("/api/v1/buzz/spend/{id}/refund"))
        .await;
    assert_eq!(r.status(), 200);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["balance"], 940);
    // A repeated refund credits nothing and reports the same instant, to the microsecond.
    let again: Value = env
        .app_post(&rs, &format!("/api/v1/buzz/spend/{id}/refund"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&again["refundedAt"], &again["balance"]),
        (&first["refundedAt"], &json!(940))
    );
    let overview: Value = env.bearer_json("/api/v1/buzz", token).await;
    assert_eq!(overview["balances"]["yellow"], 940);
    // 16 concurrent spends of 10 against the 40 left: exactly 4 succeed.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let http = env.http.clone();
        let url = env.url("/api/v1/buzz/spend");
        let (id, secret) = (rs.id.clone(), rs.secret.clone());
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .basic_auth(id, secret)
                .json(&json!({"token": token, "amount": 10, "purpose": "ai_services", "idempotency_key": format!("c{i}")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 200 || s == 403, "{s}");
        ok += usize::from(s == 200);
    }
    assert_eq!(ok, 4, "the cap holds under concurrency");
}

pub async fn app_lifecycle_rotate_and_delete(env: &Env) {
    let u = env.user("owen", 0).await;
    let browser = env.session("owen").await;
    let cookie = browser.cookie.clone();
    // Create through the API with the session.
    let r = browser
        .call(
            Method::POST,
            "/api/v1/oauth/clients",
            Some(json!({"name": "Lifecycle", "redirectUris": [REDIRECT]})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    let app = crate::harness::App {
        id: c["clientId"].as_str().unwrap().into(),
        secret: c["clientSecret"].as_str().map(str::to_owned),
    };
    assert!(app.secret.is_some());
    let list: Value = browser.get_json("/oauth/clients").await;
    assert_eq!(list[0]["clientId"], app.id);
    assert!(list[0].get("clientSecret").is_none(), "never list secrets");
    let t = env.tokens("owen", &app, "AIServices", None).await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    // Rotate (seed 004 path): the old secret dies, tokens live on.
    let r = browser
        .call(
            Method::POST,
            &format!("/oauth/clients/{}/reset-secret", app.id),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let new_secret = r.json::<Value>().await.unwrap()["clientSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = env.refresh(&app, "x").await;
    assert_eq!(s, 401, "old secret refused");
    assert_eq!(
        env.bearer_status("/api/auth/oauth/userinfo", &access).await,
        200
    );
    let rotated = crate::harness::App {
        id: app.id.clone(),
        secret: Some(new_secret),
    };
    let (s, _) = env
        .refresh(&rotated, t["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(s, 200);
    // Update takes effect at once.
    let app_path = format!("/api/v1/oauth/clients/{}", app.id);
    let renamed = Some(json!({"name": "Renamed"}));
    let r = browser.call(Method::PATCH, &app_path, renamed).await;
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Renamed");
    // Delete cascades: every token dies.
    let r = browser.call(Method::DELETE, &app_path, None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        env.bearer_status("/api/auth/oauth/userinfo", &access).await,
        401
    );
    let r = env
        .http
        .get(env.url(&format!("/api/v1/oauth/clients/{}", app.id)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Someone else's app looks missing; no caller at all is 401.
    let _ = u;
    let r = env.get("/api/v1/oauth/clients").await;
    assert_eq!(r.status(), 401);
}

pub async fn connected_apps_revoke(env: &Env) {
    let u = env.user("cathy", 0).await;
    let app = env.app(u, false, None).await;
    let t = env.tokens("cathy", &app, "AIServices", None).await;
    let access = t["access_token"].as_str().unwrap();
    let browser = env.session("cathy").await;
    let list: Value = browser.get_json("/api/v1/oauth/consents").await;
    assert_eq!(list[0]["clientId"], app.id);
    // A token of that app may not change its own cap (needs UserWrite first; the
    // AIServices preset lacks it, so it is refused either way).
    let r = env
        .bearer_call(
            Method::PUT,
            &format!("/api/v1/oauth/consents/{}/buzz-limit", app.id),
            access,
            Some(json!([{"type": "absolute", "limit": 5}])),
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = browser
        .call(
            Method::PUT,
            &format!("/api/v1/oauth/consents/{}/buzz-limit", app.id),
            Some(json!([{"type": "sliding", "limit": 50, "window": "day", "unit": 1}])),
        )
        .await;
    assert_eq!(r.status(), 200);
    let consent_path = format!("/api/v1/oauth/consents/{}", app.id);
    let r = browser.call(Method::DELETE, &consent_path, None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        env.bearer_status("/api/auth/oauth/userinfo", access).await,
        401
    );
    let (s, _) = env
        .refresh(&app, t["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(s, 400, "refresh tokens die too");
}

pub async fn api_keys_are_bearers(env: &Env) {
    env.user("kim", 0).await;
    let browser = env.session("kim").await;
    let r = browser
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "laptop", "scope": "UserRead BuzzRead"})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let k: Value = r.json().await.unwrap();
    let key = k["key"].as_str().unwrap();
    let me: Value = env.bearer_json("/api/v1/me", key).await;
    assert_eq!(me["subject"]["type"], "apiKey");
    let list: Value = env
        .bearer_call(Method::GET, "/api/v1/api-keys", key, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["name"], "laptop");
    assert!(list[0].get("key").is_none());
    // A key cannot mint keys.
    let r = env
        .bearer_call(
            Method::POST,
            "/api/v1/api-keys",
            key,
            Some(json!({"name": "again"})),
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = browser
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(env.bearer_status("/api/v1/me", key).await, 401);
}

pub async fn bad_input_is_4xx_never_500(env: &Env) {
    let token = env.url("/api/auth/oauth/token");
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            env.http
                .post(&token)
                .header("content-type", "text/plain")
                .body("grant_type=x"),
            415,
            "invalid_request",
        ),
        (
            env.http
                .post(&token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(vec![b'a'; 70 * 1024]),
            413,
            "invalid_request",
        ),
        (
            env.http
                .post(&token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=a&grant_type=b"),
            400,
            "invalid_request",
        ),
        (
            env.http
                .post(&token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(b"grant_type=%ff%fe".to_vec()),
            400,
            "invalid_request",
        ),
        (
            env.http
                .post(&token)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "invalid_request",
        ),
        (
            env.http.post(&token).form(&[("grant_type", "password")]),
            400,
            "unsupported_grant_type",
        ),
        (
            env.http
                .post(&token)
                .form(&[("grant_type", "client_credentials")]),
            400,
            "invalid_request",
        ),
        (
            env.http
                .post(&token)
                .form(&[("grant_type", "client_credentials"), ("client_id", "nope")]),
            400,
            "invalid_client",
        ),
        (
            env.http
                .post(&token)
                .header("authorization", "Basic %%%")
                .form(&[("grant_type", "client_credentials")]),
            401,
            "invalid_client",
        ),
        (
            env.http
                .get(env.url("/api/auth/oauth/authorize?client_id=%ff")),
            400,
            "invalid_request",
        ),
        (
            env.http
                .get(env.url("/api/auth/oauth/userinfo"))
                .header("authorization", "Bearer x"),
            401,
            "invalid_token",
        ),
        (env.http.get(env.url("/nope")), 404, "not_found"),
        (
            env.http.delete(env.url("/api/auth/oauth/token")),
            405,
            "invalid_request",
        ),
        (
            env.http
                .post(env.url("/api/v1/buzz/spend"))
                .json(&json!({"amount": "lots"})),
            400,
            "invalid_request",
        ),
    ];
    for (i, (req, status, code)) in cases.into_iter().enumerate() {
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "case {i}");
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(body["error"], code, "case {i}: {body}");
        assert!(body["error_description"].is_string(), "case {i}");
    }
}

pub async fn insufficient_scope_contract(env: &Env) {
    let u = env.user("sam", 0).await;
    let app = env.app(u, false, None).await;
    let t = env.tokens("sam", &app, "UserRead", None).await;
    let r = env
        .get_bearer("/api/v1/buzz", t["access_token"].as_str().unwrap())
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        www(&r),
        r#"Bearer realm="buzzgate", error="insufficient_scope", scope="65536""#
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error_description"],
        "Token does not have BuzzRead scope"
    );
}

pub async fn authorize_errors_redirect_or_json(env: &Env) {
    let u = env.user("eve", 0).await;
    let app = env.app(u, false, None).await;
    let cookie = env.login("eve").await;
    let get = |q: Vec<(&'static str, String)>| {
        env.http
            .get(env.url("/api/auth/oauth/authorize"))
            .header("cookie", &cookie)
            .query(&q)
            .send()
    };
    // The first `n` parameters of a complete request, then `extra`.
    let params = |n: usize, state: &str, scope: &str, extra: &[(&'static str, &str)]| {
        let all = [
            ("client_id", app.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("state", state),
            ("scope", scope),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ];
        let q = all[..n].iter().chain(extra);
        q.map(|&(k, v)| (k, v.to_owned())).collect::<Vec<_>>()
    };
    // Unknown redirect URI: JSON 400, never a redirect.
    let unknown_redirect = params(1, "", "", &[("redirect_uri", "https://evil.example/cb")]);
    let r = get(unknown_redirect).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    // Missing PKCE: 302 back with error, state and iss.
    let r = get(params(5, "s1", "1", &[])).await.unwrap();
    assert_eq!(r.status(), 302);
    let loc = location(&r);
    assert!(loc.starts_with(REDIRECT));
    assert_eq!(
        query_param(&loc, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_param(&loc, "state").as_deref(), Some("s1"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(env.base.as_str()));
    // A huge scope number: invalid_scope through the redirect, not a 500.
    let r = get(params(7, "s1", "99999999999999999999999999", &[]))
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("invalid_scope")
    );
    // A GET with approved=true never approves: the consent page is shown.
    let approved = params(7, "s1", "1", &[("approved", "true")]);
    let r = get(approved.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    // A POST approval without the CSRF token is refused.
    let r = env
        .http
        .post(env.url("/api/auth/oauth/authorize"))
        .header("cookie", &cookie)
        .form(&approved)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Deny: 303 with access_denied.
    let page = get(params(7, "s2", "1", &[])).await.unwrap();
    let html = page.text().await.unwrap();
    let r = env
        .answer_consent(&cookie, &html, &[("approved", "false")])
        .await;
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("s2"));
}

pub async fn readiness(env: &Env) {
    let r = env.get("/readyz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");
}

pub async fn rate_limited(env: &Env) {
    let u = env.user("rita", 0).await;
    let app = env
        .app(
            u,
            false,
            Some(&["authorization_code", "client_credentials"]),
        )
        .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let r = env
            .app_form(
                &app,
                "/api/auth/oauth/token",
                &[("grant_type", "client_credentials")],
            )
            .await;
        let status = r.status().as_u16();
        if status == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(r.json::<Value>().await.unwrap()["error"], "rate_limited");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&secs));
}

/// Civitai's app SDK reads the balance from `GET /api/trpc/buzz.getUserAccount` (issue 17).
pub async fn buzz_account_for_the_civitai_sdk(env: &Env) {
    let u = env.user("tina", 700).await;
    let app = env.app(u, false, None).await;
    let t = env.tokens("tina", &app, "UserRead BuzzRead", None).await;
    let account = "/api/trpc/buzz.getUserAccount";
    let r = env
        .get_bearer(account, t["access_token"].as_str().unwrap())
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"result": {"data": {"json": [
            {"id": u.0, "balance": 700, "lifetimeBalance": 700, "accountType": "yellow"}
        ]}}})
    );
    let without = env.tokens("tina", &app, "UserRead", None).await;
    let without = without["access_token"].as_str().unwrap();
    let r = env.get_bearer(account, without).await;
    assert_eq!(r.status(), 403);
    let challenge = www(&r);
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="65536""#),
        "{challenge}"
    );
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_description"], "Token does not have BuzzRead scope");
    let r = env.get("/api/trpc/buzz.getUserAccount").await;
    assert_eq!(r.status(), 401);
}

fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Issue 18.1: `openid profile email`, as standard OIDC libraries send it.
pub async fn oidc_scopes_sign_a_user_in(env: &Env) {
    let u = env.user("oona", 0).await;
    let app = env.app(u, false, None).await;
    let meta: Value = env.get_json("/.well-known/openid-configuration").await;
    for s in ["openid", "profile", "email", "offline_access"] {
        assert!(
            meta["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(s)),
            "{s}"
        );
    }
    let t = env.tokens("oona", &app, "openid profile email", None).await;
    assert_eq!(
        t["scope"], "1",
        "the OIDC scopes read the profile: UserRead"
    );
    let claims = jwt_claims(
        t["id_token"]
            .as_str()
            .expect("openid: an id_token, no nonce needed"),
    );
    assert_eq!(claims["sub"], u.0.to_string());
    assert_eq!(claims["preferred_username"], "oona");
    assert_eq!(claims["email"], "oona@example.com");
    assert!(claims.get("nonce").is_none());
    let info: Value = env
        .bearer_json(
            "/api/auth/oauth/userinfo",
            t["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(
        (&info["name"], &info["email_verified"]),
        (&json!("oona"), &json!(true))
    );
    // `openid email`: the profile claims are not released.
    let t = env.tokens("oona", &app, "openid email", None).await;
    let info: Value = env
        .bearer_json(
            "/api/auth/oauth/userinfo",
            t["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(info["email"], "oona@example.com");
    assert!(info.get("preferred_username").is_none() && info.get("username").is_none());
    // No credentials at all: a bare challenge (RFC 6750 §3.1).
    let r = env.get("/api/auth/oauth/userinfo").await;
    assert_eq!(r.status(), 401);
    assert_eq!(www(&r), r#"Bearer realm="buzzgate""#);
}

/// Issue 18.2 and 18.5: a cap body is a BuzzBudget[] (or null, or {"buzzLimit": …}); a
/// rollover cap takes the cron dialect of Civitai's scheduler.
pub async fn cap_bodies_and_the_cronos_dialect(env: &Env) {
    let u = env.user("rhea", 0).await;
    let app = env.app(u, false, None).await;
    env.tokens("rhea", &app, "AIServices", None).await;
    let browser = env.session("rhea").await;
    let (cookie, csrf) = (browser.cookie.clone(), browser.csrf.clone());
    let put = |body: Value| {
        env.http
            .put(env.url(&format!("/api/v1/oauth/consents/{}/buzz-limit", app.id)))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    let r = put(json!({"limit": 5, "period": "day"})).await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("buzzLimit"),
        "{e}"
    );
    let list: Value = browser.get_json("/api/v1/oauth/consents").await;
    assert_eq!(
        list[0]["buzzLimit"][0]["limit"], 5000,
        "the refused body left the default cap in place"
    );
    for cron in [
        "0 0 L * *",
        "0 0 LW * *",
        "0 0 * * 5#3",
        "0 0 * * 5L",
        "0 0 15W * *",
    ] {
        let r = put(json!([{"type": "rollover", "limit": 100, "cron": cron}]))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{cron}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["buzzLimit"][0]["cron"], cron);
    }
    let r = put(json!([{"type": "rollover", "limit": 100, "cron": "0 0 30 2 *"}]))
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a schedule that never fires is refused");
    let r = put(Value::Null).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["buzzLimit"], json!([]));
}
