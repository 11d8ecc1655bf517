//! `/account` (docs/pages.md, SPEC 15): OAuth Apps (create, edit, rotate the secret, delete),
//! Connected Apps (the cap, revoke) and API keys (create, delete). Server-rendered forms that
//! work without JavaScript; every change is a POST carrying the session's CSRF token, checked
//! by the domain (`Caller` is only "proven" with it). Destructive actions go through a
//! confirmation page that says what goes with them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use buzzgate_domain::catalogue::{Catalogue, ScopeKind};
use buzzgate_domain::client::{Client, ClientKind, ClientRegistration, ClientUpdate, GrantType};
use buzzgate_domain::error::Error;
use buzzgate_domain::ids::{ClientId, TokenId};
use buzzgate_domain::scope::{Scope, ScopeValue};
use buzzgate_domain::service::api_keys::NewApiKey;
use minijinja::{Value, context};

use crate::AppState;
use crate::auth::ClientIp;
use crate::pages::{
    Visit, cap_fields, capitalize, error_page, login_redirect, periods, redirect, visit,
};
use crate::params::{Params, Query};
use crate::views::{self, Page};

/// The signed-in visit, or the response to send instead (the login page, or an error).
async fn signed_in(
    st: &AppState,
    headers: &HeaderMap,
    ip: &ClientIp,
    body: Option<&Params>,
    back: &str,
) -> Result<Visit, Response> {
    match visit(st, headers, ip, body).await {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(login_redirect(back)),
        Err(e) => Err(error_page(&e, None)),
    }
}

fn kind_label(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::Confidential => "Server app (confidential)",
        ClientKind::Public => "Browser / mobile app (public)",
    }
}

/// "AI Services" for a preset's exact mask, else the scope labels, shortened past six.
fn scope_summary(catalogue: &Catalogue, scope: Scope) -> String {
    if let Some(p) = catalogue.preset_of(scope) {
        return p.label.clone();
    }
    let labels: Vec<String> = catalogue
        .lines(scope)
        .into_iter()
        .map(|l| l.label)
        .collect();
    if labels.len() > 6 {
        format!("{} and {} more", labels[..6].join(", "), labels.len() - 6)
    } else {
        labels.join(", ")
    }
}

/// After a change, 303 to `/account?done=<what>` (a reload never posts twice); the page says
/// what was done from a fixed list, so a link cannot put words on it.
fn done(what: &str) -> Response {
    redirect(StatusCode::SEE_OTHER, &format!("/account?done={what}"))
}

fn done_message(what: Option<&str>) -> Option<&'static str> {
    Some(match what? {
        "app-saved" => "Your app is saved.",
        "app-deleted" => "The app is deleted, with its tokens, consents and codes.",
        "limit-saved" => "The Buzz limit is saved.",
        "app-revoked" => "The app is revoked: its tokens for your account no longer work.",
        "key-deleted" => "The API key is deleted.",
        _ => return None,
    })
}

/// `GET /account`.
pub async fn page(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query,
) -> Response {
    let v = match signed_in(&st, &headers, &ip, None, "/account").await {
        Ok(v) => v,
        Err(res) => return res,
    };
    account(&st, v, done_message(q.get("done")), None, StatusCode::OK).await
}

