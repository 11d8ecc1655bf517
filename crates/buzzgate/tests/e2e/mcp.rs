//! Seed 000's MCP adapter and proxy mode (docs/mcp.md), driven by a raw JSON-RPC client over
//! streamable HTTP: initialize, tools/list, tools/call, as any MCP client sends them.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{App, Env, REDIRECT, query_param};

/// A minimal MCP client: the 2025 handshake (session header) or 2026-07-28's stateless
/// requests (per-request `_meta` and headers).
pub struct Mcp {
    http: reqwest::Client,
    url: String,
    version: &'static str,
    session: Option<String>,
    bearer: Option<String>,
    next: std::sync::atomic::AtomicU64,
}

/// The JSON-RPC message in a response: a JSON body, or the last `data:` event of a stream.
async fn message(res: reqwest::Response) -> Value {
    let text = res.text().await.unwrap();
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .next_back()
        .unwrap_or_else(|| panic!("no JSON-RPC message in {text}"))
}

impl Mcp {
    pub async fn connect(url: &str, version: &'static str) -> Mcp {
        Mcp::connect_with(url, version, None).await
    }

    /// As [`Mcp::connect`], sending `Authorization: Bearer <token>` on every request.
    pub async fn connect_with(url: &str, version: &'static str, bearer: Option<&str>) -> Mcp {
        let mut c = Mcp {
            http: reqwest::Client::new(),
            url: url.to_owned(),
            version,
            session: None,
            bearer: bearer.map(str::to_owned),
            next: 1.into(),
        };
        if version != "2026-07-28" {
            let res = c
                .post(
                    json!({
                        "jsonrpc": "2.0", "id": 0, "method": "initialize",
                        "params": {
                            "protocolVersion": version,
                            "capabilities": {},
                            "clientInfo": {"name": "buzzgate-e2e", "version": "1"}
                        }
                    }),
                    None,
                )
                .await;
            assert_eq!(res.status(), 200);
            c.session = res
                .headers()
                .get("mcp-session-id")
                .map(|v| v.to_str().unwrap().to_owned());
            let init = message(res).await;
            assert_eq!(init["result"]["protocolVersion"], version, "{init}");
            assert!(
                init["result"]["serverInfo"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("buzzgate")
            );
            let res = c
                .post(
                    json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                    None,
                )
                .await;
            assert!(res.status().is_success());
        }
        c
    }

    async fn post(&self, body: Value, name: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(t) = &self.bearer {
            req = req.bearer_auth(t);
        }
        if let Some(s) = &self.session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", self.version);
        }
        if self.version == "2026-07-28" {
            req = req
                .header("mcp-protocol-version", self.version)
                .header("mcp-method", body["method"].as_str().unwrap_or(""));
            if let Some(n) = name {
                req = req.header("mcp-name", n);
            }
        }
        req.json(&body).send().await.unwrap()
    }

    pub async fn request(&self, method: &str, mut params: Value, name: Option<&str>) -> Value {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.version == "2026-07-28" {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": self.version,
                "io.modelcontextprotocol/clientInfo": {"name": "buzzgate-e2e", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}
            });
        }
        let res = self
            .post(
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
                name,
            )
            .await;
        assert_eq!(res.status(), 200, "{method}");
        let m = message(res).await;
        assert_eq!(m["id"], id, "{m}");
        m
    }

    pub async fn tools(&self) -> Vec<Value> {
        let m = self.request("tools/list", json!({}), None).await;
        m["result"]["tools"].as_array().expect("tools").clone()
    }

    /// A tool call's result (`content`, `structuredContent`, `isError`).
    pub async fn call(&self, tool: &str, arguments: Value) -> Value {
        let m = self
            .request(
                "tools/call",
                json!({"name": tool, "arguments": arguments}),
                Some(tool),
            )
            .await;
        m["result"].clone()
    }
}

fn mcp_url(env: &Env) -> String {
    let addr = env
        .running
        .as_ref()
        .and_then(|r| r.mcp_addr)
        .expect("the MCP listener");
    format!("http://{addr}/mcp")
}

