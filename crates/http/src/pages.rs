//! The pages of sign-in, sign-up, consent and device verification (docs/pages.md), rendered
//! from the templates of [`crate::views`]. Forms carry CSRF tokens; pages cannot be framed;
//! every value is escaped by the template engine. The account and admin pages are in
//! [`crate::account`] and [`crate::admin`].

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use buzzgate_domain::buzz::BuzzLimit;
use buzzgate_domain::catalogue::ScopeLine;
use buzzgate_domain::error::Error;
use buzzgate_domain::service::Caller;
use buzzgate_domain::service::authorize::ConsentPrompt;
use buzzgate_domain::token::PlainToken;
use buzzgate_domain::user::MIN_PASSWORD_CHARS;
use minijinja::{Value, context};
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::auth::{self, ClientIp, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::params::Params;
use crate::views::{Page, Viewer};

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
        _ => "/account".into(),
    }
}

/// The person behind a page request: the caller (with the CSRF proof when `body` is the
/// form), and what the layout shows. `None` when nobody is signed in.
pub(crate) struct Visit {
    pub caller: Caller,
    pub viewer: Viewer,
}

pub(crate) async fn visit(
    st: &AppState,
    headers: &HeaderMap,
    ip: &ClientIp,
    body: Option<&Params>,
) -> Result<Option<Visit>, Error> {
    let caller = auth::session_caller(&st.core, headers, ip, body).await?;
    let Caller::Session(s) = &caller else {
        return Ok(None);
    };
    let Some(user) = st.core.deps.active_user(s.user).await? else {
        return Ok(None);
    };
    let viewer = Viewer {
        name: user.username.to_string(),
        admin: s.admin,
        csrf: s.csrf_token.clone(),
    };
    Ok(Some(Visit { caller, viewer }))
}

/// A page saying what went wrong, with the status the API would give.
pub(crate) fn error_page(e: &Error, viewer: Option<Viewer>) -> Response {
    let status = crate::error::status_of(e, crate::error::Where::Api);
    let heading = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    let mut res = message(heading, &e.description(), true, viewer)
        .status(status)
        .into_response();
    crate::error::set_retry_after(res.headers_mut(), e);
    res
}

/// A short page: a heading, one paragraph and a link back to the account.
pub(crate) fn message(heading: &str, text: &str, error: bool, viewer: Option<Viewer>) -> Page {
    let link = viewer
        .is_some()
        .then(|| context! { href => "/account", label => "Back to your account" });
    Page::new(
        "message.html",
        heading,
        context! { heading, text, error, link },
    )
    .viewer(viewer)
    .narrow()
}

/// A form page of the sign-in family (no session yet): a fresh double-submit token in the
/// form (`csrf` in the template's context) and in the `bg_login_csrf` cookie.
fn with_login_csrf(st: &AppState, page: impl FnOnce(&str) -> Page) -> Response {
    let csrf = PlainToken::generate_unprefixed(st.core.deps.random.as_ref())
        .expose()
        .to_owned();
    let mut res = page(&csrf).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(st, LOGIN_CSRF_COOKIE, &csrf, "/", 3600),
    );
    res
}

fn login_form(
    st: &AppState,
    return_url: &str,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    with_login_csrf(st, |csrf| {
        Page::new(
            "login.html",
            "Sign in",
            context! {
                csrf,
                return_url,
                username,
                error,
                signup_open => st.core.deps.config.signup_open,
            },
        )
        .status(status)
        .narrow()
    })
}

/// The double-submit check of the sign-in and sign-up forms (no session yet): the cookie and
/// the field agree, and the browser did not mark the post cross-site.
fn login_csrf_ok(headers: &HeaderMap, params: &Params) -> bool {
    let cookie = auth::cookie(headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    let field = params.get("csrf_token").unwrap_or("");
    !cookie.is_empty()
        && bool::from(cookie.as_bytes().ct_eq(field.as_bytes()))
        && !auth::is_cross_site(headers)
}

/// The session cookie for a new session, and the login CSRF cookie cleared.
fn start_session(st: &AppState, res: &mut Response, cookie: &str, ttl: i64) {
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        cookie_header(st, SESSION_COOKIE, cookie, "/", ttl),
    );
    h.append(
        header::SET_COOKIE,
        cookie_header(st, LOGIN_CSRF_COOKIE, "", "/", 0),
    );
}

/// `GET /login?returnUrl=…`.
pub async fn login_page(State(st): State<AppState>, params: crate::params::Query) -> Response {
    let ret = safe_return(params.0.get("returnUrl"));
    login_form(&st, &ret, "", None, StatusCode::OK)
}

