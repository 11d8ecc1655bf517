//! A real server on an ephemeral port, over SQLite or over Postgres + Redis, and a tiny
//! "browser" that signs in and answers the consent page over HTTP.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use buzzgate::{Config, Running};
use buzzgate_domain::buzz::Currency;
use buzzgate_domain::client::ClientRegistration;
use buzzgate_domain::ids::UserId;
use buzzgate_domain::pkce::{CodeChallenge, CodeVerifier};
use buzzgate_domain::ports::OsRandom;
use buzzgate_domain::service::{Buzzgate, Caller};
use buzzgate_domain::user::{NewUser, Role, Username};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

pub const REDIRECT: &str = "https://app.example.com/callback";
pub const PASSWORD: &str = "correct horse battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    PostgresRedis,
}

pub struct Env {
    pub base: String,
    pub http: reqwest::Client,
    pub running: Option<Running>,
    pub core: Buzzgate,
    pub dir: PathBuf,
}

fn tmpdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "bg-e2e-{}",
        uuid::Uuid::from_bytes(rand16()).simple()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn rand16() -> [u8; 16] {
    let mut b = [0u8; 16];
    buzzgate_domain::ports::Random::fill(&OsRandom, &mut b);
    b
}

async fn reachable(addr: &str) -> bool {
    tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}

