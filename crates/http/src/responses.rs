//! The JSON bodies of the endpoints, one type per response shape (issue 9.4). Each type
//! names its endpoints and the section of `docs/api.md` that documents them.
//!
//! **Key order.** These types replaced `serde_json::json!` bodies. serde_json is built
//! without its `preserve_order` feature here (no crate of the workspace or its dependencies
//! enables it), so those bodies came out with every object's keys sorted by byte value. To
//! keep the wire byte for byte as clients saw it, the fields of every type are declared in
//! the byte order of their wire names, and nested domain values whose own field order is not
//! sorted (budgets, caps) are written through [`sorted`]. The tests of this module check the
//! order of every shape.

use std::borrow::Cow;
use std::collections::BTreeMap;

use buzzgate_domain::Catalogue;
use buzzgate_domain::buzz::{BudgetStatus, BuzzLimit, LedgerEntry};
use buzzgate_domain::client::Client;
use buzzgate_domain::error::Error;
use buzzgate_domain::ports::ClientSummary;
use buzzgate_domain::service::buzz::BuzzAccount;
use buzzgate_domain::service::consents::ConnectedApp;
use buzzgate_domain::service::device::DeviceStarted;
use buzzgate_domain::service::tokens::{Me, Subject, UserInfo};
use buzzgate_domain::token::{TokenRecord, TokenResponse};
use serde::{Serialize, Serializer};

use crate::api::rfc3339;

/// Writes `value` with the keys of each of its objects sorted, as a `json!` body did: through
/// `serde_json::Value`, whose map keeps its keys in order.
fn sorted<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    serde_json::to_value(value)
        .map_err(serde::ser::Error::custom)?
        .serialize(s)
}

// --- Errors, health ----------------------------------------------------------------------

/// Every error of every endpoint, including the JWKS's 404 without a signing key
/// (`docs/api.md`, "Conventions", **Errors**).
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: &'static str,
    pub error_description: Cow<'static, str>,
}

impl ErrorBody {
    pub fn of(error: &Error) -> Self {
        ErrorBody {
            error: error.code(),
            error_description: error.description(),
        }
    }
}

/// `GET /healthz` (`docs/api.md`, "Sign-in, the session and health").
#[derive(Debug, Serialize)]
pub struct HealthBody {
    pub status: &'static str,
}

/// `GET /readyz` (`docs/api.md`, "Sign-in, the session and health"): `ready`, `degraded`
/// with the failing optional dependencies, or `unavailable` with the failing required ones,
/// each by name with its error.
#[derive(Debug, Serialize)]
pub struct ReadyBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<BTreeMap<String, String>>,
    pub status: &'static str,
}

