//! The security fixes of issue 8, each proved by the attack it stops (SPEC 10 and 13), over
//! real HTTP against the real server. Every scenario is named after the attack; the callers
//! and their refusals follow SPEC 13's table. The domain API is used in-process for setup only
//! (users, apps, access modes, the resource-server role), never to check an answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use buzzgate::Config;
use buzzgate_domain::client::AccessMode;
use buzzgate_domain::ids::{ClientId, UserId};
use buzzgate_domain::pkce::CodeVerifier;
use buzzgate_domain::service::Caller;
use buzzgate_domain::user::Role;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::harness::{App, Env, PASSWORD, REDIRECT, cookie_pair, query_param};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const SPA: &str = "https://spa.example.com";
const EVIL: &str = "https://evil.example";
/// A valid S256 challenge, for authorize requests that must be refused before PKCE matters.
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

// --- Configurations (the `with` scenarios of main.rs) -------------------------------------

/// Failed client authentications: 5 per address; the client's own bucket is generous.
pub fn client_auth_limits(c: &mut Config) {
    c.rate_limit_client_auth = Some(5);
    c.rate_limit_token = Some(1000);
    c.trusted_proxies = 1;
}

/// Failed sign-ins: 3 per account, 5 per address, behind one proxy.
pub fn login_limits(c: &mut Config) {
    c.rate_limit_login_account = Some(3);
    c.rate_limit_login_ip = Some(5);
    c.trusted_proxies = 1;
}

/// Revocation: 3 per address, behind one proxy.
pub fn revoke_limit_behind_one_proxy(c: &mut Config) {
    c.rate_limit_revoke = Some(3);
    c.trusted_proxies = 1;
}

/// Revocation: 3 per address, no proxy trusted.
pub fn revoke_limit_without_proxies(c: &mut Config) {
    c.rate_limit_revoke = Some(3);
    c.trusted_proxies = 0;
}

/// A one-second refresh grace window.
pub fn one_second_grace(c: &mut Config) {
    c.refresh_grace_seconds = 1;
}

// --- Helpers ---------------------------------------------------------------------------