async fn account(
    st: &AppState,
    v: Visit,
    flash: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    match account_context(st, &v).await {
        Ok(ctx) => Page::new(
            "account.html",
            "Your account",
            context! { ..ctx, ..context! { flash, error } },
        )
        .status(status)
        .viewer(Some(v.viewer))
        .into_response(),
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

async fn account_context(st: &AppState, v: &Visit) -> Result<Value, Error> {
    let core = &st.core;
    let cat = core.catalogue();
    let apps: Vec<Value> = core
        .clients()
        .list(&v.caller)
        .await?
        .into_iter()
        .map(|s| {
            let c = &s.client;
            context! {
                id => c.id.as_str(),
                name => &c.name,
                description => &c.description,
                kind => kind_label(c.kind),
                confidential => c.kind == ClientKind::Confidential,
                verified => c.is_verified,
                scopes => scope_summary(cat, c.allowed_scopes),
                active_tokens => s.active_tokens,
                consents => s.consents,
            }
        })
        .collect();
    let connected: Vec<Value> = core
        .consents()
        .list(&v.caller)
        .await?
        .into_iter()
        .map(|a| {
            let caps: Vec<Value> = a
                .budgets
                .iter()
                .map(|b| {
                    context! {
                        spent => b.spend.min(b.limit),
                        limit => b.limit,
                        spent_text => views::thousands(b.spend),
                        limit_text => views::thousands(b.limit),
                        window => b.budget.window_label(),
                    }
                })
                .collect();
            context! {
                client_id => a.client.id.as_str(),
                name => &a.client.name,
                verified => a.client.is_verified,
                authorized => views::date(a.consent.created_at),
                scopes => cat.lines(a.consent.scope).into_iter().map(|l| l.label).collect::<Vec<_>>(),
                spends => a.consent.scope.intersects(cat.capped()) || !caps.is_empty(),
                resources => &a.consent.resources,
                caps,
            }
        })
        .collect();
    let keys: Vec<Value> = core
        .api_keys()
        .list(&v.caller)
        .await?
        .into_iter()
        .map(|k| {
            let limit = k
                .buzz_limit
                .as_ref()
                .filter(|l| !l.is_unlimited())
                .map(|l| {
                    l.budgets()
                        .iter()
                        .map(|b| {
                            format!("{} Buzz {}", views::thousands(b.limit()), b.window_label())
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                });
            context! {
                id => k.id.to_string(),
                name => k.name.clone().unwrap_or_else(|| "API key".into()),
                scopes => scope_summary(cat, k.scope),
                created => views::date(k.issued_at),
                expires => k.expires_at.map(views::date),
                limit,
            }
        })
        .collect();
    let default_key = cat.default_key_scope();
    let key_presets: Vec<Value> = cat
        .presets()
        .map(|(p, scope)| {
            context! { value => &p.name, label => &p.label, selected => scope == default_key }
        })
        .collect();
    Ok(context! { apps, connected, keys, key_presets, periods => periods() })
}

/// The app form's values, as typed (kept when the form comes back with an error).
#[derive(Debug, Default)]
struct AppForm {
    name: String,
    description: String,
    redirect_uris: String,
    confidential: bool,
    preset: String,
    ticked: Vec<String>,
    /// Grant wire names ticked (creation only).
    grants: Vec<String>,
}

impl AppForm {
    fn from_client(cat: &Catalogue, c: &Client) -> AppForm {
        AppForm {
            name: c.name.clone(),
            description: c.description.clone(),
            redirect_uris: c
                .redirect_uris
                .iter()
                .map(|u| u.as_str().to_owned())
                .collect::<Vec<_>>()
                .join("\n"),
            confidential: c.kind == ClientKind::Confidential,
            preset: cat
                .preset_of(c.allowed_scopes)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| "Custom".into()),
            ticked: cat
                .names(c.allowed_scopes)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            grants: c.grants.iter().map(|g| g.as_str().to_owned()).collect(),
        }
    }

    fn from_params(p: &Params) -> AppForm {
        AppForm {
            name: p.get("name").unwrap_or("").to_owned(),
            description: p.get("description").unwrap_or("").to_owned(),
            redirect_uris: p.get("redirect_uris").unwrap_or("").to_owned(),
            confidential: p.get("kind") != Some("public"),
            preset: p.get("preset").unwrap_or("Custom").to_owned(),
            ticked: p
                .0
                .iter()
                .filter_map(|(k, _)| k.strip_prefix("scope."))
                .map(str::to_owned)
                .collect(),
            grants: p
                .0
                .iter()
                .filter_map(|(k, _)| k.strip_prefix("grant."))
                .map(str::to_owned)
                .collect(),
        }
    }

    fn uris(&self) -> Vec<String> {
        self.redirect_uris
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn scope(&self, cat: &Catalogue) -> Result<Scope, Error> {
        Ok(cat.choose(Some(&self.preset), &self.ticked)?)
    }

    /// The boxes to show ticked: the preset's when one is chosen, else the ticked names.
    fn shown_scope(&self, cat: &Catalogue) -> Scope {
        self.scope(cat).unwrap_or_else(|_| {
            cat.parse_names(&self.ticked).unwrap_or(Scope::NONE) | cat.always_granted()
        })
    }
}

fn app_form_page(
    st: &AppState,
    v: Visit,
    id: Option<&str>,
    form: &AppForm,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let cat = st.core.catalogue();
    let shown = form.shown_scope(cat);
    let always = cat.always_granted();
    let kind_name = |k: Option<ScopeKind>| match k {
        Some(ScopeKind::Read) => "Read",
        Some(ScopeKind::Write) => "Write",
        Some(ScopeKind::Delete) => "Delete",
        None => "",
    };
    let (rows, others) = cat.grid();
    let cell = |d: &buzzgate_domain::catalogue::ScopeDef| {
        let bit = Scope::from_bits_truncate(1 << d.bit);
        context! {
            name => &d.name,
            kind => kind_name(d.kind),
            title => &d.label,
            checked => shown.contains(bit),
            always => always.contains(bit),
        }
    };
    let grid: Vec<Value> = rows
        .iter()
        .map(|r| {
            let cells: Vec<Value> = r
                .cells
                .iter()
                .map(|c| c.map(cell).unwrap_or_else(|| Value::from(())))
                .collect();
            context! { label => &r.label, cells }
        })
        .collect();
    let others: Vec<Value> = others.into_iter().map(cell).collect();
    let mut presets: Vec<Value> = cat
        .presets()
        .map(|(p, scope)| {
            context! {
                value => &p.name,
                label => &p.label,
                scopes => cat.names(scope | always).join(" "),
                selected => p.name.eq_ignore_ascii_case(&form.preset),
            }
        })
        .collect();
    let custom_selected = !cat
        .presets()
        .any(|(p, _)| p.name.eq_ignore_ascii_case(&form.preset));
    presets.push(context! { value => "Custom", label => "Custom", scopes => Value::from(()), selected => custom_selected });
    let always_label = cat
        .lines(always)
        .into_iter()
        .map(|l| l.label)
        .collect::<Vec<_>>()
        .join(", ");
    let (heading, action, submit) = match id {
        None => (
            "Create app".to_owned(),
            "/account/apps".to_owned(),
            "Create app",
        ),
        Some(id) => (
            format!("Edit {}", form.name),
            format!("/account/apps/{id}"),
            "Save",
        ),
    };
    Page::new(
        "app_form.html",
        heading.clone(),
        context! {
            heading,
            action,
            submit,
            creating => id.is_none(),
            grants => grant_choices(&form.grants),
            error,
            form => context! {
                name => &form.name,
                description => &form.description,
                redirect_uris => &form.redirect_uris,
                confidential => form.confidential,
            },
            presets,
            grid,
            others,
            always => always_label,
        },
    )
    .status(status)
    .viewer(Some(v.viewer))
    .script()
    .into_response()
}

/// The grant checkboxes of the create form, ticked as `ticked` says.
fn grant_choices(ticked: &[String]) -> Vec<Value> {
    [
        (GrantType::AuthorizationCode, "Authorization code", "People sign in and approve your app in their browser (with PKCE)."),
        (GrantType::RefreshToken, "Refresh tokens", "Your app stays signed in without asking again."),
        (GrantType::DeviceCode, "Device code", "For TVs, consoles and command lines: people approve on another screen."),
        (GrantType::ClientCredentials, "Client credentials", "Server apps only: the app acts as you, within your own cap on it."),
    ]
    .into_iter()
    .map(|(g, label, hint)| {
        context! { value => g.as_str(), label, hint, checked => ticked.iter().any(|t| t == g.as_str()) }
    })
    .collect()
}

/// `GET /account/apps/new`.
pub async fn new_app(State(st): State<AppState>, ip: ClientIp, headers: HeaderMap) -> Response {
    let v = match signed_in(&st, &headers, &ip, None, "/account/apps/new").await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let cat = st.core.catalogue();
    let preset = cat
        .presets()
        .find(|(p, _)| p.name == "ReadOnly")
        .or_else(|| cat.presets().next())
        .map(|(p, _)| p.name.clone())
        .unwrap_or_else(|| "Custom".into());
    let form = AppForm {
        confidential: true,
        preset,
        grants: GrantType::DEFAULT
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect(),
        ..AppForm::default()
    };
    app_form_page(&st, v, None, &form, None, StatusCode::OK)
}

/// A form error as a sentence ("redirect_uris: …" stays as the domain words it).
fn form_error(e: &Error) -> String {
    capitalize(&e.description())
}

/// `POST /account/apps`: creates the app; the page shows its secret once.
pub async fn create_app(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let v = match signed_in(&st, &headers, &ip, Some(&params), "/account/apps/new").await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let cat = st.core.catalogue();
    let form = AppForm::from_params(&params);
    let run = async {
        let scope = form.scope(cat)?;
        let reg = ClientRegistration {
            name: form.name.clone(),
            description: Some(form.description.clone()),
            redirect_uris: form.uris(),
            is_confidential: Some(form.confidential),
            allowed_scopes: Some(ScopeValue::Mask(scope.bits())),
            // No box ticked: the defaults (the domain refuses an empty list).
            grants: (!form.grants.is_empty()).then(|| form.grants.clone()),
            ..ClientRegistration::default()
        };
        st.core.clients().create(&v.caller, reg).await
    };
    match run.await {
        Ok(created) => {
            let secret = created.secret.as_ref().map(|s| s.expose().to_owned());
            secret_page(
                v,
                &format!("{} is ready", created.client.name),
                Some(created.client.id.as_str()),
                secret.as_deref(),
                SecretKind::Client,
            )
        }
        Err(e @ (Error::InvalidRequest(_) | Error::InvalidScope(_) | Error::Conflict(_))) => {
            let msg = form_error(&e);
            app_form_page(&st, v, None, &form, Some(msg), StatusCode::BAD_REQUEST)
        }
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

enum SecretKind {
    Client,
    ApiKey,
}

fn secret_page(
    v: Visit,
    heading: &str,
    client_id: Option<&str>,
    secret: Option<&str>,
    kind: SecretKind,
) -> Response {
    let (what, label, hint, lost) = match kind {
        SecretKind::Client => (
            "client secret",
            "Client secret",
            "Your server sends it with the client ID to the token endpoint (HTTP Basic or the form).",
            "rotate the secret to get a new one",
        ),
        SecretKind::ApiKey => (
            "API key",
            "API key",
            "Send it as `Authorization: Bearer <key>`.",
            "delete the key and create another",
        ),
    };
    let what = if secret.is_some() { what } else { "client ID" };
    Page::new(
        "secret.html",
        heading,
        context! {
            heading,
            client_id,
            secret,
            secret_label => label,
            secret_hint => hint,
            what,
            lost => if secret.is_some() { lost } else { "you can find it on your account page" },
        },
    )
    .viewer(Some(v.viewer))
    .narrow()
    .into_response()
}

fn client_id(id: &str) -> Result<ClientId, Error> {
    ClientId::parse(id).ok_or_else(|| Error::not_found("No such app"))
}

/// `GET /account/apps/{id}/edit`.
pub async fn edit_app(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let back = format!("/account/apps/{id}/edit");
    let v = match signed_in(&st, &headers, &ip, None, &back).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let client = match client_id(&id) {
        Ok(cid) => st.core.clients().get(&v.caller, &cid).await,
        Err(e) => Err(e),
    };
    match client {
        Ok(c) => {
            let form = AppForm::from_client(st.core.catalogue(), &c);
            app_form_page(&st, v, Some(c.id.as_str()), &form, None, StatusCode::OK)
        }
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

/// `POST /account/apps/{id}`: saves the edit.
pub async fn save_app(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: Params,
) -> Response {
    let back = format!("/account/apps/{id}/edit");
    let v = match signed_in(&st, &headers, &ip, Some(&params), &back).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let cat = st.core.catalogue();
    let form = AppForm::from_params(&params);
    let run = async {
        let cid = client_id(&id)?;
        let scope = form.scope(cat)?;
        let update = ClientUpdate {
            name: Some(form.name.clone()),
            description: Some(form.description.clone()),
            redirect_uris: Some(form.uris()),
            allowed_scopes: Some(ScopeValue::Mask(scope.bits())),
            ..ClientUpdate::default()
        };
        st.core.clients().update(&v.caller, &cid, update).await
    };
    match run.await {
        Ok(_) => done("app-saved"),
        Err(e @ (Error::InvalidRequest(_) | Error::InvalidScope(_))) => {
            let msg = form_error(&e);
            app_form_page(&st, v, Some(&id), &form, Some(msg), StatusCode::BAD_REQUEST)
        }
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

fn confirm(
    v: Visit,
    heading: &str,
    lines: &[&str],
    action: &str,
    button: &str,
    danger: bool,
) -> Response {
    let csrf = v.viewer.csrf.clone();
    Page::new(
        "confirm.html",
        heading,
        context! { heading, lines, action, button, danger, csrf, cancel => "/account" },
    )
    .viewer(Some(v.viewer))
    .narrow()
    .into_response()
}

/// What a confirmation page is about: rotate or delete an app.
async fn app_for_confirm(
    st: &AppState,
    headers: &HeaderMap,
    ip: &ClientIp,
    id: &str,
    back: &str,
) -> Result<(Visit, Client), Response> {
    let v = signed_in(st, headers, ip, None, back).await?;
    let client = match client_id(id) {
        Ok(cid) => st.core.clients().get(&v.caller, &cid).await,
        Err(e) => Err(e),
    };
    match client {
        Ok(c) => Ok((v, c)),
        Err(e) => Err(error_page(&e, Some(v.viewer))),
    }
}

/// `GET /account/apps/{id}/rotate`: the confirmation.
pub async fn confirm_rotate(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let back = format!("/account/apps/{id}/rotate");
    let (v, c) = match app_for_confirm(&st, &headers, &ip, &id, &back).await {
        Ok(x) => x,
        Err(res) => return res,
    };
    confirm(
        v,
        &format!("Rotate the secret of {}?", c.name),
        &[
            "A new client secret is made and shown once. The current secret stops working at once: update your server right after.",
            "Tokens already issued keep working.",
        ],
        &back,
        "Rotate secret",
        true,
    )
}

/// `POST /account/apps/{id}/rotate`: the new secret, shown once.
pub async fn rotate(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: Params,
) -> Response {
    let v = match signed_in(&st, &headers, &ip, Some(&params), "/account").await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let run = async {
        let cid = client_id(&id)?;
        let secret = st.core.clients().rotate_secret(&v.caller, &cid).await?;
        let client = st.core.clients().get(&v.caller, &cid).await?;
        Ok::<_, Error>((client, secret))
    };
    match run.await {
        Ok((c, secret)) => secret_page(
            v,
            &format!("New secret for {}", c.name),
            Some(c.id.as_str()),
            Some(secret.expose()),
            SecretKind::Client,
        ),
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

/// `GET /account/apps/{id}/delete`: the confirmation, saying what goes with the app.
pub async fn confirm_delete(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let back = format!("/account/apps/{id}/delete");
    let (v, c) = match app_for_confirm(&st, &headers, &ip, &id, &back).await {
        Ok(x) => x,
        Err(res) => return res,
    };
    confirm(
        v,
        &format!("Delete {}?", c.name),
        &[
            "The app is deleted with all its tokens, its users' consents and its unused authorization codes: everyone it signed in is signed out of it. This cannot be undone.",
            "The audit log keeps its history.",
        ],
        &back,
        "Delete",
        true,
    )
}

/// `POST /account/apps/{id}/delete`.
pub async fn delete_app(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: Params,
) -> Response {
    let v = match signed_in(&st, &headers, &ip, Some(&params), "/account").await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let run = async {
        let cid = client_id(&id)?;
        let c = st.core.clients().get(&v.caller, &cid).await?;
        st.core.clients().delete(&v.caller, &cid).await?;
        Ok::<_, Error>(c.name)
    };
    match run.await {
        Ok(_) => done("app-deleted"),
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

/// The connected app `id` of the visitor (its consent), for the limit and revoke pages.
async fn connected_app(
    st: &AppState,
    v: &Visit,
    id: &str,
) -> Result<buzzgate_domain::service::consents::ConnectedApp, Error> {
    let cid = client_id(id)?;
    st.core
        .consents()
        .list(&v.caller)
        .await?
        .into_iter()
        .find(|a| a.client.id == cid)
        .ok_or_else(|| Error::not_found("This app is not connected to your account"))
}

fn limit_page(
    v: Visit,
    app: &str,
    id: &str,
    cap: Value,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    Page::new(
        "limit.html",
        format!("Buzz limit for {app}"),
        context! {
            app,
            action => format!("/account/connected/{id}/limit"),
            cap,
            periods => periods(),
            error,
        },
    )
    .status(status)
    .viewer(Some(v.viewer))
    .narrow()
    .into_response()
}

/// `GET /account/connected/{id}/limit`: "Edit limit".
pub async fn edit_limit(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let back = format!("/account/connected/{id}/limit");
    let v = match signed_in(&st, &headers, &ip, None, &back).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    match connected_app(&st, &v, &id).await {
        Ok(a) => {
            let cap = cap_fields(&a.consent.buzz_limit, true);
            let name = a.client.name.clone();
            limit_page(v, &name, &id, cap, None, StatusCode::OK)
        }
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

/// `POST /account/connected/{id}/limit`: saves the cap (or none).
pub async fn save_limit(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: Params,
) -> Response {
    let back = format!("/account/connected/{id}/limit");
    let v = match signed_in(&st, &headers, &ip, Some(&params), &back).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let run = async {
        let a = connected_app(&st, &v, &id).await?;
        let form = params
            .cap_form()?
            .ok_or_else(|| Error::invalid_request("Buzz limit and Period are missing"))?;
        let limit = form.to_limit()?;
        st.core
            .consents()
            .set_buzz_limit(&v.caller, &a.client.id, limit)
            .await?;
        Ok::<_, Error>(a.client.name)
    };
    match run.await {
        Ok(_) => done("limit-saved"),
        Err(e @ Error::InvalidRequest(_)) => {
            let name = match connected_app(&st, &v, &id).await {
                Ok(a) => a.client.name,
                Err(_) => "this app".into(),
            };
            let cap = context! {
                limited => params.flag("buzz_cap").ok().flatten().unwrap_or(false),
                amount => params.get("buzz_amount").unwrap_or(""),
                days => params.get("buzz_period").and_then(|d| d.parse::<u32>().ok()).unwrap_or(1),
            };
            limit_page(
                v,
                &name,
                &id,
                cap,
                Some(form_error(&e)),
                StatusCode::BAD_REQUEST,
            )
        }
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

/// `GET /account/connected/{id}/revoke`: the confirmation.
pub async fn confirm_revoke(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let back = format!("/account/connected/{id}/revoke");
    let v = match signed_in(&st, &headers, &ip, None, &back).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    match connected_app(&st, &v, &id).await {
        Ok(a) => confirm(
            v,
            &format!("Revoke {}?", a.client.name),
            &[
                "The app loses access at once: its tokens for your account stop working, and it must ask again to connect.",
            ],
            &back,
            "Revoke",
            true,
        ),
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

/// `POST /account/connected/{id}/revoke`.
pub async fn revoke(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: Params,
) -> Response {
    let v = match signed_in(&st, &headers, &ip, Some(&params), "/account").await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let run = async {
        let a = connected_app(&st, &v, &id).await?;
        st.core.consents().revoke(&v.caller, &a.client.id).await?;
        Ok::<_, Error>(a.client.name)
    };
    match run.await {
        Ok(_) => done("app-revoked"),
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

/// `POST /account/keys`: creates a key; the page shows it once.
pub async fn create_key(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let v = match signed_in(&st, &headers, &ip, Some(&params), "/account").await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let run = async {
        // The limit is optional: an empty amount means none.
        let amount = params.get("buzz_amount").unwrap_or("").trim();
        let buzz_limit = if amount.is_empty() {
            None
        } else {
            let form = buzzgate_domain::buzz::CapForm {
                limited: true,
                amount: Some(amount.to_owned()),
                period_days: params.owned("buzz_period"),
            };
            Some(form.to_limit()?)
        };
        let scope = params
            .get("scope")
            .filter(|s| !s.trim().is_empty())
            .map(|s| ScopeValue::Text(s.to_owned()));
        let new = NewApiKey {
            name: params.get("name").unwrap_or("").to_owned(),
            scope,
            buzz_limit,
            expires_in_days: None,
        };
        st.core.api_keys().create(&v.caller, new).await
    };
    match run.await {
        Ok((plain, record)) => {
            let name = record.name.unwrap_or_else(|| "API key".into());
            secret_page(
                v,
                &format!("API key “{name}” created"),
                None,
                Some(plain.expose()),
                SecretKind::ApiKey,
            )
        }
        Err(e @ (Error::InvalidRequest(_) | Error::InvalidScope(_))) => {
            let msg = form_error(&e);
            account(&st, v, None, Some(&msg), StatusCode::BAD_REQUEST).await
        }
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

fn token_id(id: &str) -> Result<TokenId, Error> {
    TokenId::parse(id).ok_or_else(|| Error::not_found("No such API key"))
}

/// `GET /account/keys/{id}/delete`: the confirmation.
pub async fn confirm_delete_key(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let back = format!("/account/keys/{id}/delete");
    let v = match signed_in(&st, &headers, &ip, None, &back).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let found = match token_id(&id) {
        Ok(tid) => st.core.api_keys().list(&v.caller).await.and_then(|keys| {
            keys.into_iter()
                .find(|k| k.id == tid)
                .ok_or_else(|| Error::not_found("No such API key"))
        }),
        Err(e) => Err(e),
    };
    match found {
        Ok(k) => confirm(
            v,
            &format!("Delete the API key “{}”?", k.name.unwrap_or_default()),
            &["Scripts using it stop working at once. This cannot be undone."],
            &back,
            "Delete",
            true,
        ),
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

/// `POST /account/keys/{id}/delete`.
pub async fn delete_key(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: Params,
) -> Response {
    let v = match signed_in(&st, &headers, &ip, Some(&params), "/account").await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let run = async {
        let tid = token_id(&id)?;
        st.core.api_keys().delete(&v.caller, tid).await
    };
    match run.await {
        Ok(()) => done("key-deleted"),
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}