// --- Discovery ---------------------------------------------------------------------------

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`
/// (`docs/api.md`, "Discovery"). `jwks_uri` and `id_token_signing_alg_values_supported`
/// only with a signing key.
#[derive(Debug, Serialize)]
pub struct MetadataBody {
    pub authorization_endpoint: String,
    pub authorization_response_iss_parameter_supported: bool,
    pub claims_supported: &'static [&'static str],
    pub client_id_metadata_document_supported: bool,
    pub code_challenge_methods_supported: &'static [&'static str],
    pub device_authorization_endpoint: String,
    pub grant_types_supported: &'static [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_signing_alg_values_supported: Option<&'static [&'static str]>,
    pub introspection_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: &'static [&'static str],
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// RFC 7591, when the operator keeps registration open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    pub response_modes_supported: &'static [&'static str],
    pub response_types_supported: &'static [&'static str],
    pub revocation_endpoint: String,
    pub revocation_endpoint_auth_methods_supported: &'static [&'static str],
    pub scopes_supported: Vec<String>,
    pub service_documentation: String,
    pub subject_types_supported: &'static [&'static str],
    pub token_endpoint: String,
    pub token_endpoint_auth_methods_supported: &'static [&'static str],
    pub userinfo_endpoint: String,
}

// --- OAuth endpoints ---------------------------------------------------------------------

/// `POST /token` and `/device-token` (`docs/api.md`, "`POST /api/auth/oauth/token`"): the
/// RFC 6749 §5.1 body; `refresh_token` and `id_token` only when issued.
#[derive(Debug, Serialize)]
pub struct TokenBody<'a> {
    pub access_token: &'a str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'a str>,
    pub scope: TokenScope,
    pub token_type: &'static str,
}

/// A token response's `scope`: the decimal string, or Civitai's `["<decimal>"]` array.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum TokenScope {
    Decimal(String),
    Array([String; 1]),
}

impl<'a> TokenBody<'a> {
    pub fn new(t: &'a TokenResponse, scope_as_array: bool) -> Self {
        let scope = t.scope.to_decimal_string();
        TokenBody {
            access_token: t.access_token.expose(),
            expires_in: t.expires_in,
            id_token: t.id_token.as_deref(),
            refresh_token: t.refresh_token.as_ref().map(|r| r.expose()),
            scope: if scope_as_array {
                TokenScope::Array([scope])
            } else {
                TokenScope::Decimal(scope)
            },
            token_type: "Bearer",
        }
    }
}

/// `POST /revoke` (`docs/api.md`, "`POST /api/auth/oauth/revoke` (RFC 7009)"): always `{}`.
#[derive(Debug, Serialize)]
pub struct EmptyBody {}

/// `POST /introspect` (`docs/api.md`, "`POST /api/auth/oauth/introspect` (RFC 7662)"):
/// the active token, or only `{"active": false}`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum IntrospectionBody<'a> {
    Active(ActiveTokenBody<'a>),
    Inactive { active: bool },
}

/// An active token's introspection. `buzz_limit` and `username` are `null` when absent;
/// `client_id` (API keys), `exp` (keys that never expire) and `token_type` (refresh tokens,
/// which are not bearers) are left out.
#[derive(Debug, Serialize)]
pub struct ActiveTokenBody<'a> {
    pub active: bool,
    /// RFC 7662 / RFC 8707: the resource (a string) or resources (an array) the token is
    /// for; absent when it is for any.
    #[serde(skip_serializing_if = "Audience::is_any")]
    pub aud: Audience<'a>,
    #[serde(serialize_with = "sorted")]
    pub buzz_limit: Option<&'a BuzzLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    pub iat: i64,
    pub iss: &'a str,
    pub scope: String,
    pub sub: String,
    pub token_kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    pub username: Option<&'a str>,
}

impl<'a> ActiveTokenBody<'a> {
    pub fn new(
        r: &'a TokenRecord,
        username: Option<&'a str>,
        buzz_limit: Option<&'a BuzzLimit>,
        issuer: &'a str,
    ) -> Self {
        ActiveTokenBody {
            active: true,
            aud: Audience(&r.audience),
            buzz_limit,
            client_id: r.client_id.as_ref().map(|c| c.as_str()),
            exp: r.expires_at.map(|e| e.unix_timestamp()),
            iat: r.issued_at.unix_timestamp(),
            iss: issuer,
            scope: r.scope.to_decimal_string(),
            sub: r.user_id.0.to_string(),
            token_kind: r.kind.type_hint(),
            // RFC 7662 `token_type` is the RFC 6749 §7.1 type, which only a bearer has.
            token_type: r.kind.is_bearer().then_some("Bearer"),
            username,
        }
    }
}

/// A token's audience on the wire (RFC 7519 §4.1.3 `aud`): one resource as a string, several
/// as an array.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a>(pub &'a [String]);

impl Audience<'_> {
    pub fn is_any(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Audience<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

/// `GET|POST /userinfo` (`docs/api.md`, "`GET|POST /api/auth/oauth/userinfo`"): `sub`
/// always; every other claim only when released and known (`id` with `username`).
#[derive(Debug, Serialize)]
pub struct UserInfoBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

impl From<UserInfo> for UserInfoBody {
    fn from(u: UserInfo) -> Self {
        UserInfoBody {
            email: u.email,
            email_verified: u.email_verified,
            id: u.username.as_ref().map(|_| u.id.0),
            name: u.name,
            picture: u.picture,
            preferred_username: u.preferred_username,
            sub: u.id.0.to_string(),
            username: u.username,
        }
    }
}

/// `GET /api/v1/me` (`docs/api.md`, "For resource servers"). `buzzLimit` is `null` when
/// absent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeBody<'a> {
    /// As in introspection: the resource or resources the token is for, absent for any.
    #[serde(skip_serializing_if = "Audience::is_any")]
    pub aud: Audience<'a>,
    #[serde(serialize_with = "sorted")]
    pub buzz_limit: Option<&'a BuzzLimit>,
    pub id: i64,
    pub subject: SubjectBody<'a>,
    pub token_scope: u64,
    pub token_scope_names: Vec<&'a str>,
    pub username: &'a str,
}

/// `/api/v1/me`'s `subject`: `{"type": "oauth", "id": <client id>}` or
/// `{"type": "apiKey", "id": <key id>}`.
#[derive(Debug, Serialize)]
pub struct SubjectBody<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl<'a> MeBody<'a> {
    pub fn new(me: &'a Me, catalogue: &'a Catalogue) -> Self {
        let subject = match &me.subject {
            Subject::OAuth(c) => SubjectBody {
                id: c.as_str(),
                kind: "oauth",
            },
            Subject::ApiKey(id) => SubjectBody { id, kind: "apiKey" },
        };
        MeBody {
            aud: Audience(&me.audience),
            buzz_limit: me.buzz_limit.as_ref(),
            id: me.id.0,
            subject,
            token_scope: me.token_scope.bits(),
            token_scope_names: catalogue.names(me.token_scope),
            username: &me.username,
        }
    }
}

/// `POST /device` (`docs/api.md`, "Device flow (RFC 8628)"): the RFC 8628 §3.2 body.
#[derive(Debug, Serialize)]
pub struct DeviceBody<'a> {
    pub device_code: &'a str,
    pub expires_in: i64,
    pub interval: u64,
    pub user_code: &'a str,
    pub verification_uri: &'a str,
    pub verification_uri_complete: &'a str,
}

impl<'a> From<&'a DeviceStarted> for DeviceBody<'a> {
    fn from(d: &'a DeviceStarted) -> Self {
        DeviceBody {
            device_code: d.device_code.expose(),
            expires_in: d.expires_in,
            interval: d.interval,
            user_code: d.user_code.as_str(),
            verification_uri: &d.verification_uri,
            verification_uri_complete: &d.verification_uri_complete,
        }
    }
}

/// `POST /device-info` (`docs/api.md`, "Device flow (RFC 8628)"): which app asks for what.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfoBody<'a> {
    pub client_id: &'a str,
    pub client_name: &'a str,
    pub expires_at: String,
    pub is_verified: bool,
    pub scope: u64,
    pub scope_names: Vec<&'a str>,
    pub user_code: &'a str,
}

/// `POST /device-approve` (`docs/api.md`, "Device flow (RFC 8628)").
#[derive(Debug, Serialize)]
pub struct DeviceApprovalBody {
    pub approved: bool,
    pub success: bool,
}

// --- Buzz --------------------------------------------------------------------------------

/// `GET /api/v1/buzz` (`docs/api.md`, "Buzz"): balances by currency, and the history.
#[derive(Debug, Serialize)]
pub struct BuzzOverviewBody<'a> {
    pub balances: BTreeMap<&'a str, i64>,
    pub history: Vec<LedgerEntryBody<'a>>,
}

/// One spend of `GET /api/v1/buzz`'s `history`; `description` and `refundedAt` are `null`
/// when absent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntryBody<'a> {
    pub amount: u64,
    pub created_at: String,
    pub currency: &'a str,
    pub description: Option<&'a str>,
    pub id: String,
    pub idempotency_key: &'a str,
    pub purpose: &'static str,
    pub refunded_at: Option<String>,
}

impl<'a> From<&'a LedgerEntry> for LedgerEntryBody<'a> {
    fn from(e: &'a LedgerEntry) -> Self {
        LedgerEntryBody {
            amount: e.amount,
            created_at: rfc3339(e.created_at),
            currency: e.currency.as_str(),
            description: e.description.as_deref(),
            id: e.id.to_string(),
            idempotency_key: e.idempotency_key.as_str(),
            purpose: e.purpose.as_str(),
            refunded_at: e.refunded_at.map(rfc3339),
        }
    }
}

/// tRPC's superjson envelope, `{"result": {"data": {"json": …}}}`, of
/// `GET /api/trpc/buzz.getUserAccount` (`docs/api.md`, "Buzz").
#[derive(Debug, Serialize)]
pub struct TrpcBody<T> {
    pub result: TrpcResult<T>,
}

/// [`TrpcBody`]'s `result`.
#[derive(Debug, Serialize)]
pub struct TrpcResult<T> {
    pub data: TrpcData<T>,
}

/// [`TrpcResult`]'s `data`.
#[derive(Debug, Serialize)]
pub struct TrpcData<T> {
    pub json: T,
}

impl<T> TrpcBody<T> {
    pub fn new(json: T) -> Self {
        TrpcBody {
            result: TrpcResult {
                data: TrpcData { json },
            },
        }
    }
}

/// One currency pool of `GET /api/trpc/buzz.getUserAccount` (`docs/api.md`, "Buzz").
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuzzAccountBody<'a> {
    pub account_type: &'a str,
    pub balance: i64,
    pub id: i64,
    pub lifetime_balance: u64,
}

impl<'a> From<&'a BuzzAccount> for BuzzAccountBody<'a> {
    fn from(a: &'a BuzzAccount) -> Self {
        BuzzAccountBody {
            account_type: a.currency.as_str(),
            balance: a.balance,
            id: a.user_id.0,
            lifetime_balance: a.lifetime,
        }
    }
}

/// `POST /api/v1/buzz/spend` (`docs/api.md`, "Buzz").
#[derive(Debug, Serialize)]
pub struct SpendBody<'a> {
    pub amount: u64,
    pub balance: i64,
    pub currency: &'a str,
    pub id: String,
    #[serde(serialize_with = "sorted")]
    pub limits: &'a [BudgetStatus],
    pub replayed: bool,
}

/// `POST /api/v1/buzz/spend/{id}/refund` (`docs/api.md`, "Buzz").
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundBody {
    pub balance: i64,
    pub id: String,
    pub refunded_at: Option<String>,
}

/// `GET /api/v1/buzz/limits` (`docs/api.md`, "Buzz").
#[derive(Debug, Serialize)]
pub struct LimitsBody<'a> {
    #[serde(serialize_with = "sorted")]
    pub limits: &'a [BudgetStatus],
}

// --- The session -------------------------------------------------------------------------

/// `GET /api/v1/session` (`docs/api.md`, "Sign-in, the session and health").
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionBody<'a> {
    pub csrf_token: &'a str,
    pub is_admin: bool,
    pub signed_in_at: String,
    pub user_id: i64,
}

// --- Apps --------------------------------------------------------------------------------

/// An app (`docs/api.md`, "Apps (for their owners)"): the answer of `GET`, `PATCH` and `PUT
/// /api/v1/oauth/clients/{id}` and of the admin `PATCH`; with `activeTokens` and `consents`
/// in `GET /api/v1/oauth/clients`'s list ([`ClientBody::summary`]); with `clientSecret`
/// (`null` for a public app) from `POST /api/v1/oauth/clients` ([`ClientBody::created`]).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientBody<'a> {
    pub access_mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_tokens: Option<u64>,
    pub allowed_origins: Vec<&'a str>,
    pub allowed_scope_names: Vec<&'a str>,
    pub allowed_scopes: u64,
    pub client_id: &'a str,
    /// Absent but from the create; then `null` for a public app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consents: Option<u64>,
    pub created_at: String,
    pub description: &'a str,
    pub grants: Vec<&'static str>,
    pub is_confidential: bool,
    pub is_resource_server: bool,
    pub is_verified: bool,
    pub name: &'a str,
    #[serde(serialize_with = "sorted")]
    pub owner_buzz_limit: &'a BuzzLimit,
    pub redirect_uris: Vec<&'a str>,
    /// The scope names again, as seed 004's clients send and read them.
    pub scopes: Vec<&'a str>,
    pub updated_at: String,
}