/// Status and JSON body (`Null` when the body is not JSON).
async fn answer(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn send(req: RequestBuilder) -> (u16, Value) {
    answer(req.send().await.unwrap()).await
}

fn error_of(v: &Value) -> Option<&str> {
    v["error"].as_str()
}

fn description_of(v: &Value) -> &str {
    v["error_description"].as_str().unwrap_or("")
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Rate-limit windows are whole minutes of the epoch (SPEC 10): start a limit scenario with
/// at least `needed` left in the current one, so all its counts land in one window.
async fn fresh_window(needed: Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let into = Duration::from_nanos((now.as_nanos() % 60_000_000_000) as u64);
    let left = Duration::from_secs(60) - into;
    if left < needed {
        tokio::time::sleep(left + Duration::from_millis(100)).await;
    }
}

/// A signed-in browser: the session cookie and its CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn browser(env: &Env, user: &str) -> Browser {
    let cookie = env.login(user).await;
    let csrf = env.csrf(&cookie).await;
    Browser { cookie, csrf }
}

impl Browser {
    /// A request with the session cookie and its CSRF token.
    fn proven(&self, req: RequestBuilder) -> RequestBuilder {
        req.header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
    }

    /// A request with the session cookie only.
    fn cookie_only(&self, req: RequestBuilder) -> RequestBuilder {
        req.header("cookie", &self.cookie)
    }
}

/// An admin (a user with the `admin` role).
async fn admin_user(env: &Env, name: &str) -> UserId {
    env.core
        .sessions()
        .create_user(crate::harness::new_user(name, vec![Role::Admin]))
        .await
        .expect("admin")
        .id
}

async fn set_access_mode(env: &Env, app: &App, mode: AccessMode) {
    let id = ClientId::parse(&app.id).unwrap();
    env.core
        .clients()
        .administer(&Caller::operator(), &id, None, Some(mode), None)
        .await
        .unwrap();
}

/// A confidential app that may also use `client_credentials`.
async fn cc_app(env: &Env, owner: UserId) -> App {
    env.app(
        owner,
        false,
        Some(&["authorization_code", "refresh_token", "client_credentials"]),
    )
    .await
}

/// A public app with the device grant.
async fn device_app(env: &Env, owner: UserId) -> App {
    env.app(owner, true, Some(&[DEVICE_GRANT, "refresh_token"]))
        .await
}

async fn resource_server(env: &Env, owner: UserId) -> App {
    let rs = env.app(owner, false, None).await;
    env.make_resource_server(&rs).await;
    rs
}

/// An app's request to an endpoint that authenticates clients: Basic for a confidential app,
/// `client_id` in the form for a public one.
fn client_form(env: &Env, app: &App, path: &str, form: &[(&str, &str)]) -> RequestBuilder {
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let mut req = env.http.post(env.url(path));
    match &app.secret {
        Some(s) => req = req.basic_auth(&app.id, Some(s)),
        None => form.push(("client_id", &app.id)),
    }
    req.form(&form)
}

async fn client_credentials(env: &Env, app: &App) -> (u16, Value) {
    env.token_call(app, &[("grant_type", "client_credentials")])
        .await
}

async fn refresh(env: &Env, app: &App, token: &str) -> (u16, Value) {
    env.token_call(
        app,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

/// An authorization code for `app` (not exchanged) and its verifier.
async fn code_for(env: &Env, cookie: &str, app: &App, scope: &str) -> (String, CodeVerifier) {
    let (loc, verifier) = env.consent(cookie, app, scope, None, None).await;
    let code = query_param(&loc, "code").unwrap_or_else(|| panic!("a code in {loc}"));
    (code, verifier)
}

/// `POST /device` → (device_code, user_code).
async fn device_start(env: &Env, app: &App, scope: &str) -> (String, String) {
    let (s, d) = send(client_form(
        env,
        app,
        "/api/auth/oauth/device",
        &[("scope", scope)],
    ))
    .await;
    assert_eq!(s, 200, "device authorization starts: {d}");
    (
        d["device_code"].as_str().unwrap().to_owned(),
        d["user_code"].as_str().unwrap().to_owned(),
    )
}

/// The person approves `user_code` on the verification page.
async fn device_approve(env: &Env, cookie: &str, user_code: &str) {
    let page = env
        .http
        .get(env.url("/login/oauth/device"))
        .query(&[("code", user_code)])
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        200,
        "the verification page shows the request"
    );
    let r = env
        .approve_device(cookie, &page.text().await.unwrap())
        .await;
    assert_eq!(r.status(), 200, "the person approves the device");
    assert!(r.text().await.unwrap().contains("Device connected"));
}

/// One device poll. The first poll of a code never meets `slow_down`, so scenarios approve
/// first and poll each code once.
async fn device_poll(env: &Env, app: &App, device_code: &str) -> (u16, Value) {
    env.token_call(
        app,
        &[("grant_type", DEVICE_GRANT), ("device_code", device_code)],
    )
    .await
}

/// `DELETE /api/v1/oauth/consents/{id}` from the user's own page (Connected Apps → Revoke).
async fn revoke_consent(env: &Env, b: &Browser, app: &App) -> u16 {
    b.proven(
        env.http
            .delete(env.url(&format!("/api/v1/oauth/consents/{}", app.id))),
    )
    .send()
    .await
    .unwrap()
    .status()
    .as_u16()
}

/// The user's Connected Apps, as their page lists them.
async fn connected_apps(env: &Env, b: &Browser) -> Vec<Value> {
    let (s, v) = send(b.cookie_only(env.http.get(env.url("/api/v1/oauth/consents")))).await;
    assert_eq!(s, 200, "Connected Apps: {v}");
    v.as_array().expect("a list").clone()
}

/// A personal API key created from the user's page: (id, key).
async fn api_key(env: &Env, b: &Browser, name: &str, scope: &str) -> (String, String) {
    let (s, k) = send(
        b.proven(env.http.post(env.url("/api/v1/api-keys")))
            .json(&json!({"name": name, "scope": scope})),
    )
    .await;
    assert_eq!(s, 201, "API key created: {k}");
    (
        k["id"].as_str().unwrap().to_owned(),
        k["key"].as_str().unwrap().to_owned(),
    )
}

async fn spend(env: &Env, rs: &App, token: &str, amount: u64, key: &str) -> (u16, Value) {
    send(
        env.http
            .post(env.url("/api/v1/buzz/spend"))
            .basic_auth(&rs.id, rs.secret.as_ref())
            .json(&json!({"token": token, "amount": amount, "purpose": "ai_services", "idempotency_key": key})),
    )
    .await
}

async fn refund(env: &Env, rs: &App, id: &str) -> (u16, Value) {
    send(
        env.http
            .post(env.url(&format!("/api/v1/buzz/spend/{id}/refund")))
            .basic_auth(&rs.id, rs.secret.as_ref()),
    )
    .await
}

/// A raw JSON spend body, exactly as written.
async fn spend_raw(env: &Env, rs: &App, body: String) -> (u16, Value) {
    send(
        env.http
            .post(env.url("/api/v1/buzz/spend"))
            .basic_auth(&rs.id, rs.secret.as_ref())
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

/// The yellow Buzz balance, read over HTTP with a bearer that holds `BuzzRead`.
async fn balance(env: &Env, bearer: &str) -> i64 {
    let (s, v) = answer(env.get_bearer("/api/v1/buzz", bearer).await).await;
    assert_eq!(s, 200, "balance readable: {v}");
    v["balances"]["yellow"].as_i64().expect("yellow balance")
}

async fn introspect(env: &Env, app: &App, token: &str) -> (u16, Value) {
    send(client_form(
        env,
        app,
        "/api/auth/oauth/introspect",
        &[("token", token)],
    ))
    .await
}

fn access_of(t: &Value) -> String {
    t["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("access_token in {t}"))
        .to_owned()
}

fn refresh_of(t: &Value) -> String {
    t["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("refresh_token in {t}"))
        .to_owned()
}

/// One attempt at the real login form, from `from` (as the operator's proxy reports it).
async fn sign_in(env: &Env, username: &str, password: &str, from: &str) -> reqwest::Response {
    env.sign_in(username, password, Some(from)).await
}

// --- 1–3: revoking a consent reaches everything ---------------------------------------------

pub async fn consent_revoke_kills_unused_codes(env: &Env) {
    let (_, app) = dev_app_and_user(env, "alice", 0).await;
    let b = browser(env, "alice").await;
    // Two codes the app has not exchanged yet.
    let (code1, v1) = code_for(env, &b.cookie, &app, "AIServices").await;
    let (code2, v2) = code_for(env, &b.cookie, &app, "AIServices").await;
    assert_ne!(code1, code2);
    assert_eq!(revoke_consent(env, &b, &app).await, 204, "the user revokes");
    assert_refused(
        env.exchange(&app, &code1, v1.as_str()).await,
        INVALID_GRANT,
        "a code from before the revocation is dead",
    );
    // The user approves the app again: a new consent must not revive the old code.
    let (code3, v3) = code_for(env, &b.cookie, &app, "AIServices").await;
    assert_refused(
        env.exchange(&app, &code2, v2.as_str()).await,
        INVALID_GRANT,
        "a new consent does not resurrect a code from before the revocation",
    );
    let (s, t) = env.exchange(&app, &code3, v3.as_str()).await;
    assert_eq!(s, 200, "a code of the new consent works: {t}");
    assert!(t["access_token"].is_string());
}

pub async fn consent_revoke_kills_approved_device_grants(env: &Env) {
    let (app, b) = device_app_and_browser(env, "dora").await;
    let (dc1, uc1) = device_start(env, &app, "AIServices").await;
    let (dc2, uc2) = device_start(env, &app, "AIServices").await;
    device_approve(env, &b.cookie, &uc1).await;
    device_approve(env, &b.cookie, &uc2).await;
    assert_eq!(revoke_consent(env, &b, &app).await, 204, "the user revokes");
    assert_poll_refused(
        env,
        &app,
        &dc1,
        INVALID_GRANT,
        "a device approved before the revocation gets nothing",
    )
    .await;
    // A later approval (a new consent) does not revive the other approved device.
    let (dc3, uc3) = device_start(env, &app, "AIServices").await;
    device_approve(env, &b.cookie, &uc3).await;
    assert_poll_refused(
        env,
        &app,
        &dc2,
        INVALID_GRANT,
        "the new consent does not resurrect a device grant from before the revocation",
    )
    .await;
    let (s, t) = device_poll(env, &app, &dc3).await;
    assert_eq!(s, 200, "a device approved under the new consent works: {t}");
}

pub async fn spend_after_consent_revoke_fails_closed(env: &Env) {
    let (app, rs, token) = capped_spender(env, "sid", "AIServices", 500).await;
    let (s, r) = spend(env, &rs, &token, 10, "before").await;
    assert_eq!(s, 200, "spending works while the consent stands: {r}");
    let b = browser(env, "sid").await;
    assert_eq!(revoke_consent(env, &b, &app).await, 204, "the user revokes");
    let (s, r) = spend(env, &rs, &token, 10, "after").await;
    assert_eq!(
        (s, error_of(&r)),
        (401, Some("invalid_token")),
        "no spending without a consent: {r}"
    );
    let (_, key) = api_key(env, &b, "wallet", "BuzzRead").await;
    assert_eq!(
        balance(env, &key).await,
        990,
        "only the spend before the revocation was charged"
    );
}

pub async fn refresh_after_consent_revoke_fails(env: &Env) {
    let (_, app) = dev_app_and_user(env, "rex", 0).await;
    let t = env.tokens("rex", &app, "AIServices", None).await;
    let (s, t2) = refresh(env, &app, &refresh_of(&t)).await;
    assert_eq!(s, 200, "refresh works while the consent stands: {t2}");
    let b = browser(env, "rex").await;
    assert_eq!(revoke_consent(env, &b, &app).await, 204, "the user revokes");
    assert_refused(
        refresh(env, &app, &refresh_of(&t2)).await,
        INVALID_GRANT,
        "no refresh without a consent",
    );
}

// --- 4: the owner's own cap -----------------------------------------------------------------

pub async fn owner_client_credentials_spend_is_bounded_by_owner_cap(env: &Env) {
    let owner = env.user("olly", 1000).await;
    let app = cc_app(env, owner).await;
    let rs = resource_server(env, owner).await;
    let b = browser(env, "olly").await;
    let (s, c) = send(
        b.proven(
            env.http
                .patch(env.url(&format!("/api/v1/oauth/clients/{}", app.id))),
        )
        .json(&json!({"ownerBuzzLimit": [{"type": "absolute", "limit": 100}]})),
    )
    .await;
    assert_eq!(s, 200, "the owner sets a cap on the app: {c}");
    assert_eq!(c["ownerBuzzLimit"][0]["limit"], 100, "{c}");
    let (s, t) = client_credentials(env, &app).await;
    assert_eq!(s, 200, "{t}");
    let token = access_of(&t);
    let (s, r) = spend(env, &rs, &token, 100, "all-of-it").await;
    assert_eq!(s, 200, "spending up to the cap works: {r}");
    let (s, r) = spend(env, &rs, &token, 1, "one-more").await;
    assert_eq!(
        (s, error_of(&r)),
        (403, Some("insufficient_funds")),
        "the owner's cap holds for client_credentials: {r}"
    );
    assert_eq!(balance(env, &token).await, 900);
}

// --- 5: a third-party app's token never manages the account --------------------------------

const APP_TOKENS_CANNOT: &str = "App tokens cannot manage the account";

/// Bob owns app B (with `client_credentials`); app A, someone else's, holds a Full token for
/// Bob through his consent. Returns (B, A, A's token for Bob, Bob's browser).
async fn bob_and_a_full_token(env: &Env) -> (App, App, String, Browser) {
    let dev = env.user("dev", 0).await;
    let bob = env.user("bob", 0).await;
    let app_b = cc_app(env, bob).await;
    let app_a = env.app(dev, false, None).await;
    let t = env.tokens("bob", &app_a, "Full", None).await;
    assert_eq!(t["scope"], "33554431", "app A holds a Full token: {t}");
    let token = access_of(&t);
    let r = env.get_bearer("/api/v1/me", &token).await;
    assert_eq!(r.status(), 200, "the token itself is valid");
    let b = browser(env, "bob").await;
    (app_b, app_a, token, b)
}

/// The call was answered `status` with the OAuth error `error`.
#[track_caller]
fn assert_refused((s, e): (u16, Value), (status, error): (u16, &str), row: &str) {
    assert_eq!((s, error_of(&e)), (status, Some(error)), "{row}: {e}");
}

/// The device's poll was refused with `expected`.
async fn assert_poll_refused(env: &Env, app: &App, dc: &str, expected: (u16, &str), row: &str) {
    assert_refused(device_poll(env, app, dc).await, expected, row);
}

/// The refusals [`assert_refused`] expects most.
const INVALID_GRANT: (u16, &str) = (400, "invalid_grant");
const UNAUTHORIZED_CLIENT: (u16, &str) = (400, "unauthorized_client");
const PENDING: (u16, &str) = (400, "authorization_pending");
const FORBIDDEN: (u16, &str) = (403, "access_denied");

/// A developer's third-party app, and a user `name` holding `buzz` Buzz: the developer, the app.
async fn dev_app_and_user(env: &Env, name: &str, buzz: u64) -> (UserId, App) {
    let dev = env.user("dev", 0).await;
    env.user(name, buzz).await;
    (dev, env.app(dev, false, None).await)
}

/// A call with a bearer token and no body: the status and the JSON body.
async fn as_bearer(env: &Env, method: Method, path: &str, token: &str) -> (u16, Value) {
    answer(env.bearer_call(method, path, token, None).await).await
}

/// A device-flow app of a developer, and the signed-in browser of a user `name`.
async fn device_app_and_browser(env: &Env, name: &str) -> (App, Browser) {
    let dev = env.user("dev", 0).await;
    env.user(name, 0).await;
    (device_app(env, dev).await, browser(env, name).await)
}

/// A user `name` holding 1000 Buzz, a developer's app and resource server, and the user's
/// access token for the app, granted with `scope` under the cap `limit`.
async fn capped_spender(env: &Env, name: &str, scope: &str, limit: u64) -> (App, App, String) {
    let (dev, app) = dev_app_and_user(env, name, 1000).await;
    let rs = resource_server(env, dev).await;
    let cap = format!(r#"[{{"type":"absolute","limit":{limit}}}]"#);
    let t = env.tokens(name, &app, scope, Some(&cap)).await;
    (app, rs, access_of(&t))
}

/// Two resource servers of a developer, and the access token (AIServices BuzzRead) of a
/// user `name` holding 1000 Buzz for the developer's app.
async fn two_resource_servers(env: &Env, name: &str) -> (App, App, String) {
    let (dev, app) = dev_app_and_user(env, name, 1000).await;
    let r1 = resource_server(env, dev).await;
    let r2 = resource_server(env, dev).await;
    let t = env.tokens(name, &app, "AIServices BuzzRead", None).await;
    (r1, r2, access_of(&t))
}

/// Ray's app, its revoke limit starting a fresh window.
async fn rays_app_in_a_fresh_window(env: &Env) -> App {
    let owner = env.user("ray", 0).await;
    let app = env.app(owner, false, None).await;
    fresh_window(Duration::from_secs(3)).await;
    app
}

/// A form post another site can send (a "simple" request), dressed up as JSON.
fn charset_json(req: RequestBuilder, user_code: &str) -> RequestBuilder {
    let form = "application/x-www-form-urlencoded; charset=json";
    req.header("content-type", form)
        .body(format!("user_code={user_code}"))
}

fn assert_app_token_refused(row: &str, (s, e): (u16, Value)) {
    assert_eq!(
        (s, error_of(&e)),
        (403, Some("access_denied")),
        "{row}: {e}"
    );
    assert!(description_of(&e).contains(APP_TOKENS_CANNOT), "{row}: {e}");
}

/// App B still authenticates with its original secret, and its owner still sees it.
async fn assert_app_b_intact(env: &Env, app_b: &App, b: &Browser) {
    let (s, t) = client_credentials(env, app_b).await;
    assert_eq!(s, 200, "app B's secret is unchanged: {t}");
    let (s, c) = send(
        b.cookie_only(
            env.http
                .get(env.url(&format!("/api/v1/oauth/clients/{}", app_b.id))),
        ),
    )
    .await;
    assert_eq!(s, 200, "app B still exists: {c}");
    assert_eq!(c["name"], "E2E app");
}

pub async fn third_party_token_cannot_rotate_owners_app_secret(env: &Env) {
    let (app_b, _, token, b) = bob_and_a_full_token(env).await;
    for (row, path) in [
        (
            "rotate app B's secret",
            format!("/api/v1/oauth/clients/{}/rotate-secret", app_b.id),
        ),
        (
            "reset app B's secret (seed 004 path)",
            format!("/oauth/clients/{}/reset-secret", app_b.id),
        ),
    ] {
        assert_app_token_refused(row, as_bearer(env, Method::POST, &path, &token).await);
    }
    assert_app_b_intact(env, &app_b, &b).await;
}

pub async fn third_party_token_cannot_delete_owners_app(env: &Env) {
    let (app_b, _, token, b) = bob_and_a_full_token(env).await;
    let app_path = format!("/api/v1/oauth/clients/{}", app_b.id);
    let r = as_bearer(env, Method::DELETE, &app_path, &token).await;
    assert_app_token_refused("delete app B", r);
    assert_app_b_intact(env, &app_b, &b).await;
}

pub async fn third_party_token_cannot_list_apps_consents_or_keys(env: &Env) {
    let (app_b, app_a, token, b) = bob_and_a_full_token(env).await;
    // A second third-party app Bob uses, whose cap app A would like to lift.
    let dev2 = env.user("dev2", 0).await;
    let app_d = env.app(dev2, false, None).await;
    env.tokens(
        "bob",
        &app_d,
        "AIServices",
        Some(r#"[{"type":"absolute","limit":10}]"#),
    )
    .await;
    let before = connected_apps(env, &b).await;
    let bearer = |req: RequestBuilder| req.bearer_auth(&token);
    let rows: Vec<(&str, RequestBuilder)> = vec![
        (
            "list apps",
            bearer(env.http.get(env.url("/api/v1/oauth/clients"))),
        ),
        (
            "list Connected Apps",
            bearer(env.http.get(env.url("/api/v1/oauth/consents"))),
        ),
        (
            "list API keys",
            bearer(env.http.get(env.url("/api/v1/api-keys"))),
        ),
        (
            "lift another app's cap",
            bearer(
                env.http
                    .put(env.url(&format!("/api/v1/oauth/consents/{}/buzz-limit", app_d.id))),
            )
            .json(&json!([])),
        ),
        (
            "mint an API key",
            bearer(env.http.post(env.url("/api/v1/api-keys")))
                .json(&json!({"name": "stolen", "scope": "Full"})),
        ),
    ];
    for (row, req) in rows {
        assert_app_token_refused(row, send(req).await);
    }
    // Its own cap: refused as well (SPEC 3.10), whichever rule answers first.
    assert_refused(
        send(
            bearer(
                env.http
                    .put(env.url(&format!("/api/v1/oauth/consents/{}/buzz-limit", app_a.id))),
            )
            .json(&json!([])),
        )
        .await,
        FORBIDDEN,
        "lift its own cap",
    );
    // Nothing changed: the same Connected Apps and caps, no new key, app B intact.
    assert_eq!(connected_apps(env, &b).await, before, "consents unchanged");
    let (s, keys) = send(b.cookie_only(env.http.get(env.url("/api/v1/api-keys")))).await;
    assert_eq!((s, keys), (200, json!([])), "no API key was minted");
    assert_app_b_intact(env, &app_b, &b).await;
}

// --- 6: a disabled app gets no tokens, whichever way it asks --------------------------------

pub async fn disabled_app_gets_no_tokens_by_device_flow(env: &Env) {
    let (app, b) = device_app_and_browser(env, "dina").await;
    let (approved, uc) = device_start(env, &app, "UserRead").await;
    device_approve(env, &b.cookie, &uc).await;
    let (pending, pending_uc) = device_start(env, &app, "UserRead").await;
    set_access_mode(env, &app, AccessMode::Disabled).await;
    assert_refused(
        send(client_form(
            env,
            &app,
            "/api/auth/oauth/device",
            &[("scope", "UserRead")],
        ))
        .await,
        UNAUTHORIZED_CLIENT,
        "device start",
    );
    assert_poll_refused(env, &app, &approved, UNAUTHORIZED_CLIENT, "device exchange").await;
    assert_refused(
        send(
            b.proven(env.http.post(env.url("/api/auth/oauth/device-approve")))
                .form(&[("user_code", pending_uc.as_str())]),
        )
        .await,
        FORBIDDEN,
        "device approval",
    );
    // Re-enabled: the grant approved before is still there; the refused approval did nothing.
    set_access_mode(env, &app, AccessMode::Open).await;
    let (s, t) = device_poll(env, &app, &approved).await;
    assert_eq!(
        s, 200,
        "re-enabled, the approved device gets its tokens: {t}"
    );
    let (s, e) = device_poll(env, &app, &pending).await;
    assert_eq!(
        (s, error_of(&e)),
        (400, Some("authorization_pending")),
        "{e}"
    );
}

pub async fn disabled_app_cannot_refresh(env: &Env) {
    let (_, app) = dev_app_and_user(env, "dale", 0).await;
    let t = env.tokens("dale", &app, "AIServices", None).await;
    let rt = refresh_of(&t);
    set_access_mode(env, &app, AccessMode::Disabled).await;
    assert_refused(
        refresh(env, &app, &rt).await,
        UNAUTHORIZED_CLIENT,
        "refresh of a disabled app",
    );
    set_access_mode(env, &app, AccessMode::Open).await;
    let (s, t2) = refresh(env, &app, &rt).await;
    assert_eq!(s, 200, "re-enabled, the family was not killed: {t2}");
}

pub async fn disabled_app_cannot_exchange_a_code(env: &Env) {
    let (_, app) = dev_app_and_user(env, "dana", 0).await;
    let b = browser(env, "dana").await;
    let (code, verifier) = code_for(env, &b.cookie, &app, "AIServices").await;
    set_access_mode(env, &app, AccessMode::Disabled).await;
    assert_refused(
        env.exchange(&app, &code, verifier.as_str()).await,
        UNAUTHORIZED_CLIENT,
        "code exchange of a disabled app",
    );
    // Authorize is refused too (SPEC 3.1 step 3): JSON, no redirect.
    assert_refused(
        send(
            b.cookie_only(env.http.get(env.url("/api/auth/oauth/authorize")))
                .query(&[
                    ("response_type", "code"),
                    ("client_id", app.id.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("scope", "AIServices"),
                    ("state", "s"),
                    ("code_challenge", CHALLENGE),
                    ("code_challenge_method", "S256"),
                ]),
        )
        .await,
        FORBIDDEN,
        "authorize",
    );
}

pub async fn disabled_app_cannot_use_client_credentials(env: &Env) {
    let owner = env.user("cody", 0).await;
    let app = cc_app(env, owner).await;
    let (s, t) = client_credentials(env, &app).await;
    assert_eq!(s, 200, "{t}");
    set_access_mode(env, &app, AccessMode::Disabled).await;
    assert_refused(
        client_credentials(env, &app).await,
        UNAUTHORIZED_CLIENT,
        "client_credentials of a disabled app",
    );
    set_access_mode(env, &app, AccessMode::Open).await;
    let (s, t) = client_credentials(env, &app).await;
    assert_eq!(s, 200, "re-enabled: {t}");
}

// --- 7: cookies alone change nothing ---------------------------------------------------------

pub async fn csrf_charset_json_device_approve_is_refused(env: &Env) {
    let (app, b) = device_app_and_browser(env, "cleo").await;
    let (dc, uc) = device_start(env, &app, "UserRead").await;
    let url = env.url("/api/auth/oauth/device-approve");
    // A form post another site can send (a "simple" request), dressed up as JSON.
    let (s, e) = send(charset_json(b.cookie_only(env.http.post(&url)), &uc)).await;
    assert_eq!(
        (s, error_of(&e)),
        (403, Some("access_denied")),
        "charset=json form without CSRF: {e}"
    );
    // A JSON content type proves nothing either (SPEC 13).
    assert_refused(
        send(
            b.cookie_only(env.http.post(&url))
                .json(&json!({"user_code": uc})),
        )
        .await,
        FORBIDDEN,
        "JSON without CSRF",
    );
    assert_poll_refused(env, &app, &dc, PENDING, "the device is still pending").await;
    assert!(
        connected_apps(env, &b).await.is_empty(),
        "no consent was recorded"
    );
    let (s, r) = send(charset_json(b.proven(env.http.post(&url)), &uc)).await;
    assert_eq!(s, 200, "with the CSRF token: {r}");
    assert_eq!(r["approved"], true);
    let apps = connected_apps(env, &b).await;
    assert_eq!(apps.len(), 1, "the approval recorded a consent: {apps:?}");
    assert_eq!(apps[0]["clientId"], app.id);
}

pub async fn session_text_plain_rotate_secret_is_refused(env: &Env) {
    let owner = env.user("rory", 0).await;
    let app = cc_app(env, owner).await;
    let b = browser(env, "rory").await;
    let url = env.url(&format!("/api/v1/oauth/clients/{}/rotate-secret", app.id));
    assert_refused(
        send(
            b.cookie_only(env.http.post(&url))
                .header("content-type", "text/plain")
                .body("rotate please"),
        )
        .await,
        FORBIDDEN,
        "text/plain with the cookie only",
    );
    let (s, t) = client_credentials(env, &app).await;
    assert_eq!(s, 200, "the old secret still works: {t}");
    // The owner's own page (with the CSRF token) does rotate.
    let (s, r) = send(b.proven(env.http.post(&url))).await;
    assert_eq!(s, 200, "{r}");
    let rotated = App {
        id: app.id.clone(),
        secret: r["clientSecret"].as_str().map(str::to_owned),
    };
    assert_refused(
        client_credentials(env, &app).await,
        (401, "invalid_client"),
        "rotated",
    );
    let (s, t) = client_credentials(env, &rotated).await;
    assert_eq!(s, 200, "{t}");
}

pub async fn cross_site_session_change_is_refused(env: &Env) {
    env.user("cass", 0).await;
    let b = browser(env, "cass").await;
    let (id, key) = api_key(env, &b, "cli", "UserRead").await;
    let url = env.url(&format!("/api/v1/api-keys/{id}"));
    assert_refused(
        send(
            b.proven(env.http.delete(&url))
                .header("sec-fetch-site", "cross-site"),
        )
        .await,
        FORBIDDEN,
        "a cross-site request with the right token",
    );
    assert_eq!(
        env.bearer_status("/api/v1/me", &key).await,
        200,
        "the key survived"
    );
    let r = b
        .proven(env.http.delete(&url))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "same-origin");
    assert_eq!(env.bearer_status("/api/v1/me", &key).await, 401);
}

// --- 8: introspection shows a client only what it may see ----------------------------------

pub async fn introspection_of_another_apps_token_is_inactive(env: &Env) {
    let dev = env.user("dev", 0).await;
    env.user("ines", 0).await;
    let app_a = env.app(dev, false, None).await;
    let app_c = env.app(dev, false, None).await;
    let rs = resource_server(env, dev).await;
    let t = env.tokens("ines", &app_a, "AIServices", None).await;
    let (access, refresh_token) = (access_of(&t), refresh_of(&t));
    let b = browser(env, "ines").await;
    let (_, key) = api_key(env, &b, "laptop", "UserRead").await;
    for (what, token) in [
        ("app A's access token", &access),
        ("app A's refresh token", &refresh_token),
        ("the user's API key", &key),
    ] {
        let (s, i) = introspect(env, &app_c, token).await;
        assert_eq!(
            (s, &i),
            (200, &json!({"active": false})),
            "app C introspects {what}"
        );
    }
    let (s, i) = introspect(env, &app_a, &key).await;
    assert_eq!(
        (s, i),
        (200, json!({"active": false})),
        "app A introspects the user's API key"
    );
    let (s, i) = introspect(env, &app_a, &access).await;
    assert_eq!((s, &i["active"]), (200, &json!(true)), "its own token: {i}");
    assert_eq!(i["client_id"], app_a.id);
    let (s, i) = introspect(env, &app_a, &refresh_token).await;
    assert_eq!(
        (s, &i["active"]),
        (200, &json!(true)),
        "its own refresh token: {i}"
    );
    let (s, i) = introspect(env, &rs, &access).await;
    assert_eq!(
        (s, &i["active"]),
        (200, &json!(true)),
        "a resource server sees any token: {i}"
    );
}

pub async fn rotated_refresh_token_is_inactive_after_grace(env: &Env) {
    let (_, app) = dev_app_and_user(env, "gus", 0).await;
    let t = env.tokens("gus", &app, "AIServices", None).await;
    let old = refresh_of(&t);
    let (s, t2) = refresh(env, &app, &old).await;
    assert_eq!(s, 200, "{t2}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (s, i) = introspect(env, &app, &old).await;
    assert_eq!(
        (s, i),
        (200, json!({"active": false})),
        "the rotated refresh token, after the grace window"
    );
    let (s, i) = introspect(env, &app, &refresh_of(&t2)).await;
    assert_eq!((s, &i["active"]), (200, &json!(true)), "its successor: {i}");
}

// --- 9, 10, 12: limits strangers cannot turn against others ---------------------------------

pub async fn strangers_cannot_lock_out_a_client(env: &Env) {
    let owner = env.user("vic", 0).await;
    let victim = cc_app(env, owner).await;
    fresh_window(Duration::from_secs(3)).await;
    let mut answers = Vec::new();
    for _ in 0..6 {
        let r = env
            .http
            .post(env.url("/api/auth/oauth/token"))
            .basic_auth(&victim.id, Some("not-the-secret"))
            .header("x-forwarded-for", "198.51.100.7")
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let retry_after = header(&r, "retry-after");
        let (s, e) = answer(r).await;
        answers.push((s, error_of(&e).map(str::to_owned), retry_after));
    }
    for (i, (s, e, _)) in answers[..5].iter().enumerate() {
        assert_eq!(
            (*s, e.as_deref()),
            (401, Some("invalid_client")),
            "stranger's attempt {}",
            i + 1
        );
    }
    let (s, e, retry_after) = &answers[5];
    assert_eq!(
        (*s, e.as_deref()),
        (429, Some("rate_limited")),
        "the stranger's 6th attempt"
    );
    let secs: u64 = retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&secs), "Retry-After {secs}");
    let r = env
        .http
        .post(env.url("/api/auth/oauth/token"))
        .basic_auth(&victim.id, victim.secret.as_ref())
        .header("x-forwarded-for", "203.0.113.9")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (s, t) = answer(r).await;
    assert_eq!(
        s, 200,
        "the victim, from its own address, is not locked out: {t}"
    );
}

pub async fn sign_in_is_throttled_per_account_and_ip(env: &Env) {
    env.user("alice", 0).await;
    env.user("bob", 0).await;
    fresh_window(Duration::from_secs(3)).await;
    // Per account: 3 failures from 3 addresses.
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        let r = sign_in(env, "alice", "wrong password", ip).await;
        assert_eq!(r.status(), 401, "a wrong password for alice from {ip}");
    }
    let r = sign_in(env, "alice", PASSWORD, "198.51.100.4").await;
    assert_eq!(
        r.status(),
        429,
        "alice's account is throttled, even with the right password"
    );
    let secs: u64 = header(&r, "retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&secs), "Retry-After {secs}");
    assert!(
        cookie_pair(r.headers(), "bg_session").is_none(),
        "no session"
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("Try again"), "the page says when: {text}");
    let r = sign_in(env, "bob", PASSWORD, "198.51.100.5").await;
    assert_eq!(r.status(), 303, "bob is not affected");
    assert!(cookie_pair(r.headers(), "bg_session").is_some());
    // Per address: 5 failures (5 different names) from one address.
    for i in 0..5 {
        let r = sign_in(env, &format!("nobody{i}"), "wrong password", "203.0.113.77").await;
        assert_eq!(r.status(), 401, "failure {} from 203.0.113.77", i + 1);
    }
    let r = sign_in(env, "bob", PASSWORD, "203.0.113.77").await;
    assert_eq!(r.status(), 429, "the 6th attempt from 203.0.113.77");
    assert!(header(&r, "retry-after").is_some(), "Retry-After");
    let r = sign_in(env, "bob", PASSWORD, "203.0.113.78").await;
    assert_eq!(r.status(), 303, "bob from another address");
}

async fn revoke_from(env: &Env, app: &App, forwarded_for: &str) -> (u16, Option<String>) {
    let r = client_form(
        env,
        app,
        "/api/auth/oauth/revoke",
        &[("token", "civitai_unknown")],
    )
    .header("x-forwarded-for", forwarded_for)
    .send()
    .await
    .unwrap();
    let retry_after = header(&r, "retry-after");
    (r.status().as_u16(), retry_after)
}

pub async fn spoofed_forwarded_for_does_not_bypass_the_revoke_limit(env: &Env) {
    let app = rays_app_in_a_fresh_window(env).await;
    for i in 1..=4 {
        // The client writes whatever it likes on the left; our proxy appends what it saw.
        let (s, retry_after) = revoke_from(env, &app, &format!("6.6.{i}.{i}, 203.0.113.50")).await;
        let expected = if i <= 3 { 200 } else { 429 };
        assert_eq!(s, expected, "revoke {i} through the proxy");
        if i == 4 {
            assert!(retry_after.is_some(), "Retry-After");
        }
    }
    let (s, _) = revoke_from(env, &app, "6.6.6.6, 203.0.113.51").await;
    assert_eq!(
        s, 200,
        "another client address, as the proxy saw it, is counted apart"
    );
}

pub async fn forwarded_for_is_ignored_without_trusted_proxies(env: &Env) {
    let app = rays_app_in_a_fresh_window(env).await;
    for i in 1..=4 {
        let (s, _) = revoke_from(env, &app, &format!("203.0.113.{i}")).await;
        let expected = if i <= 3 { 200 } else { 429 };
        assert_eq!(
            s, expected,
            "revoke {i}: every request is 127.0.0.1 whatever X-Forwarded-For says"
        );
    }
}

// --- 13: id_token auth_time ------------------------------------------------------------------

pub async fn id_token_auth_time_is_the_sign_in_time(env: &Env) {
    let (_, app) = dev_app_and_user(env, "ada", 0).await;
    let before = now_unix();
    let cookie = env.login("ada").await;
    let signed_in = now_unix();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (loc, verifier) = env
        .consent(&cookie, &app, "UserRead", Some("n-auth-time"), None)
        .await;
    let code = query_param(&loc, "code").unwrap();
    let (s, t) = env.exchange(&app, &code, verifier.as_str()).await;
    assert_eq!(s, 200, "{t}");
    let jwt = t["id_token"].as_str().expect("id_token");
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["nonce"], "n-auth-time");
    let auth_time = claims["auth_time"].as_i64().expect("auth_time");
    let iat = claims["iat"].as_i64().expect("iat");
    assert!(
        (before..=signed_in).contains(&auth_time),
        "auth_time {auth_time} is when the user signed in ({before}..={signed_in})"
    );
    assert!(
        iat - auth_time >= 1,
        "auth_time {auth_time} precedes the token (iat {iat}) by the wait"
    );
}

// --- 14: one code, one winner ------------------------------------------------------------------

pub async fn concurrent_code_redemption_has_exactly_one_winner(env: &Env) {
    let (_, app) = dev_app_and_user(env, "cory", 0).await;
    let cookie = env.login("cory").await;
    for n in [10, 32] {
        let (code, verifier) = code_for(env, &cookie, &app, "AIServices").await;
        let mut tasks = Vec::new();
        for _ in 0..n {
            let req = env.code_exchange(&app, &code, verifier.as_str());
            tasks.push(tokio::spawn(send(req)));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (s, body) = task.await.unwrap();
            assert!(s < 500, "{n} redemptions: a {s}: {body}");
            if s == 200 {
                winners.push(body);
            } else {
                assert_eq!(
                    (s, error_of(&body)),
                    (400, Some("invalid_grant")),
                    "{n} redemptions: {body}"
                );
            }
        }
        assert_eq!(winners.len(), 1, "{n} redemptions: exactly one winner");
        let r = env
            .get_bearer("/api/auth/oauth/userinfo", &access_of(&winners[0]))
            .await;
        assert_eq!(
            r.status(),
            401,
            "{n} redemptions: the replays revoked what the code issued"
        );
        let (s, e) = refresh(env, &app, &refresh_of(&winners[0])).await;
        assert_eq!(s, 400, "{n} redemptions: the refresh token died too: {e}");
    }
}

// --- 15: CORS only for the origins a public client registered --------------------------------

/// A public SPA app registered through the API by its owner.
async fn spa_app(env: &Env, owner: &str) -> App {
    let b = browser(env, owner).await;
    let (s, c) = send(
        b.proven(env.http.post(env.url("/api/v1/oauth/clients")))
            .json(&json!({
                "name": "SPA",
                "redirectUris": [format!("{SPA}/cb")],
                "isConfidential": false,
                "allowedOrigins": [SPA],
                "grants": ["authorization_code", "refresh_token", DEVICE_GRANT],
            })),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["clientSecret"], Value::Null);
    App {
        id: c["clientId"].as_str().unwrap().to_owned(),
        secret: None,
    }
}

pub async fn device_start_checks_public_client_origins(env: &Env) {
    env.user("sally", 0).await;
    let app = spa_app(env, "sally").await;
    let start = |origin: &'static str| {
        env.http
            .post(env.url("/api/auth/oauth/device"))
            .header("origin", origin)
            .form(&[("client_id", app.id.as_str()), ("scope", "UserRead")])
            .send()
    };
    let r = start(EVIL).await.unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert_refused(
        answer(r).await,
        (403, "origin_not_allowed"),
        "an unregistered origin",
    );
    let r = start(SPA).await.unwrap();
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(SPA)
    );
    let (s, d) = answer(r).await;
    assert_eq!(s, 200, "the registered origin: {d}");
    assert!(d["device_code"].is_string());
}

pub async fn cors_preflight_does_not_echo_unknown_origins(env: &Env) {
    let owner = env.user("sally", 0).await;
    spa_app(env, "sally").await;
    // A confidential app: its redirect URI's origin is registered too, but only for itself.
    let server_app = cc_app(env, owner).await;
    let server_origin = "https://app.example.com";
    let preflight = |origin: &'static str| {
        env.http
            .request(reqwest::Method::OPTIONS, env.url("/api/auth/oauth/token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let r = preflight(EVIL).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        None,
        "an unknown origin"
    );
    let r = preflight(server_origin).await.unwrap();
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        None,
        "an origin only a confidential app has"
    );
    let r = preflight(SPA).await.unwrap();
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(SPA),
        "a public client's registered origin"
    );
    let r = env
        .http
        .post(env.url("/api/auth/oauth/token"))
        .basic_auth(&server_app.id, server_app.secret.as_ref())
        .header("origin", server_origin)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        None,
        "a confidential client's token response is not for browsers"
    );
}

// --- 16: resource servers keep to their own spends ------------------------------------------

pub async fn resource_server_cannot_refund_another_servers_spend(env: &Env) {
    let (r1, r2, token) = two_resource_servers(env, "rhea").await;
    let (s, sp) = spend(env, &r1, &token, 25, "job-1").await;
    assert_eq!(s, 200, "{sp}");
    let id = sp["id"].as_str().unwrap();
    assert_refused(
        refund(env, &r2, id).await,
        (404, "not_found"),
        "another server's spend",
    );
    assert_eq!(balance(env, &token).await, 975, "nothing refunded");
    let (s, r) = refund(env, &r1, id).await;
    assert_eq!(s, 200, "its own spend: {r}");
    assert_eq!(balance(env, &token).await, 1000, "refunded");
}

pub async fn idempotency_keys_are_scoped_to_the_resource_server(env: &Env) {
    let (r1, r2, token) = two_resource_servers(env, "ivy").await;
    let (s, a) = spend(env, &r1, &token, 7, "shared-key").await;
    assert_eq!((s, &a["replayed"]), (200, &json!(false)), "R1: {a}");
    let (s, b) = spend(env, &r2, &token, 7, "shared-key").await;
    assert_eq!(
        (s, &b["replayed"]),
        (200, &json!(false)),
        "R2's key is its own: {b}"
    );
    assert_ne!(a["id"], b["id"], "two spends");
    assert_eq!(balance(env, &token).await, 986, "charged twice");
    let (s, c) = spend(env, &r1, &token, 7, "shared-key").await;
    assert_eq!(
        (s, &c["replayed"]),
        (200, &json!(true)),
        "R1 repeating its key: {c}"
    );
    assert_eq!(c["id"], a["id"]);
    assert_eq!(balance(env, &token).await, 986, "a replay charges nothing");
}

// --- 17: revocation is never cached back -------------------------------------------------------

/// One token's race: validations loop at `/api/v1/me` and userinfo until after the token's
/// revocation; the revocation is sent `offset_us` microseconds after the first validation
/// (before it when negative). Every validation that started after the revocation's response
/// must be refused. Returns how many did.
async fn race_a_revocation(
    http: reqwest::Client,
    base: String,
    app: (String, String),
    token: String,
    offset_us: i64,
    label: String,
) -> usize {
    let stop = Arc::new(AtomicBool::new(false));
    let me = || {
        http.get(format!("{base}/api/v1/me"))
            .bearer_auth(&token)
            .send()
    };
    let mut racers = Vec::new();
    let racer_delay = Duration::from_micros((-offset_us).max(0) as u64);
    let revoke_delay = Duration::from_micros(offset_us.max(0) as u64);
    for i in 0..3 {
        let (http, stop, token) = (http.clone(), stop.clone(), token.clone());
        let path = if i % 2 == 0 {
            "/api/v1/me"
        } else {
            "/api/auth/oauth/userinfo"
        };
        let url = format!("{base}{path}");
        racers.push(tokio::spawn(async move {
            tokio::time::sleep(racer_delay).await;
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
                seen.push((started, r.status().as_u16()));
            }
            seen
        }));
    }
    tokio::time::sleep(revoke_delay).await;
    let r = http
        .post(format!("{base}/api/auth/oauth/revoke"))
        .basic_auth(&app.0, Some(&app.1))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{label}: revoked");
    let revoked = Instant::now();
    let r = me().await.unwrap();
    assert_eq!(r.status(), 401, "{label}: refused at once");
    tokio::time::sleep(Duration::from_millis(30)).await;
    stop.store(true, Ordering::SeqCst);
    let mut after = 0;
    for racer in racers {
        for (started, status) in racer.await.unwrap() {
            assert!(status == 200 || status == 401, "{label}: a {status}");
            if started > revoked {
                after += 1;
                assert_eq!(
                    status, 401,
                    "{label}: a validation that started after the revocation was answered"
                );
            }
        }
    }
    let r = me().await.unwrap();
    assert_eq!(
        r.status(),
        401,
        "{label}: still refused once the races settled"
    );
    after
}

pub async fn revocation_is_not_cached_back(env: &Env) {
    let owner = env.user("rio", 0).await;
    let app = cc_app(env, owner).await;
    let mint = || async {
        let (s, t) = client_credentials(env, &app).await;
        assert_eq!(s, 200, "{t}");
        access_of(&t)
    };
    // A validated (cached) token, revoked: refused at once.
    let token = mint().await;
    assert_eq!(env.bearer_status("/api/v1/me", &token).await, 200);
    let (s, _) = send(client_form(
        env,
        &app,
        "/api/auth/oauth/revoke",
        &[("token", token.as_str())],
    ))
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        env.bearer_status("/api/v1/me", &token).await,
        401,
        "a cached token, revoked"
    );
    // Fresh tokens whose first validations (cache misses that read the row and cache it)
    // race their revocation, which is sent from 1.5 ms before them to 0.5 ms after, in
    // 50 µs steps: a validation that read the row just before the revocation must not put
    // it back into the cache after the revocation cleared it.
    let credentials = (app.id.clone(), app.secret.clone().unwrap());
    for round in 0..20u64 {
        let mut races = Vec::new();
        for i in 0..4u64 {
            let token = mint().await;
            races.push(tokio::spawn(race_a_revocation(
                env.http.clone(),
                env.base.clone(),
                credentials.clone(),
                token,
                ((round * 4 + i) % 40) as i64 * 50 - 1500,
                format!("round {round}, token {i}"),
            )));
        }
        let mut after = 0;
        for race in races {
            after += race.await.unwrap();
        }
        assert!(
            after > 0,
            "round {round}: some validations started after the revocations"
        );
    }
}

