//! `GET /metrics` after real traffic (issue 15, docs/operations.md "Metrics"): each named
//! series is there with a plausible value, and the scrape token is enforced. The recorder is
//! global to the process, so tests sharing a process add up: every check is "at least".

use buzzgate::Config;
use buzzgate::config::Secret;
use serde_json::{Value, json};

use crate::harness::{Env, query_param};

const SCRAPE: &str = "scrape-token-for-tests";

pub fn scrape_token(c: &mut Config) {
    c.metrics_token = Secret(Some(SCRAPE.into()));
    c.rate_limit_token = Some(10);
}

/// The sum of the samples of `name` whose labels include every pair of `labels`; `None` when
/// no sample matches.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = match line.rsplit_once(' ') {
            Some(p) => p,
            None => continue,
        };
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            continue;
        }
        let rest = rest.trim_end_matches('}');
        if labels
            .iter()
            .all(|(k, v)| rest.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(f64::NAN);
        }
    }
    found
}

fn at_least(text: &str, name: &str, labels: &[(&str, &str)], min: f64) {
    let v = sample(text, name, labels)
        .unwrap_or_else(|| panic!("no sample of {name}{labels:?} in:\n{text}"));
    assert!(v >= min, "{name}{labels:?} = {v}, expected at least {min}");
}

