//! The pages people use (docs/pages.md, SPEC 15), driven as a browser without JavaScript
//! would: GET a page, post its form back with the session cookie and the CSRF token it
//! carries. The headless-Chromium run of the same pages is `tests/browser`.

use buzzgate_domain::ids::ClientId;
use buzzgate_domain::service::Caller;
use buzzgate_domain::user::Role;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{
    Env, PASSWORD, REDIRECT, cookie_pair, hidden_inputs, location, new_user, query_param,
};

/// A signed-in browser: the session cookie and the CSRF token its pages carry.
struct Visitor<'a> {
    env: &'a Env,
    cookie: String,
    csrf: String,
}

impl<'a> Visitor<'a> {
    async fn sign_in(env: &'a Env, user: &str) -> Visitor<'a> {
        let cookie = env.login(user).await;
        let page = env
            .http
            .get(env.url("/account"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let csrf = hidden_inputs(&page.text().await.unwrap())["csrf_token"].clone();
        Visitor { env, cookie, csrf }
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .env
            .http
            .get(self.env.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// Posts `form` plus the CSRF token.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut f: Vec<(&str, &str)> = form.to_vec();
        f.push(("csrf_token", &self.csrf));
        self.post_raw(path, &f).await
    }

    async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.env
            .http
            .post(self.env.url(path))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

impl Visitor<'_> {
    /// A change answered 303 to `to`; the page there.
    async fn followed(&self, r: reqwest::Response, to: &str) -> String {
        assert_eq!(r.status(), 303, "a change answers with a redirect");
        assert_eq!(location(&r), to);
        let (s, html) = self.get(to).await;
        assert_eq!(s, 200);
        html
    }
}

/// The value of the readonly field `id` on a "shown once" page.
fn field(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    let v = rest.split("value=\"").nth(1).expect("value");
    v.split('"').next().unwrap().to_owned()
}

async fn client_credentials(env: &Env, id: &str, secret: &str) -> u16 {
    env.http
        .post(env.url("/api/auth/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn app_id_of(env: &Env, html: &str) -> String {
    let _ = env;
    field(html, "client-id")
}

/// OAuth Apps: create (with a preset), the secret once, edit (custom grid), rotate, delete;
/// a form without the CSRF token changes nothing.
pub async fn pages_manage_an_app(env: &Env) {
    let owner = env.user("pia", 0).await;
    let v = Visitor::sign_in(env, "pia").await;
    let (s, html) = v.get("/account").await;
    assert_eq!(s, 200);
    for h in [
        "OAuth Apps",
        "Connected Apps",
        "API keys",
        "Create app",
        "Sign out",
    ] {
        assert!(html.contains(h), "{h} on /account");
    }
    let (s, form) = v.get("/account/apps/new").await;
    assert_eq!(s, 200);
    for name in [
        "App name",
        "Redirect URIs",
        "Permission preset",
        ">Read<",
        ">Write<",
        ">Delete<",
        "Server app (confidential)",
        "Browser / mobile app (public)",
    ] {
        assert!(form.contains(name), "{name} on the app form");
    }
    let fields = [
        ("name", "Pixel Studio"),
        ("description", "Makes pixels"),
        (
            "redirect_uris",
            "https://pixel.example/cb\r\n\r\nhttp://127.0.0.1:7000/cb\n",
        ),
        ("preset", "AIServices"),
        ("scope.ModelsDelete", "on"),
        ("kind", "confidential"),
        ("grant.authorization_code", "on"),
        ("grant.refresh_token", "on"),
        ("grant.client_credentials", "on"),
    ];
    // No CSRF token: refused, nothing created.
    let r = v.post_raw("/account/apps", &fields).await;
    assert_eq!(r.status(), 403);
    let listed = env
        .core
        .clients()
        .list(&Caller::operator_for(owner))
        .await
        .unwrap();
    assert!(listed.is_empty(), "a forged form creates nothing");
    // Bad input: the form comes back with the error and what was typed.
    let r = v
        .post(
            "/account/apps",
            &[
                ("name", "Pixel Studio"),
                ("redirect_uris", "not a uri"),
                ("preset", "ReadOnly"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    let again = r.text().await.unwrap();
    assert!(again.contains("role=\"alert\"") && again.contains("value=\"Pixel Studio\""));
    let r = v.post("/account/apps", &fields).await;
    let status = r.status();
    let shown = r.text().await.unwrap();
    assert_eq!(status, 200, "{shown}");
    assert!(shown.contains("shown once"));
    let id = app_id_of(env, &shown);
    let secret = field(&shown, "secret-value");
    let cid = ClientId::parse(&id).unwrap();
    let c = env
        .core
        .clients()
        .get(&Caller::operator(), &cid)
        .await
        .unwrap();
    assert_eq!(
        c.allowed_scopes,
        buzzgate_domain::Scope::AI_SERVICES,
        "the preset wins over a stray tick"
    );
    assert_eq!(
        c.redirect_uris.len(),
        2,
        "one per line, blank lines skipped"
    );
    assert_eq!(client_credentials(env, &id, &secret).await, 200);
    // The list shows it with its counts and buttons.
    let (_, html) = v.get("/account").await;
    assert!(html.contains("Pixel Studio") && html.contains(&id));
    assert!(html.contains(">Rotate secret<") && html.contains(">Edit<"));
    // Edit: a custom set from the grid.
    let (s, edit) = v.get(&format!("/account/apps/{id}/edit")).await;
    assert_eq!(s, 200);
    assert!(edit.contains("value=\"Pixel Studio\"") && edit.contains("selected>AI Services<"));
    let r = v
        .post(
            &format!("/account/apps/{id}"),
            &[
                ("name", "Pixel Studio 2"),
                ("description", "Makes more pixels"),
                ("redirect_uris", "https://pixel.example/cb"),
                ("preset", "Custom"),
                ("scope.ModelsRead", "on"),
            ],
        )
        .await;
    let html = v.followed(r, "/account?done=app-saved").await;
    assert!(html.contains("Your app is saved.") && html.contains("Pixel Studio 2"));
    let c = env
        .core
        .clients()
        .get(&Caller::operator(), &cid)
        .await
        .unwrap();
    assert_eq!(c.name, "Pixel Studio 2");
    assert_eq!(
        c.allowed_scopes,
        buzzgate_domain::Scope::MODELS_READ | buzzgate_domain::Scope::USER_READ,
        "UserRead always"
    );
    // Rotate: a confirmation first, then the new secret once; the old one is dead.
    let (s, confirm) = v.get(&format!("/account/apps/{id}/rotate")).await;
    assert_eq!(s, 200);
    assert!(confirm.contains(">Rotate secret<") && confirm.contains("Cancel"));
    assert_eq!(
        client_credentials(env, &id, &secret).await,
        200,
        "the GET changed nothing"
    );
    let r = v.post(&format!("/account/apps/{id}/rotate"), &[]).await;
    assert_eq!(r.status(), 200);
    let fresh = field(&r.text().await.unwrap(), "secret-value");
    assert_ne!(fresh, secret);
    assert_eq!(client_credentials(env, &id, &secret).await, 401);
    assert_eq!(client_credentials(env, &id, &fresh).await, 200);
    // Delete: the confirmation says what goes and what stays.
    let (s, confirm) = v.get(&format!("/account/apps/{id}/delete")).await;
    assert_eq!(s, 200);
    assert!(
        confirm.contains("tokens")
            && confirm.contains("consents")
            && confirm.contains("codes")
            && confirm.contains("audit log keeps")
    );
    let r = v.post(&format!("/account/apps/{id}/delete"), &[]).await;
    let html = v.followed(r, "/account?done=app-deleted").await;
    assert!(html.contains("The app is deleted") && !html.contains("Pixel Studio 2"));
    assert!(
        env.core
            .clients()
            .get(&Caller::operator(), &cid)
            .await
            .is_err()
    );
    assert_eq!(client_credentials(env, &id, &fresh).await, 401);
    // Someone else's app: the same answer as a missing one.
    let other = env.user("quinn", 0).await;
    let theirs = env.app(other, false, None).await;
    let (s, _) = v.get(&format!("/account/apps/{}/edit", theirs.id)).await;
    assert_eq!(s, 404);
    let r = v
        .post(&format!("/account/apps/{}/delete", theirs.id), &[])
        .await;
    assert_eq!(r.status(), 404);
}

/// Consent with the page's cap controls, then Connected Apps: the cap with its bar, "Edit
/// limit", and "Revoke" ending the app's refresh.
pub async fn pages_consent_cap_and_connected_apps(env: &Env) {
    let owner = env.user("owner", 0).await;
    let app = env.app(owner, false, None).await;
    env.user("rae", 100).await;
    let v = Visitor::sign_in(env, "rae").await;
    let verifier = buzzgate_domain::pkce::CodeVerifier::generate(&buzzgate_domain::ports::OsRandom);
    let challenge = buzzgate_domain::pkce::CodeChallenge::from_verifier(&verifier);
    let res = env
        .http
        .get(env.url("/api/auth/oauth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", app.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "AIServices"),
            ("state", "s1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .header("cookie", &v.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' https://app.example.com;"),
        "the approval may redirect to the app: {csp}"
    );
    let page = res.text().await.unwrap();
    for s in [
        "Authorize E2E app",
        "Limit Buzz spending",
        "Buzz limit",
        "value=\"5000\"",
        "per 7 days",
        "Remember my decision",
        "app.example.com",
        "not verified",
    ] {
        assert!(page.contains(s), "{s} on the consent page");
    }
    let res = env
        .answer_consent(
            &v.cookie,
            &page,
            &[
                ("approved", "true"),
                ("remember", "true"),
                ("buzz_cap", "on"),
                ("buzz_amount", "2500"),
                ("buzz_period", "7"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303, "{:?}", res.text().await);
    let code = query_param(&location(&res), "code").expect("code");
    let (s, tokens) = env.exchange(&app, &code, verifier.as_str()).await;
    assert_eq!(s, 200, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (_, html) = v.get("/account").await;
    assert!(
        html.contains("<progress value=\"0\" max=\"2500\""),
        "{html}"
    );
    assert!(html.contains("0 of 2,500 Buzz per 7 days"));
    assert!(html.contains(">Edit limit<") && html.contains(">Revoke<"));
    // Edit limit: the form pre-filled, then saved.
    let (s, form) = v.get(&format!("/account/connected/{}/limit", app.id)).await;
    assert_eq!(s, 200);
    assert!(form.contains("value=\"2500\"") && form.contains("value=\"7\" selected"));
    let r = v
        .post(
            &format!("/account/connected/{}/limit", app.id),
            &[
                ("buzz_cap", "on"),
                ("buzz_amount", "0"),
                ("buzz_period", "7"),
            ],
        )
        .await;
    assert_eq!(
        r.status(),
        400,
        "a zero limit is refused with the form again"
    );
    let r = v
        .post(
            &format!("/account/connected/{}/limit", app.id),
            &[
                ("buzz_cap", "on"),
                ("buzz_amount", "1234"),
                ("buzz_period", "30"),
            ],
        )
        .await;
    let html = v.followed(r, "/account?done=limit-saved").await;
    assert!(html.contains("of 1,234 Buzz per 30 days"));
    // No limit: unticked.
    let r = v
        .post(
            &format!("/account/connected/{}/limit", app.id),
            &[("buzz_amount", "1234"), ("buzz_period", "30")],
        )
        .await;
    assert!(
        v.followed(r, "/account?done=limit-saved")
            .await
            .contains("No Buzz limit")
    );
    // Revoke: confirmation, then the app's refresh fails.
    let (s, confirm) = v
        .get(&format!("/account/connected/{}/revoke", app.id))
        .await;
    assert_eq!(s, 200);
    assert!(confirm.contains(">Revoke<"));
    let r = v
        .post(&format!("/account/connected/{}/revoke", app.id), &[])
        .await;
    let html = v.followed(r, "/account?done=app-revoked").await;
    assert!(html.contains("No apps are connected"));
    let (s, e) = env.refresh(&app, &refresh).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
}

/// API keys: created from the form (shown once), used as a bearer, deleted.
pub async fn pages_api_keys(env: &Env) {
    env.user("sol", 0).await;
    let v = Visitor::sign_in(env, "sol").await;
    let r = v
        .post("/account/keys", &[("name", ""), ("scope", "ReadOnly")])
        .await;
    assert_eq!(r.status(), 400, "a key needs a name");
    let r = v
        .post(
            "/account/keys",
            &[
                ("name", "ci key"),
                ("scope", "ReadOnly"),
                ("buzz_amount", "50"),
                ("buzz_period", "1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let key = field(&r.text().await.unwrap(), "secret-value");
    assert_eq!(env.bearer_status("/api/v1/me", &key).await, 200);
    let (_, html) = v.get("/account").await;
    assert!(html.contains("ci key") && html.contains("50 Buzz per 24 hours"));
    let href = html
        .split("action=\"/account/keys/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a delete button")
        .to_owned();
    let (s, confirm) = v.get(&format!("/account/keys/{href}")).await;
    assert_eq!(s, 200);
    assert!(confirm.contains("ci key"));
    let r = v.post(&format!("/account/keys/{href}"), &[]).await;
    assert!(
        v.followed(r, "/account?done=key-deleted")
            .await
            .contains("You have no API keys")
    );
    assert_eq!(env.bearer_status("/api/v1/me", &key).await, 401);
}

/// The device page takes the code however it is typed.
pub async fn pages_device_code_any_case(env: &Env) {
    let u = env.user("tia", 0).await;
    let app = env
        .app(
            u,
            true,
            Some(&["urn:ietf:params:oauth:grant-type:device_code"]),
        )
        .await;
    let d: Value = env
        .http
        .post(env.url("/api/auth/oauth/device"))
        .form(&[("client_id", app.id.as_str()), ("scope", "ReadOnly")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_code = d["user_code"].as_str().unwrap().to_owned();
    let typed = user_code.replace('-', "").to_lowercase();
    let v = Visitor::sign_in(env, "tia").await;
    let (s, entry) = v.get("/login/oauth/device").await;
    assert_eq!(s, 200);
    assert!(entry.contains(">Code<") && entry.contains(">Continue<"));
    let (s, page) = v.get(&format!("/login/oauth/device?code={typed}")).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("E2E app") && page.contains(">Approve<"));
    let (s, wrong) = v.get("/login/oauth/device?code=ZZZZZZZZ").await;
    assert!(s.is_client_error());
    assert!(wrong.contains("role=\"alert\"") && wrong.contains(">Continue<"));
    let r = env.approve_device(&v.cookie, &page).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Device connected"));
}

/// `/admin`: 403 for others; search, verify, access mode, the audit log (page and JSON).
pub async fn admin_pages(env: &Env) {
    let owner = env.user("uma", 0).await;
    let app = env.app(owner, false, None).await;
    env.core
        .sessions()
        .create_user(new_user("boss", vec![Role::Admin]))
        .await
        .unwrap();
    let uma = Visitor::sign_in(env, "uma").await;
    let (s, _) = uma.get("/admin").await;
    assert_eq!(s, 403);
    let (s, _) = uma.get("/api/v1/admin/audit").await;
    assert_eq!(s, 403);
    assert_eq!(env.get("/api/v1/admin/audit").await.status(), 401);
    let boss = Visitor::sign_in(env, "boss").await;
    let (s, html) = boss.get("/admin?q=e2e").await;
    assert_eq!(s, 200);
    assert!(html.contains(&app.id) && html.contains(">Verify<"));
    let r = boss
        .post(
            &format!("/admin/apps/{}/verify", app.id),
            &[("verified", "true"), ("q", "e2e")],
        )
        .await;
    let html = boss.followed(r, "/admin?q=e2e&done=verified").await;
    assert!(html.contains(">Unverify<") && html.contains("The app is verified."));
    let r = boss
        .post_raw(
            &format!("/admin/apps/{}/access-mode", app.id),
            &[("access_mode", "disabled")],
        )
        .await;
    assert_eq!(r.status(), 403, "no CSRF token, no change");
    let r = boss
        .post(
            &format!("/admin/apps/{}/access-mode", app.id),
            &[("access_mode", "testers")],
        )
        .await;
    boss.followed(r, "/admin?done=access-mode").await;
    let c = env
        .core
        .clients()
        .get(&Caller::operator(), &ClientId::parse(&app.id).unwrap())
        .await
        .unwrap();
    assert!(c.is_verified);
    assert_eq!(c.access_mode.as_str(), "testers");
    // The audit log: the page filtered by event, and the JSON API paged.
    let (s, html) = boss
        .get(&format!("/admin?kind=client.updated&client={}", app.id))
        .await;
    assert_eq!(s, 200);
    assert_eq!(html.matches("<td>client.updated</td>").count(), 2, "{html}");
    let get = |q: String| {
        let cookie = boss.cookie.clone();
        async move {
            let r = env
                .http
                .get(env.url(&format!("/api/v1/admin/audit?{q}")))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, all) = get(format!("client={}", app.id)).await;
    assert_eq!(s, 200, "{all}");
    let n = all["events"].as_array().unwrap().len();
    assert!(n >= 3, "created and two updates: {all}");
    let (_, page2) = get(format!("client={}&limit=1&offset=1", app.id)).await;
    assert_eq!(page2["events"].as_array().unwrap().len(), 1);
    assert_eq!(page2["events"][0], all["events"][1]);
    assert_eq!(page2["nextOffset"], 2);
    let (_, by_user) = get("user=uma&kind=client.created".to_string()).await;
    assert_eq!(by_user["events"].as_array().unwrap().len(), 1);
    let (_, future) = get("since=2999-01-01".into()).await;
    assert!(future["events"].as_array().unwrap().is_empty());
    for bad in [
        "kind=nope",
        "since=yesterday",
        "limit=0",
        "user=nobody",
        "since=2026-02-02&until=2026-01-01",
    ] {
        let (s, e) = get(bad.into()).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (400, Some("invalid_request")),
            "{bad}: {e}"
        );
    }
}

/// Sign-up is off unless the operator opens it.
pub async fn signup_is_off_by_default(env: &Env) {
    assert_eq!(env.get("/signup").await.status(), 404);
    let login = env.get("/login").await.text().await.unwrap();
    assert!(!login.contains("/signup"));
}

/// `BUZZGATE_SIGNUP=open`: the form creates the account and signs the person in.
pub async fn signup_when_open(env: &Env) {
    let page = env.get("/signup").await;
    assert_eq!(page.status(), 200);
    let csrf_cookie = cookie_pair(page.headers(), "bg_login_csrf").expect("csrf cookie");
    let fields = hidden_inputs(&page.text().await.unwrap());
    let post = |user: &'static str, password: &'static str| {
        let csrf_cookie = csrf_cookie.clone();
        let token = fields["csrf_token"].clone();
        async move {
            env.http
                .post(env.url("/signup"))
                .header("cookie", csrf_cookie)
                .form(&[
                    ("username", user),
                    ("email", "new@example.com"),
                    ("password", password),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let r = post("newbie", "short").await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text().await.unwrap().contains("value=\"newbie\""),
        "what was typed stays"
    );
    let r = post("newbie", PASSWORD).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/account");
    let session = cookie_pair(r.headers(), "bg_session").expect("signed in");
    let account = env
        .http
        .get(env.url("/account"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 200);
    assert!(account.text().await.unwrap().contains("newbie"));
    assert_eq!(post("newbie", PASSWORD).await.status(), 409, "taken");
}

pub fn open_signup(c: &mut buzzgate::Config) {
    c.signup = true;
}

/// Every page: the policy (no inline script, forms to this site), never framed, and the
/// stylesheet it links served.
pub async fn pages_are_locked_down(env: &Env) {
    env.user("vic", 0).await;
    let v = Visitor::sign_in(env, "vic").await;
    for path in [
        "/login",
        "/account",
        "/account/apps/new",
        "/login/oauth/device",
    ] {
        let r = env
            .http
            .get(env.url(path))
            .header("cookie", &v.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("form-action 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("<script>") && !body.contains(" style="),
            "{path}: no inline code"
        );
    }
    let css = env.get("/static/buzzgate.css").await;
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let js = env.get("/static/buzzgate.js").await;
    assert_eq!(js.status(), 200);
    // A broken sign-in link reaches a person as a page, an API client as JSON.
    let bad = "/api/auth/oauth/authorize?response_type=code&client_id=nope&redirect_uri=https://x.example/cb";
    let r = env
        .http
        .get(env.url(bad))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("sign-in link does not work")
    );
    let r = env.get(bad).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_client");
    // Signed out: the account pages send people to sign in and back.
    let r = env.get("/account/apps/new").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login?returnUrl=%2Faccount%2Fapps%2Fnew");
}