// --- 18: bodies mean one thing ---------------------------------------------------------------

pub async fn json_duplicate_keys_are_refused(env: &Env) {
    let (app, rs, token) = capped_spender(env, "jay", "AIServices BuzzRead", 100).await;
    let (s, e) = spend_raw(
        env,
        &rs,
        format!(
            r#"{{"token":"{token}","amount":1,"amount":50000,"purpose":"ai_services","idempotency_key":"k"}}"#
        ),
    )
    .await;
    assert_eq!(
        (s, error_of(&e)),
        (400, Some("invalid_request")),
        "a repeated amount: {e}"
    );
    assert!(
        description_of(&e).contains("amount") && description_of(&e).contains("repeated"),
        "names the repeated key: {e}"
    );
    assert_eq!(balance(env, &token).await, 1000, "nothing charged");
    // Nothing was recorded under the key either: a sound request with it is a first spend.
    let (s, r) = spend(env, &rs, &token, 1, "k").await;
    assert_eq!((s, &r["replayed"]), (200, &json!(false)), "{r}");
    assert_eq!(balance(env, &token).await, 999);
    // Inside a nested object: the cap a user sets.
    let b = browser(env, "jay").await;
    let before = connected_apps(env, &b).await;
    let (s, e) = send(
        b.proven(
            env.http
                .put(env.url(&format!("/api/v1/oauth/consents/{}/buzz-limit", app.id))),
        )
        .header("content-type", "application/json")
        .body(r#"[{"type":"absolute","limit":1,"limit":900000}]"#),
    )
    .await;
    assert_eq!(
        (s, error_of(&e)),
        (400, Some("invalid_request")),
        "a repeated nested key: {e}"
    );
    assert!(description_of(&e).contains("limit"), "{e}");
    assert_eq!(
        connected_apps(env, &b).await,
        before,
        "the cap is unchanged"
    );
}

pub async fn signed_amount_is_refused(env: &Env) {
    let (dev, app) = dev_app_and_user(env, "sam", 1000).await;
    let rs = resource_server(env, dev).await;
    let t = env.tokens("sam", &app, "AIServices BuzzRead", None).await;
    let token = access_of(&t);
    for (i, amount) in [r#""+5""#, "5.0", r#"" 5""#, "-5", "5e0"]
        .into_iter()
        .enumerate()
    {
        let (s, e) = spend_raw(
            env,
            &rs,
            format!(
                r#"{{"token":"{token}","amount":{amount},"purpose":"ai_services","idempotency_key":"a{i}"}}"#
            ),
        )
        .await;
        assert_eq!(
            (s, error_of(&e)),
            (400, Some("invalid_request")),
            "amount {amount}: {e}"
        );
    }
    assert_eq!(balance(env, &token).await, 1000, "nothing charged");
    let (s, r) = spend_raw(
        env,
        &rs,
        format!(
            r#"{{"token":"{token}","amount":5,"purpose":"ai_services","idempotency_key":"ok"}}"#
        ),
    )
    .await;
    assert_eq!(s, 200, "a plain 5 is a spend: {r}");
    assert_eq!(balance(env, &token).await, 995);
}

// --- SPEC 13: one row per "no" ----------------------------------------------------------------

struct Row {
    name: &'static str,
    req: RequestBuilder,
    status: u16,
    error: &'static str,
    says: Option<&'static str>,
}

fn row(name: &'static str, req: RequestBuilder, status: u16, error: &'static str) -> Row {
    Row {
        name,
        req,
        status,
        error,
        says: None,
    }
}

impl Row {
    fn saying(mut self, text: &'static str) -> Row {
        self.says = Some(text);
        self
    }
}

pub async fn caller_table_refusals(env: &Env) {
    let dev = env.user("dev", 0).await;
    let alice = env.user("alice", 1000).await;
    env.user("bob", 0).await;
    admin_user(env, "root").await;
    let app_a = env.app(dev, false, None).await;
    let own = env.app(alice, false, None).await;
    let device = device_app(env, dev).await;
    let plain = env.app(dev, false, None).await;
    let public = env.app(dev, true, None).await;
    let r1 = resource_server(env, dev).await;
    let r2 = resource_server(env, dev).await;
    let t = env.tokens("alice", &app_a, "Full", None).await;
    let token = access_of(&t);
    let alice_b = browser(env, "alice").await;
    let bob_b = browser(env, "bob").await;
    let admin_b = browser(env, "root").await;
    let (_, read_key) = api_key(env, &alice_b, "read", "UserRead").await;
    let (_, full_key) = api_key(env, &alice_b, "full", "Full").await;
    let (victim_id, victim_key) = api_key(env, &alice_b, "victim", "UserRead").await;
    let (s, sp) = spend(env, &r1, &token, 5, "r1-spend").await;
    assert_eq!(s, 200, "{sp}");
    let spend_id = sp["id"].as_str().unwrap().to_owned();
    let (dc, uc) = device_start(env, &device, "UserRead").await;
    let consents_before = connected_apps(env, &alice_b).await;
    assert_eq!(consents_before.len(), 1, "{consents_before:?}");

    let get = |p: &str| env.http.get(env.url(p));
    let post = |p: &str| env.http.post(env.url(p));
    let patch = |p: &str| env.http.patch(env.url(p));
    let put = |p: &str| env.http.put(env.url(p));
    let delete = |p: &str| env.http.delete(env.url(p));
    let apps = "/api/v1/oauth/clients";
    let own_app = format!("/api/v1/oauth/clients/{}", own.id);
    let own_rotate = format!("/api/v1/oauth/clients/{}/rotate-secret", own.id);
    let consent_a = format!("/api/v1/oauth/consents/{}", app_a.id);
    let limit_a = format!("/api/v1/oauth/consents/{}/buzz-limit", app_a.id);
    let keys = "/api/v1/api-keys";
    let victim = format!("/api/v1/api-keys/{victim_id}");
    let admin = format!("/api/v1/admin/oauth/clients/{}", own.id);
    let new_app = json!({"name": "Sneaky", "redirectUris": [REDIRECT]});
    let new_key = json!({"name": "sneaky", "scope": "Full"});
    let cap = json!([{"type": "absolute", "limit": 1000000}]);
    let verify = json!({"isVerified": true, "accessMode": "disabled"});
    let spend_body =
        json!({"token": token, "amount": 1, "purpose": "ai_services", "idempotency_key": "plain"});
    let bearer = |req: RequestBuilder| req.bearer_auth(&token);
    let read = |req: RequestBuilder| req.bearer_auth(&read_key);
    let full = |req: RequestBuilder| req.bearer_auth(&full_key);
    const DENIED: &str = "access_denied";
    const CSRF: &str = "CSRF";
    const ADMINS: &str = "Administrators only";

    let denied = |name, req| row(name, req, 403, DENIED);
    let app_denied = |name, req| denied(name, bearer(req)).saying(APP_TOKENS_CANNOT);
    let no_csrf = |name, req| denied(name, alice_b.cookie_only(req)).saying(CSRF);
    let rows = vec![
        // A third-party app's token: never the account or admin APIs.
        app_denied("app token: list apps", get(apps)),
        app_denied("app token: create app", post(apps).json(&new_app)),
        app_denied("app token: get app", get(&own_app)),
        app_denied(
            "app token: update app",
            patch(&own_app).json(&json!({"name": "Renamed"})),
        ),
        app_denied("app token: rotate secret", post(&own_rotate)),
        app_denied("app token: delete app", delete(&own_app)),
        app_denied(
            "app token: list Connected Apps",
            get("/api/v1/oauth/consents"),
        ),
        denied(
            "app token: set a Connected App's limit",
            bearer(put(&limit_a)).json(&cap),
        ),
        app_denied("app token: revoke a Connected App", delete(&consent_a)),
        app_denied("app token: list API keys", get(keys)),
        app_denied("app token: create API key", post(keys).json(&new_key)),
        app_denied("app token: delete API key", delete(&victim)),
        denied("app token: admin API", bearer(patch(&admin)).json(&verify)).saying(ADMINS),
        // A personal API key: its scope, and never minting keys or admin.
        row(
            "UserRead key: create app",
            read(post(apps)).json(&new_app),
            403,
            "insufficient_scope",
        ),
        row(
            "UserRead key: rotate secret",
            read(post(&own_rotate)),
            403,
            "insufficient_scope",
        ),
        row(
            "UserRead key: delete key",
            read(delete(&victim)),
            403,
            "insufficient_scope",
        ),
        denied("Full key: mint an API key", full(post(keys)).json(&new_key)),
        denied("Full key: admin API", full(patch(&admin)).json(&verify)).saying(ADMINS),
        // Sessions: admin rights only for admins, changes only with the CSRF token.
        denied(
            "non-admin session with CSRF: admin API",
            bob_b.proven(patch(&admin)).json(&verify),
        )
        .saying(ADMINS),
        denied(
            "admin session without CSRF: admin API",
            admin_b.cookie_only(patch(&admin)).json(&verify),
        )
        .saying(CSRF),
        no_csrf(
            "session without CSRF: create app",
            post(apps).json(&new_app),
        ),
        no_csrf("session without CSRF: revoke consent", delete(&consent_a)),
        no_csrf(
            "session without CSRF: create API key",
            post(keys).json(&new_key),
        ),
        no_csrf("session without CSRF: delete API key", delete(&victim)),
        no_csrf(
            "session without CSRF: set buzz limit",
            put(&limit_a).json(&cap),
        ),
        denied(
            "session without CSRF: approve a device",
            alice_b
                .cookie_only(post("/api/auth/oauth/device-approve"))
                .form(&[("user_code", uc.as_str())]),
        )
        .saying(CSRF),
        no_csrf(
            "session without CSRF: sign out",
            post("/logout").form(&[("x", "y")]),
        ),
        // Clients: their own tokens and grants, never an account.
        denied(
            "confidential client credentials: apps API",
            get(apps).basic_auth(&own.id, own.secret.as_ref()),
        )
        .saying("Client credentials cannot manage an account"),
        row(
            "plain confidential client: spend",
            post("/api/v1/buzz/spend")
                .basic_auth(&plain.id, plain.secret.as_ref())
                .json(&spend_body),
            400,
            "unauthorized_client",
        ),
        row(
            "public client: introspection",
            post("/api/auth/oauth/introspect")
                .form(&[("token", token.as_str()), ("client_id", public.id.as_str())]),
            400,
            "unauthorized_client",
        ),
        row(
            "resource server: refund another's spend",
            post(&format!("/api/v1/buzz/spend/{spend_id}/refund"))
                .basic_auth(&r2.id, r2.secret.as_ref()),
            404,
            "not_found",
        ),
        // Nobody at all.
        row("no credentials: apps API", get(apps), 401, "invalid_token"),
        row(
            "no credentials: create API key",
            post(keys).json(&new_key),
            401,
            "invalid_token",
        ),
    ];
    for r in rows {
        let (s, e) = send(r.req).await;
        assert_eq!(
            (s, error_of(&e)),
            (r.status, Some(r.error)),
            "row `{}`: {e}",
            r.name
        );
        if let Some(text) = r.says {
            assert!(
                description_of(&e).contains(text),
                "row `{}` says {text:?}: {e}",
                r.name
            );
        }
    }

    // None of it changed anything.
    let (s, v) = send(alice_b.cookie_only(get("/api/v1/session"))).await;
    assert_eq!(
        s, 200,
        "after `sign out` without CSRF the session still works: {v}"
    );
    let (s, list) = send(alice_b.cookie_only(get(apps))).await;
    assert_eq!(s, 200, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "no app was created: {list:?}");
    assert_eq!(list[0]["clientId"], own.id);
    assert_eq!(list[0]["name"], "E2E app", "not renamed");
    assert_eq!(list[0]["isVerified"], false, "not verified");
    assert_eq!(list[0]["accessMode"], "open", "not disabled");
    let (s, i) = introspect(env, &own, "civitai_unknown").await;
    assert_eq!(
        (s, i),
        (200, json!({"active": false})),
        "the app's secret was not rotated"
    );
    let (s, list) = send(alice_b.cookie_only(get(keys))).await;
    assert_eq!(
        (s, list.as_array().map(Vec::len)),
        (200, Some(3)),
        "no key minted or deleted: {list}"
    );
    assert_eq!(
        env.bearer_status("/api/v1/me", &victim_key).await,
        200,
        "the victim key still works"
    );
    assert_eq!(
        connected_apps(env, &alice_b).await,
        consents_before,
        "the consent stands, its cap unchanged"
    );
    assert_eq!(env.bearer_status("/api/v1/me", &token).await, 200);
    assert_poll_refused(env, &device, &dc, PENDING, "the device was not approved").await;
    // The callers the table does admit, for contrast: the refusals above were about the
    // caller, not the request.
    let (s, r) = refund(env, &r1, &spend_id).await;
    assert_eq!(s, 200, "the spend was not refunded by R2, and R1 may: {r}");
    let (s, c) = send(
        admin_b
            .proven(patch(&admin))
            .json(&json!({"isVerified": true})),
    )
    .await;
    assert_eq!(s, 200, "an admin with the CSRF token: {c}");
    assert_eq!(c["isVerified"], true);
}

// --- RFC 9700, attack by attack (docs/security.md, section 7) --------------------------------
//
// Each scenario is named after the attack it tries; the table of section 7 cites them. They
// are registered here, beside their code, and run like the others on both backends
// (`cargo nextest run -p buzzgate --test e2e -E 'test(/attacks::rfc9700/)'`).

crate::scenarios!(
    mod rfc9700 in attacks;
    code_injection_is_refused,
    pkce_downgrade_is_refused,
    redirect_uri_variants_are_never_followed,
    mix_up_every_authorization_response_names_the_issuer,
    consent_csrf_is_refused,
    clickjacking_no_answer_may_be_framed,
    referer_leakage_no_answer_sends_a_referrer,
    client_impersonation_is_refused,
    codes_are_unguessable,
    device_user_code_guessing_is_throttled with device_guess_limit,
    cimd_ssrf_non_public_addresses_are_never_fetched,
);

/// Authorize and (for whatever counts them) device verification: 5 per user and minute.
pub fn device_guess_limit(c: &mut Config) {
    c.rate_limit_authorize = Some(5);
}

/// A complete authorize query for `client_id` and `redirect_uri` with the S256 `challenge`.
fn authorize_query<'a>(
    client_id: &'a str,
    redirect_uri: &'a str,
    challenge: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "UserRead"),
        ("state", "st-9700"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// GET authorize with the session `cookie` and `query`.
async fn authorize(env: &Env, cookie: &str, query: &[(&str, &str)]) -> reqwest::Response {
    env.http
        .get(env.url("/api/auth/oauth/authorize"))
        .query(query)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// A code redemption by `app`: (code, verifier, redirect URI).
async fn redeem(
    env: &Env,
    app: &App,
    (code, verifier, redirect): (&str, &str, &str),
) -> (u16, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier),
        ("redirect_uri", redirect),
    ];
    env.token_call(app, &form).await
}

/// RFC 9700 4.5: a stolen code injected into another session, another client or another
/// redirect URI is refused; PKCE binds it to the verifier of the session that asked for it.
pub async fn code_injection_is_refused(env: &Env) {
    let owner = env.user("ivy", 0).await;
    let app = env.app(owner, false, None).await;
    let other = env.app(owner, false, None).await;
    env.user("vera", 0).await;
    let cookie = env.login("vera").await;
    // The attacker's own session: the verifier the attacker holds, not the victim's.
    let attackers = CodeVerifier::generate(&buzzgate_domain::ports::OsRandom);
    let (code, verifier) = code_for(env, &cookie, &app, "UserRead").await;
    assert_refused(
        redeem(env, &app, (&code, attackers.as_str(), REDIRECT)).await,
        INVALID_GRANT,
        "the victim's code with the attacker's verifier",
    );
    assert_refused(
        redeem(env, &app, (&code, verifier.as_str(), REDIRECT)).await,
        INVALID_GRANT,
        "a code that failed PKCE once is burnt, even for its own verifier",
    );
    // Another client presenting the code, even with the right verifier.
    let (code, verifier) = code_for(env, &cookie, &app, "UserRead").await;
    assert_refused(
        redeem(env, &other, (&code, verifier.as_str(), REDIRECT)).await,
        INVALID_GRANT,
        "another client redeems the code",
    );
    // Another redirect URI than the one the code was sent to.
    let (code, verifier) = code_for(env, &cookie, &app, "UserRead").await;
    let elsewhere = "https://app.example.com/elsewhere";
    assert_refused(
        redeem(env, &app, (&code, verifier.as_str(), elsewhere)).await,
        INVALID_GRANT,
        "the code with another redirect_uri",
    );
    // The honest exchange still works: the refusals were about the injection.
    let (code, verifier) = code_for(env, &cookie, &app, "UserRead").await;
    let (s, t) = redeem(env, &app, (&code, verifier.as_str(), REDIRECT)).await;
    assert_eq!(s, 200, "{t}");
}

/// RFC 9700 4.8: no way to fall back from S256: `plain`, a missing method or a missing
/// challenge never yield a code, and a code asked for with S256 needs the verifier itself
/// (sending the challenge as a `plain` verifier fails).
pub async fn pkce_downgrade_is_refused(env: &Env) {
    let owner = env.user("pia", 0).await;
    let app = env.app(owner, false, None).await;
    let cookie = env.login("pia").await;
    let full = authorize_query(&app.id, REDIRECT, CHALLENGE);
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "code_challenge_method=plain",
            full.iter()
                .map(|&(k, v)| {
                    (
                        k,
                        if k == "code_challenge_method" {
                            "plain"
                        } else {
                            v
                        },
                    )
                })
                .collect(),
        ),
        (
            "no code_challenge_method",
            full.iter()
                .copied()
                .filter(|(k, _)| *k != "code_challenge_method")
                .collect(),
        ),
        (
            "no code_challenge at all",
            full.iter()
                .copied()
                .filter(|(k, _)| !k.starts_with("code_challenge"))
                .collect(),
        ),
    ];
    for (what, query) in cases {
        let r = authorize(env, &cookie, &query).await;
        assert_eq!(r.status(), 302, "{what}: an error back to the app");
        let loc = crate::harness::location(&r);
        assert!(loc.starts_with(REDIRECT), "{what}: {loc}");
        assert_eq!(
            query_param(&loc, "error").as_deref(),
            Some("invalid_request"),
            "{what}: {loc}"
        );
        assert_eq!(query_param(&loc, "code"), None, "{what}: no code");
    }
    assert_eq!(
        connected_apps(env, &browser(env, "pia").await).await.len(),
        0,
        "no consent was recorded"
    );
    // A code asked for with S256: no verifier, then the challenge itself as the verifier.
    let (code, verifier) = code_for(env, &cookie, &app, "UserRead").await;
    let no_verifier = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let (s, e) = env.token_call(&app, &no_verifier).await;
    assert_eq!((s, error_of(&e)), (400, Some("invalid_request")), "{e}");
    let challenge = buzzgate_domain::pkce::CodeChallenge::from_verifier(&verifier);
    let (s, e) = env.exchange(&app, &code, challenge.as_str()).await;
    assert_eq!(
        (s, error_of(&e)),
        INVALID_GRANT_PAIR,
        "the challenge as a plain verifier"
    );
}

