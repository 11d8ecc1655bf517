//! The JSON APIs of SPEC 3.6, 3.9 and 3.10: Buzz, app management, Connected Apps, personal
//! API keys, and the admin switches.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use buzzgate_domain::ScopeValue;
use buzzgate_domain::buzz::BuzzLimit;
use buzzgate_domain::client::{AccessMode, ClientRegistration, ClientUpdate};
use buzzgate_domain::error::Error;
use buzzgate_domain::ids::{ClientId, SpendId, TokenId};
use buzzgate_domain::service::Access;
use buzzgate_domain::service::api_keys::NewApiKey;
use buzzgate_domain::service::buzz::SpendCall;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::{self, ApiCaller, ClientIp};
use crate::error::ApiResult;
use crate::params::{Json, Params};
use crate::responses::{
    ApiKeyBody, BuzzAccountBody, BuzzOverviewBody, CapBody, ClientBody, ConsentBody,
    LedgerEntryBody, LimitsBody, RefundBody, SecretBody, SessionBody, SpendBody, TrpcBody,
};

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn ok(body: impl Serialize) -> Response {
    axum::Json(body).into_response()
}

// --- Buzz (SPEC 3.6) ---------------------------------------------------------------------

/// `GET /api/v1/buzz` (BuzzRead): balances and recent history.
pub async fn buzz_overview(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let caller = auth::bearer_caller(&st.core, &headers).await?;
    let o = st.core.buzz().overview(&caller).await?;
    Ok(ok(BuzzOverviewBody {
        balances: o.balances.iter().map(|(c, b)| (c.as_str(), *b)).collect(),
        history: o.history.iter().map(LedgerEntryBody::from).collect(),
    }))
}

/// `GET /api/trpc/buzz.getUserAccount` (BuzzRead): Civitai's tRPC procedure that its app SDK
/// (`fetchBuzzAccount`) reads, in tRPC's superjson envelope. A compatibility route:
/// `/api/v1/buzz` is the primary one.
pub async fn trpc_buzz_account(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let caller = auth::bearer_caller(&st.core, &headers).await?;
    let accounts = st.core.buzz().accounts(&caller).await?;
    let res = ok(TrpcBody::new(
        accounts
            .iter()
            .map(BuzzAccountBody::from)
            .collect::<Vec<_>>(),
    ));
    Ok(res)
}

