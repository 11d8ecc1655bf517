//! `/admin` (docs/pages.md, SPEC 15): apps with their verified badge and access mode, and the
//! audit log with filters, paged. Admins only (the domain answers 403 to anyone else); the
//! same audit query as JSON at `GET /api/v1/admin/audit`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use buzzgate_domain::audit::{AuditEvent, AuditKind, AuditQuery};
use buzzgate_domain::client::{AccessMode, ClientKind};
use buzzgate_domain::error::Error;
use buzzgate_domain::ids::{ClientId, UserId};
use buzzgate_domain::service::admin::AuditFilter;
use minijinja::{Value, context};
use serde::Serialize;

use crate::AppState;
use crate::auth::{ApiCaller, ClientIp};
use crate::error::ApiResult;
use crate::pages::{Visit, capitalize, error_page, login_redirect, redirect, visit};
use crate::params::{Params, Query};
use crate::views::{self, Page};

/// Events per page of `/admin`.
const PAGE_SIZE: usize = 50;

fn filter_of(p: &Params) -> AuditFilter {
    AuditFilter {
        user: p.owned("user"),
        client: p.owned("client"),
        kind: p.owned("kind"),
        since: p.owned("since"),
        until: p.owned("until"),
        limit: p.owned("limit"),
        offset: p.owned("offset"),
    }
}

/// `/admin?…` with `offset` replaced (the pager's links).
fn page_link(p: &Params, offset: usize) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &p.0 {
        if k != "offset" && k != "limit" && k != "done" && !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    if offset > 0 {
        q.append_pair("offset", &offset.to_string());
    }
    let qs = q.finish();
    if qs.is_empty() {
        "/admin".into()
    } else {
        format!("/admin?{qs}")
    }
}

fn details(e: &AuditEvent) -> String {
    let mut parts: Vec<String> = e.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(ip) = &e.ip {
        parts.push(format!("ip={ip}"));
    }
    parts.join(" ")
}

/// `GET /admin`.
pub async fn page(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(params): Query,
) -> Response {
    let v = match visit(&st, &headers, &ip, None).await {
        Ok(Some(v)) => v,
        Ok(None) => return login_redirect("/admin"),
        Err(e) => return error_page(&e, None),
    };
    let flash = match params.get("done") {
        Some("verified") => Some("The app is verified."),
        Some("unverified") => Some("The app is no longer verified."),
        Some("access-mode") => Some("The access mode is saved."),
        _ => None,
    };
    render(&st, v, &params, flash).await
}

async fn render(st: &AppState, v: Visit, params: &Params, flash: Option<&str>) -> Response {
    let q = params.get("q").unwrap_or("").trim().to_owned();
    let apps = match st.core.admin().search_apps(&v.caller, &q, 50).await {
        Ok(apps) => apps,
        Err(e) => return error_page(&e, Some(v.viewer)),
    };
    let owners = usernames(st, apps.iter().map(|c| c.owner)).await;
    let apps: Vec<Value> = apps
        .iter()
        .map(|c| {
            context! {
                id => c.id.as_str(),
                name => &c.name,
                verified => c.is_verified,
                kind => match c.kind { ClientKind::Confidential => "confidential", ClientKind::Public => "public" },
                owner => if c.is_unowned() {
                    "nobody (registered itself)".to_owned()
                } else {
                    owners.get(&c.owner).cloned().unwrap_or_default()
                },
                access_mode => c.access_mode.as_str(),
            }
        })
        .collect();
    let mut filter = filter_of(params);
    filter.limit = Some(PAGE_SIZE.to_string());
    let (error, events, offset) = match st.core.admin().audit_filtered(&v.caller, &filter).await {
        Ok((query, events)) => (None, events, query.offset),
        Err(e @ Error::InvalidRequest(_)) => (Some(capitalize(&e.description())), Vec::new(), 0),
        Err(e) => return error_page(&e, Some(v.viewer)),
    };
    let older = (events.len() == PAGE_SIZE).then(|| page_link(params, offset + PAGE_SIZE));
    let newer = (offset > 0).then(|| page_link(params, offset.saturating_sub(PAGE_SIZE)));
    let names = usernames(st, events.iter().filter_map(|e| e.user_id)).await;
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            context! {
                at => views::timestamp(e.at),
                kind => e.kind.as_str(),
                user => e.user_id.and_then(|u| names.get(&u).cloned()).unwrap_or_default(),
                client => e.client_id.as_ref().map(|c| c.as_str().to_owned()).unwrap_or_default(),
                details => details(e),
            }
        })
        .collect();
    let access_modes: Vec<Value> = [
        (AccessMode::Open, "Open: anyone"),
        (AccessMode::Testers, "Testers only"),
        (AccessMode::Disabled, "Disabled"),
    ]
    .into_iter()
    .map(|(m, label)| context! { value => m.as_str(), label })
    .collect();
    let text = |k: &str| params.get(k).unwrap_or("").to_owned();
    Page::new(
        "admin.html",
        "Admin",
        context! {
            q,
            apps,
            access_modes,
            kinds => AuditKind::ALL.map(AuditKind::as_str).to_vec(),
            filters => context! {
                user => text("user"), client => text("client"), kind => text("kind"),
                since => text("since"), until => text("until"),
            },
            events,
            page => offset / PAGE_SIZE + 1,
            older,
            newer,
            flash,
            error,
        },
    )
    .viewer(Some(v.viewer))
    .into_response()
}