const INVALID_GRANT_PAIR: (u16, Option<&str>) = (400, Some("invalid_grant"));

/// RFC 9700 4.1 and 4.11.2: every variant of a registered redirect URI is refused with a JSON
/// error, never followed; only the exact URI is.
pub async fn redirect_uri_variants_are_never_followed(env: &Env) {
    let owner = env.user("rex", 0).await;
    let app = env.app(owner, false, None).await;
    let cookie = env.login("rex").await;
    let variants = [
        "https://app.example.com/callback/",
        "https://APP.example.com/callback",
        "https://app.example.com/Callback",
        "https://app.example.com/callbackx",
        "https://app.example.com/callback?next=https://evil.example",
        "https://app.example.com/callback#x",
        "https://app.example.com/callback/../evil",
        "https://app.example.com/callback%2F..%2Fevil",
        "https://app.example.com:8443/callback",
        "http://app.example.com/callback",
        "https://app.example.com.evil.example/callback",
        "https://app.example.com@evil.example/callback",
        "https://evil.example/callback",
        "https://evil.example/https://app.example.com/callback",
        "//evil.example/callback",
        "",
    ];
    for uri in variants {
        let r = authorize(env, &cookie, &authorize_query(&app.id, uri, CHALLENGE)).await;
        assert_eq!(r.status(), 400, "{uri:?} is refused");
        assert_eq!(header(&r, "location"), None, "{uri:?} is never followed");
        let (_, e) = answer(r).await;
        assert_eq!(error_of(&e), Some("invalid_request"), "{uri:?}: {e}");
    }
    // The exact URI: the consent page.
    let r = authorize(env, &cookie, &authorize_query(&app.id, REDIRECT, CHALLENGE)).await;
    assert_eq!(r.status(), 200, "the registered URI, exactly");
}