/// `POST /api/v1/buzz/spend`: a resource server (HTTP Basic) spends for the token's user.
pub async fn buzz_spend(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let caller = auth::caller(&st.core, &headers, &ip, Some(&params)).await?;
    let amount = parse_amount(
        params
            .get("amount")
            .ok_or_else(|| Error::invalid_request("Missing amount"))?,
    )?;
    let call = SpendCall {
        token: params
            .owned("token")
            .ok_or_else(|| Error::invalid_request("Missing token"))?,
        amount,
        currency: params.owned("currency"),
        purpose: params
            .owned("purpose")
            .ok_or_else(|| Error::invalid_request("Missing purpose"))?,
        idempotency_key: params
            .owned("idempotency_key")
            .or_else(|| params.owned("idempotencyKey"))
            .or_else(|| {
                headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .ok_or_else(|| Error::invalid_request("Missing idempotency_key"))?,
        description: params.owned("description"),
    };
    let r = st.core.buzz().spend(&caller, call).await?;
    let res = ok(SpendBody {
        amount: r.entry.amount,
        balance: r.balance,
        currency: r.entry.currency.as_str(),
        id: r.entry.id.to_string(),
        limits: &r.limits,
        replayed: r.replayed,
    });
    Ok(res)
}

/// A spend amount exactly as written: ASCII digits only (no sign, no spaces, no fraction, no
/// exponent), so `"+5"` or `" 5"` is refused rather than read as 5.
fn parse_amount(text: &str) -> Result<u64, Error> {
    let bad = || Error::invalid_request("amount must be a positive whole number");
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u64>().map_err(|_| bad())
}

/// `POST /api/v1/buzz/spend/{id}/refund`, by the resource server that made the spend.
pub async fn buzz_refund(
    State(st): State<AppState>,
    ip: ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let caller = auth::caller(&st.core, &headers, &ip, Some(&params)).await?;
    let id = SpendId::parse(&id).ok_or_else(|| Error::not_found("No such spend"))?;
    let (entry, balance) = st.core.buzz().refund(&caller, id).await?;
    Ok(ok(RefundBody {
        balance,
        id: entry.id.to_string(),
        refunded_at: entry.refunded_at.map(rfc3339),
    }))
}

/// `GET /api/v1/buzz/limits`: the bearer's app's budgets for its user.
pub async fn buzz_limits(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let caller = auth::bearer_caller(&st.core, &headers).await?;
    let limits = st.core.buzz().limits(&caller).await?;
    Ok(ok(LimitsBody { limits: &limits }))
}

// --- The session (SPEC 13) ---------------------------------------------------------------

/// `GET /api/v1/session`: who is signed in, and the CSRF token a page's script sends as
/// `X-CSRF-Token` on session-authenticated JSON changes. Same-origin scripts only: no CORS
/// header is ever sent here, so another site cannot read the token.
pub async fn session_info(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let caller = auth::session_caller(&st.core, &headers, &ip, None).await?;
    let s = caller.signed_in(Access::Read)?;
    let res = ok(SessionBody {
        csrf_token: &s.csrf_token,
        is_admin: s.admin,
        signed_in_at: rfc3339(s.signed_in_at),
        user_id: s.user.0,
    });
    Ok(res)
}

// --- Apps (SPEC 3.9) ---------------------------------------------------------------------

fn client_id(id: &str) -> Result<ClientId, Error> {
    ClientId::parse(id).ok_or_else(|| Error::not_found("No such OAuth client"))
}

/// The create body. `allowedScopes` (or seed 004's `scopes`) may be a mask, names, or an
/// array of names; the catalogue reads them in the domain.
fn registration(body: Value) -> Result<ClientRegistration, Error> {
    serde_json::from_value(body).map_err(|e| {
        Error::invalid_request(format!(
            "Invalid client registration: {}",
            e.to_string().chars().take(200).collect::<String>()
        ))
    })
}

/// `POST /api/v1/oauth/clients` → 201 `{clientId, clientSecret|null, …}`; the secret is shown once.
pub async fn clients_create(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let reg = registration(body)?;
    let created = st.core.clients().create(&caller, reg).await?;
    let body = ClientBody::created(
        &created.client,
        created.secret.as_ref().map(|s| s.expose()),
        st.core.catalogue(),
    );
    let res = (StatusCode::CREATED, axum::Json(body)).into_response();
    Ok(res)
}

pub async fn clients_list(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> ApiResult<Response> {
    let list = st.core.clients().list(&caller).await?;
    Ok(ok(list
        .iter()
        .map(|s| ClientBody::summary(s, st.core.catalogue()))
        .collect::<Vec<_>>()))
}

pub async fn clients_get(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = st.core.clients().get(&caller, &client_id(&id)?).await?;
    Ok(ok(ClientBody::new(&c, st.core.catalogue())))
}

pub async fn clients_update(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    Json(update): Json<ClientUpdate>,
) -> ApiResult<Response> {
    let c = st
        .core
        .clients()
        .update(&caller, &client_id(&id)?, update)
        .await?;
    Ok(ok(ClientBody::new(&c, st.core.catalogue())))
}

/// `POST …/{id}/rotate-secret` (seed 004: `reset-secret`): the old secret dies at once.
pub async fn clients_rotate(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = client_id(&id)?;
    let secret = st.core.clients().rotate_secret(&caller, &id).await?;
    let res = ok(SecretBody {
        client_id: id.as_str(),
        client_secret: secret.expose(),
    });
    Ok(res)
}

pub async fn clients_delete(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    st.core.clients().delete(&caller, &client_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminClientPatch {
    is_verified: Option<bool>,
    access_mode: Option<String>,
    is_resource_server: Option<bool>,
}

/// `PATCH /api/v1/admin/oauth/clients/{id}`: verified badge, access mode, resource-server role.
pub async fn admin_client(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    Json(p): Json<AdminClientPatch>,
) -> ApiResult<Response> {
    let mode = match p.access_mode.as_deref() {
        Some(m) => Some(AccessMode::parse(m).ok_or_else(|| {
            Error::invalid_request("accessMode must be open, testers or disabled")
        })?),
        None => None,
    };
    let c = st
        .core
        .clients()
        .administer(
            &caller,
            &client_id(&id)?,
            p.is_verified,
            mode,
            p.is_resource_server,
        )
        .await?;
    Ok(ok(ClientBody::new(&c, st.core.catalogue())))
}

// --- Connected Apps (SPEC 3.10) ------------------------------------------------------------

pub async fn consents_list(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> ApiResult<Response> {
    let apps = st.core.consents().list(&caller).await?;
    Ok(ok(apps
        .iter()
        .map(|a| ConsentBody::new(a, st.core.catalogue()))
        .collect::<Vec<_>>()))
}

/// The cap body: a `BuzzBudget[]` array, `null`, or an object with exactly one key,
/// `buzzLimit` (or `buzz_limit`), holding one of those. Only an explicit `null` or `[]` clears
/// the cap: a body of any other shape is refused with the reason, never read as "no cap".
fn limit_of(body: Value) -> Result<BuzzLimit, Error> {
    const SHAPE: &str = "Send the cap as a BuzzBudget[] array (e.g. [{\"type\":\"sliding\",\"limit\":5,\"window\":\"day\",\"unit\":1}]), null to remove it, or {\"buzzLimit\": <one of those>}";
    let v = match body {
        Value::Object(mut o) => {
            let key = ["buzzLimit", "buzz_limit"]
                .into_iter()
                .find(|k| o.contains_key(*k));
            match key {
                Some(k) if o.len() == 1 => o.remove(k).unwrap_or(Value::Null),
                Some(_) => {
                    return Err(Error::invalid_request(format!(
                        "Unexpected fields beside buzzLimit. {SHAPE}"
                    )));
                }
                None => {
                    let keys: Vec<String> = o.keys().take(5).cloned().collect();
                    return Err(Error::invalid_request(format!(
                        "An object needs a buzzLimit field (got {}). {SHAPE}",
                        if keys.is_empty() {
                            "an empty object".to_owned()
                        } else {
                            keys.join(", ")
                        }
                    )));
                }
            }
        }
        other => other,
    };
    match v {
        Value::Null => Ok(BuzzLimit::unlimited()),
        Value::Array(_) => BuzzLimit::parse_json(&v.to_string()),
        _ => Err(Error::invalid_request(format!(
            "buzz_limit failed validation. {SHAPE}"
        ))),
    }
}

pub async fn consents_set_limit(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let limit = limit_of(body)?;
    let c = st
        .core
        .consents()
        .set_buzz_limit(&caller, &client_id(&id)?, limit)
        .await?;
    Ok(ok(CapBody {
        buzz_limit: &c.buzz_limit,
        client_id: c.client_id.as_str(),
        updated_at: rfc3339(c.updated_at),
    }))
}

pub async fn consents_revoke(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    st.core.consents().revoke(&caller, &client_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --- Personal API keys (SPEC 3.10) ---------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    scope: Option<Value>,
    buzz_limit: Option<Value>,
    expires_in_days: Option<u32>,
}

/// `POST /api/v1/api-keys` (session only): `{name, scope?, buzzLimit?, expiresInDays?}`; the
/// key is in the response once.
pub async fn keys_create(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Json(body): Json<CreateKey>,
) -> ApiResult<Response> {
    let scope = match body.scope {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value::<ScopeValue>(v).map_err(|_| {
            Error::invalid_scope("scope must be a mask, a string of names or an array of names")
        })?),
    };
    let buzz_limit = match body.buzz_limit {
        None | Some(Value::Null) => None,
        Some(v) => Some(BuzzLimit::parse_json(&v.to_string())?),
    };
    let (plain, record) = st
        .core
        .api_keys()
        .create(
            &caller,
            NewApiKey {
                name: body.name,
                scope,
                buzz_limit,
                expires_in_days: body.expires_in_days,
            },
        )
        .await?;
    let body = ApiKeyBody {
        key: Some(plain.expose()),
        ..ApiKeyBody::new(&record, st.core.catalogue())
    };
    let res = (StatusCode::CREATED, axum::Json(body)).into_response();
    Ok(res)
}

pub async fn keys_list(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> ApiResult<Response> {
    let keys = st.core.api_keys().list(&caller).await?;
    Ok(ok(keys
        .iter()
        .map(|k| ApiKeyBody::new(k, st.core.catalogue()))
        .collect::<Vec<_>>()))
}

pub async fn keys_delete(
    State(st): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = TokenId::parse(&id).ok_or_else(|| Error::not_found("No such API key"))?;
    st.core.api_keys().delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_004_scopes_become_allowed_scopes() {
        let r = registration(json!({"name": "x", "redirectUris": ["https://a.example/cb"], "scopes": ["UserRead", "BuzzRead"]})).unwrap();
        assert_eq!(
            r.allowed_scopes,
            Some(ScopeValue::Names(vec![
                "UserRead".into(),
                "BuzzRead".into()
            ]))
        );
        let r = registration(json!({"name": "x", "allowedScopes": 114689})).unwrap();
        assert_eq!(r.allowed_scopes, Some(ScopeValue::Mask(114_689)));
        let e = registration(json!({"name": "x", "scopes": [5]})).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        let e = registration(json!({"name": 5})).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
    }

    #[test]
    fn amounts_are_plain_digits() {
        assert_eq!(parse_amount("5").unwrap(), 5);
        assert_eq!(parse_amount("1000000000").unwrap(), 1_000_000_000);
        for bad in [
            "+5",
            " 5",
            "5 ",
            "-5",
            "5.0",
            "1e3",
            "",
            "0x10",
            "99999999999999999999",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_cap_body_of_an_unknown_shape_is_refused_not_read_as_no_cap() {
        for bad in [
            json!({"limit": 5, "period": "day"}),
            json!({}),
            json!({"buzzLimit": [], "limit": 5}),
            json!("5"),
            json!(5),
            json!({"buzzLimit": {"limit": 5}}),
        ] {
            let e = limit_of(bad.clone()).unwrap_err();
            assert_eq!(e.code(), "invalid_request", "{bad}");
            assert!(
                e.description().contains("BuzzBudget[]"),
                "{bad}: {}",
                e.description()
            );
        }
        assert!(limit_of(json!([])).unwrap().is_unlimited());
    }

    #[test]
    fn limit_bodies() {
        assert!(limit_of(Value::Null).unwrap().is_unlimited());
        assert!(limit_of(json!({"buzzLimit": null})).unwrap().is_unlimited());
        let l = limit_of(json!([{"type": "absolute", "limit": 10}])).unwrap();
        assert_eq!(l.budgets().len(), 1);
        let l = limit_of(json!({"buzzLimit": [{"type": "absolute", "limit": 10}]})).unwrap();
        assert_eq!(l.budgets().len(), 1);
        assert_eq!(
            limit_of(json!([{"type": "absolute", "limit": 0}]))
                .unwrap_err()
                .code(),
            "invalid_request"
        );
    }
}
