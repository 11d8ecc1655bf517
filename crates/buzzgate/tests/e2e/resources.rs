//! Resource indicators over HTTP (RFC 8707, docs/api.md): repeated `resource` through the
//! consent page, the audience in introspection and `/api/v1/me`, `invalid_target`.

use buzzgate_domain::pkce::{CodeChallenge, CodeVerifier};
use buzzgate_domain::ports::OsRandom;
use serde_json::Value;

use crate::harness::{Env, REDIRECT, location, query_param};

const MCP: &str = "https://mcp.example.com/mcp";
const API: &str = "https://api.example.com/v1";

/// Posts a consent page's form back approved, as a browser does: every hidden input, repeats
/// included (the header's Sign out form carries the same csrf_token: sent once).
async fn approve(env: &Env, cookie: &str, html: &str) -> reqwest::Response {
    let mut fields: Vec<(String, String)> = Vec::new();
    for part in html.split("<input type=\"hidden\" name=\"").skip(1) {
        let name = part.split('"').next().unwrap().to_owned();
        let value = part
            .split("value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let value = value.replace("&amp;", "&").replace("&quot;", "\"");
        if name == "csrf_token" && fields.iter().any(|(k, _)| k == "csrf_token") {
            continue;
        }
        fields.push((name, value));
    }
    fields.push(("approved".into(), "true".into()));
    env.http
        .post(env.url("/api/auth/oauth/authorize"))
        .header("cookie", cookie)
        .form(&fields)
        .send()
        .await
        .unwrap()
}

/// Authorize naming `resources`, approve the consent page as a browser posts it (every
/// hidden input, repeats included), and return the code with its verifier.
pub async fn code_with_resources(
    env: &Env,
    cookie: &str,
    app: &crate::harness::App,
    scope: &str,
    resources: &[&str],
) -> (String, CodeVerifier) {
    let verifier = CodeVerifier::generate(&OsRandom);
    let challenge = CodeChallenge::from_verifier(&verifier);
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", app.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for r in resources {
        q.push(("resource", r));
    }
    let page = env
        .http
        .get(env.url("/api/auth/oauth/authorize"))
        .query(&q)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let res = if page.status() == 200 {
        let html = page.text().await.unwrap();
        approve(env, cookie, &html).await
    } else {
        page
    };
    let code = query_param(&location(&res), "code").expect("code");
    (code, verifier)
}

pub async fn resource_indicators_set_the_audience(env: &Env) {
    let owner = env.user("rio", 0).await;
    let app = env.app(owner, false, None).await;
    env.make_resource_server(&app).await;
    env.user("sam", 0).await;
    let cookie = env.login("sam").await;
    let verifier = CodeVerifier::generate(&OsRandom);
    let challenge = CodeChallenge::from_verifier(&verifier);
    let authorize = |resources: Vec<&'static str>| {
        let mut q = vec![
            ("response_type", "code"),
            ("client_id", app.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "AIServices"),
            ("state", "st"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        for r in resources {
            q.push(("resource", r));
        }
        env.http
            .get(env.url("/api/auth/oauth/authorize"))
            .query(&q)
            .header("cookie", &cookie)
            .send()
    };
    let page = authorize(vec![MCP, API]).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert_eq!(
        html.matches(r#"name="resource""#).count(),
        2,
        "both ride on the form"
    );
    let res = approve(env, &cookie, &html).await;
    assert_eq!(res.status(), 303);
    let code = query_param(&location(&res), "code").expect("code");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", REDIRECT),
        ("resource", MCP),
    ];
    let r = env
        .http
        .post(env.url("/api/auth/oauth/token"))
        .basic_auth(&app.id, app.secret.as_ref())
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let t: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{t}");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let i: Value = env
        .app_form(
            &app,
            "/api/auth/oauth/introspect",
            &[("token", access.as_str())],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(i["active"], true);
    assert_eq!(i["aud"], MCP, "{i}");
    let me = env.bearer_json("/api/v1/me", &access).await;
    assert_eq!(me["aud"], MCP, "{me}");
    // A refresh asking for a resource the grant did not cover: invalid_target, 400.
    let r = env
        .http
        .post(env.url("/api/auth/oauth/token"))
        .basic_auth(&app.id, app.secret.as_ref())
        .json(&serde_json::json!({
            "grant_type": "refresh_token",
            "refresh_token": t["refresh_token"],
            "resource": ["https://other.example/"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_target");
    // …and both granted ones, as a JSON array: the audience has both.
    let r = env
        .http
        .post(env.url("/api/auth/oauth/token"))
        .basic_auth(&app.id, app.secret.as_ref())
        .json(&serde_json::json!({
            "grant_type": "refresh_token",
            "refresh_token": t["refresh_token"],
            "resource": [MCP, API],
        }))
        .send()
        .await
        .unwrap();
    let t2: Value = r.json().await.unwrap();
    let i: Value = env
        .app_form(
            &app,
            "/api/auth/oauth/introspect",
            &[("token", t2["access_token"].as_str().unwrap())],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(i["aud"], serde_json::json!([MCP, API]), "{i}");
    // A malformed resource at authorize goes back to the app as invalid_target.
    let r = authorize(vec!["https://x.example/#frag"]).await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("invalid_target")
    );
    // Without resource, no aud: as before.
    let plain = env.tokens("sam", &app, "AIServices", None).await;
    let i: Value = env
        .app_form(
            &app,
            "/api/auth/oauth/introspect",
            &[("token", plain["access_token"].as_str().unwrap())],
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(i.get("aud").is_none(), "{i}");
}
