//! The services end to end over the in-memory adapter, with a fixed clock: every flow of the
//! contract, the three atomic operations under 64 concurrent tasks, and the wire error codes.
//!
//! This file holds the harness (`H`: the store, a manual clock, the gate, a user, an owner, a
//! confidential app and a public SPA) and the helpers every area shares; each area has its own
//! file.

mod api_keys;
mod authorization_code;
mod authorize;
mod bans;
mod buzz;
mod client_credentials;
mod clients;
mod concurrency;
mod consents;
mod device;
mod documents;
mod errors;
mod introspect;
mod oidc;
mod rate_limit;
mod refresh;
mod resources;
mod revoke;
mod sessions;
mod userinfo;

use std::sync::Arc;

use super::api_keys::NewApiKey;
use super::authorize::{AuthorizeOutcome, ConsentAnswer};
use super::buzz::SpendCall;
use super::buzz::{BuzzAccount, BuzzOverview, SpendReceipt};
use super::caller::SignedIn;
use super::clients::ClientService;
use super::consents::ConnectedApp;
use super::device::{DeviceStartRequest, DeviceStarted};
use super::tokens::{Bearer, GrantRequest, Introspection, Me, TokenRequest, UserInfo};
use super::{Buzzgate, Caller, Config, Credentials};
use crate::audit::AuditKind;
use crate::authorize::AuthorizeParams;
use crate::buzz::{BuzzLimit, Currency, LedgerEntry};
use crate::client::{AccessMode, AuthMethod, ClientAuth, ClientRegistration};
use crate::error::Error;
use crate::grant::device_code::DeviceAuthorization;
use crate::ids::{ClientId, SpendId, UserId};
use crate::memory::MemoryStore;
use crate::pkce::{CodeChallenge, CodeVerifier};
use crate::ports::{ManualClock, SeededRandom};

use crate::scope::{Scope, ScopeValue};
use crate::token::{PlainToken, TokenKind, TokenResponse};
use crate::user::{NewUser, Role, Username};

struct H {
    store: MemoryStore,
    clock: Arc<ManualClock>,
    gate: Buzzgate,
    user: UserId,
    owner: UserId,
    app: ClientId,
    secret: String,
    spa: ClientId,
}

async fn harness_with(config: Config) -> H {
    harness_with_deps(config, |_| {}).await
}

/// A harness whose dependencies `adjust` may change (swap a port for a mock).
async fn harness_with_deps(config: Config, adjust: impl FnOnce(&mut super::Deps)) -> H {
    let clock = Arc::new(ManualClock::at_epoch());
    let store = MemoryStore::new(clock.clone());
    let mut deps = store.deps(Arc::new(SeededRandom::new(11)), config);
    adjust(&mut deps);
    let gate = Buzzgate::new(deps);
    let mk = |name: &str, roles: Vec<Role>| NewUser {
        username: Username::parse(name).unwrap(),
        email: Some(format!("{name}@example.com")),
        email_verified: true,
        password: Some("correct horse battery".into()),
        roles,
    };
    let mut ids = Vec::new();
    for name in ["owner", "ada"] {
        ids.push(
            gate.sessions()
                .create_user(mk(name, vec![]))
                .await
                .unwrap()
                .id,
        );
    }
    let (owner, user) = (ids[0], ids[1]);
    let reg = crate::memory::sample_registration("Generator");
    let created = gate.clients().create(&signed_in(owner), reg).await.unwrap();
    let spa = ClientRegistration {
        name: "SPA".into(),
        description: None,
        redirect_uris: vec!["https://spa.example.com/cb".into()],
        allowed_origins: None,
        is_confidential: Some(false),
        allowed_scopes: None,
        grants: None,
        owner_buzz_limit: None,
    };
    let spa = gate.clients().create(&signed_in(owner), spa).await.unwrap();
    H {
        secret: created.secret.unwrap().expose().to_owned(),
        app: created.client.id,
        spa: spa.client.id,
        store,
        clock,
        gate,
        user,
        owner,
    }
}

async fn harness() -> H {
    harness_with(Config::default()).await
}