/// RFC 9700 4.4 (RFC 9207): every authorization response, success, error or denial, names
/// this issuer in `iss`, and the metadata says so, so a client talking to several servers
/// can tell which one answered.
pub async fn mix_up_every_authorization_response_names_the_issuer(env: &Env) {
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m = env.get_json(path).await;
        assert_eq!(m["issuer"], env.base, "{path}");
        assert_eq!(
            m["authorization_response_iss_parameter_supported"], true,
            "{path}"
        );
    }
    let owner = env.user("max", 0).await;
    let app = env.app(owner, false, None).await;
    let cookie = env.login("max").await;
    let iss = |loc: &str| query_param(loc, "iss");
    // An error redirect (no PKCE).
    let no_pkce: Vec<(&str, &str)> = authorize_query(&app.id, REDIRECT, CHALLENGE)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    let r = authorize(env, &cookie, &no_pkce).await;
    assert_eq!(r.status(), 302);
    let loc = crate::harness::location(&r);
    assert!(query_param(&loc, "error").is_some(), "{loc}");
    assert_eq!(
        iss(&loc).as_deref(),
        Some(env.base.as_str()),
        "error: {loc}"
    );
    // A denial.
    let page = authorize(env, &cookie, &authorize_query(&app.id, REDIRECT, CHALLENGE)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let r = env
        .answer_consent(&cookie, &html, &[("approved", "false")])
        .await;
    assert_eq!(r.status(), 303);
    let loc = crate::harness::location(&r);
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(
        iss(&loc).as_deref(),
        Some(env.base.as_str()),
        "denial: {loc}"
    );
    // An approval, then a remembered consent answered without a page.
    for what in ["approval", "remembered consent"] {
        let (loc, _) = env.consent(&cookie, &app, "UserRead", None, None).await;
        assert!(query_param(&loc, "code").is_some(), "{what}: {loc}");
        assert_eq!(
            iss(&loc).as_deref(),
            Some(env.base.as_str()),
            "{what}: {loc}"
        );
    }
}

