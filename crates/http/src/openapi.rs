//! The OpenAPI 3.1 document of every route of [`crate::router`], served at `GET /openapi.json`
//! (`docs/api.md`, "OpenAPI"). It is built by utoipa from one table of operations below
//! ([`OAUTH_OPERATIONS`], mounted under each of [`OAUTH_PREFIXES`], and [`OPERATIONS`]);
//! `crates/http/tests/openapi.rs` checks the table against the router both ways, and
//! `tests/schemathesis/run.sh` checks the server's answers against the document.
//!
//! Every error an endpoint answers in JSON is the one error body (`OAuthError`:
//! `{error, error_description}`, `crate::responses::ErrorBody`); pages answer HTML.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    PathsBuilder, Ref, RefOr, Required, ResponseBuilder, ResponsesBuilder,
};

/// The prefixes the OAuth endpoints are mounted under (SPEC 3), as in [`crate::router`].
pub const OAUTH_PREFIXES: [&str; 6] = [
    "/api/auth/oauth",
    "/api/oauth",
    "/v1/oauth",
    "/oauth",
    "/api/v1/oauth",
    "/api/openai/v1/oauth",
];

/// What a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Nothing beyond the path and the query.
    None,
    /// OAuth parameters: a form body, a JSON object, or the query (`crate::params::Params`).
    Params,
    /// A JSON body.
    Json,
    /// A form of a page (`application/x-www-form-urlencoded`, with `csrf_token`).
    Form,
}

/// Who may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Public,
    /// Client authentication: HTTP Basic or `client_id`/`client_secret` in the body.
    Client,
    /// A bearer token (an access token, a personal API key, or a registration token).
    Bearer,
    /// A bearer token or the session cookie.
    BearerOrSession,
    /// The session cookie (pages and the session's JSON).
    Session,
}

/// One answer an operation gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A JSON object (its fields are in `docs/api.md`).
    Json(u16),
    /// A JSON array.
    JsonArray(u16),
    /// The error body `{error, error_description}`.
    Error(u16),
    /// An HTML page.
    Html(u16),
    /// No body.
    Empty(u16),
    /// A redirect (`Location`).
    Redirect(u16),
    /// Text of another type (Markdown, CSS, JavaScript).
    Text(u16, &'static str),
}

/// One (method, path) the router serves.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub input: Input,
    pub auth: Auth,
    pub answers: &'static [Answer],
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    input: Input,
    auth: Auth,
    answers: &'static [Answer],
) -> Operation {
    Operation {
        method,
        path,
        summary,
        input,
        auth,
        answers,
    }
}

use Answer::{Empty, Error as E, Html, Json, JsonArray, Redirect, Text};
use Auth::{Bearer, BearerOrSession, Client, Public, Session};
use Input::{Form, Json as JsonIn, None as NoInput, Params};

/// The errors every request can get from the edge: a body too large or too slow, a timeout,
/// rate limiting.
const EDGE: [Answer; 4] = [E(408), E(413), E(429), E(503)];

const AUTHORIZE: &[Answer] = &[
    Redirect(302),
    Redirect(303),
    Html(200),
    E(400),
    Html(400),
    E(403),
    E(429),
];
const TOKEN: &[Answer] = &[Json(200), E(400), E(401), E(415), E(413), E(429), E(503)];
const PREFLIGHT: &[Answer] = &[Empty(204), E(403)];
const CLIENT_CALL: &[Answer] = &[Json(200), E(400), E(401), E(415), E(413), E(429)];
const BEARER_READ: &[Answer] = &[Json(200), E(400), E(401), E(403), E(429)];
const REGISTER: &[Answer] = &[Json(201), E(400), E(403), E(415), E(413), E(429)];
const REGISTRATION: &[Answer] = &[Json(200), E(400), E(401), E(404), E(415), E(413)];
const REGISTRATION_DELETE: &[Answer] = &[Empty(204), E(401), E(404)];
const JWKS: &[Answer] = &[Json(200), E(404)];
const CLIENTS_LIST: &[Answer] = &[JsonArray(200), E(401), E(403)];
const CLIENT_CREATE: &[Answer] = &[Json(201), E(400), E(401), E(403), E(415), E(413)];
const CLIENT_ONE: &[Answer] = &[Json(200), E(400), E(401), E(403), E(404), E(415), E(413)];
const CLIENT_DELETE: &[Answer] = &[Empty(204), E(401), E(403), E(404)];
const DEVICE_PAGE_CALL: &[Answer] = &[Json(200), E(400), E(401), E(403), E(404), E(415)];
const PAGE: &[Answer] = &[Html(200), Redirect(303), Html(400), Html(403), Html(404)];
const PAGE_POST: &[Answer] = &[
    Html(200),
    Redirect(303),
    Html(400),
    Html(403),
    Html(404),
    E(413),
    E(415),
];
const SPEND: &[Answer] = &[
    Json(200),
    Json(201),
    E(400),
    E(401),
    E(403),
    E(404),
    E(409),
    E(415),
];