fn host_port(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// A running server on `backend`, or `None` (with a skip line) when its services are down.
pub async fn env(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Env> {
    let dir = tmpdir();
    let mut cfg = Config {
        listen: "127.0.0.1:0".into(),
        signing_key_file: dir.join("key.pem").display().to_string(),
        database_url: format!("sqlite://{}", dir.join("bg.db").display()),
        rate_limit_token: None,
        rate_limit_authorize: None,
        rate_limit_revoke: None,
        refresh_grace_seconds: 0,
        sweep_interval_seconds: 0,
        ..Config::default()
    };
    if backend == Backend::PostgresRedis {
        let pg = buzzgate_testkit::postgres_url();
        let redis = buzzgate_testkit::redis_url();
        if !reachable(&host_port(&pg)).await {
            return buzzgate_testkit::skip("postgres (e2e)", &format!("{pg} unreachable"));
        }
        if !reachable(&host_port(&redis)).await {
            return buzzgate_testkit::skip("redis (e2e)", &format!("{redis} unreachable"));
        }
        let id = uuid::Uuid::from_bytes(rand16()).simple().to_string();
        cfg.database_url = pg;
        cfg.database_schema = Some(format!("bg_e2e_{id}"));
        cfg.redis_url = Some(redis);
        cfg.redis_prefix = format!("{{bge2e{id}}}:");
    }
    tweak(&mut cfg);
    // The issuer must be the address actually bound: bind first, then configure.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = probe.local_addr().expect("addr").port();
    drop(probe);
    cfg.listen = format!("127.0.0.1:{port}");
    cfg.issuer = format!("http://127.0.0.1:{port}");
    let running = buzzgate::start(&cfg).await.expect("server starts");
    let core = running.node_core.clone();
    Some(Env {
        base: cfg.issuer.clone(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        running: Some(running),
        core,
        dir,
    })
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct App {
    pub id: String,
    pub secret: Option<String>,
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A user with a password, credited with `buzz` yellow Buzz.
    pub async fn user(&self, name: &str, buzz: u64) -> UserId {
        let u = self
            .core
            .sessions()
            .create_user(new_user(name, vec![]))
            .await
            .expect("user");
        if buzz > 0 {
            self.core
                .deps
                .buzz
                .credit(u.id, &Currency::yellow(), buzz, self.core.deps.now())
                .await
                .unwrap();
        }
        u.id
    }

    /// An app of `owner` (confidential unless `public`), with `grants` (None: default).
    pub async fn app(&self, owner: UserId, public: bool, grants: Option<&[&str]>) -> App {
        let created = self
            .core
            .clients()
            .create(
                &Caller::operator_for(owner),
                ClientRegistration {
                    name: "E2E app".into(),
                    description: Some("An app under test".into()),
                    redirect_uris: vec![REDIRECT.into()],
                    is_confidential: Some(!public),
                    grants: grants.map(|g| g.iter().map(|s| s.to_string()).collect()),
                    ..Default::default()
                },
            )
            .await
            .expect("client");
        App {
            id: created.client.id.as_str().to_owned(),
            secret: created.secret.map(|s| s.expose().to_owned()),
        }
    }

    pub async fn make_resource_server(&self, app: &App) {
        let admin = Caller::operator();
        let id = buzzgate_domain::ids::ClientId::parse(&app.id).unwrap();
        self.core
            .clients()
            .administer(&admin, &id, None, None, Some(true))
            .await
            .unwrap();
    }

    /// Signs in through the login form; returns the session cookie (`bg_session=…`).
    pub async fn login(&self, username: &str) -> String {
        let res = self.sign_in(username, PASSWORD, None).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "login succeeds");
        cookie_pair(res.headers(), "bg_session").expect("session cookie")
    }

    /// One attempt at the real login form (its page, then its POST), from `forwarded_for`
    /// as the operator's proxy would report it.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        forwarded_for: Option<&str>,
    ) -> reqwest::Response {
        let page = self.get("/login?returnUrl=%2F").await;
        assert_eq!(page.status(), 200);
        let csrf_cookie = cookie_pair(page.headers(), "bg_login_csrf").expect("csrf cookie");
        let fields = hidden_inputs(&page.text().await.unwrap());
        let mut req = self
            .http
            .post(self.url("/login"))
            .header("cookie", csrf_cookie);
        if let Some(from) = forwarded_for {
            req = req.header("x-forwarded-for", from);
        }
        let form = [
            ("username", username),
            ("password", password),
            ("csrf_token", fields["csrf_token"].as_str()),
            ("returnUrl", fields["returnUrl"].as_str()),
        ];
        req.form(&form).send().await.unwrap()
    }

    /// Submits the device verification page (its hidden fields), approving the device.
    pub async fn approve_device(&self, cookie: &str, page_html: &str) -> reqwest::Response {
        let fields = hidden_inputs(page_html);
        let form = [
            ("csrf_token", fields["csrf_token"].as_str()),
            ("user_code", fields["user_code"].as_str()),
            ("approve", "true"),
        ];
        self.post_form("/login/oauth/device", cookie, &form).await
    }

    /// Posts a form with the session cookie.
    async fn post_form(
        &self,
        path: &str,
        cookie: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let req = self.http.post(self.url(path)).header("cookie", cookie);
        req.form(form).send().await.unwrap()
    }

    /// Signs `user` in and reads the session's CSRF token.
    pub async fn session(&self, user: &str) -> Session<'_> {
        let cookie = self.login(user).await;
        let csrf = self.csrf(&cookie).await;
        Session {
            env: self,
            cookie,
            csrf,
        }
    }

    /// GETs `path` with a bearer token; the JSON body.
    pub async fn bearer_json(&self, path: &str, token: &str) -> Value {
        self.get_bearer(path, token).await.json().await.unwrap()
    }

    /// A call with a bearer token, with a JSON `body` if any.
    pub async fn bearer_call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// The status of a GET with a bearer token.
    pub async fn bearer_status(&self, path: &str, token: &str) -> u16 {
        self.get_bearer(path, token).await.status().as_u16()
    }

    /// A `refresh_token` grant for `app`: the status and the body.
    pub async fn refresh(&self, app: &App, refresh_token: &str) -> (u16, Value) {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        self.token_call(app, &form).await
    }

    /// A form POST authenticated as `app` (Basic): revocation, introspection.
    pub async fn app_form(&self, app: &App, path: &str, form: &[(&str, &str)]) -> Response {
        let req = self.http.post(self.url(path));
        req.basic_auth(&app.id, app.secret.as_ref())
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// A bodiless POST authenticated as `app` (Basic).
    pub async fn app_post(&self, app: &App, path: &str) -> reqwest::Response {
        let req = self.http.post(self.url(path));
        req.basic_auth(&app.id, app.secret.as_ref())
            .send()
            .await
            .unwrap()
    }

    /// A plain GET, no credentials; the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    /// A plain GET, no credentials.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// Posts a consent page back with the session cookie: its hidden fields plus `answer`
    /// (`approved`, `remember`, `buzz_limit`).
    pub async fn answer_consent(
        &self,
        cookie: &str,
        page_html: &str,
        answer: &[(&str, &str)],
    ) -> reqwest::Response {
        let hidden = hidden_inputs(page_html);
        let mut form: Vec<(&str, &str)> = hidden.iter().map(|(k, v)| (&**k, &**v)).collect();
        form.extend_from_slice(answer);
        self.post_form("/api/auth/oauth/authorize", cookie, &form)
            .await
    }

    /// The token request that redeems `code` for a confidential app (Basic auth), unsent.
    pub fn code_exchange(&self, app: &App, code: &str, verifier: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.url("/api/auth/oauth/token"))
            .basic_auth(&app.id, app.secret.as_ref())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code_verifier", verifier),
                ("redirect_uri", REDIRECT),
            ])
    }

    /// The session's CSRF token, as a page's script reads it (`GET /api/v1/session`); sent as
    /// `X-CSRF-Token` on every session-authenticated JSON change.
    pub async fn csrf(&self, cookie: &str) -> String {
        let r = self
            .http
            .get(self.url("/api/v1/session"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a signed-in session reads its CSRF token");
        let v: Value = r.json().await.unwrap();
        v["csrfToken"].as_str().expect("csrfToken").to_owned()
    }

    /// Runs authorize → consent (approve with `buzz_limit`) and returns the redirect Location.
    pub async fn consent(
        &self,
        cookie: &str,
        app: &App,
        scope: &str,
        nonce: Option<&str>,
        buzz_limit: Option<&str>,
    ) -> (String, CodeVerifier) {
        let verifier = CodeVerifier::generate(&OsRandom);
        let challenge = CodeChallenge::from_verifier(&verifier);
        let mut q = vec![
            ("response_type", "code"),
            ("client_id", app.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "st-123"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if let Some(n) = nonce {
            q.push(("nonce", n));
        }
        let res = self
            .http
            .get(self.url("/api/auth/oauth/authorize"))
            .query(&q)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::FOUND {
            // A remembered consent: the code comes straight back.
            return (location(&res), verifier);
        }
        assert_eq!(res.status(), 200, "consent page");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        let html = res.text().await.unwrap();
        let mut answer = vec![("approved", "true"), ("remember", "true")];
        if let Some(l) = buzz_limit {
            answer.push(("buzz_limit", l));
        }
        let res = self.answer_consent(cookie, &html, &answer).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "approval redirects");
        (location(&res), verifier)
    }

    /// The whole browser flow and the code exchange: the token response.
    pub async fn tokens(
        &self,
        user: &str,
        app: &App,
        scope: &str,
        buzz_limit: Option<&str>,
    ) -> Value {
        let cookie = self.login(user).await;
        let (loc, verifier) = self.consent(&cookie, app, scope, None, buzz_limit).await;
        let code = query_param(&loc, "code").expect("code");
        let res = self.exchange(app, &code, verifier.as_str()).await;
        assert_eq!(res.0, 200, "{}", res.1);
        res.1
    }

    pub async fn exchange(&self, app: &App, code: &str, verifier: &str) -> (u16, Value) {
        self.token_call(
            app,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code_verifier", verifier),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await
    }

    /// A token-endpoint call, authenticated with Basic (confidential) or client_id (public).
    pub async fn token_call(&self, app: &App, form: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.http.post(self.url("/api/auth/oauth/token"));
        let mut form: Vec<(&str, &str)> = form.to_vec();
        match &app.secret {
            Some(s) => req = req.basic_auth(&app.id, Some(s)),
            None => form.push(("client_id", &app.id)),
        }
        let res = req.form(&form).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// A verified user `name` (email `name@example.com`, password [`PASSWORD`]) with `roles`.
pub fn new_user(name: &str, roles: Vec<Role>) -> NewUser {
    NewUser {
        username: Username::parse(name).unwrap(),
        email: Some(format!("{name}@example.com")),
        email_verified: true,
        password: Some(PASSWORD.into()),
        roles,
    }
}

/// A signed-in browser of one user: its session cookie and CSRF token.
pub struct Session<'a> {
    env: &'a Env,
    pub cookie: String,
    pub csrf: String,
}

impl Session<'_> {
    /// A session-authenticated call (cookie and CSRF token), with a JSON `body` if any.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut req = self.env.http.request(method, self.env.url(path));
        req = req
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// GETs `path` with the session cookie; the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let req = self
            .env
            .http
            .get(self.env.url(path))
            .header("cookie", &self.cookie);
        req.send().await.unwrap().json().await.unwrap()
    }
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get(LOCATION)
        .expect("Location")
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    url_pairs(q)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (unpct(k), unpct(v)))
        .collect()
}

fn unpct(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Every `<input type="hidden" name="…" value="…">` of a page.
pub fn hidden_inputs(html: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for part in html.split("<input type=\"hidden\" ").skip(1) {
        let name = part
            .split("name=\"")
            .nth(1)
            .and_then(|r| r.split('"').next());
        let value = part
            .split("value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next());
        if let (Some(n), Some(v)) = (name, value) {
            out.insert(unescape(n), unescape(v));
        }
    }
    out
}

/// `name=value` of a `Set-Cookie` response header.
pub fn cookie_pair(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|kv| kv.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// Expands every scenario into one test per backend.
///
/// - `scenarios!(a, b)`: the scenarios of `flows.rs`, in modules `sqlite` and `postgres_redis`.
/// - `scenarios!(mod m in file; a, b with tweak)`: the scenarios of `file.rs`, in
///   `m::sqlite` and `m::postgres_redis`; a scenario written `name with tweak` runs on a server
///   whose config `file::tweak(&mut Config)` adjusted (rate limits, trusted proxies, …).
/// - `scenarios!(@test name, Backend, tweak, scenario)`: one test `name` running `scenario` on
///   one backend, its config adjusted by the closure `tweak`.
#[macro_export]
macro_rules! scenarios {
    (@tweak $file:ident) => {
        |_: &mut buzzgate::Config| {}
    };
    (@tweak $file:ident $tweak:ident) => {
        $crate::$file::$tweak
    };
    (@test $name:ident, $backend:ident, $tweak:expr, $scenario:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let backend = $crate::harness::Backend::$backend;
            let Some(env) = $crate::harness::env(backend, $tweak).await else { return };
            $scenario(&env).await;
        }
    };
    (@on $backend:ident $module:ident $file:ident; $($name:ident $(with $tweak:ident)?),* $(,)?) => {
        mod $module {
            $(
                $crate::scenarios!(
                    @test $name,
                    $backend,
                    $crate::scenarios!(@tweak $file $($tweak)?),
                    $crate::$file::$name
                );
            )*
        }
    };
    (@both $file:ident; $($scenarios:tt)*) => {
        $crate::scenarios!(@on Sqlite sqlite $file; $($scenarios)*);
        $crate::scenarios!(@on PostgresRedis postgres_redis $file; $($scenarios)*);
    };
    (mod $m:ident in $file:ident; $($scenarios:tt)*) => {
        mod $m {
            $crate::scenarios!(@both $file; $($scenarios)*);
        }
    };
    ($($scenarios:tt)*) => {
        $crate::scenarios!(@both flows; $($scenarios)*);
    };
}