/// RFC 9700 4.7: the consent form is answered only by its own session, with its CSRF token,
/// from this site; a forged approval records no consent and issues no code.
pub async fn consent_csrf_is_refused(env: &Env) {
    let owner = env.user("cora", 0).await;
    let app = env.app(owner, false, None).await;
    env.user("vic", 0).await;
    env.user("mal", 0).await;
    let victim = browser(env, "vic").await;
    let attacker = browser(env, "mal").await;
    let page = authorize(
        env,
        &victim.cookie,
        &authorize_query(&app.id, REDIRECT, CHALLENGE),
    )
    .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let hidden = crate::harness::hidden_inputs(&html);
    assert_eq!(
        hidden.get("csrf_token"),
        Some(&victim.csrf),
        "the form carries the session's token"
    );
    let form_with = |csrf: Option<&str>| {
        let mut form: Vec<(String, String)> = hidden
            .iter()
            .filter(|(k, _)| k.as_str() != "csrf_token")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(t) = csrf {
            form.push(("csrf_token".into(), t.into()));
        }
        form.push(("approved".into(), "true".into()));
        form.push(("remember".into(), "true".into()));
        form
    };
    let post = |form: Vec<(String, String)>| {
        env.http
            .post(env.url("/api/auth/oauth/authorize"))
            .header("cookie", &victim.cookie)
            .form(&form)
    };
    let forged = [
        ("no token", post(form_with(None))),
        (
            "the attacker's own session token",
            post(form_with(Some(&attacker.csrf))),
        ),
        (
            "the right token, sent cross-site",
            post(form_with(Some(&victim.csrf))).header("sec-fetch-site", "cross-site"),
        ),
    ];
    for (what, req) in forged {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403, "{what}");
        assert_eq!(
            header(&r, "location"),
            None,
            "{what}: no code sent anywhere"
        );
    }
    assert!(
        connected_apps(env, &victim).await.is_empty(),
        "no consent was recorded"
    );
    // The victim's own answer, for contrast.
    let r = post(form_with(Some(&victim.csrf))).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(query_param(&crate::harness::location(&r), "code").is_some());
}

