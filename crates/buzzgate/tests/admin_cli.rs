//! The admin CLI as an operator runs it: the real binary over a SQLite file, each of
//! `client list|show|delete`, `user list|ban|unban`, `audit tail`, `token revoke` and `sweep`
//! with its output and exit status, and the plain-words errors (docs/operations.md, "Admin
//! CLI").

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, free_port};

struct Node {
    dir: std::path::PathBuf,
}

impl Node {
    fn new(tag: &str) -> Node {
        Node {
            dir: common::fresh_dir("bgadmin", tag),
        }
    }

    fn command(&self) -> Command {
        common::buzzgate(&self.dir)
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        common::output(self.command().args(args), stdin)
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (code, out, err) = self.run(args, stdin);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    }

    /// Runs and expects status 1; returns stderr.
    fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (code, out, err) = self.run(args, stdin);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        err
    }

    fn add_client(&self, owner: &str, name: &str, extra: &[&str]) -> (String, Option<String>) {
        let mut args = vec![
            "client",
            "add",
            "--owner",
            owner,
            "--name",
            name,
            "--redirect-uri",
            "https://app.example/cb",
            "--json",
        ];
        args.extend_from_slice(extra);
        let v: serde_json::Value = serde_json::from_str(&self.ok(&args, None)).unwrap();
        (
            v["clientId"].as_str().unwrap().to_owned(),
            v["clientSecret"].as_str().map(str::to_owned),
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn clients_are_listed_shown_and_deleted() {
    let node = Node::new("clients");
    node.ok(&["user", "add", "alice"], None);
    node.ok(&["user", "add", "bob"], None);
    let (one, _) = node.add_client("alice", "One", &[]);
    let (two, _) = node.add_client("bob", "Two", &["--public"]);

    let out = node.ok(&["client", "list"], None);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&one) && l.contains("One  (confidential, open)")),
        "{out}"
    );
    assert!(out.contains("Two  (public, open)"), "{out}");

    let out = node.ok(&["client", "list", "--owner", "alice", "--json"], None);
    let apps = json_lines(&out);
    assert_eq!(apps.len(), 1, "{out}");
    assert_eq!(apps[0]["clientId"], one.as_str());
    assert_eq!(apps[0]["activeTokens"], 0);
    assert_eq!(apps[0]["confidential"], true);

    let out = node.ok(&["client", "show", &two], None);
    assert!(out.contains(&format!("client_id:        {two}")), "{out}");
    assert!(out.contains("owner:            bob (id 2)"), "{out}");
    assert!(out.contains("type:             public"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&node.ok(&["client", "show", &one, "--json"], None)).unwrap();
    assert_eq!(v["name"], "One");
    assert_eq!(v["redirectUris"][0], "https://app.example/cb");

    let out = node.ok(&["client", "delete", &one], None);
    assert_eq!(
        out.trim(),
        format!("deleted client {one}: its tokens are revoked, its codes and consents gone")
    );
    let err = node.fails(&["client", "show", &one], None);
    assert!(
        err.contains(&format!("no client has the ID {one}")),
        "{err}"
    );
    let err = node.fails(&["client", "delete", &one], None);
    assert!(
        err.contains(&format!("no client has the ID {one}")),
        "{err}"
    );
    let err = node.fails(&["client", "list", "--owner", "nobody"], None);
    assert!(err.contains("no user named `nobody`"), "{err}");
    let out = node.ok(&["client", "list", "--owner", "alice"], None);
    assert_eq!(out.trim(), "no clients");
    // The deletion is in the audit log.
    let out = node.ok(
        &["audit", "query", "--kind", "client.deleted", "--json"],
        None,
    );
    assert_eq!(json_lines(&out).len(), 1, "{out}");
}

