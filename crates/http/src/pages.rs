//! The minimal server-rendered pages: login, consent, device verification. Plain HTML with
//! every dynamic value escaped; forms carry CSRF tokens; pages cannot be framed.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use buzzgate_domain::buzz::BuzzLimit;
use buzzgate_domain::catalogue::ScopeLine;
use buzzgate_domain::error::Error;
use buzzgate_domain::service::Caller;
use buzzgate_domain::service::authorize::ConsentPrompt;
use buzzgate_domain::token::PlainToken;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::auth::{self, ClientIp, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::params::Params;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{t}</title><style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}}label{{display:block;margin:.6rem 0}}input[type=text],input[type=password]{{width:100%;padding:.4rem;box-sizing:border-box}}button{{padding:.5rem 1.2rem;margin-right:.5rem}}.err{{color:#b00}}.badge{{background:#e6f4ea;color:#1e7e34;padding:.1rem .4rem;border-radius:.3rem;font-size:.8rem}}ul.scopes li{{margin:.2rem 0}}ul.scopes small{{display:block;color:#555}}</style></head><body>{body}</body></html>"#,
        t = esc(title)
    )
}

/// A page: never framed or cached (the edge's headers), and allowed its inline style only.
fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let mut res = (status, Html(page(title, body))).into_response();
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    res
}

