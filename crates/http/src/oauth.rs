//! The OAuth endpoints of SPEC 3.1–3.5 and 3.8: authorize, token, revoke, introspect,
//! userinfo, device authorization. Each handler parses, calls one service, maps the result.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use buzzgate_domain::authorize::AuthorizeParams;
use buzzgate_domain::client::GrantType;
use buzzgate_domain::client::dynamic::{DynamicRegistration, RegisteredClient};
use buzzgate_domain::error::Error;
use buzzgate_domain::service::Caller;
use buzzgate_domain::service::authorize::{AuthorizeOutcome, ConsentAnswer};
use buzzgate_domain::service::device::DeviceStartRequest;
use buzzgate_domain::service::tokens::{GrantRequest, TokenRequest};

use crate::AppState;
use crate::auth::{self, ClientIp};
use crate::error::{ApiError, ApiResult};
use crate::pages;
use crate::params::Params;
use crate::responses::{
    ActiveTokenBody, DeviceApprovalBody, DeviceBody, DeviceInfoBody, EmptyBody, IntrospectionBody,
    MeBody, TokenBody, UserInfoBody,
};

/// The authorization request's parameters as sent.
pub fn authorize_params(p: &Params) -> AuthorizeParams {
    AuthorizeParams {
        response_type: p.owned("response_type"),
        client_id: p.owned("client_id"),
        redirect_uri: p.owned("redirect_uri"),
        scope: p.owned("scope"),
        state: p.owned("state"),
        code_challenge: p.owned("code_challenge"),
        code_challenge_method: p.owned("code_challenge_method"),
        nonce: p.owned("nonce"),
        resources: p.all("resource"),
    }
}

/// The authorize URL again, for the login page's `returnUrl`.
fn authorize_url(path: &str, ap: &AuthorizeParams) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let fields = [
        ("response_type", &ap.response_type),
        ("client_id", &ap.client_id),
        ("redirect_uri", &ap.redirect_uri),
        ("scope", &ap.scope),
        ("state", &ap.state),
        ("code_challenge", &ap.code_challenge),
        ("code_challenge_method", &ap.code_challenge_method),
        ("nonce", &ap.nonce),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    for r in &ap.resources {
        q.append_pair("resource", r);
    }
    format!("{path}?{}", q.finish())
}

/// `GET|POST /authorize` (SPEC 3.1). A POST carrying `approved` is the consent form's answer
/// (session and CSRF token required); any other request never approves.
pub async fn authorize(
    State(st): State<AppState>,
    ip: ClientIp,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    params: Params,
) -> Response {
    // The path as the client sent it: inside a nested router `Uri` lacks the prefix.
    match authorize_inner(&st, &ip, &method, &uri, &headers, &params).await {
        Ok(r) => r,
        // An error that cannot go back to the app (unknown client, unregistered redirect
        // URI, not allowed) reaches a person's browser: the same status and words as a page.
        Err(e) if wants_html(&headers) => html_error(&e),
        Err(e) => e.into_response(),
    }
}

/// Whether the request comes from a browser navigating (it asks for HTML first).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.trim_start().starts_with("text/html"))
}

/// The error as an HTML page with the status (and `Retry-After`) the JSON answer has.
fn html_error(e: &ApiError) -> Response {
    let text = e.error.description();
    let mut page = crate::pages::message(
        "This app's sign-in link does not work",
        &format!(
            "{}. Go back to the app and try again, or tell its developer.",
            text.trim_end_matches('.')
        ),
        true,
        None,
    )
    .status(e.status())
    .into_response();
    crate::error::set_retry_after(page.headers_mut(), &e.error);
    page
}