pub fn with_mcp(c: &mut buzzgate::Config) {
    c.mcp_listen = Some("127.0.0.1:0".into());
}

/// A fresh authorization code for `app` (signed in as `user`, consent approved).
async fn code_for(env: &Env, user: &str, app: &App) -> (String, String) {
    let cookie = env.login(user).await;
    let (loc, verifier) = env.consent(&cookie, app, "AIServices", None, None).await;
    (
        query_param(&loc, "code").expect("code"),
        verifier.as_str().to_owned(),
    )
}

fn exchange_body(app: &App, code: &str, verifier: &str) -> Value {
    json!({"body": {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT,
        "client_id": app.id,
        "client_secret": app.secret,
    }})
}

/// The four tools with seed 000's hints; a real code exchange, refresh, userinfo,
/// introspection and revocation through them; a replayed code is a tool error.
pub async fn mcp_tools_run_the_flow(env: &Env) {
    let owner = env.user("mo", 0).await;
    let app = env.app(owner, false, None).await;
    env.make_resource_server(&app).await;
    env.user("nia", 0).await;
    for version in ["2025-06-18", "2025-11-25", "2026-07-28"] {
        let mcp = Mcp::connect(&mcp_url(env), version).await;
        let tools = mcp.tools().await;
        let tool = |name: &str| {
            tools
                .iter()
                .find(|t| t["name"] == name)
                .unwrap_or_else(|| panic!("{name} in {tools:?}"))
                .clone()
        };
        let ex = tool("civitai-oauth-exchange");
        assert_eq!(ex["annotations"]["readOnlyHint"], false, "{version}");
        assert_eq!(ex["annotations"]["destructiveHint"], false);
        assert_eq!(ex["annotations"]["idempotentHint"], false);
        let body = &ex["inputSchema"]["properties"]["body"];
        assert!(!body.is_null(), "the input is `body`: {ex}");
        for ro in ["oauth-introspect", "oauth-userinfo"] {
            assert_eq!(tool(ro)["annotations"]["readOnlyHint"], true, "{ro}");
            assert_eq!(tool(ro)["annotations"]["idempotentHint"], true, "{ro}");
        }
        assert_eq!(tool("oauth-revoke")["annotations"]["destructiveHint"], true);
    }
    let mcp = Mcp::connect(&mcp_url(env), "2025-11-25").await;
    let (code, verifier) = code_for(env, "nia", &app).await;
    let r = mcp
        .call(
            "civitai-oauth-exchange",
            exchange_body(&app, &code, &verifier),
        )
        .await;
    assert_eq!(r["isError"], false, "{r}");
    let tokens = r["structuredContent"].clone();
    let access = tokens["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    assert!(
        !r.to_string().contains(app.secret.as_deref().unwrap()),
        "no secret in output"
    );
    // The same code again: the OAuth error as a tool error, and the first grant revoked.
    let again = mcp
        .call(
            "civitai-oauth-exchange",
            exchange_body(&app, &code, &verifier),
        )
        .await;
    assert_eq!(again["isError"], true, "{again}");
    assert_eq!(again["structuredContent"]["error"], "invalid_grant");
    // Refresh through the tool (a new grant: the replay above revoked the first).
    let (code, verifier) = code_for(env, "nia", &app).await;
    let r = mcp
        .call(
            "civitai-oauth-exchange",
            exchange_body(&app, &code, &verifier),
        )
        .await;
    let refresh2 = r["structuredContent"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let access2 = r["structuredContent"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(refresh2, refresh);
    let r = mcp
        .call(
            "civitai-oauth-exchange",
            json!({"body": {"grant_type": "refresh_token", "refresh_token": refresh2,
                             "client_id": app.id, "client_secret": app.secret}}),
        )
        .await;
    assert_eq!(r["isError"], false, "{r}");
    let access3 = r["structuredContent"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // userinfo and introspection.
    let u = mcp
        .call("oauth-userinfo", json!({"access_token": access3}))
        .await;
    assert_eq!(u["structuredContent"]["preferred_username"], "nia", "{u}");
    let bad = mcp
        .call("oauth-userinfo", json!({"access_token": access}))
        .await;
    assert_eq!(bad["isError"], true, "the replay revoked it: {bad}");
    let i = mcp
        .call(
            "oauth-introspect",
            json!({"token": access3, "client_id": app.id, "client_secret": app.secret}),
        )
        .await;
    assert_eq!(i["structuredContent"]["active"], true, "{i}");
    // Revoke, then the token is dead.
    let r = mcp
        .call(
            "oauth-revoke",
            json!({"token": access3, "client_id": app.id, "client_secret": app.secret}),
        )
        .await;
    assert_eq!(r["isError"], false, "{r}");
    let u = mcp
        .call("oauth-userinfo", json!({"access_token": access3}))
        .await;
    assert_eq!(u["isError"], true);
    let _ = access2;
    // Bad input is a JSON-RPC error or a tool error, never a crash.
    let m = mcp
        .request(
            "tools/call",
            json!({"name": "civitai-oauth-exchange", "arguments": {"body": 5}}),
            Some("civitai-oauth-exchange"),
        )
        .await;
    assert!(
        m["error"].is_object() || m["result"]["isError"] == true,
        "{m}"
    );
}

/// The listener refuses a browser's `Origin` (no web page may drive the tools).
pub async fn mcp_refuses_browser_origins(env: &Env) {
    let res = reqwest::Client::new()
        .post(mcp_url(env))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("origin", "https://evil.example")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "x", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// Proxy mode in front of this server: the authorize redirect, the code exchange through
/// REST (bound credentials) and through MCP, a refresh, an upstream error passed through.
pub async fn proxy_fronts_an_upstream(env: &Env) {
    let owner = env.user("pete", 0).await;
    let app = env.app(owner, false, None).await;
    env.user("quin", 0).await;
    let cfg = buzzgate::Config {
        listen: "127.0.0.1:0".into(),
        mcp_listen: Some("127.0.0.1:0".into()),
        civitai_client_id: Some(app.id.clone()),
        civitai_client_secret: buzzgate::config::Secret(app.secret.clone()),
        ..buzzgate::Config::default()
    };
    let proxy = buzzgate::start_proxy(&cfg, &env.base, "/api/oauth")
        .await
        .expect("proxy starts");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let rest = format!("http://{}", proxy.addr);
    // Authorize: checked locally, then 302 to the upstream with the same query.
    let q = format!(
        "response_type=code&client_id={}&redirect_uri={}&scope=AIServices&state=s1&code_challenge={}&code_challenge_method=S256",
        app.id,
        "https%3A%2F%2Fapp.example.com%2Fcallback",
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    let r = http
        .get(format!("{rest}/v1/oauth/authorize?{q}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        loc.starts_with(&format!("{}/api/oauth/authorize?", env.base)),
        "{loc}"
    );
    assert!(loc.contains("code_challenge_method=S256") && loc.contains("state=s1"));
    let plain = q.replace("code_challenge_method=S256", "code_challenge_method=plain");
    let r = http
        .get(format!("{rest}/v1/oauth/authorize?{plain}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "PKCE downgrade refused before any redirect"
    );
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_request");
    // Code exchange through REST, with the bound credentials.
    let (code, verifier) = code_for(env, "quin", &app).await;
    let r = http
        .post(format!("{rest}/v1/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    // The upstream's invalid_grant passes through (the code is used).
    let r = http
        .post(format!("{rest}/v1/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_grant");
    let _ = refresh;
    // Through MCP: a code exchange and a refresh, the bound client filling in.
    let mcp = Mcp::connect(&format!("http://{}/mcp", proxy.mcp_addr), "2025-11-25").await;
    let (code, verifier) = code_for(env, "quin", &app).await;
    let r = mcp
        .call(
            "civitai-oauth-exchange",
            json!({"body": {"grant_type": "authorization_code", "code": code,
                             "code_verifier": verifier, "redirect_uri": REDIRECT}}),
        )
        .await;
    assert_eq!(r["isError"], false, "{r}");
    let refresh = r["structuredContent"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = mcp
        .call(
            "civitai-oauth-exchange",
            json!({"body": {"grant_type": "refresh_token", "refresh_token": refresh}}),
        )
        .await;
    assert_eq!(r["isError"], false, "{r}");
    assert!(!r.to_string().contains(app.secret.as_deref().unwrap()));
    let r = mcp
        .call(
            "civitai-oauth-exchange",
            json!({"body": {"grant_type": "refresh_token", "refresh_token": "civitai_nope"}}),
        )
        .await;
    assert_eq!(r["isError"], true);
    assert_eq!(r["structuredContent"]["error"], "invalid_grant");
    proxy.stop().await.unwrap();
}

/// An upstream that is down is 502, one slower than the timeout 504, with an OAuth body; as
/// a tool error over MCP. Never a hang or a 500.
pub async fn proxy_survives_a_failing_upstream(_env: &Env) {
    // Down: a port nobody listens on.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", probe.local_addr().unwrap());
    drop(probe);
    // Slow: answers after 3 s.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_addr = slow.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/api/oauth/token",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "{}"
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(slow, app).await;
    });
    for (upstream, status, what) in [
        (down, 502, "could not be reached"),
        (format!("http://{slow_addr}"), 504, "in time"),
    ] {
        let cfg = buzzgate::Config {
            listen: "127.0.0.1:0".into(),
            mcp_listen: Some("127.0.0.1:0".into()),
            upstream_timeout_seconds: 1,
            ..buzzgate::Config::default()
        };
        let proxy = buzzgate::start_proxy(&cfg, &upstream, "/api/oauth")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let r = reqwest::Client::new()
            .post(format!("http://{}/v1/oauth/token", proxy.addr))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_id", "00000000-0000-0000-0000-000000000000"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{upstream}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "bounded by the timeout"
        );
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "server_error");
        assert!(
            e["error_description"].as_str().unwrap().contains(what),
            "{e}"
        );
        let mcp = Mcp::connect(&format!("http://{}/mcp", proxy.mcp_addr), "2025-06-18").await;
        let t = mcp
            .call(
                "civitai-oauth-exchange",
                json!({"body": {"grant_type": "refresh_token", "refresh_token": "x",
                                 "client_id": "00000000-0000-0000-0000-000000000000"}}),
            )
            .await;
        assert_eq!(t["isError"], true);
        assert_eq!(t["structuredContent"]["error"], "server_error");
        proxy.stop().await.unwrap();
    }
    let bad = buzzgate::start_proxy(&buzzgate::Config::default(), "ftp://x", "/api/oauth").await;
    assert!(
        bad.unwrap_err()
            .contains("--upstream must be an http(s) URL")
    );
}

/// The account MCP server (SPEC 14): discovery starts at its 401; a token for it reaches
/// `whoami` and `buzz-balance`; one for another audience, or with none, is 401.
pub async fn account_mcp_server_is_a_protected_resource(env: &Env) {
    let base = mcp_url(env).trim_end_matches("/mcp").to_owned();
    let resource = format!("{base}/mcp/account");
    let http = reqwest::Client::new();
    // Discovery: the 401, the resource metadata, then the authorization server's.
    let r = http
        .post(&resource)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let prm_url = www
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("resource_metadata");
    assert_eq!(
        prm_url,
        format!("{base}/.well-known/oauth-protected-resource/mcp/account")
    );
    let prm: Value = http
        .get(prm_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], resource);
    let issuer = prm["authorization_servers"][0].as_str().unwrap().to_owned();
    assert_eq!(issuer, env.base);
    let meta: Value = http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], issuer);
    // A user signs in and consents to an app asking for the account server.
    let owner = env.user("otto", 0).await;
    let app = env.app(owner, false, None).await;
    env.user("pia2", 321).await;
    let cookie = env.login("pia2").await;
    let (code, verifier) = crate::resources::code_with_resources(
        env,
        &cookie,
        &app,
        "UserRead BuzzRead AIServices",
        &[resource.as_str()],
    )
    .await;
    let (s, t) = env.exchange(&app, &code, verifier.as_str()).await;
    assert_eq!(s, 200, "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();
    // The tools, as an MCP client with that token.
    let mut mcp = Mcp::connect_with(&resource, "2025-11-25", Some(&token)).await;
    let tools = mcp.tools().await;
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(
        names.contains(&"whoami") && names.contains(&"buzz-balance"),
        "{names:?}"
    );
    let who = mcp.call("whoami", json!({})).await;
    assert_eq!(who["structuredContent"]["username"], "pia2", "{who}");
    let b = mcp.call("buzz-balance", json!({})).await;
    assert_eq!(b["isError"], false, "{b}");
    assert_eq!(b["structuredContent"]["balances"][0]["balance"], 321, "{b}");
    assert_eq!(
        b["structuredContent"]["caps"][0]["limit"], 5000,
        "the consent's default cap: {b}"
    );
    // Tokens for another audience, or for none, are refused with 401.
    let plain = env.tokens("pia2", &app, "UserRead", None).await;
    let (code, verifier) = crate::resources::code_with_resources(
        env,
        &cookie,
        &app,
        "UserRead",
        &["https://other.example/mcp"],
    )
    .await;
    let (_, other) = env.exchange(&app, &code, verifier.as_str()).await;
    for (what, t) in [("no audience", &plain), ("another audience", &other)] {
        let r = http
            .post(&resource)
            .bearer_auth(t["access_token"].as_str().unwrap())
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{what}");
        let www = r.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            www.contains("error=\"invalid_token\"") && www.contains("resource_metadata="),
            "{what}: {www}"
        );
    }
    mcp.session = None;
}

/// Dynamic registration (RFC 7591): advertised, a public client registered, its errors, and
/// the registered app completing a flow for the account server (the consent page says it
/// registered itself).
pub async fn dynamic_registration_for_mcp_clients(env: &Env) {
    let http = reqwest::Client::new();
    let meta: Value = env
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let endpoint = meta["registration_endpoint"]
        .as_str()
        .expect("advertised")
        .to_owned();
    assert_eq!(endpoint, format!("{}/api/auth/oauth/register", env.base));
    let register = |body: Value| {
        let http = http.clone();
        let endpoint = endpoint.clone();
        async move {
            let r = http.post(&endpoint).json(&body).send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, c) = register(json!({
        "redirect_uris": [REDIRECT],
        "client_name": "Agent Smith",
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "UserRead BuzzRead",
        "logo_uri": "https://agent.example/logo.png"
    }))
    .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["token_endpoint_auth_method"], "none", "public only");
    assert_eq!(c["client_name"], "Agent Smith");
    assert_eq!(c["scope"], "UserRead BuzzRead");
    assert!(
        c.as_object().unwrap().values().all(|v| v != ""),
        "no empty strings: {c}"
    );
    let client_id = c["client_id"].as_str().unwrap().to_owned();
    let c_registered = c.clone();
    for (body, code) in [
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["http://agent.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["com.agent:/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "scope": "Everything"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "client_name": "x".repeat(500)}),
            "invalid_client_metadata",
        ),
    ] {
        let (s, e) = register(body.clone()).await;
        assert_eq!((s, e["error"].as_str()), (400, Some(code)), "{body}: {e}");
    }
    // The registered app runs a public PKCE flow for the account server.
    let app = App {
        id: client_id.clone(),
        secret: None,
    };
    env.user("quinn2", 50).await;
    let cookie = env.login("quinn2").await;
    let resource = format!("{}/mcp/account", mcp_url(env).trim_end_matches("/mcp"));
    let page = env
        .http
        .get(env.url("/api/auth/oauth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "UserRead"),
            ("state", "s"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("registered itself"),
        "the consent page says so"
    );
    let (code, verifier) = crate::resources::code_with_resources(
        env,
        &cookie,
        &app,
        "UserRead BuzzRead",
        &[resource.as_str()],
    )
    .await;
    let (s, t) = env.exchange(&app, &code, verifier.as_str()).await;
    assert_eq!(s, 200, "{t}");
    let mut mcp = Mcp::connect_with(&resource, "2025-11-25", t["access_token"].as_str()).await;
    let who = mcp.call("whoami", json!({})).await;
    assert_eq!(who["structuredContent"]["username"], "quinn2");
    mcp.session = None;
    // Admins see who owns it: nobody.
    let c = env
        .core
        .clients()
        .get(
            &buzzgate_domain::service::Caller::operator(),
            &buzzgate_domain::ids::ClientId::parse(&client_id).unwrap(),
        )
        .await
        .unwrap();
    assert!(c.is_unowned() && !c.is_verified);
    registration_management(env, &c_json_token(&c_registered), &client_id, &t).await;
}

fn c_json_token(registered: &Value) -> (String, String) {
    (
        registered["registration_access_token"]
            .as_str()
            .expect("registration_access_token")
            .to_owned(),
        registered["registration_client_uri"]
            .as_str()
            .expect("registration_client_uri")
            .to_owned(),
    )
}

/// RFC 7592: the registrant reads, replaces and deletes its registration with the
/// registration access token; nobody else can; deleting it ends its tokens.
async fn registration_management(
    env: &Env,
    (rat, uri): &(String, String),
    client_id: &str,
    tokens: &Value,
) {
    let http = reqwest::Client::new();
    assert_eq!(
        uri,
        &format!("{}/api/auth/oauth/register/{client_id}", env.base)
    );
    let read = http.get(uri).bearer_auth(rat).send().await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["cache-control"], "no-store");
    let read: Value = read.json().await.unwrap();
    assert_eq!(read["client_id"], client_id);
    assert_eq!(read["registration_access_token"], rat.as_str());
    // No token, a wrong one, a token of another kind, another app's URI: 401, one answer.
    let none = http.get(uri).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let access = tokens["access_token"].as_str().unwrap();
    for (u, t) in [
        (uri.clone(), "0".repeat(64)),
        (uri.clone(), access.to_owned()),
        (
            format!("{}/api/auth/oauth/register/{}", env.base, uuid::Uuid::nil()),
            rat.clone(),
        ),
    ] {
        let r = http.get(&u).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), 401, "{u}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "invalid_token");
    }
    // Replace: every field, the body naming the app.
    let put = |body: Value| {
        let http = http.clone();
        let uri = uri.clone();
        let rat = rat.clone();
        async move {
            let r = http
                .put(&uri)
                .bearer_auth(&rat)
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, e) = put(json!({"redirect_uris": [REDIRECT], "client_name": "Other"})).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{e}"
    );
    let (s, e) =
        put(json!({"client_id": client_id, "redirect_uris": ["http://evil.example/cb"]})).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_redirect_uri")),
        "{e}"
    );
    let (s, up) = put(json!({
        "client_id": client_id,
        "client_name": "Agent Smith 2",
        "redirect_uris": ["http://127.0.0.1:50123/cb"],
        "scope": "UserRead"
    }))
    .await;
    assert_eq!(s, 200, "{up}");
    assert_eq!(up["client_name"], "Agent Smith 2");
    assert_eq!(up["redirect_uris"], json!(["http://127.0.0.1:50123/cb"]));
    assert_eq!(up["scope"], "UserRead");
    assert!(up.as_object().unwrap().values().all(|v| v != ""), "{up}");
    // Delete: 204, then the app, its registration and its tokens are gone.
    let del = http.delete(uri).bearer_auth(rat).send().await.unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(
        http.get(uri)
            .bearer_auth(rat)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(env.bearer_status("/api/v1/me", access).await, 401);
}

pub fn with_mcp_registration_off(c: &mut buzzgate::Config) {
    c.mcp_listen = Some("127.0.0.1:0".into());
    c.registration = false;
}

/// `BUZZGATE_REGISTRATION=off`: not advertised, refused.
pub async fn registration_can_be_closed(env: &Env) {
    let meta: Value = env
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(meta.get("registration_endpoint").is_none());
    let r = reqwest::Client::new()
        .post(env.url("/api/auth/oauth/register"))
        .json(&json!({"redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