async fn scrape(env: &Env) -> String {
    let r = env
        .http
        .get(env.url("/metrics"))
        .bearer_auth(SCRAPE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    r.text().await.unwrap()
}

async fn spend(env: &Env, rs: &crate::harness::App, token: &str, amount: u64, key: &str) -> u16 {
    env.http
        .post(env.url("/api/v1/buzz/spend"))
        .basic_auth(&rs.id, rs.secret.as_ref())
        .json(&json!({"token": token, "amount": amount, "purpose": "ai_services", "idempotency_key": key}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

pub async fn metrics_after_traffic(env: &Env) {
    // The token check first: without it, or with a wrong one, 401.
    let r = env.get("/metrics").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = env
        .http
        .get(env.url("/metrics"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let u = env.user("mia", 1000).await;
    let grants = ["authorization_code", "refresh_token", "client_credentials"];
    let app = env.app(u, false, Some(&grants)).await;
    let rs = env.app(u, false, None).await;
    env.make_resource_server(&rs).await;

    // client_credentials: one access token issued.
    let (s, cc) = env
        .token_call(&app, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(s, 200, "{cc}");
    let cc_token = cc["access_token"].as_str().unwrap().to_owned();
    // Two validations of one token: a miss, then a hit.
    assert_eq!(env.bearer_status("/api/v1/me", &cc_token).await, 200);
    assert_eq!(env.bearer_status("/api/v1/me", &cc_token).await, 200);

    // The browser flow, then spends: charged, replayed, refused.
    let cookie = env.login("mia").await;
    let (loc, verifier) = env
        .consent(&cookie, &app, "AIServices BuzzRead", None, None)
        .await;
    let code = query_param(&loc, "code").expect("code");
    let (s, t) = env.exchange(&app, &code, verifier.as_str()).await;
    assert_eq!(s, 200, "{t}");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(spend(env, &rs, &access, 10, "m1").await, 200);
    assert_eq!(spend(env, &rs, &access, 10, "m1").await, 200, "replayed");
    assert_eq!(spend(env, &rs, &access, 100_000, "m2").await, 403);

    // A rotation, then the old refresh token again: reuse, the family revoked.
    let (s, rotated) = env.refresh(&app, &refresh).await;
    assert_eq!(s, 200, "{rotated}");
    let (s, reused) = env.refresh(&app, &refresh).await;
    assert_eq!((s, reused["error"].as_str()), (400, Some("invalid_grant")));

    // A revocation.
    let r = env
        .app_form(&app, "/api/auth/oauth/revoke", &[("token", &cc_token)])
        .await;
    assert_eq!(r.status(), 200);

    // The token endpoint's limit (10 a minute per client): 429s.
    let limited = env.app(u, false, Some(&["client_credentials"])).await;
    let mut refused = 0;
    for _ in 0..12 {
        let (s, _) = env
            .token_call(&limited, &[("grant_type", "client_credentials")])
            .await;
        refused += u32::from(s == 429);
    }
    assert!(refused >= 2, "{refused} refused");
    assert_eq!(env.get("/no/such/route").await.status(), 404);

    let text = scrape(env).await;
    let token = [("route", "/api/auth/oauth/token"), ("method", "POST")];
    at_least(
        &text,
        "buzzgate_http_requests_total",
        &[token[0], token[1], ("status", "200")],
        3.0,
    );
    at_least(
        &text,
        "buzzgate_http_requests_total",
        &[token[0], ("status", "429")],
        2.0,
    );
    at_least(
        &text,
        "buzzgate_http_requests_total",
        &[("route", "unmatched"), ("status", "404")],
        1.0,
    );
    at_least(
        &text,
        "buzzgate_http_requests_total",
        &[("route", "/metrics"), ("status", "401")],
        2.0,
    );
    at_least(
        &text,
        "buzzgate_http_request_duration_seconds_count",
        &token,
        3.0,
    );
    at_least(
        &text,
        "buzzgate_http_request_duration_seconds_bucket",
        &[token[0], token[1], ("le", "+Inf")],
        3.0,
    );
    let sum = sample(&text, "buzzgate_http_request_duration_seconds_sum", &token).unwrap();
    assert!(sum > 0.0 && sum < 600.0, "latency sum {sum}");
    at_least(&text, "buzzgate_rate_limited_total", &[token[0]], 2.0);

    at_least(
        &text,
        "buzzgate_tokens_issued_total",
        &[("kind", "access")],
        2.0,
    );
    at_least(
        &text,
        "buzzgate_tokens_issued_total",
        &[("kind", "refresh")],
        1.0,
    );
    at_least(&text, "buzzgate_tokens_refreshed_total", &[], 1.0);
    at_least(&text, "buzzgate_refresh_reuse_detected_total", &[], 1.0);
    at_least(
        &text,
        "buzzgate_tokens_revoked_total",
        &[("reason", "family")],
        2.0,
    );
    at_least(
        &text,
        "buzzgate_tokens_revoked_total",
        &[("reason", "revoke")],
        1.0,
    );
    for (decision, code) in [
        ("spent", "none"),
        ("replayed", "none"),
        ("refused", "insufficient_funds"),
    ] {
        at_least(
            &text,
            "buzzgate_buzz_spend_decisions_total",
            &[("decision", decision), ("code", code)],
            1.0,
        );
    }
    // Present from the start, at 0 unless a store failed.
    let errors = sample(
        &text,
        "buzzgate_store_errors_total",
        &[("port", "tokens"), ("kind", "unavailable")],
    )
    .expect("store errors are exported from the start");
    assert!(errors >= 0.0);
    at_least(
        &text,
        "buzzgate_cache_requests_total",
        &[("cache", "token"), ("result", "hit")],
        1.0,
    );
    at_least(
        &text,
        "buzzgate_cache_requests_total",
        &[("cache", "token"), ("result", "miss")],
        1.0,
    );
    at_least(
        &text,
        "buzzgate_cache_requests_total",
        &[("cache", "clients")],
        1.0,
    );
    at_least(&text, "buzzgate_group_commit_batch_size_count", &[], 3.0);
    at_least(
        &text,
        "buzzgate_group_commit_batch_size_bucket",
        &[("le", "256")],
        3.0,
    );
}

/// `BUZZGATE_METRICS=off`: `/metrics` is 404.
pub fn metrics_off(c: &mut Config) {
    c.metrics = false;
}

pub async fn metrics_can_be_turned_off(env: &Env) {
    let r = env.get("/metrics").await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}