/// The answers a browser is shown or sent through: the pages signed out and in, the consent
/// page, an authorize error page, the redirects (sign-in, the code, an error back to the app)
/// and a JSON error.
async fn browser_facing_answers(env: &Env) -> Vec<(&'static str, reqwest::header::HeaderMap)> {
    let owner = env.user("olga", 0).await;
    let app = env.app(owner, false, None).await;
    let mut out = Vec::new();
    let r = env.get("/login?returnUrl=%2Faccount").await;
    assert_eq!(r.status(), 200);
    out.push(("the sign-in page", r.headers().clone()));
    let r = env.sign_in("olga", PASSWORD, None).await;
    assert_eq!(r.status(), 303);
    out.push(("the redirect after sign-in", r.headers().clone()));
    let b = browser(env, "olga").await;
    for (what, path) in [
        ("the account page", "/account"),
        ("the device page", "/login/oauth/device"),
        (
            "a device page with a wrong code",
            "/login/oauth/device?code=AAAA-AAAA",
        ),
    ] {
        let r = b
            .cookie_only(env.http.get(env.url(path)))
            .send()
            .await
            .unwrap();
        assert!(r.status().as_u16() < 500, "{what}");
        out.push((what, r.headers().clone()));
    }
    let r = authorize(
        env,
        &b.cookie,
        &authorize_query(&app.id, REDIRECT, CHALLENGE),
    )
    .await;
    assert_eq!(r.status(), 200);
    out.push(("the consent page", r.headers().clone()));
    let html = r.text().await.unwrap();
    let r = env
        .answer_consent(&b.cookie, &html, &[("approved", "true")])
        .await;
    assert_eq!(r.status(), 303);
    assert!(query_param(&crate::harness::location(&r), "code").is_some());
    out.push(("the redirect carrying the code", r.headers().clone()));
    let no_pkce: Vec<(&str, &str)> = authorize_query(&app.id, REDIRECT, CHALLENGE)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    let r = authorize(env, &b.cookie, &no_pkce).await;
    assert_eq!(r.status(), 302);
    out.push(("an error redirect to the app", r.headers().clone()));
    let r = env
        .http
        .get(env.url("/api/auth/oauth/authorize"))
        .query(&authorize_query("nope", REDIRECT, CHALLENGE))
        .header("accept", "text/html")
        .header("cookie", &b.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    out.push(("the authorize error page", r.headers().clone()));
    let r = env
        .http
        .post(env.url("/api/auth/oauth/token"))
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    out.push(("a JSON error", r.headers().clone()));
    out
}

/// RFC 9700 4.16: no answer may be framed by another site (the consent page above all).
pub async fn clickjacking_no_answer_may_be_framed(env: &Env) {
    for (what, h) in browser_facing_answers(env).await {
        assert_eq!(
            h.get("x-frame-options").map(|v| v.to_str().unwrap()),
            Some("DENY"),
            "{what}"
        );
        let csp = h
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp:?}");
    }
}

