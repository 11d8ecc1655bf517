//! Seed 004 (Serika.dev's OAuth API) as its documentation tells a developer to use it, against
//! the real `buzzgate` binary started with `deploy/examples/serika.toml` (docs/scopes.md,
//! "Example: Serika.dev"): create an app with `scopes: ["profile", "generations"]`, list,
//! reset the secret, authorize with `scope=profile generations` and PKCE, exchange the code
//! with `client_secret` in the body, and read userinfo. Every URL is the seed's, with
//! `https://api.serika.dev` replaced by the server's address.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use buzzgate_domain::pkce::{CodeChallenge, CodeVerifier};
use buzzgate_domain::ports::OsRandom;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const REDIRECT: &str = "https://myapp.com/callback";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples/serika.toml")
}

/// The binary with the example file, its own database and key, on an ephemeral port.
fn buzzgate(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_buzzgate"));
    c.arg("--config")
        .arg(example())
        .env_remove("BUZZGATE_CONFIG")
        .env("BUZZGATE_LISTEN", "127.0.0.1:0")
        .env_remove("REDIS_URL")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("bg.db").display()),
        )
        .env("BUZZGATE_SIGNING_KEY_FILE", dir.join("key.pem"))
        .env("RUST_LOG", "info");
    c
}

/// A running `buzzgate serve`, killed on drop.
struct Server {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start() -> Server {
    let dir = std::env::temp_dir().join(format!("bg-seed004-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The user of the seed's examples, added as an operator would.
    let mut add = buzzgate(&dir)
        .args(["user", "add", "alice", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = buzzgate(&dir)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("buzzgate is listening")
                && let Some(addr) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
            {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server reports its address");
    Server {
        child,
        base: format!("http://{addr}"),
        dir,
    }
}

/// The seed's URL for `path` on this server.
fn serika(s: &Server, path: &str) -> String {
    format!("{}/api/openai/v1/oauth{path}", s.base)
}

/// The user's personal token ("YOUR_TOKEN"): signed in through the login form, minted from
/// the session as the account page does.
async fn your_token(s: &Server, browser: &reqwest::Client) -> String {
    let page = browser
        .get(format!("{}/login?returnUrl=%2F", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&page, "csrf_token").expect("login form");
    let res = browser
        .post(format!("{}/login", s.base))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
            ("returnUrl", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed in");
    let session: Value = browser
        .get(format!("{}/api/v1/session", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = session["csrfToken"].as_str().unwrap();
    let res = browser
        .post(format!("{}/api/v1/api-keys", s.base))
        .header("x-csrf-token", csrf)
        .json(&json!({"name": "dashboard", "scope": "all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let key: Value = res.json().await.unwrap();
    assert_eq!(
        key["scopeNames"],
        json!(["profile", "generations", "characters"])
    );
    key["key"].as_str().unwrap().to_owned()
}

/// The `value` of the hidden input `name` in a page.
fn hidden(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].replace("&amp;", "&"))
}

fn query_param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn seed_004_examples_run_as_written() {
    let s = start();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let token = your_token(&s, &browser).await;

    // Create a Client, exactly the seed's body.
    let res = http
        .post(serika(&s, "/clients"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(
            r#"{ "name": "My Cool App", "redirectUris": ["https://myapp.com/callback"], "scopes": ["profile", "generations"] }"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["name"], "My Cool App");
    assert_eq!(created["redirectUris"], json!([REDIRECT]));
    assert_eq!(created["scopes"], json!(["profile", "generations"]));
    let client_id = created["clientId"].as_str().unwrap().to_owned();
    let first_secret = created["clientSecret"].as_str().unwrap().to_owned();

    // List Clients.
    let list: Value = http
        .get(serika(&s, "/clients"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["clientId"] == client_id.as_str())
        .expect("the new app is listed");
    assert_eq!(listed["scopes"], json!(["profile", "generations"]));
    assert!(listed.get("clientSecret").is_none(), "never listed again");

    // Reset Client Secret.
    let res = http
        .post(serika(&s, &format!("/clients/{client_id}/reset-secret")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let reset: Value = res.json().await.unwrap();
    let secret = reset["clientSecret"].as_str().unwrap().to_owned();
    assert_ne!(secret, first_secret);

    // 1. Authorization Request, in the signed-in browser.
    let verifier = CodeVerifier::generate(&OsRandom);
    let challenge = CodeChallenge::from_verifier(&verifier);
    let res = browser
        .get(serika(&s, "/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "profile generations"),
            ("state", "xyz-state"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the consent page");
    let page = res.text().await.unwrap();
    assert!(page.contains("Access your profile (ID, username, avatar)"));
    assert!(page.contains("Generate text and images on your behalf"));
    assert!(!page.contains("Access your characters"), "not asked for");
    assert!(
        page.contains(r#"name="buzz_amount""#) && page.contains("Limit Buzz spending"),
        "generations spends credits: the cap control is shown"
    );
    let mut form: Vec<(String, String)> = page
        .split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|part| {
            let name = part.split("name=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), hidden(&page, name)?))
        })
        .collect();
    // The page's header also has a Sign out form with the same csrf_token: send it once.
    form.sort();
    form.dedup();
    form.push(("approved".into(), "true".into()));
    let res = browser
        .post(serika(&s, "/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{location}");
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some("xyz-state")
    );
    let code = query_param(&location, "code").expect("a code");

    // 2. Token Exchange, client_secret in the body.
    let res = http
        .post(serika(&s, "/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].is_string());

    // 3. Use Access Token: the user's profile (ID, username, avatar), nothing more.
    let res = http
        .get(serika(&s, "/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    assert!(me["sub"].is_string() && me["id"].is_number(), "{me}");
    assert!(me.get("email").is_none(), "profile is not email: {me}");
    let who: Value = http
        .get(format!("{}/api/v1/me", s.base))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["tokenScopeNames"], json!(["profile", "generations"]));

    // The old secret died with the reset; a scope the catalogue does not have is named.
    let res = http
        .post(serika(&s, "/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
            ("client_secret", &first_secret),
        ])
        .send()
        .await
        .unwrap();
    // RFC 6749 §5.2: 400 for credentials in the body (401 is for Basic).
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"], "invalid_client");
    let res = http
        .post(serika(&s, "/clients"))
        .bearer_auth(&token)
        .json(&json!({"name": "x", "redirectUris": [REDIRECT], "scopes": ["profile", "UserRead"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"], "invalid_scope");
    assert_eq!(e["error_description"], "unknown scope name `UserRead`");

    // Discovery advertises Serika's names, not Civitai's.
    let meta: Value = http
        .get(format!("{}/.well-known/oauth-authorization-server", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let supported = meta["scopes_supported"].as_array().unwrap();
    for name in ["profile", "generations", "characters", "openid"] {
        assert!(supported.contains(&json!(name)), "{name}: {supported:?}");
    }
    assert!(!supported.contains(&json!("AIServicesWrite")));
}