impl<'a> ClientBody<'a> {
    pub fn new(c: &'a Client, catalogue: &'a Catalogue) -> Self {
        let names = catalogue.names(c.allowed_scopes);
        ClientBody {
            access_mode: c.access_mode.as_str(),
            active_tokens: None,
            allowed_origins: c.allowed_origins.iter().map(|o| o.as_str()).collect(),
            allowed_scope_names: names.clone(),
            allowed_scopes: c.allowed_scopes.bits(),
            client_id: c.id.as_str(),
            client_secret: None,
            consents: None,
            created_at: rfc3339(c.created_at),
            description: &c.description,
            grants: c.grants.iter().map(|g| g.as_str()).collect(),
            is_confidential: c.is_confidential(),
            is_resource_server: c.is_resource_server,
            is_verified: c.is_verified,
            name: &c.name,
            owner_buzz_limit: &c.owner_buzz_limit,
            redirect_uris: c.redirect_uris.iter().map(|u| u.as_str()).collect(),
            scopes: names,
            updated_at: rfc3339(c.updated_at),
        }
    }

    /// A row of the owner's list.
    pub fn summary(s: &'a ClientSummary, catalogue: &'a Catalogue) -> Self {
        ClientBody {
            active_tokens: Some(s.active_tokens),
            consents: Some(s.consents),
            ..ClientBody::new(&s.client, catalogue)
        }
    }