/// The OAuth endpoints, relative to each of [`OAUTH_PREFIXES`].
pub const OAUTH_OPERATIONS: &[Operation] = &[
    op(
        "GET",
        "/authorize",
        "Authorization request (RFC 6749 4.1, PKCE)",
        NoInput,
        Public,
        AUTHORIZE,
    ),
    op(
        "POST",
        "/authorize",
        "Authorization request, or the consent form's answer",
        Params,
        Public,
        AUTHORIZE,
    ),
    op(
        "POST",
        "/token",
        "Token endpoint (RFC 6749 3.2)",
        Params,
        Client,
        TOKEN,
    ),
    op(
        "OPTIONS",
        "/token",
        "CORS preflight",
        NoInput,
        Public,
        PREFLIGHT,
    ),
    op(
        "POST",
        "/revoke",
        "Token revocation (RFC 7009)",
        Params,
        Client,
        CLIENT_CALL,
    ),
    op(
        "OPTIONS",
        "/revoke",
        "CORS preflight",
        NoInput,
        Public,
        PREFLIGHT,
    ),
    op(
        "POST",
        "/introspect",
        "Token introspection (RFC 7662)",
        Params,
        Client,
        CLIENT_CALL,
    ),
    op(
        "OPTIONS",
        "/introspect",
        "CORS preflight",
        NoInput,
        Public,
        PREFLIGHT,
    ),
    op(
        "GET",
        "/userinfo",
        "OpenID Connect userinfo",
        NoInput,
        Bearer,
        BEARER_READ,
    ),
    op(
        "POST",
        "/userinfo",
        "OpenID Connect userinfo",
        NoInput,
        Bearer,
        BEARER_READ,
    ),
    op(
        "POST",
        "/device",
        "Device authorization (RFC 8628 3.1)",
        Params,
        Client,
        CLIENT_CALL,
    ),
    op(
        "OPTIONS",
        "/device",
        "CORS preflight",
        NoInput,
        Public,
        PREFLIGHT,
    ),
    op(
        "POST",
        "/device-token",
        "Device token polling (RFC 8628 3.4)",
        Params,
        Client,
        TOKEN,
    ),
    op(
        "OPTIONS",
        "/device-token",
        "CORS preflight",
        NoInput,
        Public,
        PREFLIGHT,
    ),
    op(
        "POST",
        "/device-info",
        "What a user code asks for (the device page)",
        Params,
        Session,
        DEVICE_PAGE_CALL,
    ),
    op(
        "POST",
        "/device-approve",
        "Approve or deny a user code (the device page)",
        Params,
        Session,
        DEVICE_PAGE_CALL,
    ),
    op(
        "POST",
        "/register",
        "Dynamic client registration (RFC 7591)",
        JsonIn,
        Public,
        REGISTER,
    ),
    op(
        "GET",
        "/register/{client_id}",
        "Read a registration (RFC 7592)",
        NoInput,
        Bearer,
        REGISTRATION,
    ),
    op(
        "PUT",
        "/register/{client_id}",
        "Replace a registration (RFC 7592)",
        JsonIn,
        Bearer,
        REGISTRATION,
    ),
    op(
        "DELETE",
        "/register/{client_id}",
        "Delete a registration (RFC 7592)",
        NoInput,
        Bearer,
        REGISTRATION_DELETE,
    ),
    op(
        "GET",
        "/jwks",
        "The signing keys (JWK Set)",
        NoInput,
        Public,
        JWKS,
    ),
    op(
        "GET",
        "/clients",
        "The caller's apps",
        NoInput,
        BearerOrSession,
        CLIENTS_LIST,
    ),
    op(
        "POST",
        "/clients",
        "Create an app",
        JsonIn,
        BearerOrSession,
        CLIENT_CREATE,
    ),
    op(
        "GET",
        "/clients/{id}",
        "One of the caller's apps",
        NoInput,
        BearerOrSession,
        CLIENT_ONE,
    ),
    op(
        "PATCH",
        "/clients/{id}",
        "Update an app",
        JsonIn,
        BearerOrSession,
        CLIENT_ONE,
    ),
    op(
        "PUT",
        "/clients/{id}",
        "Update an app",
        JsonIn,
        BearerOrSession,
        CLIENT_ONE,
    ),
    op(
        "DELETE",
        "/clients/{id}",
        "Delete an app",
        NoInput,
        BearerOrSession,
        CLIENT_DELETE,
    ),
    op(
        "POST",
        "/clients/{id}/reset-secret",
        "Rotate an app's secret (seed 004's name)",
        NoInput,
        BearerOrSession,
        CLIENT_ONE,
    ),
    op(
        "POST",
        "/clients/{id}/rotate-secret",
        "Rotate an app's secret",
        NoInput,
        BearerOrSession,
        CLIENT_ONE,
    ),
];