/// "alice (1)" for each user id (looked up once each; a deleted user shows its id).
async fn usernames(st: &AppState, ids: impl Iterator<Item = UserId>) -> HashMap<UserId, String> {
    let mut names = HashMap::new();
    for id in ids {
        if let Entry::Vacant(slot) = names.entry(id) {
            let name = match st.core.deps.users.get(id).await {
                Ok(Some(u)) => format!("{} ({})", u.username, id.0),
                _ => id.0.to_string(),
            };
            slot.insert(name);
        }
    }
    names
}

async fn admin_post(
    st: &AppState,
    headers: &HeaderMap,
    ip: &ClientIp,
    params: &Params,
    id: &str,
    verified: Option<bool>,
    mode: Option<AccessMode>,
) -> Response {
    let v = match visit(st, headers, ip, Some(params)).await {
        Ok(Some(v)) => v,
        Ok(None) => return login_redirect("/admin"),
        Err(e) => return error_page(&e, None),
    };
    let run = async {
        let cid = ClientId::parse(id).ok_or_else(|| Error::not_found("No such app"))?;
        st.core
            .clients()
            .administer(&v.caller, &cid, verified, mode, None)
            .await
    };
    match run.await {
        Ok(_) => {
            let what = match verified {
                Some(true) => "verified",
                Some(false) => "unverified",
                None => "access-mode",
            };
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            if let Some(text) = params.get("q").filter(|t| !t.is_empty()) {
                q.append_pair("q", text);
            }
            q.append_pair("done", what);
            redirect(StatusCode::SEE_OTHER, &format!("/admin?{}", q.finish()))
        }
        Err(e) => error_page(&e, Some(v.viewer)),
    }
}

/// `POST /admin/apps/{id}/verify` (`verified=true|false`).
pub async fn verify(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: Params,
) -> Response {
    match params.flag("verified") {
        Ok(v) => {
            admin_post(
                &st,
                &headers,
                &ip,
                &params,
                &id,
                Some(v.unwrap_or(true)),
                None,
            )
            .await
        }
        Err(e) => error_page(&e, None),
    }
}

/// `POST /admin/apps/{id}/access-mode` (`access_mode=open|testers|disabled`).
pub async fn access_mode(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: Params,
) -> Response {
    match AccessMode::parse(params.get("access_mode").unwrap_or("")) {
        Some(m) => admin_post(&st, &headers, &ip, &params, &id, None, Some(m)).await,
        None => error_page(
            &Error::invalid_request("access_mode must be open, testers or disabled"),
            None,
        ),
    }
}

/// The JSON answer of `GET /api/v1/admin/audit`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub limit: usize,
    pub offset: usize,
    /// The offset of the next (older) page, when this one was full.
    pub next_offset: Option<usize>,
}

impl AuditPage {
    pub fn new(query: &AuditQuery, events: Vec<AuditEvent>) -> AuditPage {
        let limit = query.effective_limit();
        AuditPage {
            next_offset: (events.len() == limit).then_some(query.offset + limit),
            events,
            limit,
            offset: query.offset,
        }
    }
}

/// `GET /api/v1/admin/audit?user=&client=&kind=&since=&until=&limit=&offset=`: an admin's
/// session (or nothing: 401), newest first.
pub async fn audit_api(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Query(params): Query,
) -> ApiResult<Response> {
    let (query, events) = st
        .core
        .admin()
        .audit_filtered(&caller, &filter_of(&params))
        .await?;
    Ok(axum::Json(AuditPage::new(&query, events)).into_response())
}