/// RFC 9700 4.2: no answer lets the browser send its URL (a state, a code, a user code) to
/// another site in `Referer`, whatever the page links to or the app's page loads.
pub async fn referer_leakage_no_answer_sends_a_referrer(env: &Env) {
    for (what, h) in browser_facing_answers(env).await {
        assert_eq!(
            h.get("referrer-policy").map(|v| v.to_str().unwrap()),
            Some("no-referrer"),
            "{what}"
        );
    }
}

/// RFC 9700 2.5 and RFC 6749 10.2: a client is who its secret says; nobody gets tokens in a
/// confidential client's name without that secret, and a public client cannot pose as a
/// confidential one.
pub async fn client_impersonation_is_refused(env: &Env) {
    let owner = env.user("iris", 0).await;
    let victim = cc_app(env, owner).await;
    let attacker = cc_app(env, owner).await;
    let public = env
        .app(owner, true, Some(&["authorization_code", "refresh_token"]))
        .await;
    let cc = [("grant_type", "client_credentials")];
    let token = env.url("/api/auth/oauth/token");
    let guessed = "0".repeat(64);
    let attempts = [
        (
            "the victim's id with the attacker's secret",
            env.http
                .post(&token)
                .basic_auth(&victim.id, attacker.secret.as_ref())
                .form(&cc),
        ),
        (
            "the victim's id and no secret, as if public",
            env.http.post(&token).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", victim.id.as_str()),
            ]),
        ),
        (
            "the victim's id with a guessed secret in the body",
            env.http.post(&token).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", victim.id.as_str()),
                ("client_secret", guessed.as_str()),
            ]),
        ),
        (
            "a public client sending a secret",
            env.http
                .post(&token)
                .basic_auth(&public.id, attacker.secret.as_ref())
                .form(&cc),
        ),
    ];
    for (what, req) in attempts {
        let (s, e) = send(req).await;
        assert!(s == 400 || s == 401, "{what}: {s} {e}");
        assert_eq!(error_of(&e), Some("invalid_client"), "{what}: {e}");
        assert!(e.get("access_token").is_none(), "{what}");
    }
    // A public client has no secret to prove anything with: no client_credentials.
    assert_refused(
        client_credentials(env, &public).await,
        UNAUTHORIZED_CLIENT,
        "a public client asks for client_credentials",
    );
    // The victim itself, for contrast.
    let (s, t) = client_credentials(env, &victim).await;
    assert_eq!(s, 200, "{t}");
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// RFC 6749 10.10 and RFC 8628 5.1: authorization and device codes are 256-bit random
/// strings, so guessing one is hopeless; a guess is `invalid_grant` like any wrong code.
pub async fn codes_are_unguessable(env: &Env) {
    let owner = env.user("gus", 0).await;
    let app = env.app(owner, false, None).await;
    let device = device_app(env, owner).await;
    let cookie = env.login("gus").await;
    let (code, _) = code_for(env, &cookie, &app, "UserRead").await;
    assert!(is_hex64(&code), "a 256-bit code: {code}");
    let (device_code, user_code) = device_start(env, &device, "UserRead").await;
    assert!(is_hex64(&device_code), "a 256-bit device code");
    let alphabet = buzzgate_domain::grant::device_code::USER_CODE_ALPHABET;
    let chars: Vec<u8> = user_code.bytes().filter(|b| *b != b'-').collect();
    assert_eq!(chars.len(), 8, "{user_code}");
    assert!(chars.iter().all(|b| alphabet.contains(b)), "{user_code}");
    // Guesses: a well-formed code nobody was given, and the user code as a device code.
    let guess = "0123456789abcdef".repeat(4);
    let v = CodeVerifier::generate(&buzzgate_domain::ports::OsRandom);
    let (s, e) = env.exchange(&app, &guess, v.as_str()).await;
    assert_eq!((s, error_of(&e)), INVALID_GRANT_PAIR, "{e}");
    let (s, e) = device_poll(env, &device, &guess).await;
    assert_eq!((s, error_of(&e)), INVALID_GRANT_PAIR, "{e}");
    let (s, e) = device_poll(env, &device, &user_code).await;
    assert_eq!((s, error_of(&e)), INVALID_GRANT_PAIR, "{e}");
}

/// RFC 8628 5.1: user codes are short (40 bits) because people type them; the verification
/// page must therefore throttle guesses, or a signed-in attacker can try codes until one
/// matches someone's waiting device and approve it into their own account (or read which
/// app asks).
pub async fn device_user_code_guessing_is_throttled(env: &Env) {
    fresh_window(Duration::from_secs(30)).await;
    env.user("guesser", 0).await;
    let b = browser(env, "guesser").await;
    let mut statuses = Vec::new();
    for i in 0..25u32 {
        // Well-formed codes from the alphabet, none of them issued.
        let a = buzzgate_domain::grant::device_code::USER_CODE_ALPHABET;
        let guess = format!("QQQQ-QQ{}{}", a[i as usize % 32] as char, a[7] as char);
        let r = b
            .cookie_only(env.http.get(env.url("/login/oauth/device")))
            .query(&[("code", guess.as_str())])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(
                header(&r, "retry-after").is_some(),
                "429 says when to retry"
            );
            break;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&429),
        "25 wrong user codes in a minute from one account are throttled: {statuses:?}"
    );
}

/// SPEC 14 and the CIMD draft: a `client_id` URL that points at a loopback, private or
/// link-local address is refused before any connection is made (no SSRF into the server's
/// own network), whatever the name resolves through.
pub async fn cimd_ssrf_non_public_addresses_are_never_fetched(env: &Env) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let reached = Arc::new(AtomicBool::new(false));
    let flag = reached.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });
    env.user("sid", 0).await;
    let cookie = env.login("sid").await;
    let targets = [
        format!("https://127.0.0.1:{port}/client.json"),
        format!("https://localhost:{port}/client.json"),
        format!("https://[::1]:{port}/client.json"),
        "https://10.0.0.1/client.json".to_owned(),
        "https://192.168.1.1/client.json".to_owned(),
        "https://169.254.169.254/latest/meta-data/client.json".to_owned(),
    ];
    for id in &targets {
        let r = authorize(env, &cookie, &authorize_query(id, REDIRECT, CHALLENGE)).await;
        assert_eq!(header(&r, "location"), None, "{id}: never a redirect");
        let (s, e) = answer(r).await;
        assert_eq!(
            (s, error_of(&e)),
            (400, Some("invalid_client")),
            "{id}: {e}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !reached.load(Ordering::SeqCst),
        "no connection reached the loopback listener"
    );
}