/// Every other route, at its full path.
pub const OPERATIONS: &[Operation] = &[
    op(
        "GET",
        "/.well-known/oauth-authorization-server",
        "Authorization server metadata (RFC 8414)",
        NoInput,
        Public,
        &[Json(200)],
    ),
    op(
        "GET",
        "/.well-known/openid-configuration",
        "OpenID Connect discovery",
        NoInput,
        Public,
        &[Json(200)],
    ),
    op(
        "GET",
        "/.well-known/jwks.json",
        "The signing keys (JWK Set)",
        NoInput,
        Public,
        JWKS,
    ),
    op(
        "GET",
        "/api/auth/jwks",
        "The signing keys (JWK Set)",
        NoInput,
        Public,
        JWKS,
    ),
    op(
        "GET",
        "/docs/api.md",
        "This API's reference (Markdown)",
        NoInput,
        Public,
        &[Text(200, "text/markdown")],
    ),
    op(
        "GET",
        "/openapi.json",
        "This document",
        NoInput,
        Public,
        &[Json(200)],
    ),
    op(
        "GET",
        "/api/v1/me",
        "The bearer's user and token",
        NoInput,
        Bearer,
        BEARER_READ,
    ),
    op(
        "GET",
        "/api/v1/session",
        "The signed-in session",
        NoInput,
        Session,
        &[Json(200), E(401)],
    ),
    op(
        "GET",
        "/api/v1/buzz",
        "Buzz balances and history",
        NoInput,
        Bearer,
        BEARER_READ,
    ),
    op(
        "GET",
        "/api/trpc/buzz.getUserAccount",
        "Civitai's tRPC Buzz account",
        NoInput,
        Bearer,
        BEARER_READ,
    ),
    op(
        "POST",
        "/api/v1/buzz/spend",
        "Spend a user's Buzz (resource servers)",
        JsonIn,
        Client,
        SPEND,
    ),
    op(
        "POST",
        "/api/v1/buzz/spend/{id}/refund",
        "Refund a spend",
        NoInput,
        Client,
        SPEND,
    ),
    op(
        "GET",
        "/api/v1/buzz/limits",
        "The app's Buzz limits for the user",
        NoInput,
        Bearer,
        BEARER_READ,
    ),
    op(
        "GET",
        "/api/v1/oauth/consents",
        "The user's Connected Apps",
        NoInput,
        BearerOrSession,
        CLIENTS_LIST,
    ),
    op(
        "DELETE",
        "/api/v1/oauth/consents/{id}",
        "Revoke a consent",
        NoInput,
        BearerOrSession,
        CLIENT_DELETE,
    ),
    op(
        "PUT",
        "/api/v1/oauth/consents/{id}/buzz-limit",
        "Set an app's Buzz limit",
        JsonIn,
        BearerOrSession,
        CLIENT_ONE,
    ),
    op(
        "GET",
        "/api/v1/api-keys",
        "The user's personal API keys",
        NoInput,
        BearerOrSession,
        CLIENTS_LIST,
    ),
    op(
        "POST",
        "/api/v1/api-keys",
        "Create a personal API key",
        JsonIn,
        Session,
        CLIENT_CREATE,
    ),
    op(
        "DELETE",
        "/api/v1/api-keys/{id}",
        "Revoke a personal API key",
        NoInput,
        BearerOrSession,
        CLIENT_DELETE,
    ),
    op(
        "PATCH",
        "/api/v1/admin/oauth/clients/{id}",
        "Verify an app, set its access mode (admins)",
        JsonIn,
        Session,
        CLIENT_ONE,
    ),
    op(
        "GET",
        "/api/v1/admin/audit",
        "The audit log (admins)",
        NoInput,
        BearerOrSession,
        &[Json(200), E(400), E(401), E(403)],
    ),
    op("GET", "/", "Home page", NoInput, Public, PAGE),
    op("GET", "/login", "Sign-in form", NoInput, Public, PAGE),
    op("POST", "/login", "Sign in", Form, Public, PAGE_POST),
    op(
        "GET",
        "/signup",
        "Sign-up form (when open)",
        NoInput,
        Public,
        PAGE,
    ),
    op(
        "POST",
        "/signup",
        "Sign up (when open)",
        Form,
        Public,
        PAGE_POST,
    ),
    op("POST", "/logout", "Sign out", Form, Session, PAGE_POST),
    op(
        "GET",
        "/account",
        "The account page",
        NoInput,
        Session,
        PAGE,
    ),
    op(
        "POST",
        "/account/apps",
        "Create an app (form)",
        Form,
        Session,
        PAGE_POST,
    ),
    op(
        "GET",
        "/account/apps/new",
        "The create-app form",
        NoInput,
        Session,
        PAGE,
    ),
    op(
        "POST",
        "/account/apps/{id}",
        "Save an app (form)",
        Form,
        Session,
        PAGE_POST,
    ),
    op(
        "GET",
        "/account/apps/{id}/edit",
        "The edit-app form",
        NoInput,
        Session,
        PAGE,
    ),
    op(
        "GET",
        "/account/apps/{id}/rotate",
        "Confirm a secret rotation",
        NoInput,
        Session,
        PAGE,
    ),
    op(
        "POST",
        "/account/apps/{id}/rotate",
        "Rotate the secret",
        Form,
        Session,
        PAGE_POST,
    ),
    op(
        "GET",
        "/account/apps/{id}/delete",
        "Confirm deleting an app",
        NoInput,
        Session,
        PAGE,
    ),
    op(
        "POST",
        "/account/apps/{id}/delete",
        "Delete an app",
        Form,
        Session,
        PAGE_POST,
    ),
    op(
        "GET",
        "/account/connected/{id}/limit",
        "Edit a Connected App's limit",
        NoInput,
        Session,
        PAGE,
    ),
    op(
        "POST",
        "/account/connected/{id}/limit",
        "Save a Connected App's limit",
        Form,
        Session,
        PAGE_POST,
    ),
    op(
        "GET",
        "/account/connected/{id}/revoke",
        "Confirm revoking a Connected App",
        NoInput,
        Session,
        PAGE,
    ),
    op(
        "POST",
        "/account/connected/{id}/revoke",
        "Revoke a Connected App",
        Form,
        Session,
        PAGE_POST,
    ),
    op(
        "POST",
        "/account/keys",
        "Create a personal API key (form)",
        Form,
        Session,
        PAGE_POST,
    ),
    op(
        "GET",
        "/account/keys/{id}/delete",
        "Confirm revoking an API key",
        NoInput,
        Session,
        PAGE,
    ),
    op(
        "POST",
        "/account/keys/{id}/delete",
        "Revoke an API key",
        Form,
        Session,
        PAGE_POST,
    ),
    op("GET", "/admin", "The admin page", NoInput, Session, PAGE),
    op(
        "POST",
        "/admin/apps/{id}/verify",
        "Mark an app verified (admins)",
        Form,
        Session,
        PAGE_POST,
    ),
    op(
        "POST",
        "/admin/apps/{id}/access-mode",
        "Set an app's access mode (admins)",
        Form,
        Session,
        PAGE_POST,
    ),
    op(
        "GET",
        "/static/buzzgate.css",
        "The stylesheet",
        NoInput,
        Public,
        &[Text(200, "text/css")],
    ),
    op(
        "GET",
        "/static/buzzgate.js",
        "The script",
        NoInput,
        Public,
        &[Text(200, "text/javascript")],
    ),
    op(
        "GET",
        "/login/oauth/authorize",
        "Authorization request (Civitai's path)",
        NoInput,
        Public,
        AUTHORIZE,
    ),
    op(
        "POST",
        "/login/oauth/authorize",
        "Authorization request (Civitai's path)",
        Params,
        Public,
        AUTHORIZE,
    ),
    op(
        "GET",
        "/login/oauth/device",
        "The device page",
        NoInput,
        Public,
        PAGE,
    ),
    op(
        "POST",
        "/login/oauth/device",
        "Enter a user code",
        Form,
        Public,
        PAGE_POST,
    ),
    op(
        "GET",
        "/metrics",
        "Prometheus metrics (bearer token when configured)",
        NoInput,
        Public,
        &[Text(200, "text/plain"), E(401), E(404)],
    ),
    op("GET", "/healthz", "Liveness", NoInput, Public, &[Json(200)]),
    op(
        "GET",
        "/readyz",
        "Readiness",
        NoInput,
        Public,
        &[Json(200), Json(503)],
    ),
];