/// "Try again in 1 minute" / "in 42 seconds".
fn retry_text(seconds: u64) -> String {
    if seconds >= 60 {
        let m = seconds.div_ceil(60);
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else {
        format!("{seconds} second{}", if seconds == 1 { "" } else { "s" })
    }
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
    let username = params.get("username").unwrap_or("");
    if !login_csrf_ok(&headers, &params) {
        return login_form(
            &st,
            &ret,
            username,
            Some("Your sign-in form expired. Please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let result = st
        .core
        .sessions()
        .login(
            username,
            params.get("password").unwrap_or(""),
            ip.as_deref(),
        )
        .await;
    match result {
        Ok((cookie, session)) => {
            let ttl = (session.expires_at - session.created_at).whole_seconds();
            let mut res = redirect(StatusCode::SEE_OTHER, &ret);
            start_session(&st, &mut res, cookie.expose(), ttl);
            res
        }
        Err(Error::AccessDenied(_)) => login_form(
            &st,
            &ret,
            username,
            Some("The username or password is wrong."),
            StatusCode::UNAUTHORIZED,
        ),
        Err(Error::RateLimited { retry_after }) => {
            let msg = format!(
                "Too many failed sign-in attempts. Try again in {}.",
                retry_text(retry_after)
            );
            let mut res = login_form(
                &st,
                &ret,
                username,
                Some(&msg),
                StatusCode::TOO_MANY_REQUESTS,
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            res
        }
        Err(e) => error_page(&e, None),
    }
}

fn signup_form(
    st: &AppState,
    username: &str,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    with_login_csrf(st, |csrf| {
        Page::new(
            "signup.html",
            "Create an account",
            context! { csrf, username, email, error, min_password => MIN_PASSWORD_CHARS },
        )
        .status(status)
        .narrow()
    })
}

fn signup_closed() -> Response {
    message(
        "Not found",
        "Sign-up is not open on this server. Ask its operator for an account.",
        true,
        None,
    )
    .status(StatusCode::NOT_FOUND)
    .into_response()
}

/// `GET /signup`: the form when `BUZZGATE_SIGNUP=open`, else 404.
pub async fn signup_page(State(st): State<AppState>) -> Response {
    if !st.core.deps.config.signup_open {
        return signup_closed();
    }
    signup_form(&st, "", "", None, StatusCode::OK)
}

/// `POST /signup`: creates the account and signs the person in (303 to `/account`).
pub async fn signup_submit(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Response {
    if !st.core.deps.config.signup_open {
        return signup_closed();
    }
    let username = params.get("username").unwrap_or("");
    let email = params.get("email").unwrap_or("");
    if !login_csrf_ok(&headers, &params) {
        return signup_form(
            &st,
            username,
            email,
            Some("Your form expired. Please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let result = st
        .core
        .sessions()
        .sign_up(
            username,
            email,
            params.get("password").unwrap_or(""),
            ip.as_deref(),
        )
        .await;
    match result {
        Ok((cookie, session)) => {
            let ttl = (session.expires_at - session.created_at).whole_seconds();
            let mut res = redirect(StatusCode::SEE_OTHER, "/account");
            start_session(&st, &mut res, cookie.expose(), ttl);
            res
        }
        Err(e @ (Error::InvalidRequest(_) | Error::Conflict(_))) => {
            let status = crate::error::status_of(&e, crate::error::Where::Api);
            signup_form(
                &st,
                username,
                email,
                Some(&capitalize(&e.description())),
                status,
            )
        }
        Err(Error::RateLimited { retry_after }) => {
            let msg = format!(
                "Too many accounts created from your network. Try again in {}.",
                retry_text(retry_after)
            );
            let mut res = signup_form(
                &st,
                username,
                email,
                Some(&msg),
                StatusCode::TOO_MANY_REQUESTS,
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            res
        }
        Err(e) => error_page(&e, None),
    }
}

/// "username is taken" → "Username is taken."
pub(crate) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    let mut out = match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect::<String>(),
        None => return String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
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
        // As before the pages had templates: scripts signing out read the JSON error.
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// `GET /`: the account for a signed-in person, else a short welcome.
pub async fn home(State(st): State<AppState>, ip: ClientIp, headers: HeaderMap) -> Response {
    match visit(&st, &headers, &ip, None).await {
        Ok(Some(_)) => redirect(StatusCode::SEE_OTHER, "/account"),
        Ok(None) => Page::new(
            "home.html",
            "Buzzgate",
            context! { signup_open => st.core.deps.config.signup_open },
        )
        .narrow()
        .into_response(),
        Err(e) => error_page(&e, None),
    }
}

/// One scope line for the templates.
#[derive(Debug, Serialize)]
struct Line<'a> {
    bits: u64,
    label: &'a str,
    description: &'a str,
}

fn lines(lines: &[ScopeLine]) -> Vec<Line<'_>> {
    lines
        .iter()
        .map(|l| Line {
            bits: l.scope.bits(),
            label: &l.label,
            description: &l.description,
        })
        .collect()
}

/// The Buzz cap choices (SPEC 15): per 24 hours, 7 days, 30 days.
pub(crate) fn periods() -> Value {
    Value::from_serialize([
        context! { days => 1, label => "per 24 hours" },
        context! { days => 7, label => "per 7 days" },
        context! { days => 30, label => "per 30 days" },
    ])
}

/// The cap controls pre-filled from `limit`: a single 1/7/30-day budget shows as it is;
/// no cap shows unticked with the default amount; anything custom shows the default, ticked.
pub(crate) fn cap_fields(limit: &BuzzLimit, no_cap_unticked: bool) -> Value {
    let (amount, days) = BuzzLimit::consent_default()
        .as_period()
        .unwrap_or((BuzzLimit::DEFAULT_DAILY_LIMIT, 1));
    match limit.as_period() {
        Some((amount, days)) => context! { limited => true, amount, days },
        None if limit.is_unlimited() && no_cap_unticked => {
            context! { limited => false, amount, days }
        }
        None => context! { limited => true, amount, days },
    }
}

/// Where the answer goes, as people read it (`app.example.com`, `127.0.0.1:8000`, or an
/// app's own scheme), and the origin the page's `form-action` must admit for the redirect.
fn redirect_target(redirect_uri: &str) -> (String, Option<String>) {
    match url::Url::parse(redirect_uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {
            let host = match (u.host_str(), u.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => redirect_uri.to_owned(),
            };
            (host, Some(u.origin().ascii_serialization()))
        }
        Ok(u) => (
            format!("the app ({}:)", u.scheme()),
            Some(format!("{}:", u.scheme())),
        ),
        Err(_) => (redirect_uri.to_owned(), None),
    }
}

/// The consent page (SPEC 3.1 step 6, SPEC 15): one form whose hidden inputs carry the request.
pub async fn consent(
    st: &AppState,
    caller: &Caller,
    prompt: &ConsentPrompt,
    action: &str,
) -> Response {
    let viewer = match caller {
        Caller::Session(s) => match st.core.deps.active_user(s.user).await {
            Ok(Some(u)) => Some(Viewer {
                name: u.username.to_string(),
                admin: s.admin,
                csrf: s.csrf_token.clone(),
            }),
            Ok(None) => None,
            Err(e) => return error_page(&e, None),
        },
        _ => None,
    };
    let csrf = viewer.as_ref().map(|v| v.csrf.clone()).unwrap_or_default();
    let req = &prompt.request;
    let c = &prompt.client;
    let scope = buzzgate_domain::RequestedScope {
        scope: req.scope,
        oidc: req.oidc,
    };
    let mut hidden: Vec<(&str, String)> = vec![
        ("response_type", "code".into()),
        ("client_id", c.id.as_str().to_owned()),
        ("redirect_uri", req.redirect_uri.clone()),
        ("scope", scope.to_form_value()),
        ("state", req.state.clone()),
        ("code_challenge", req.code_challenge.as_str().to_owned()),
        ("code_challenge_method", "S256".into()),
    ];
    if let Some(n) = &req.nonce {
        hidden.push(("nonce", n.clone()));
    }
    for r in &req.resources {
        hidden.push(("resource", r.clone()));
    }
    hidden.push(("csrf_token", csrf));
    let (redirect_host, origin) = redirect_target(&req.redirect_uri);
    Page::new(
        "consent.html",
        format!("Authorize {}", c.name),
        context! {
            app => context! {
                name => &c.name,
                description => &c.description,
                verified => c.is_verified,
                registered_itself => c.is_unowned(),
                // A client ID metadata document: where its description came from (SPEC 14).
                document_host => st
                    .core
                    .deps
                    .is_document_client(&c.id)
                    .then(|| buzzgate_domain::client::document::document_host(c.id.as_str()))
                    .flatten(),
                loopback_only => c.redirects_only_to_loopback(),
            },
            lines => lines(&prompt.lines),
            trimmed => lines(&prompt.trimmed_lines),
            redirect_host,
            resources => &req.resources,
            action,
            hidden,
            show_cap => prompt.show_buzz_cap,
            cap => cap_fields(&prompt.buzz_limit, false),
            periods => periods(),
        },
    )
    .viewer(viewer)
    .narrow()
    .form_target(origin)
    .into_response()
}

/// `GET /login/oauth/device?code=…`: the verification page (sign-in required).
pub async fn device_page(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    query: crate::params::Query,
) -> Response {
    let code = query.0.get("code").unwrap_or("").trim();
    let visit = match visit(&st, &headers, &ip, None).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            let back = if code.is_empty() {
                "/login/oauth/device".to_owned()
            } else {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                q.append_pair("code", code);
                format!("/login/oauth/device?{}", q.finish())
            };
            return login_redirect(&back);
        }
        Err(e) => return error_page(&e, None),
    };
    let none = Value::from(());
    let entry = |error: Option<String>, status| {
        Page::new(
            "device.html",
            "Connect a device",
            context! { app => none.clone(), error, code },
        )
        .status(status)
        .viewer(Some(visit.viewer.clone()))
        .narrow()
        .into_response()
    };
    if code.is_empty() {
        return entry(None, StatusCode::OK);
    }
    match st.core.device().info(&visit.caller, code).await {
        Ok((rec, client)) => {
            let scope_lines = st.core.catalogue().lines(rec.scope);
            Page::new(
                "device.html",
                format!("Connect {}", client.name),
                context! {
                    app => context! { name => &client.name, verified => client.is_verified },
                    user_code => rec.user_code.as_str(),
                    lines => lines(&scope_lines),
                },
            )
            .viewer(Some(visit.viewer.clone()))
            .narrow()
            .into_response()
        }
        Err(e) => {
            let status = crate::error::status_of(&e, crate::error::Where::Api);
            let mut res = entry(Some(capitalize(&e.description())), status);
            crate::error::set_retry_after(res.headers_mut(), &e);
            res
        }
    }
}

/// `POST /login/oauth/device`: approve or deny (session CSRF token required).
pub async fn device_submit(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let visit = match visit(&st, &headers, &ip, Some(&params)).await {
        Ok(Some(v)) => v,
        Ok(None) => return login_redirect("/login/oauth/device"),
        Err(e) => return error_page(&e, None),
    };
    let run = async {
        let approve = params.device_decision()?;
        st.core
            .device()
            .resolve(
                &visit.caller,
                params.get("user_code").unwrap_or(""),
                approve,
                ip.as_deref(),
            )
            .await?;
        Ok::<_, Error>(approve)
    };
    let viewer = Some(visit.viewer.clone());
    match run.await {
        Ok(true) => message(
            "Device connected",
            "You can return to your device; it is signed in now.",
            false,
            viewer,
        )
        .into_response(),
        Ok(false) => message(
            "Request denied",
            "The device was not connected. Nothing was shared with it.",
            false,
            viewer,
        )
        .into_response(),
        Err(e) => error_page(&e, viewer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_urls_stay_on_this_site() {
        assert_eq!(safe_return(Some("/api/x?y=1")), "/api/x?y=1");
        assert_eq!(safe_return(Some("//evil.example")), "/account");
        assert_eq!(safe_return(Some("/\\evil.example")), "/account");
        assert_eq!(safe_return(Some("https://evil.example")), "/account");
        assert_eq!(safe_return(None), "/account");
    }

    #[test]
    fn the_cap_prefills_the_default_of_5000_per_day() {
        let v = cap_fields(&BuzzLimit::consent_default(), false);
        assert_eq!(v.get_attr("amount").unwrap(), Value::from(5000));
        assert_eq!(v.get_attr("days").unwrap(), Value::from(1));
        assert!(v.get_attr("limited").unwrap().is_true());
        let none = cap_fields(&BuzzLimit::unlimited(), true);
        assert!(!none.get_attr("limited").unwrap().is_true());
        let week = cap_fields(&BuzzLimit::per_period(2500, 7).unwrap(), true);
        assert_eq!(week.get_attr("amount").unwrap(), Value::from(2500));
        assert_eq!(week.get_attr("days").unwrap(), Value::from(7));
    }

    #[test]
    fn the_redirect_target_names_the_host_and_admits_its_origin() {
        assert_eq!(
            redirect_target("https://app.example.com/cb?x=1"),
            (
                "app.example.com".into(),
                Some("https://app.example.com".into())
            )
        );
        assert_eq!(
            redirect_target("http://127.0.0.1:9999/callback"),
            (
                "127.0.0.1:9999".into(),
                Some("http://127.0.0.1:9999".into())
            )
        );
        assert_eq!(
            redirect_target("com.example.app:/oauth"),
            (
                "the app (com.example.app:)".into(),
                Some("com.example.app:".into())
            )
        );
    }

    #[test]
    fn waits_read_in_minutes_or_seconds() {
        assert_eq!(retry_text(1), "1 second");
        assert_eq!(retry_text(42), "42 seconds");
        assert_eq!(retry_text(60), "1 minute");
        assert_eq!(retry_text(61), "2 minutes");
    }
}