#[test]
fn users_are_listed_banned_and_unbanned() {
    let node = Node::new("users");
    let out = node.ok(&["user", "list"], None);
    assert_eq!(out.trim(), "no users");
    node.ok(
        &[
            "user",
            "add",
            "alice",
            "--admin",
            "--email",
            "alice@example.com",
        ],
        None,
    );
    node.ok(&["user", "add", "bob"], None);

    let out = node.ok(&["user", "list"], None);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("alice")
            && lines[0].contains("roles=admin")
            && lines[0].contains("active"),
        "{out}"
    );
    assert!(lines[1].contains("bob"), "{out}");

    let out = node.ok(&["user", "ban", "bob"], None);
    assert!(out.starts_with("bob (id 2) is banned since "), "{out}");
    let users = json_lines(&node.ok(&["user", "list", "--json"], None));
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["username"], "alice");
    assert!(users[0]["bannedAt"].is_null());
    assert_eq!(users[0]["roles"][0], "admin");
    assert!(users[1]["bannedAt"].is_string(), "{:?}", users[1]);
    assert!(node.ok(&["user", "list"], None).contains("banned since"));

    let out = node.ok(&["user", "ban", "bob"], None);
    assert!(
        out.starts_with("bob (id 2) was already banned since ") && out.contains("revoked 0 tokens"),
        "{out}"
    );

    let out = node.ok(&["user", "unban", "bob"], None);
    assert_eq!(
        out.trim(),
        "bob (id 2) is no longer banned (tokens revoked by the ban stay revoked)"
    );
    let out = node.ok(&["user", "unban", "bob"], None);
    assert_eq!(out.trim(), "bob (id 2) was not banned");
    let users = json_lines(&node.ok(&["user", "list", "--json"], None));
    assert!(users[1]["bannedAt"].is_null());

    let help = node.ok(&["user", "ban", "--help"], None);
    assert!(
        help.contains("`user unban` restores none of the revoked") && help.contains("user.banned"),
        "{help}"
    );

    let err = node.fails(&["user", "ban", "nobody"], None);
    assert!(err.contains("No user is named nobody"), "{err}");
    let err = node.fails(&["user", "unban", "no body"], None);
    assert!(err.contains("username must be"), "{err}");
}

#[test]
fn audit_tail_prints_the_newest_events_oldest_first_and_follows() {
    let node = Node::new("tail");
    node.ok(&["user", "add", "alice"], None);
    let out = node.ok(&["audit", "tail"], None);
    assert_eq!(out.trim(), "no events");
    let ids: Vec<String> = ["A", "B", "C"]
        .iter()
        .map(|n| node.add_client("alice", n, &[]).0)
        .collect();
    let out = node.ok(&["audit", "tail", "-n", "2"], None);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains(&ids[1]) && lines[0].contains("client.created"),
        "{out}"
    );
    assert!(lines[1].contains(&ids[2]), "{out}");
    let events = json_lines(&node.ok(&["audit", "tail", "-n", "3", "--json"], None));
    assert_eq!(events.len(), 3);
    assert_eq!(events[2]["clientId"], ids[2].as_str());
    let err = node.fails(&["audit", "tail", "-n", "0"], None);
    assert!(err.contains("`limit` must be 1 to 1000"), "{err}");

    // --follow: the newest event, then one recorded while it runs.
    let mut follower = node.command();
    follower
        .args(["audit", "tail", "-n", "1", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = Running(follower.spawn().unwrap());
    std::thread::sleep(Duration::from_millis(1500));
    let (four, _) = node.add_client("alice", "D", &[]);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
            if seen.len() == 2 {
                break;
            }
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].contains(&ids[2]), "{seen:?}");
    assert!(seen[1].contains(&four), "{seen:?}");
    // Nothing printed twice within the next polls.
    assert!(rx.recv_timeout(Duration::from_millis(2500)).is_err());
    drop(child);
}