/// Every (method, full path) of the document.
pub fn operations() -> Vec<(String, &'static Operation)> {
    let mut out = Vec::new();
    for prefix in OAUTH_PREFIXES {
        for o in OAUTH_OPERATIONS {
            out.push((format!("{prefix}{}", o.path), o));
        }
    }
    for o in OPERATIONS {
        out.push((o.path.to_owned(), o));
    }
    out
}

fn method(m: &str) -> HttpMethod {
    match m {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        "OPTIONS" => HttpMethod::Options,
        other => unreachable!("no route uses {other}"),
    }
}

fn string() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).into()
}

fn error_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "error",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("The OAuth error code (`invalid_request`, `invalid_client`, `invalid_grant`, `not_found`, …)")),
        )
        .property(
            "error_description",
            ObjectBuilder::new().schema_type(Type::String),
        )
        .required("error")
        .required("error_description")
        .description(Some("Every JSON error of every endpoint (docs/api.md, Conventions)"))
        .into()
}

fn params_schema() -> Schema {
    let mut o = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "OAuth parameters (docs/api.md); unknown ones are ignored",
        ));
    for name in [
        "grant_type",
        "client_id",
        "client_secret",
        "code",
        "code_verifier",
        "redirect_uri",
        "refresh_token",
        "scope",
        "token",
        "token_type_hint",
        "device_code",
        "user_code",
        "response_type",
        "state",
        "code_challenge",
        "code_challenge_method",
        "nonce",
    ] {
        o = o.property(name, string());
    }
    o.into()
}