impl H {
    fn auth(&self) -> ClientAuth {
        ClientAuth {
            client_id: self.app.clone(),
            secret: Some(self.secret.clone()),
            method: AuthMethod::Post,
        }
    }
    fn spa_auth(&self) -> ClientAuth {
        ClientAuth {
            client_id: self.spa.clone(),
            secret: None,
            method: AuthMethod::None,
        }
    }
    fn params(&self, scope: &str, verifier: &CodeVerifier) -> AuthorizeParams {
        AuthorizeParams {
            response_type: Some("code".into()),
            client_id: Some(self.app.to_string()),
            redirect_uri: Some("https://app.example.com/cb".into()),
            scope: Some(scope.into()),
            state: Some("st4te".into()),
            code_challenge: Some(CodeChallenge::from_verifier(verifier).as_str().into()),
            code_challenge_method: Some("S256".into()),
            nonce: None,
            resources: Vec::new(),
        }
    }
    /// Authorize + approve; returns the code from the redirect.
    async fn code(&self, scope: &str, remember: bool) -> (String, CodeVerifier) {
        static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);
        let v = CodeVerifier::generate(&SeededRandom::new(
            SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        ));
        let p = self.params(scope, &v);
        let answer = answer(true, remember, None);
        match self
            .gate
            .authorize()
            .decide(&p, &signed_in(self.user), &answer, None)
            .await
            .unwrap()
        {
            AuthorizeOutcome::Redirect { location } => (query(&location, "code").unwrap(), v),
            other => panic!("{other:?}"),
        }
    }
    fn token_req(&self, grant: GrantRequest) -> TokenRequest {
        TokenRequest {
            client: self.auth(),
            origin: None,
            ip: Some("127.0.0.1".into()),
            grant,
            resources: Vec::new(),
        }
    }
    async fn exchange(&self, code: &str, v: &CodeVerifier) -> Result<TokenResponse, Error> {
        let g = code_grant(code, Some(v.as_str()), "https://app.example.com/cb");
        self.gate.tokens().token(self.token_req(g)).await
    }
    async fn tokens(&self, scope: &str) -> TokenResponse {
        let (code, v) = self.code(scope, true).await;
        self.exchange(&code, &v).await.unwrap()
    }
    async fn refresh(&self, rt: &str, scope: Option<&str>) -> Result<TokenResponse, Error> {
        let g = GrantRequest::RefreshToken {
            refresh_token: Some(rt.into()),
            scope: scope.map(str::to_owned),
        };
        self.gate.tokens().token(self.token_req(g)).await
    }
    /// Is this bearer token accepted right now?
    async fn active(&self, token: &str) -> bool {
        self.gate.tokens().validate_bearer(token).await.is_ok()
    }
    fn audit_kinds(&self) -> Vec<AuditKind> {
        self.store
            .audit_events()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
    /// The caller behind a bearer token (which must be valid).
    async fn bearer(&self, token: &str) -> Caller {
        self.gate
            .callers()
            .identify(&bearer_creds(token))
            .await
            .unwrap()
    }
    /// The caller behind client credentials (which must be valid).
    async fn client(&self, auth: ClientAuth) -> Caller {
        self.gate
            .callers()
            .identify(&client_creds(auth))
            .await
            .unwrap()
    }
    /// The app as a resource server (call `make_resource_server` first).
    async fn rs(&self) -> Caller {
        self.client(self.auth()).await
    }
    fn device_req(&self, client: ClientAuth, scope: Option<&str>) -> DeviceStartRequest {
        DeviceStartRequest {
            client,
            origin: None,
            ip: None,
            scope: scope.map(str::to_owned),
        }
    }
    /// Signs ada in; the credentials a page of hers would send (cookie and CSRF token).
    async fn session_creds(&self) -> Credentials {
        let (cookie, session) = self
            .gate
            .sessions()
            .login("ada", "correct horse battery", None)
            .await
            .unwrap();
        Credentials {
            session: Some(cookie.expose().to_owned()),
            csrf_token: Some(session.csrf_token),
            ..Credentials::default()
        }
    }
    /// `/authorize` with these parameters.
    async fn authorize(&self, p: &AuthorizeParams, caller: &Caller) -> AuthorizeOutcome {
        self.gate
            .authorize()
            .authorize(p, caller, None)
            .await
            .unwrap()
    }
    /// The consent page's answer for ada.
    async fn decide(&self, p: &AuthorizeParams, answer: &ConsentAnswer) -> AuthorizeOutcome {
        let ada = signed_in(self.user);
        self.gate
            .authorize()
            .decide(p, &ada, answer, None)
            .await
            .unwrap()
    }
    async fn token(&self, req: TokenRequest) -> Result<TokenResponse, Error> {
        self.gate.tokens().token(req).await
    }
    async fn validate(&self, token: &str) -> Result<Bearer, Error> {
        self.gate.tokens().validate_bearer(token).await
    }
    async fn revoke(&self, creds: &Credentials, token: Option<&str>) -> Result<(), Error> {
        self.gate.tokens().revoke(creds, token).await
    }
    async fn introspect(
        &self,
        caller: &Caller,
        token: Option<&str>,
    ) -> Result<Introspection, Error> {
        self.gate.tokens().introspect(caller, token).await
    }
    /// `/userinfo` with this bearer token (which must be valid).
    async fn userinfo(&self, token: &str) -> Result<UserInfo, Error> {
        self.gate.tokens().userinfo(&self.bearer(token).await).await
    }
    /// `/api/v1/me` with this bearer token (which must be valid).
    async fn me(&self, token: &str) -> Result<Me, Error> {
        self.gate.tokens().me(&self.bearer(token).await).await
    }
    /// The app, as resource server, spends with this token.
    async fn pay(
        &self,
        token: &str,
        amount: u64,
        key: &str,
        purpose: &str,
    ) -> Result<SpendReceipt, Error> {
        let call = spend(token, amount, key, purpose);
        self.gate.buzz().spend(&self.rs().await, call).await
    }
    /// The app, as resource server, refunds a spend; the balance after.
    async fn refund(&self, id: SpendId) -> Result<(LedgerEntry, i64), Error> {
        self.gate.buzz().refund(&self.rs().await, id).await
    }
    /// Ada caps what the app may spend for her.
    async fn cap(&self, limit: BuzzLimit) -> crate::consent::Consent {
        let ada = signed_in(self.user);
        let consents = self.gate.consents();
        consents
            .set_buzz_limit(&ada, &self.app, limit)
            .await
            .unwrap()
    }
    /// Ada's Buzz accounts, asked with this bearer token (which must be valid).
    async fn accounts(&self, token: &str) -> Result<Vec<BuzzAccount>, Error> {
        self.gate.buzz().accounts(&self.bearer(token).await).await
    }
    async fn overview(&self, token: &str) -> Result<BuzzOverview, Error> {
        self.gate.buzz().overview(&self.bearer(token).await).await
    }
    /// `by` credits ada `amount` of `currency`; her balance after.
    async fn credit_ada(&self, by: &Caller, currency: &str, amount: u64) -> Result<i64, Error> {
        self.gate
            .buzz()
            .credit(by, self.user, currency, amount)
            .await
    }
    /// Ada answers the device login she was shown.
    async fn resolve(&self, d: &DeviceStarted, approve: bool) -> DeviceAuthorization {
        let ada = signed_in(self.user);
        let code = d.user_code.as_str();
        self.gate
            .device()
            .resolve(&ada, code, approve, None)
            .await
            .unwrap()
    }
    /// Ada's Connected Apps.
    async fn connected_apps(&self) -> Vec<ConnectedApp> {
        self.gate
            .consents()
            .list(&signed_in(self.user))
            .await
            .unwrap()
    }
    /// Ada creates an API key named "k" with this scope.
    async fn api_key(&self, scope: Option<Scope>) -> PlainToken {
        let new = NewApiKey {
            name: "k".into(),
            scope: scope.map(ScopeValue::from),
            buzz_limit: None,
            expires_in_days: None,
        };
        let ada = signed_in(self.user);
        self.gate.api_keys().create(&ada, new).await.unwrap().0
    }
    /// The apps service (the owner's and the operator's side).
    fn apps(&self) -> ClientService {
        self.gate.clients()
    }
    /// Ada disconnects the app (Connected Apps).
    async fn revoke_consent(&self) -> Result<(), Error> {
        let ada = signed_in(self.user);
        self.gate.consents().revoke(&ada, &self.app).await
    }
    /// The operator sets the app's access mode.
    async fn set_access_mode(&self, mode: AccessMode) {
        let admin = Caller::operator();
        let apps = self.apps();
        apps.administer(&admin, &self.app, None, Some(mode), None)
            .await
            .unwrap();
    }
    /// The app as a resource server, ada with `balance` Buzz, and her tokens for `scope`.
    async fn ready_to_spend(&self, balance: u64, scope: &str) -> TokenResponse {
        self.make_resource_server().await;
        credit(&self.store, self.user, balance).await;
        self.tokens(scope).await
    }
    async fn make_resource_server(&self) {
        let admin = Caller::operator();
        self.gate
            .clients()
            .administer(&admin, &self.app, None, None, Some(true))
            .await
            .unwrap();
    }
}