    /// A new app, with its secret (`None` for a public app).
    pub fn created(c: &'a Client, secret: Option<&'a str>, catalogue: &'a Catalogue) -> Self {
        ClientBody {
            client_secret: Some(secret),
            ..ClientBody::new(c, catalogue)
        }
    }
}

/// `POST /api/v1/oauth/clients/{id}/rotate-secret` and `…/reset-secret` (`docs/api.md`,
/// "Apps (for their owners)").
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretBody<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
}

// --- Connected Apps and personal API keys ------------------------------------------------

/// A row of `GET /api/v1/oauth/consents` (`docs/api.md`, "Connected Apps and personal API
/// keys (for users)").
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentBody<'a> {
    pub authorized_at: String,
    #[serde(serialize_with = "sorted")]
    pub budgets: &'a [BudgetStatus],
    #[serde(serialize_with = "sorted")]
    pub buzz_limit: &'a BuzzLimit,
    pub client_id: &'a str,
    pub client_name: &'a str,
    pub is_verified: bool,
    pub remembered: bool,
    /// The resources (RFC 8707) approved; absent when none were named.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub resources: &'a [String],
    pub scope: u64,
    pub scope_names: Vec<&'a str>,
    pub updated_at: String,
}

impl<'a> ConsentBody<'a> {
    pub fn new(a: &'a ConnectedApp, catalogue: &'a Catalogue) -> Self {
        ConsentBody {
            authorized_at: rfc3339(a.consent.created_at),
            budgets: &a.budgets,
            buzz_limit: &a.consent.buzz_limit,
            client_id: a.client.id.as_str(),
            client_name: &a.client.name,
            is_verified: a.client.is_verified,
            remembered: a.consent.remembered,
            resources: &a.consent.resources,
            scope: a.consent.scope.bits(),
            scope_names: catalogue.names(a.consent.scope),
            updated_at: rfc3339(a.consent.updated_at),
        }
    }
}