fn content(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn build() -> OpenApi {
    let error_ref = || RefOr::Ref(Ref::from_schema_name("OAuthError"));
    let any_object = || RefOr::T(Schema::from(ObjectBuilder::new().schema_type(Type::Object)));
    let mut paths = PathsBuilder::new();
    for (path, o) in operations() {
        let mut b = OperationBuilder::new()
            .summary(Some(o.summary))
            .operation_id(Some(format!("{} {path}", o.method)));
        for seg in path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                b = b.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(string())),
                );
            }
        }
        match o.input {
            Input::None => {}
            Input::Params => {
                b = b.request_body(Some(
                    RequestBodyBuilder::new()
                        .content(
                            "application/x-www-form-urlencoded",
                            content(RefOr::T(params_schema())),
                        )
                        .content("application/json", content(RefOr::T(params_schema())))
                        .build(),
                ))
            }
            Input::Json => {
                b = b.request_body(Some(
                    RequestBodyBuilder::new()
                        .content("application/json", content(any_object()))
                        .required(Some(Required::True))
                        .build(),
                ))
            }
            Input::Form => {
                b = b.request_body(Some(
                    RequestBodyBuilder::new()
                        .content("application/x-www-form-urlencoded", content(any_object()))
                        .build(),
                ))
            }
        }
        let security: &[&str] = match o.auth {
            Auth::Public => &[],
            Auth::Client => &["clientBasic"],
            Auth::Bearer => &["bearer"],
            Auth::BearerOrSession => &["bearer", "session"],
            Auth::Session => &["session"],
        };
        if !security.is_empty() {
            b = b.securities(Some(
                security
                    .iter()
                    .map(|s| SecurityRequirement::new::<_, [&str; 0], &str>(*s, []))
                    .collect::<Vec<_>>(),
            ));
        }
        let mut answers: Vec<Answer> = o.answers.to_vec();
        for a in EDGE {
            if !answers.contains(&a) {
                answers.push(a);
            }
        }
        let mut by_status: std::collections::BTreeMap<u16, ResponseBuilder> = Default::default();
        for a in answers {
            let (status, media, schema): (u16, Option<&str>, Option<RefOr<Schema>>) = match a {
                Answer::Json(s) => (s, Some("application/json"), Some(any_object())),
                Answer::JsonArray(s) => (
                    s,
                    Some("application/json"),
                    Some(RefOr::T(Schema::from(
                        utoipa::openapi::schema::ArrayBuilder::new().items(any_object()),
                    ))),
                ),
                Answer::Error(s) => (s, Some("application/json"), Some(error_ref())),
                Answer::Html(s) => (s, Some("text/html"), Some(RefOr::T(string()))),
                Answer::Text(s, t) => (s, Some(t), Some(RefOr::T(string()))),
                Answer::Empty(s) | Answer::Redirect(s) => (s, None, None),
            };
            let r = by_status.remove(&status).unwrap_or_else(|| {
                ResponseBuilder::new().description(match a {
                    Answer::Redirect(_) => "A redirect (Location)",
                    Answer::Empty(_) => "No body",
                    _ if status < 400 => "Success (the fields are in docs/api.md)",
                    _ => "An error",
                })
            });
            let r = match (media, schema) {
                (Some(m), Some(s)) => r.content(m, content(s)),
                _ => r,
            };
            by_status.insert(status, r);
        }
        let mut responses = ResponsesBuilder::new();
        for (status, r) in by_status {
            responses = responses.response(status.to_string(), r.build());
        }
        b = b.responses(responses.build());
        paths = paths.path(path, PathItem::new(method(o.method), b.build()));
    }
    let components = ComponentsBuilder::new()
        .schema("OAuthError", error_schema())
        .security_scheme(
            "clientBasic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        )
        .security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::new(crate::auth::SESSION_COOKIE),
            )),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Buzzgate")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("An OAuth 2.0 authorization server. The reference is docs/api.md (GET /docs/api.md)."))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

/// The document (built once).
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(build)
}

/// The document's JSON (built once).
fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_json().unwrap_or_else(|_| "{}".to_owned()))
}

/// `GET /openapi.json`: public and cacheable (it changes only with the binary).
pub async fn serve() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        json(),
    )
        .into_response()
}