async fn authorize_inner(
    st: &AppState,
    client_ip: &ClientIp,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    params: &Params,
) -> ApiResult<Response> {
    let core = &st.core;
    let ip = client_ip.as_deref();
    let ap = authorize_params(params);
    let caller = auth::session_caller(core, headers, client_ip, Some(params)).await?;
    let approved = match *method {
        Method::POST => params.flag("approved")?,
        _ => None,
    };
    let outcome = match (&caller, approved) {
        (Caller::Session(_), Some(approved)) => {
            let answer = ConsentAnswer {
                approved,
                remember: params.flag("remember")?.unwrap_or(false),
                buzz_limit: params.owned("buzz_limit"),
                buzz_cap: params.cap_form()?,
            };
            core.authorize().decide(&ap, &caller, &answer, ip).await?
        }
        _ => core.authorize().authorize(&ap, &caller, ip).await?,
    };
    Ok(match outcome {
        AuthorizeOutcome::Reject(e) => return Err(ApiError::from(e)),
        AuthorizeOutcome::LoginRequired => pages::login_redirect(&authorize_url(uri.path(), &ap)),
        AuthorizeOutcome::RedirectError { location: to } => pages::redirect(StatusCode::FOUND, &to),
        AuthorizeOutcome::Redirect { location: to } => {
            let status = if *method == Method::POST {
                StatusCode::SEE_OTHER
            } else {
                StatusCode::FOUND
            };
            pages::redirect(status, &to)
        }
        AuthorizeOutcome::Consent(prompt) => pages::consent(st, &caller, &prompt, uri.path()).await,
    })
}

/// Answers vary by `Origin`, whether or not this one was allowed.
fn vary_origin(res: &mut Response) {
    res.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Origin"));
}