/// `PUT /api/v1/oauth/consents/{clientId}/buzz-limit` (`docs/api.md`, "Connected Apps and
/// personal API keys (for users)").
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CapBody<'a> {
    #[serde(serialize_with = "sorted")]
    pub buzz_limit: &'a BuzzLimit,
    pub client_id: &'a str,
    pub updated_at: String,
}

/// A personal API key (`docs/api.md`, "Connected Apps and personal API keys (for users)"):
/// a row of `GET /api/v1/api-keys`, and with `key` (shown once) the answer of
/// `POST /api/v1/api-keys`. `buzzLimit`, `expiresAt` and `name` are `null` when absent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyBody<'a> {
    #[serde(serialize_with = "sorted")]
    pub buzz_limit: Option<&'a BuzzLimit>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    pub name: Option<&'a str>,
    pub scope: u64,
    pub scope_names: Vec<&'a str>,
}

impl<'a> ApiKeyBody<'a> {
    pub fn new(r: &'a TokenRecord, catalogue: &'a Catalogue) -> Self {
        ApiKeyBody {
            buzz_limit: r.buzz_limit.as_ref(),
            created_at: rfc3339(r.issued_at),
            expires_at: r.expires_at.map(rfc3339),
            id: r.id.to_string(),
            key: None,
            name: r.name.as_deref(),
            scope: r.scope.bits(),
            scope_names: catalogue.names(r.scope),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buzzgate_domain::Scope;
    use buzzgate_domain::client::ClientRegistration;
    use buzzgate_domain::ids::{ClientId, UserId};
    use buzzgate_domain::ports::SeededRandom;
    use buzzgate_domain::token::{PlainToken, TokenPrefix};
    use time::OffsetDateTime;

    fn wire<T: Serialize>(body: &T) -> String {
        serde_json::to_string(body).unwrap()
    }

    /// The body as a `json!` body of the same keys and values was written: every object's
    /// keys sorted (serde_json's `Value` without `preserve_order`).
    fn as_json_macro_wrote<T: Serialize>(body: &T) -> String {
        serde_json::to_string(&serde_json::to_value(body).unwrap()).unwrap()
    }

    fn assert_sorted<T: Serialize>(body: &T) {
        assert_eq!(wire(body), as_json_macro_wrote(body));
    }

    fn client(confidential: bool) -> Client {
        let reg = ClientRegistration {
            name: "App".into(),
            redirect_uris: vec!["https://a.example/cb".into()],
            is_confidential: Some(confidential),
            owner_buzz_limit: Some(BuzzLimit::consent_default()),
            ..Default::default()
        }
        .validate(&Catalogue::civitai())
        .unwrap();
        let id = ClientId::generate(&SeededRandom::new(1));
        Client::new(id, UserId(1), reg, None, OffsetDateTime::UNIX_EPOCH)
    }

    fn statuses() -> Vec<BudgetStatus> {
        vec![BudgetStatus {
            budget: BuzzLimit::consent_default().budgets()[0].clone(),
            limit: 5000,
            spend: 40,
            remaining: 4960,
        }]
    }

    #[test]
    fn an_audience_is_a_string_an_array_or_absent() {
        let one = vec!["https://a.example/mcp".to_owned()];
        let two = vec!["https://a.example/mcp".to_owned(), "urn:b".to_owned()];
        assert_eq!(wire(&Audience(&one)), r#""https://a.example/mcp""#);
        assert_eq!(
            wire(&Audience(&two)),
            r#"["https://a.example/mcp","urn:b"]"#
        );
        assert!(Audience(&[]).is_any());
    }

    #[test]
    fn every_shape_keeps_the_key_order_of_the_json_macro() {
        let random = SeededRandom::new(1);
        let token = TokenResponse {
            access_token: PlainToken::generate(&TokenPrefix::default(), &random),
            expires_in: 3600,
            refresh_token: Some(PlainToken::generate(&TokenPrefix::default(), &random)),
            scope: Scope::AI_SERVICES,
            id_token: Some("h.p.s".into()),
        };
        let limit = BuzzLimit::consent_default();
        let statuses = statuses();
        let c = client(true);
        let summary = ClientSummary {
            client: c.clone(),
            active_tokens: 2,
            consents: 1,
        };
        let me = Me {
            id: UserId(7),
            username: "ines".into(),
            token_scope: Scope::AI_SERVICES,
            buzz_limit: Some(limit.clone()),
            subject: Subject::OAuth(c.id.clone()),
            audience: vec!["https://mcp.example.com/mcp".into()],
        };
        let failing = BTreeMap::from([("redis".to_owned(), "down".to_owned())]);
        assert_sorted(&ErrorBody::of(&Error::invalid_request("x")));
        assert_sorted(&ReadyBody {
            degraded: Some(failing.clone()),
            failing: None,
            status: "degraded",
        });
        assert_sorted(&ReadyBody {
            degraded: None,
            failing: Some(failing),
            status: "unavailable",
        });
        assert_sorted(&crate::discovery::metadata(
            "https://auth.example",
            &Catalogue::civitai(),
            crate::discovery::Offers {
                signer: true,
                registration: true,
                documents: true,
            },
        ));
        assert_sorted(&TokenBody::new(&token, false));
        assert_sorted(&TokenBody::new(&token, true));
        assert_sorted(&UserInfoBody {
            email: Some("i@example.com".into()),
            email_verified: Some(true),
            id: Some(7),
            name: Some("Ines".into()),
            picture: Some("https://p.example/i.png".into()),
            preferred_username: Some("ines".into()),
            sub: "7".into(),
            username: Some("ines".into()),
        });
        assert_sorted(&MeBody::new(&me, &Catalogue::civitai()));
        assert_sorted(&DeviceApprovalBody {
            approved: true,
            success: true,
        });
        assert_sorted(&SpendBody {
            amount: 40,
            balance: 960,
            currency: "yellow",
            id: "s".into(),
            limits: &statuses,
            replayed: false,
        });
        assert_sorted(&LimitsBody { limits: &statuses });
        assert_sorted(&TrpcBody::new(vec![BuzzAccountBody {
            account_type: "yellow",
            balance: 960,
            id: 7,
            lifetime_balance: 1000,
        }]));
        assert_sorted(&ClientBody::new(&c, &Catalogue::civitai()));
        assert_sorted(&ClientBody::summary(&summary, &Catalogue::civitai()));
        assert_sorted(&ClientBody::created(
            &c,
            Some("secret"),
            &Catalogue::civitai(),
        ));
        assert_sorted(&CapBody {
            buzz_limit: &limit,
            client_id: c.id.as_str(),
            updated_at: rfc3339(OffsetDateTime::UNIX_EPOCH),
        });
    }

    #[test]
    fn absent_keys_stay_absent_and_null_ones_null() {
        let random = SeededRandom::new(1);
        let token = TokenResponse {
            access_token: PlainToken::generate(&TokenPrefix::default(), &random),
            expires_in: 3600,
            refresh_token: None,
            scope: Scope::AI_SERVICES,
            id_token: None,
        };
        assert_eq!(
            wire(&TokenBody::new(&token, true)),
            format!(
                r#"{{"access_token":"{}","expires_in":3600,"scope":["114689"],"token_type":"Bearer"}}"#,
                token.access_token.expose()
            )
        );
        assert_eq!(wire(&EmptyBody {}), "{}");
        assert_eq!(
            wire(&IntrospectionBody::Inactive { active: false }),
            r#"{"active":false}"#
        );
        assert_eq!(wire(&HealthBody { status: "ok" }), r#"{"status":"ok"}"#);
        assert_eq!(
            wire(&ReadyBody {
                degraded: None,
                failing: None,
                status: "ready"
            }),
            r#"{"status":"ready"}"#
        );
        let bare = UserInfo {
            id: UserId(7),
            username: None,
            name: None,
            preferred_username: None,
            picture: None,
            email: None,
            email_verified: None,
        };
        assert_eq!(wire(&UserInfoBody::from(bare)), r#"{"sub":"7"}"#);
        let me = Me {
            id: UserId(7),
            username: "ines".into(),
            token_scope: Scope::USER_READ,
            buzz_limit: None,
            subject: Subject::ApiKey("k1".into()),
            audience: Vec::new(),
        };
        assert_eq!(
            wire(&MeBody::new(&me, &Catalogue::civitai())),
            r#"{"buzzLimit":null,"id":7,"subject":{"id":"k1","type":"apiKey"},"tokenScope":1,"tokenScopeNames":["UserRead"],"username":"ines"}"#
        );
        assert_eq!(
            wire(&LimitsBody {
                limits: &statuses()
            }),
            r#"{"limits":[{"budget":{"limit":5000,"type":"sliding","unit":1,"window":"day"},"limit":5000,"remaining":4960,"spend":40}]}"#
        );
        let public = client(false);
        let created = wire(&ClientBody::created(&public, None, &Catalogue::civitai()));
        assert!(created.contains(r#""clientId":"#), "{created}");
        assert!(created.contains(r#""clientSecret":null,"#), "{created}");
        let plain = wire(&ClientBody::new(&public, &Catalogue::civitai()));
        for key in ["clientSecret", "activeTokens", "consents"] {
            assert!(!plain.contains(key), "{plain}");
        }
        assert!(
            plain.contains(
                r#""ownerBuzzLimit":[{"limit":5000,"type":"sliding","unit":1,"window":"day"}]"#
            ),
            "{plain}"
        );
        let m = wire(&crate::discovery::metadata(
            "x",
            &Catalogue::civitai(),
            crate::discovery::Offers::default(),
        ));
        assert!(
            !m.contains("jwks_uri") && !m.contains("id_token_signing"),
            "{m}"
        );
    }
}