#[test]
fn token_revoke_reads_stdin_and_sweep_reports() {
    let node = Node::new("tokens");
    node.ok(&["user", "add", "alice"], None);
    let (id, secret) = node.add_client(
        "alice",
        "Robot",
        &["--grant", "client_credentials", "--scopes", "UserRead"],
    );
    let secret = secret.unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _server = Running(
        node.command()
            .arg("serve")
            .env("BUZZGATE_LISTEN", &listen)
            .env("BUZZGATE_ISSUER", format!("http://{listen}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let post = |path: &str, form: &[(&str, &str)]| {
        rt.block_on(async {
            let r = http
                .post(format!("http://{listen}{path}"))
                .form(form)
                .send()
                .await?;
            let status = r.status();
            let v: serde_json::Value = r.json().await?;
            Ok::<_, reqwest::Error>((status, v))
        })
    };
    let started = Instant::now();
    let token = loop {
        let res = post(
            "/api/auth/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ],
        );
        match res {
            Ok((status, v)) => {
                assert!(status.is_success(), "{v}");
                break v["access_token"].as_str().unwrap().to_owned();
            }
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("the node did not start: {e}"),
        }
    };
    let active = |t: &str| {
        let (_, v) = post(
            "/api/auth/oauth/introspect",
            &[
                ("token", t),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ],
        )
        .unwrap();
        v["active"] == true
    };
    // Never from argv.
    let err = node.fails(&["token", "revoke"], None);
    assert!(err.contains("--stdin"), "{err}");
    let out = node.ok(&["token", "revoke", "--stdin"], Some(&format!("{token}\n")));
    assert_eq!(
        out.trim(),
        format!("revoked the access token of user 1, client {id}")
    );
    let out = node.ok(&["token", "revoke", "--stdin"], Some(&token));
    assert!(out.contains("was already revoked"), "{out}");
    let err = node.fails(&["token", "revoke", "--stdin"], Some("civitai_nope\n"));
    assert!(err.contains("no such token"), "{err}");
    let err = node.fails(&["token", "revoke", "--stdin"], Some(""));
    assert!(err.contains("no token on stdin"), "{err}");
    // The node had not cached it: its introspection reads the revocation.
    assert!(!active(&token));
    let out = node.ok(
        &["audit", "query", "--kind", "token.revoked", "--json"],
        None,
    );
    let events = json_lines(&out);
    assert!(!events.is_empty(), "{out}");
    assert_eq!(events[0]["metadata"]["by"], "operator");

    let out = node.ok(&["sweep"], None);
    assert!(
        out.starts_with("swept ") && out.contains(" tokens, ") && out.contains(" sessions"),
        "{out}"
    );
}

/// The value of the hidden form field `name` in a page.
fn hidden_field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).expect("the field") + marker.len();
    page[start..][..page[start..].find('"').unwrap()].to_owned()
}