/// CORS for browser clients of the token-like endpoints: the `Origin` is echoed only when
/// the client the request names is a public client that registered it (SPEC 3.2); no other
/// site may read the answer.
async fn cors(st: &AppState, res: &mut Response, origin: Option<&str>, client_id: Option<&str>) {
    vary_origin(res);
    let (Some(origin), Some(id)) = (origin, client_id) else {
        return;
    };
    if st
        .core
        .clients()
        .cors_allows(id, origin)
        .await
        .unwrap_or(false)
        && let Ok(v) = HeaderValue::from_str(origin)
    {
        res.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
}

/// [`cors`] for a request: its `Origin`, and the client it names (Basic or `client_id`,
/// before it is authenticated), whose registered origins decide.
async fn cors_for(st: &AppState, res: &mut Response, headers: &HeaderMap, params: &Params) {
    let client = auth::client_auth(headers, params)
        .ok()
        .map(|a| a.client_id.as_str().to_owned());
    cors(st, res, origin_of(headers).as_deref(), client.as_deref()).await;
}

/// `OPTIONS` preflight for token, revoke, introspect and device endpoints. A preflight names
/// no client, so it is allowed for an origin some public client registered, and for no
/// other: an unknown site learns nothing and sends nothing beyond a simple request.
pub async fn preflight(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    vary_origin(&mut res);
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let Some(origin) = origin else {
        return res;
    };
    if !st
        .core
        .clients()
        .cors_preflight(origin)
        .await
        .unwrap_or(false)
    {
        return res;
    }
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    res
}

fn origin_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn token_common(
    st: &AppState,
    ip: Option<&str>,
    headers: &HeaderMap,
    params: &Params,
    device_only: bool,
) -> Response {
    let origin = origin_of(headers);
    let result = async {
        let core = &st.core;
        let kind = GrantRequest::grant_type(params.get("grant_type"))?;
        if device_only && kind != GrantType::DeviceCode {
            return Err(Error::UnsupportedGrantType(
                "This endpoint only accepts the device_code grant".into(),
            ));
        }
        let client = auth::client_auth(headers, params)?;
        let req = TokenRequest {
            client,
            origin: origin.clone(),
            ip: ip.map(str::to_owned),
            grant: GrantRequest::from_fields(kind, |name| params.owned(name)),
            resources: params.all("resource"),
        };
        core.tokens().token(req).await
    }
    .await;
    let mut res = match result {
        Ok(t) => axum::Json(TokenBody::new(&t, st.settings.scope_as_array)).into_response(),
        Err(e) => {
            let rejected = e == Error::OriginNotAllowed;
            let res = ApiError::token(e).into_response();
            if rejected {
                return res;
            }
            res
        }
    };
    cors_for(st, &mut res, headers, params).await;
    res
}

/// `POST /token`: every grant.
pub async fn token(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Response {
    token_common(&st, ip.as_deref(), &headers, &params, false).await
}

/// `POST /device-token`: Civitai's polling endpoint (the device grant only).
pub async fn device_token(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Response {
    token_common(&st, ip.as_deref(), &headers, &params, true).await
}

/// `POST /revoke` (RFC 7009): by the client that holds the token, or by the signed-in user
/// it belongs to (with the session's CSRF token).
pub async fn revoke(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let result = async {
        let creds = auth::credentials(&headers, &ip, Some(&params))?;
        st.core.tokens().revoke(&creds, params.get("token")).await
    }
    .await;
    let mut res = match result {
        Ok(()) => axum::Json(EmptyBody {}).into_response(),
        Err(e) => ApiError::token(e).into_response(),
    };
    cors_for(&st, &mut res, &headers, &params).await;
    res
}

/// `POST /introspect` (RFC 7662), for confidential clients (resource servers).
pub async fn introspect(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let run = async {
        let caller = auth::caller(&st.core, &headers, &ip, Some(&params)).await?;
        st.core
            .tokens()
            .introspect(&caller, params.get("token"))
            .await
    };
    let i = run.await.map_err(ApiError::token)?;
    let body = match (&i.record, i.active) {
        (Some(r), true) => IntrospectionBody::Active(ActiveTokenBody::new(
            r,
            i.username.as_deref(),
            i.buzz_limit.as_ref(),
            &st.core.deps.config.issuer,
        )),
        _ => IntrospectionBody::Inactive { active: false },
    };
    let res = axum::Json(body).into_response();
    Ok(res)
}

/// `GET /userinfo`: the OIDC-style claims of the bearer's user (UserRead).
pub async fn userinfo(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let caller = auth::bearer_caller(&st.core, &headers).await?;
    let u = st.core.tokens().userinfo(&caller).await?;
    let res = axum::Json(UserInfoBody::from(u)).into_response();
    Ok(res)
}

/// `GET /api/v1/me`: who the bearer is and what it may do.
pub async fn me(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let caller = auth::bearer_caller(&st.core, &headers).await?;
    let me = st.core.tokens().me(&caller).await?;
    Ok(axum::Json(MeBody::new(&me, st.core.catalogue())).into_response())
}

/// `POST /device` (RFC 8628 §3.1).
pub async fn device(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let origin = origin_of(&headers);
    let result = async {
        let req = DeviceStartRequest {
            client: auth::client_auth(&headers, &params)?,
            origin: origin.clone(),
            ip: ip.0.clone(),
            scope: params.owned("scope"),
        };
        st.core.device().start(&req).await
    }
    .await;
    let mut res = match result {
        Ok(d) => axum::Json(DeviceBody::from(&d)).into_response(),
        Err(e) => ApiError::token(e).into_response(),
    };
    cors_for(&st, &mut res, &headers, &params).await;
    res
}

/// `POST /device-info` (session): which app asks for what under a user code.
pub async fn device_info(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let caller = auth::session_caller(&st.core, &headers, &ip, Some(&params)).await?;
    let code = params
        .get("user_code")
        .ok_or_else(|| Error::invalid_request("Missing user_code"))?;
    let (rec, client) = st.core.device().info(&caller, code).await?;
    Ok(axum::Json(DeviceInfoBody {
        client_id: client.id.as_str(),
        client_name: &client.name,
        expires_at: crate::api::rfc3339(rec.expires_at),
        is_verified: client.is_verified,
        scope: rec.scope.bits(),
        scope_names: st.core.catalogue().names(rec.scope),
        user_code: rec.user_code.as_str(),
    })
    .into_response())
}

/// `POST /device-approve` (session): approves unless `approve=false` ([`Params::device_decision`]).
pub async fn device_approve(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    // One CSRF rule for every cookie-authenticated change: the session's token as the
    // `csrf_token` field or the `X-CSRF-Token` header, whatever the content type.
    let caller = auth::session_caller(&st.core, &headers, &ip, Some(&params)).await?;
    let code = params
        .get("user_code")
        .ok_or_else(|| Error::invalid_request("Missing user_code"))?;
    let approve = params.device_decision()?;
    st.core
        .device()
        .resolve(&caller, code, approve, ip.as_deref())
        .await?;
    Ok(axum::Json(DeviceApprovalBody {
        approved: approve,
        success: true,
    })
    .into_response())
}

/// `POST /register` (RFC 7591, docs/mcp.md): dynamic registration of a public client; 201
/// with the registered metadata, the registration access token and the management URI.
pub async fn register(
    State(st): State<AppState>,
    ip: ClientIp,
    crate::params::Json(metadata): crate::params::Json<DynamicRegistration>,
) -> ApiResult<Response> {
    let done = st.core.clients().register(metadata, ip.as_deref()).await?;
    let body = registered(&st, &done.client, done.access_token.expose());
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

fn registered(
    st: &AppState,
    client: &buzzgate_domain::client::Client,
    token: &str,
) -> RegisteredClient {
    RegisteredClient::of(
        client,
        st.core.catalogue(),
        &st.core.deps.config.issuer,
        token,
    )
}

/// `GET /register/{client_id}` (RFC 7592 §2.1): the registration, for the bearer of its
/// registration access token.
pub async fn registration_read(
    State(st): State<AppState>,
    ip: ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = crate::auth::bearer_of(&headers);
    let client = st
        .core
        .clients()
        .registration(&id, token, ip.as_deref())
        .await?;
    Ok(axum::Json(registered(&st, &client, token.unwrap_or_default())).into_response())
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the registration's metadata.
pub async fn registration_update(
    State(st): State<AppState>,
    ip: ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
    crate::params::Json(metadata): crate::params::Json<DynamicRegistration>,
) -> ApiResult<Response> {
    let token = crate::auth::bearer_of(&headers);
    let client = st
        .core
        .clients()
        .update_registration(&id, token, metadata, ip.as_deref())
        .await?;
    Ok(axum::Json(registered(&st, &client, token.unwrap_or_default())).into_response())
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): 204, the app and its grants gone.
pub async fn registration_delete(
    State(st): State<AppState>,
    ip: ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = crate::auth::bearer_of(&headers);
    st.core
        .clients()
        .delete_registration(&id, token, ip.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use buzzgate_domain::Scope;
    use buzzgate_domain::ports::SeededRandom;
    use buzzgate_domain::token::{PlainToken, TokenPrefix, TokenResponse};
    use serde_json::json;

    #[test]
    fn token_body_has_decimal_scope_or_array() {
        let r = SeededRandom::new(1);
        let t = TokenResponse {
            access_token: PlainToken::generate(&TokenPrefix::default(), &r),
            expires_in: 3600,
            refresh_token: None,
            scope: Scope::AI_SERVICES,
            id_token: None,
        };
        let b = serde_json::to_value(TokenBody::new(&t, false)).unwrap();
        assert_eq!(b["scope"], "114689");
        assert_eq!(b["token_type"], "Bearer");
        assert!(b.get("refresh_token").is_none());
        let b = serde_json::to_value(TokenBody::new(&t, true)).unwrap();
        assert_eq!(b["scope"], json!(["114689"]));
    }

    #[test]
    fn return_url_keeps_every_parameter() {
        let ap = AuthorizeParams {
            client_id: Some("abc".into()),
            state: Some("s t&x".into()),
            ..Default::default()
        };
        let u = authorize_url("/api/auth/oauth/authorize", &ap);
        assert_eq!(u, "/api/auth/oauth/authorize?client_id=abc&state=s+t%26x");
    }
}