async fn credit(store: &MemoryStore, user: UserId, amount: u64) {
    use crate::ports::BuzzStore;
    store
        .credit(
            user,
            &Currency::yellow(),
            amount,
            time::OffsetDateTime::UNIX_EPOCH,
        )
        .await
        .unwrap();
}

fn query(location: &str, key: &str) -> Option<String> {
    url::Url::parse(location)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// A signed-in user whose request carried the session's CSRF token, signed in at the epoch.
pub(super) fn signed_in(user: UserId) -> Caller {
    Caller::Session(SignedIn {
        user,
        admin: false,
        session: crate::token::TokenHash([9; 32]),
        signed_in_at: time::OffsetDateTime::UNIX_EPOCH,
        csrf_token: "csrf".into(),
        proven: true,
    })
}

/// A bearer caller without a stored token: an API key (`client` None) or an app's token.
fn token_caller(user: UserId, client: Option<&ClientId>, scope: Scope) -> Caller {
    let record = crate::token::TokenRecord {
        id: crate::ids::TokenId(uuid::Uuid::nil()),
        hash: crate::token::TokenHash([7; 32]),
        kind: if client.is_some() {
            TokenKind::Access
        } else {
            TokenKind::ApiKey
        },
        client_id: client.cloned(),
        user_id: user,
        scope,
        family_id: None,
        name: None,
        buzz_limit: None,
        issued_at: time::OffsetDateTime::UNIX_EPOCH,
        expires_at: None,
        revoked_at: None,
        rotated_at: None,
        auth_time: None,
        oidc: Default::default(),
        audience: Vec::new(),
    };
    let bearer = super::tokens::Bearer { record };
    if client.is_some() {
        Caller::AppToken(bearer)
    } else {
        Caller::ApiKey(bearer)
    }
}

/// The authorization_code grant's parameters.
pub(super) fn code_grant(code: &str, verifier: Option<&str>, redirect_uri: &str) -> GrantRequest {
    GrantRequest::AuthorizationCode {
        code: Some(code.into()),
        code_verifier: verifier.map(str::to_owned),
        redirect_uri: Some(redirect_uri.into()),
    }
}

/// The consent page's answer.
pub(super) fn answer(approved: bool, remember: bool, buzz_limit: Option<&str>) -> ConsentAnswer {
    let buzz_limit = buzz_limit.map(str::to_owned);
    ConsentAnswer {
        approved,
        remember,
        buzz_limit,
        buzz_cap: None,
    }
}

/// A request that carries only this client's credentials.
pub(super) fn client_creds(auth: ClientAuth) -> Credentials {
    Credentials {
        client: Some(auth),
        ..Credentials::default()
    }
}

/// A request that carries only this bearer token.
fn bearer_creds(token: &str) -> Credentials {
    Credentials {
        bearer: Some(token.to_owned()),
        ..Credentials::default()
    }
}

/// A user with no email; `password` None is one who signs in elsewhere.
pub(super) fn bare_user(name: &str, password: Option<&str>) -> NewUser {
    NewUser {
        username: Username::parse(name).unwrap(),
        email: None,
        email_verified: false,
        password: password.map(str::to_owned),
        roles: vec![],
    }
}

/// The code of the error a call must have failed with.
fn err_code<T: std::fmt::Debug>(r: Result<T, Error>) -> &'static str {
    r.unwrap_err().code()
}

fn rt(t: &TokenResponse) -> String {
    t.refresh_token.as_ref().unwrap().expose().to_owned()
}

fn spend(token: &str, amount: u64, key: &str, purpose: &str) -> SpendCall {
    SpendCall {
        token: token.into(),
        amount,
        currency: None,
        purpose: purpose.into(),
        idempotency_key: key.into(),
        description: None,
    }
}

async fn start_device(h: &H) -> DeviceStarted {
    h.gate
        .device()
        .start(&h.device_req(h.auth(), Some("BuzzRead")))
        .await
        .unwrap()
}

async fn poll(h: &H, d: &DeviceStarted) -> Result<TokenResponse, Error> {
    let g = GrantRequest::DeviceCode {
        device_code: Some(d.device_code.expose().into()),
    };
    h.gate.tokens().token(h.token_req(g)).await
}