/// `user ban` through the real binary while a node serves the same SQLite file: every live
/// token of the user is revoked at once (introspection says inactive, and `GET /api/v1/buzz`,
/// which validates the token without reading the user, refuses the access token and the API
/// key), their session stops working, their app's `client_credentials` stop, the audit log
/// says so, and `user unban` brings none of it back. The tokens checked after the ban were
/// not used before it: this node has no Redis, so a token it cached in the last 60 s would
/// outlive a CLI revocation there (docs/operations.md, "Admin CLI").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_revokes_the_users_tokens_and_keys_and_is_audited() {
    const PASSWORD: &str = "correct horse battery";
    let node = Node::new("ban");
    node.ok(&["user", "add", "alice"], None);
    node.ok(
        &["user", "add", "bob", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    // Bob's own app: its client_credentials tokens act for bob.
    let (app, secret) = node.add_client(
        "bob",
        "Bob's robot",
        &[
            "--grant",
            "client_credentials",
            "--scopes",
            "UserRead BuzzRead",
        ],
    );
    let secret = secret.unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let _server = Running(
        node.command()
            .arg("serve")
            .env("BUZZGATE_LISTEN", &listen)
            .env("BUZZGATE_ISSUER", &base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let started = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the node starts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let form = |path: &str, fields: Vec<(&str, String)>| {
        let req = http.post(format!("{base}{path}")).form(&fields);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let client = |mut fields: Vec<(&'static str, String)>| {
        fields.push(("client_id", app.clone()));
        fields.push(("client_secret", secret.clone()));
        fields
    };
    let robot_token = || async {
        let (s, v) = form(
            "/api/auth/oauth/token",
            client(vec![("grant_type", "client_credentials".into())]),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    };
    let buzz = |bearer: String| {
        let req = http.get(format!("{base}/api/v1/buzz")).bearer_auth(bearer);
        async move { req.send().await.unwrap().status().as_u16() }
    };

    // Bob signs in and makes two API keys.
    let page = http
        .get(format!("{base}/login?returnUrl=%2F"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_field(&page, "csrf_token");
    let r = http
        .post(format!("{base}/login"))
        .form(&[
            ("username", "bob"),
            ("password", PASSWORD),
            ("csrf_token", csrf.as_str()),
            ("returnUrl", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed in");
    let session = || async {
        let r = http.get(format!("{base}/api/v1/session")).send().await;
        let r = r.unwrap();
        let status = r.status().as_u16();
        (
            status,
            r.json::<serde_json::Value>().await.unwrap_or_default(),
        )
    };
    let (s, who) = session().await;
    assert_eq!(s, 200, "{who}");
    let session_csrf = who["csrfToken"].as_str().unwrap().to_owned();
    let mut keys = Vec::new();
    for name in ["first", "second"] {
        let r = http
            .post(format!("{base}/api/v1/api-keys"))
            .header("x-csrf-token", &session_csrf)
            .json(&serde_json::json!({ "name": name, "scope": "UserRead BuzzRead" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: serde_json::Value = r.json().await.unwrap();
        keys.push(v["key"].as_str().unwrap().to_owned());
    }
    let control = robot_token().await;
    let token = robot_token().await;
    // The endpoint takes both kinds of bearer (the control token and key are then cached by
    // the node, so they are not the ones checked below).
    assert_eq!(buzz(control.clone()).await, 200);
    assert_eq!(buzz(keys[0].clone()).await, 200);

    let out = node.ok(&["user", "ban", "bob"], None);
    assert!(out.starts_with("bob (id 2) is banned since "), "{out}");
    assert!(
        out.contains("revoked 4 tokens (access, refresh and API keys)"),
        "two app tokens and two keys: {out}"
    );

    // Refused at once, by a node that never saw the ban: the rows are revoked.
    let (s, v) = form(
        "/api/auth/oauth/introspect",
        client(vec![("token", token.clone())]),
    )
    .await;
    assert_eq!((s, &v["active"]), (200, &serde_json::json!(false)), "{v}");
    assert_eq!(buzz(token.clone()).await, 401, "the access token");
    assert_eq!(buzz(keys[1].clone()).await, 401, "the API key");
    // The session and the app's grant stop once the node's copy of bob (kept at most
    // BUZZGATE_READ_CACHE_MS, 500 ms) is read again.
    let started = Instant::now();
    while session().await.0 != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the session of a banned user stops resolving"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, v) = form(
        "/api/auth/oauth/token",
        client(vec![("grant_type", "client_credentials".into())]),
    )
    .await;
    assert_eq!(
        (s, &v["error"]),
        (400, &serde_json::json!("invalid_grant")),
        "{v}"
    );

    // The audit log says who did it and how many tokens went.
    let events = json_lines(&node.ok(&["audit", "tail", "-n", "20", "--json"], None));
    let banned = events
        .iter()
        .find(|e| e["kind"] == "user.banned")
        .expect("a user.banned event");
    assert_eq!(banned["userId"], 2);
    assert_eq!(banned["metadata"]["by"], "operator");
    assert_eq!(banned["metadata"]["tokens"], "4");
    assert!(
        node.ok(&["audit", "tail", "-n", "20"], None)
            .contains("user.banned"),
        "the plain tail names the event"
    );

    // Lifting the ban restores none of the tokens.
    let out = node.ok(&["user", "unban", "bob"], None);
    assert_eq!(
        out.trim(),
        "bob (id 2) is no longer banned (tokens revoked by the ban stay revoked)"
    );
    assert_eq!(buzz(token).await, 401);
    assert_eq!(buzz(keys[1].clone()).await, 401);
    let events = json_lines(&node.ok(&["audit", "tail", "-n", "1", "--json"], None));
    assert_eq!(events[0]["kind"], "user.unbanned");
    assert_eq!(events[0]["userId"], 2);
}