/// A 303 or 302 to `to`, never cached.
pub(crate) fn redirect(status: StatusCode, to: &str) -> Response {
    let mut res = status.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// 303 to the login page, which sends the person back to `back` (a same-site path).
pub(crate) fn login_redirect(back: &str) -> Response {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("returnUrl", back);
    redirect(StatusCode::SEE_OTHER, &format!("/login?{}", q.finish()))
}

fn cookie_header(st: &AppState, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    auth::set_cookie(name, value, path, max_age, st.settings.secure_cookies)
}

/// Only same-site paths: `/x`, never `//host` or `/\host` (no open redirect).
pub fn safe_return(url: Option<&str>) -> String {
    match url {
        Some(u)
            if u.starts_with('/')
                && !u.starts_with("//")
                && !u.starts_with("/\\")
                && !u.chars().any(char::is_control) =>
        {
            u.to_owned()
        }
        _ => "/".into(),
    }
}

fn login_form(
    st: &AppState,
    return_url: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = PlainToken::generate_unprefixed(st.core.deps.random.as_ref())
        .expose()
        .to_owned();
    let err = error
        .map(|e| format!(r#"<p class="err" role="alert">{}</p>"#, esc(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Sign in</h1>{err}<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{csrf}">
<input type="hidden" name="returnUrl" value="{ret}">
<label>Username <input type="text" name="username" autocomplete="username" required autofocus></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>"#,
        ret = esc(return_url)
    );
    let mut res = html(status, "Sign in", &body);
    res.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(st, LOGIN_CSRF_COOKIE, &csrf, "/login", 3600),
    );
    res
}

/// `GET /login?returnUrl=…`.
pub async fn login_page(State(st): State<AppState>, params: crate::params::Query) -> Response {
    let ret = safe_return(params.0.get("returnUrl"));
    login_form(&st, &ret, None, StatusCode::OK)
}

/// `POST /login`: checks the double-submit CSRF token (and refuses a browser's cross-site
/// post), then the password, throttled per account and per address; 303 back.
pub async fn login_submit(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let ret = safe_return(params.get("returnUrl"));
    let cookie = auth::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    let field = params.get("csrf_token").unwrap_or("");
    let csrf_ok = !cookie.is_empty()
        && bool::from(cookie.as_bytes().ct_eq(field.as_bytes()))
        && !auth::is_cross_site(&headers);
    if !csrf_ok {
        return login_form(
            &st,
            &ret,
            Some("Your sign-in form expired. Please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let result = st
        .core
        .sessions()
        .login(
            params.get("username").unwrap_or(""),
            params.get("password").unwrap_or(""),
            ip.as_deref(),
        )
        .await;
    match result {
        Ok((cookie, session)) => {
            let ttl = (session.expires_at - session.created_at).whole_seconds();
            let mut res = redirect(StatusCode::SEE_OTHER, &ret);
            let h = res.headers_mut();
            h.append(
                header::SET_COOKIE,
                cookie_header(&st, SESSION_COOKIE, cookie.expose(), "/", ttl),
            );
            h.append(
                header::SET_COOKIE,
                cookie_header(&st, LOGIN_CSRF_COOKIE, "", "/login", 0),
            );
            res
        }
        Err(Error::AccessDenied(d)) => login_form(&st, &ret, Some(&d), StatusCode::UNAUTHORIZED),
        Err(Error::RateLimited { retry_after }) => {
            let msg = format!(
                "Too many failed sign-in attempts. Try again in {retry_after} second{}.",
                if retry_after == 1 { "" } else { "s" }
            );
            let mut res = login_form(&st, &ret, Some(&msg), StatusCode::TOO_MANY_REQUESTS);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            res
        }
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// `POST /logout` (session CSRF token required).
pub async fn logout(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let run = async {
        let caller = auth::session_caller(&st.core, &headers, &ip, Some(&params)).await?;
        if let Caller::Session(_) = caller {
            st.core.sessions().logout(&caller).await?;
        }
        Ok::<_, Error>(())
    };
    match run.await {
        Ok(()) => {
            let mut res = redirect(StatusCode::SEE_OTHER, "/login");
            res.headers_mut().append(
                header::SET_COOKIE,
                cookie_header(&st, SESSION_COOKIE, "", "/", 0),
            );
            res
        }
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// `GET /`: who is signed in, with a sign-out button.
pub async fn home(State(st): State<AppState>, ip: ClientIp, headers: HeaderMap) -> Response {
    let caller = auth::session_caller(&st.core, &headers, &ip, None).await;
    let signed_in = match &caller {
        Ok(Caller::Session(s)) => match st.core.deps.users.get(s.user).await {
            Ok(user) => user.map(|u| (u.username.to_string(), s.csrf_token.clone())),
            Err(e) => return crate::error::ApiError::from(Error::from(e)).into_response(),
        },
        _ => None,
    };
    match caller.map(|_| signed_in) {
        Ok(Some((username, csrf))) => html(
            StatusCode::OK,
            "Buzzgate",
            &format!(
                r#"<h1>Buzzgate</h1><p>Signed in as <strong>{}</strong>.</p><form method="post" action="/logout"><input type="hidden" name="csrf_token" value="{}"><button type="submit">Sign out</button></form>"#,
                esc(&username),
                esc(&csrf)
            ),
        ),
        Ok(None) => html(
            StatusCode::OK,
            "Buzzgate",
            r#"<h1>Buzzgate</h1><p>An OAuth 2.0 authorization server. <a href="/login">Sign in</a> · <a href="/.well-known/oauth-authorization-server">metadata</a></p>"#,
        ),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// One `<li>` per scope, with the catalogue's label (and description, when it has one).
fn scope_list(lines: &[ScopeLine]) -> String {
    lines
        .iter()
        .map(|l| {
            let description = if l.description.is_empty() {
                String::new()
            } else {
                format!(r#" <small>{}</small>"#, esc(&l.description))
            };
            format!(
                r#"<li data-scope="{}">{}{description}</li>"#,
                l.scope.bits(),
                esc(&l.label)
            )
        })
        .collect()
}

/// The Buzz cap choices (SPEC 6): per 24 hours / 7 days / 30 days, 5000 per day by default.
fn buzz_options(current: &BuzzLimit) -> String {
    let mut choices: Vec<(String, String)> = Vec::new();
    let current_json = serde_json::to_string(current).unwrap_or_else(|_| "[]".into());
    for (limit, days, label) in [
        (1000u64, 1u32, "1,000 Buzz per 24 hours"),
        (5000, 1, "5,000 Buzz per 24 hours"),
        (25000, 7, "25,000 Buzz per 7 days"),
        (100000, 30, "100,000 Buzz per 30 days"),
    ] {
        if let Ok(l) = BuzzLimit::per_period(limit, days) {
            choices.push((
                serde_json::to_string(&l).unwrap_or_default(),
                label.to_owned(),
            ));
        }
    }
    if !current.is_unlimited() && !choices.iter().any(|(j, _)| *j == current_json) {
        choices.insert(0, (current_json.clone(), "Your current limit".into()));
    }
    choices.push(("[]".into(), "No limit".into()));
    choices
        .iter()
        .map(|(json, label)| {
            let sel = if *json == current_json {
                " selected"
            } else {
                ""
            };
            format!(
                r#"<option value="{}"{sel}>{}</option>"#,
                esc(json),
                esc(label)
            )
        })
        .collect()
}

/// The consent page (SPEC 3.1 step 6): one form whose hidden inputs carry the request.
pub fn consent(prompt: &ConsentPrompt, csrf: &str, action: &str) -> Response {
    let req = &prompt.request;
    let c = &prompt.client;
    let hidden = |name: &str, value: &str| {
        format!(
            r#"<input type="hidden" name="{}" value="{}">"#,
            esc(name),
            esc(value)
        )
    };
    let mut fields = String::new();
    fields += &hidden("response_type", "code");
    fields += &hidden("client_id", c.id.as_str());
    fields += &hidden("redirect_uri", &req.redirect_uri);
    let scope = buzzgate_domain::RequestedScope {
        scope: req.scope,
        oidc: req.oidc,
    };
    fields += &hidden("scope", &scope.to_form_value());
    fields += &hidden("state", &req.state);
    fields += &hidden("code_challenge", req.code_challenge.as_str());
    fields += &hidden("code_challenge_method", "S256");
    if let Some(n) = &req.nonce {
        fields += &hidden("nonce", n);
    }
    fields += &hidden("csrf_token", csrf);
    let verified = if c.is_verified {
        r#" <span class="badge">Verified</span>"#
    } else {
        ""
    };
    let trimmed = if prompt.trimmed.is_empty() {
        String::new()
    } else {
        format!(
            r#"<p>Not granted (beyond what this app may ask for):</p><ul class="scopes trimmed">{}</ul>"#,
            scope_list(&prompt.trimmed_lines)
        )
    };
    let buzz = if prompt.show_buzz_cap {
        format!(
            r#"<label>Buzz spending limit <select name="buzz_limit">{}</select></label>"#,
            buzz_options(&prompt.buzz_limit)
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<h1>Authorize {name}{verified}</h1><p>{desc}</p>
<p>{name} asks to:</p><ul class="scopes">{scopes}</ul>{trimmed}
<form method="post" action="{action}">{fields}{buzz}
<label><input type="checkbox" name="remember" value="true" checked> Remember my decision for this app</label>
<button type="submit" name="approved" value="true">Approve</button>
<button type="submit" name="approved" value="false">Deny</button>
</form>"#,
        name = esc(&c.name),
        desc = esc(&c.description),
        scopes = scope_list(&prompt.lines),
        action = esc(action),
    );
    html(StatusCode::OK, &format!("Authorize {}", c.name), &body)
}

/// `GET /login/oauth/device?code=…`: the verification page (sign-in required).
pub async fn device_page(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    query: crate::params::Query,
) -> Response {
    let caller = match auth::session_caller(&st.core, &headers, &ip, None).await {
        Ok(c) => c,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let code = query.0.get("code").unwrap_or("");
    let Caller::Session(session) = &caller else {
        let back = if code.is_empty() {
            "/login/oauth/device".to_owned()
        } else {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("code", code);
            format!("/login/oauth/device?{}", q.finish())
        };
        return login_redirect(&back);
    };
    let csrf = esc(&session.csrf_token);
    if code.is_empty() {
        return html(
            StatusCode::OK,
            "Connect a device",
            r#"<h1>Connect a device</h1><form method="get" action="/login/oauth/device"><label>Code shown on your device <input type="text" name="code" required autofocus></label><button type="submit">Continue</button></form>"#,
        );
    }
    match st.core.device().info(&caller, code).await {
        Ok((rec, client)) => html(
            StatusCode::OK,
            "Connect a device",
            &format!(
                r#"<h1>Connect {name}</h1><p>Code <strong>{uc}</strong>. {name} asks to:</p><ul class="scopes">{scopes}</ul>
<form method="post" action="/login/oauth/device"><input type="hidden" name="csrf_token" value="{csrf}"><input type="hidden" name="user_code" value="{uc}">
<button type="submit" name="approve" value="true">Approve</button><button type="submit" name="approve" value="false">Deny</button></form>"#,
                name = esc(&client.name),
                uc = esc(rec.user_code.as_str()),
                scopes = scope_list(&st.core.catalogue().lines(rec.scope)),
            ),
        ),
        Err(e) => html(
            StatusCode::BAD_REQUEST,
            "Connect a device",
            &format!(
                r#"<h1>Connect a device</h1><p class="err">{}</p><p><a href="/login/oauth/device">Enter another code</a></p>"#,
                esc(&e.description())
            ),
        ),
    }
}

/// `POST /login/oauth/device`: approve or deny (session CSRF token required).
pub async fn device_submit(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let run = async {
        let caller = auth::session_caller(&st.core, &headers, &ip, Some(&params)).await?;
        let approve = params.device_decision()?;
        st.core
            .device()
            .resolve(
                &caller,
                params.get("user_code").unwrap_or(""),
                approve,
                ip.as_deref(),
            )
            .await?;
        Ok(approve)
    };
    match run.await {
        Ok(true) => html(
            StatusCode::OK,
            "Device connected",
            "<h1>Device connected</h1><p>You can return to your device.</p>",
        ),
        Ok(false) => html(
            StatusCode::OK,
            "Request denied",
            "<h1>Request denied</h1><p>The device was not connected.</p>",
        ),
        Err(e) => html(
            crate::error::status_of(&e, crate::error::Where::Api),
            "Connect a device",
            &format!(
                r#"<h1>Connect a device</h1><p class="err">{}</p>"#,
                esc(&e.description())
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_html_specials() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn return_urls_stay_on_this_site() {
        assert_eq!(safe_return(Some("/api/x?y=1")), "/api/x?y=1");
        assert_eq!(safe_return(Some("//evil.example")), "/");
        assert_eq!(safe_return(Some("/\\evil.example")), "/");
        assert_eq!(safe_return(Some("https://evil.example")), "/");
        assert_eq!(safe_return(None), "/");
    }

    #[test]
    fn buzz_options_default_to_5000_per_day() {
        let html = buzz_options(&BuzzLimit::consent_default());
        let selected: Vec<&str> = html
            .split("<option")
            .filter(|o| o.contains("selected"))
            .collect();
        assert_eq!(selected.len(), 1);
        assert!(selected[0].contains("5,000 Buzz per 24 hours"), "{html}");
        assert!(html.contains(">No limit<"));
    }
}
