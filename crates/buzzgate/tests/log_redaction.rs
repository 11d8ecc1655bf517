//! The log holds no secret (issue 15 item 3, docs/operations.md "Logs"): the real binary,
//! `BUZZGATE_LOG_FORMAT=json` and `RUST_LOG=debug`, on a fresh SQLite database, its user and
//! apps made with the CLI; every flow a client reaches over HTTP is driven (password sign-in
//! with the form's CSRF token, authorization code with PKCE through the consent page, token
//! exchange, userinfo, refresh, introspection, a Buzz spend, revocation, client credentials,
//! the device flow started, approved on its page and polled), every secret used or received
//! is kept, and then the whole log is searched for each of them. Every log line must be a
//! JSON object, and what is said while serving a request must carry its `request_id`.

mod common;
#[path = "e2e/harness.rs"]
mod harness;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, free_port};

use buzzgate_domain::pkce::{CodeChallenge, CodeVerifier};
use buzzgate_domain::ports::OsRandom;
use harness::{cookie_pair, hidden_inputs, location, query_param};
use serde_json::{Value, json};

const PASSWORD: &str = "log-redaction pass phrase 7";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const REQUEST_ID: &str = "redaction-test-request-0001";

/// The binary with this test's settings.
fn buzzgate(dir: &Path, listen: &str) -> Command {
    let mut c = common::buzzgate(dir);
    c.env("BUZZGATE_LISTEN", listen)
        .env("BUZZGATE_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env("BUZZGATE_RATE_LIMIT_TOKEN", "off")
        .env("BUZZGATE_RATE_LIMIT_AUTHORIZE", "off")
        .env("BUZZGATE_REFRESH_GRACE_SECONDS", "0");
    c
}

/// Runs a CLI command (its output is kept: the CLI prints secrets on purpose, the log must
/// not); returns its stdout.
fn cli(dir: &Path, listen: &str, args: &[&str], stdin: Option<&str>, log: &mut String) -> String {
    let (code, stdout, stderr) = common::output(buzzgate(dir, listen).args(args), stdin);
    assert_eq!(code, 0, "buzzgate {args:?}: {stderr}");
    log.push_str(&stderr);
    stdout
}

struct Client {
    id: String,
    secret: String,
}

fn client_add(dir: &Path, listen: &str, extra: &[&str], log: &mut String) -> Client {
    let mut args = vec![
        "client",
        "add",
        "--owner",
        "alice",
        "--name",
        "Redaction app",
        "--redirect-uri",
        REDIRECT,
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = cli(dir, listen, &args, None, log);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    Client {
        id: v["clientId"].as_str().unwrap().to_owned(),
        secret: v["clientSecret"].as_str().unwrap().to_owned(),
    }
}

struct Flow {
    base: String,
    http: reqwest::Client,
    secrets: Vec<(String, String)>,
}

impl Flow {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn keep(&mut self, what: &str, value: &str) {
        assert!(!value.is_empty(), "{what} is empty");
        self.secrets.push((what.to_owned(), value.to_owned()));
    }

    /// A token-endpoint (or revoke, introspect) form POST as `client`.
    async fn as_client(&self, client: &Client, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .basic_auth(&client.id, Some(&client.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Keeps every token of a token response.
    fn keep_tokens(&mut self, what: &str, t: &Value) {
        for field in ["access_token", "refresh_token", "id_token"] {
            if let Some(v) = t[field].as_str() {
                self.keep(&format!("{what} {field}"), v);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_json_log() {
    let dir = common::fresh_dir("bg-redaction", "log");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut log = String::new();

    // The user, the apps and the Buzz, with the CLI.
    cli(
        &dir,
        &listen,
        &[
            "user",
            "add",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
        &mut log,
    );
    cli(
        &dir,
        &listen,
        &["buzz", "credit", "alice", "1000"],
        None,
        &mut log,
    );
    let app = client_add(
        &dir,
        &listen,
        &[
            "--grant",
            "client_credentials",
            "--grant",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        &mut log,
    );
    let rs = client_add(&dir, &listen, &["--resource-server"], &mut log);

    let server_log = dir.join("server.log");
    let node = Running(
        buzzgate(&dir, &listen)
            .arg("serve")
            .stdout(Stdio::from(
                std::fs::File::create(dir.join("server.out")).unwrap(),
            ))
            .stderr(Stdio::from(std::fs::File::create(&server_log).unwrap()))
            .spawn()
            .unwrap(),
    );
    let mut f = Flow {
        base: format!("http://{listen}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        secrets: Vec::new(),
    };
    f.keep("password", PASSWORD);
    f.keep("app secret", &app.secret);
    f.keep("resource server secret", &rs.secret);
    let start = Instant::now();
    while f.http.get(f.url("/healthz")).send().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server starts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Sign-in with the password, through the form and its CSRF token.
    let page = f
        .http
        .get(f.url("/login?returnUrl=%2F"))
        .header("x-request-id", REQUEST_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let login_cookie = cookie_pair(page.headers(), "bg_login_csrf").expect("login csrf cookie");
    let fields = hidden_inputs(&page.text().await.unwrap());
    f.keep("login csrf cookie", login_cookie.split_once('=').unwrap().1);
    f.keep("login csrf field", &fields["csrf_token"]);
    let r = f
        .http
        .post(f.url("/login"))
        .header("cookie", &login_cookie)
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", fields["csrf_token"].as_str()),
            ("returnUrl", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed in");
    let cookie = cookie_pair(r.headers(), "bg_session").expect("session cookie");
    f.keep("session cookie", cookie.split_once('=').unwrap().1);
    let session: Value = f
        .http
        .get(f.url("/api/v1/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    f.keep("session csrf", session["csrfToken"].as_str().unwrap());

    // The device flow: start, a pending poll, approval on the page (the last poll is at the end).
    let (s, d) = f
        .as_client(&app, "/api/auth/oauth/device", &[("scope", "AIServices")])
        .await;
    assert_eq!(s, 200, "{d}");
    let device_code = d["device_code"].as_str().unwrap().to_owned();
    let user_code = d["user_code"].as_str().unwrap().to_owned();
    f.keep("device code", &device_code);
    f.keep("user code", &user_code);
    f.keep("user code without its dash", &user_code.replace('-', ""));
    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code.as_str()),
    ];
    let (s, _) = f.as_client(&app, "/api/auth/oauth/token", &poll).await;
    assert_eq!(s, 400, "pending");
    let polled = Instant::now();
    let page = f
        .http
        .get(f.url(&format!("/login/oauth/device?code={user_code}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let fields = hidden_inputs(&page.text().await.unwrap());
    let r = f
        .http
        .post(f.url("/login/oauth/device"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf_token", fields["csrf_token"].as_str()),
            ("user_code", fields["user_code"].as_str()),
            ("approve", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "{}",
        r.status()
    );
    // Authorization code with PKCE through the consent page.
    let verifier = CodeVerifier::generate(&OsRandom);
    let challenge = CodeChallenge::from_verifier(&verifier);
    f.keep("code verifier", verifier.as_str());
    let r = f
        .http
        .get(f.url("/api/auth/oauth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", app.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "AIServices BuzzRead openid"),
            ("state", "redaction-state"),
            ("nonce", "redaction-nonce"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the consent page");
    let consent = hidden_inputs(&r.text().await.unwrap());
    let mut form: Vec<(&str, &str)> = consent.iter().map(|(k, v)| (&**k, &**v)).collect();
    form.extend([("approved", "true"), ("remember", "true")]);
    let r = f
        .http
        .post(f.url("/api/auth/oauth/authorize"))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "approved");
    let code = query_param(&location(&r), "code").expect("code");
    f.keep("authorization code", &code);

    let (s, t) = f
        .as_client(
            &app,
            "/api/auth/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", verifier.as_str()),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    f.keep_tokens("code exchange", &t);
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    // The code again: refused (and its family revoked), logged as such.
    let (s, _) = f
        .as_client(
            &app,
            "/api/auth/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", verifier.as_str()),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_eq!(s, 400, "a replayed code");

    // A second grant to use: the consent is remembered, so the code comes straight back.
    let verifier2 = CodeVerifier::generate(&OsRandom);
    f.keep("second verifier", verifier2.as_str());
    let r = f
        .http
        .get(f.url("/api/auth/oauth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", app.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "AIServices BuzzRead"),
            ("state", "s2"),
            (
                "code_challenge",
                CodeChallenge::from_verifier(&verifier2).as_str(),
            ),
            ("code_challenge_method", "S256"),
        ])
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let code2 = if r.status() == 302 {
        query_param(&location(&r), "code").expect("code")
    } else {
        assert_eq!(r.status(), 200);
        let consent = hidden_inputs(&r.text().await.unwrap());
        let mut form: Vec<(&str, &str)> = consent.iter().map(|(k, v)| (&**k, &**v)).collect();
        form.push(("approved", "true"));
        let r = f
            .http
            .post(f.url("/api/auth/oauth/authorize"))
            .header("cookie", &cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        query_param(&location(&r), "code").expect("code")
    };
    f.keep("second code", &code2);
    let (s, t2) = f
        .as_client(
            &app,
            "/api/auth/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code2),
                ("code_verifier", verifier2.as_str()),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t2}");
    f.keep_tokens("second exchange", &t2);
    let access2 = t2["access_token"].as_str().unwrap().to_owned();
    let refresh2 = t2["refresh_token"].as_str().unwrap().to_owned();
    let _ = (access, refresh);

    // Userinfo and me with the bearer.
    for path in ["/api/v1/me", "/api/auth/oauth/userinfo"] {
        let r = f
            .http
            .get(f.url(path))
            .bearer_auth(&access2)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }

    // A Buzz spend by the resource server with the user's token, and its refund.
    let r = f
        .http
        .post(f.url("/api/v1/buzz/spend"))
        .basic_auth(&rs.id, Some(&rs.secret))
        .json(&json!({"token": access2, "amount": 5, "purpose": "ai_services", "idempotency_key": "redaction-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let spent: Value = r.json().await.unwrap();
    let r = f
        .http
        .post(f.url(&format!(
            "/api/v1/buzz/spend/{}/refund",
            spent["id"].as_str().unwrap()
        )))
        .basic_auth(&rs.id, Some(&rs.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Introspection by the resource server.
    let (s, i) = f
        .as_client(&rs, "/api/auth/oauth/introspect", &[("token", &access2)])
        .await;
    assert_eq!((s, i["active"].as_bool()), (200, Some(true)), "{i}");

    // Refresh (a rotation), then the old one again (reuse: the family is revoked).
    let (s, r3) = f
        .as_client(
            &app,
            "/api/auth/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh2),
            ],
        )
        .await;
    assert_eq!(s, 200, "{r3}");
    f.keep_tokens("refresh", &r3);
    let (s, _) = f
        .as_client(
            &app,
            "/api/auth/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh2),
            ],
        )
        .await;
    assert_eq!(s, 400, "reuse");

    // Client credentials, then its revocation.
    let (s, cc) = f
        .as_client(
            &app,
            "/api/auth/oauth/token",
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(s, 200, "{cc}");
    f.keep_tokens("client credentials", &cc);
    let cc_access = cc["access_token"].as_str().unwrap().to_owned();
    let (s, _) = f
        .as_client(&app, "/api/auth/oauth/revoke", &[("token", &cc_access)])
        .await;
    assert_eq!(s, 200);
    // A wrong secret too (a failed client authentication is logged).
    let wrong = Client {
        id: app.id.clone(),
        secret: "wrong-secret-value-0123456789".into(),
    };
    f.keep("wrong secret", &wrong.secret);
    let (s, _) = f
        .as_client(
            &wrong,
            "/api/auth/oauth/token",
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(s, 401);

    // Past the polling interval since the pending poll (else slow_down).
    tokio::time::sleep(Duration::from_millis(5200).saturating_sub(polled.elapsed())).await;
    let (s, dt) = f.as_client(&app, "/api/auth/oauth/token", &poll).await;
    assert_eq!(s, 200, "{dt}");
    f.keep_tokens("device", &dt);

    // Sign out (with the session's CSRF token).
    let r = f
        .http
        .post(f.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf_token", session["csrfToken"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection() || r.status().is_success());

    // Stop the server (its last lines flushed), then read everything it wrote.
    drop(node);
    log.push_str(&std::fs::read_to_string(&server_log).unwrap());
    log.push_str(&std::fs::read_to_string(dir.join("server.out")).unwrap());

    for (what, secret) in &f.secrets {
        if let Some(at) = log.find(secret.as_str()) {
            let line_start = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = log[at..].find('\n').map_or(log.len(), |i| at + i);
            panic!("the {what} is in the log:\n{}", &log[line_start..line_end]);
        }
    }

    // Every line is a JSON object; what is said inside a request carries its request id.
    let mut in_requests = 0;
    let mut ours = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        let Some(spans) = v["spans"].as_array() else {
            continue;
        };
        let Some(request) = spans.iter().find(|s| s["name"] == "request") else {
            continue;
        };
        let id = request["request_id"].as_str().unwrap_or("");
        assert!(
            !id.is_empty() && id != "-",
            "a request span without its id: {line}"
        );
        in_requests += 1;
        ours += usize::from(id == REQUEST_ID);
    }
    assert!(
        in_requests >= 40,
        "debug logs each request inside its span: {in_requests} lines"
    );
    assert!(
        ours >= 1,
        "the caller's X-Request-Id is the span's request_id"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
