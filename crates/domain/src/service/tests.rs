//! The services end to end over the in-memory adapter, with a fixed clock: every flow of the
//! contract, the three atomic operations under 64 concurrent tasks, and the wire error codes.

use std::collections::BTreeSet;
use std::sync::Arc;

use time::Duration;

use super::api_keys::NewApiKey;
use super::authorize::{AuthorizeOutcome, ConsentAnswer};
use super::buzz::SpendCall;
use super::caller::SignedIn;
use super::device::DeviceStartRequest;
use super::device::DeviceStarted;
use super::rate_limit::Bucket;
use super::tokens::{GrantRequest, Subject, TokenRequest};
use super::{Buzzgate, Caller, Config, Credentials};
use crate::audit::AuditKind;
use crate::authorize::AuthorizeParams;
use crate::buzz::{BuzzLimit, Currency};
use crate::client::{AccessMode, AuthMethod, ClientAuth, ClientRegistration, ClientUpdate};
use crate::error::Error;
use crate::ids::{ClientId, UserId};
use crate::memory::MemoryStore;
use crate::pkce::{CodeChallenge, CodeVerifier};
use crate::ports::{ManualClock, SeededRandom};
use crate::scope::Scope;
use crate::token::{TokenKind, TokenResponse};
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
    let owner = gate
        .sessions()
        .create_user(mk("owner", vec![]))
        .await
        .unwrap()
        .id;
    let user = gate
        .sessions()
        .create_user(mk("ada", vec![]))
        .await
        .unwrap()
        .id;
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
        }
    }
    /// Authorize + approve; returns the code from the redirect.
    async fn code(&self, scope: &str, remember: bool) -> (String, CodeVerifier) {
        static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);
        let v = CodeVerifier::generate(&SeededRandom::new(
            SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        ));
        let p = self.params(scope, &v);
        let answer = ConsentAnswer {
            approved: true,
            remember,
            buzz_limit: None,
        };
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
        }
    }
    async fn exchange(&self, code: &str, v: &CodeVerifier) -> Result<TokenResponse, Error> {
        let g = GrantRequest::AuthorizationCode {
            code: Some(code.into()),
            code_verifier: Some(v.as_str().into()),
            redirect_uri: Some("https://app.example.com/cb".into()),
        };
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
            .identify(&Credentials {
                bearer: Some(token.to_owned()),
                ..Credentials::default()
            })
            .await
            .unwrap()
    }
    /// The caller behind client credentials (which must be valid).
    async fn client(&self, auth: ClientAuth) -> Caller {
        self.gate
            .callers()
            .identify(&Credentials {
                client: Some(auth),
                ..Credentials::default()
            })
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
    };
    let bearer = super::tokens::Bearer { record };
    if client.is_some() {
        Caller::AppToken(bearer)
    } else {
        Caller::ApiKey(bearer)
    }
}

fn rt(t: &TokenResponse) -> String {
    t.refresh_token.as_ref().unwrap().expose().to_owned()
}

// ----- authorize and consent ------------------------------------------------------------------

#[tokio::test]
async fn signed_out_user_is_sent_to_login_after_client_checks() {
    let h = harness().await;
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    let out = h
        .gate
        .authorize()
        .authorize(&h.params("1", &v), &Caller::Anonymous, None)
        .await
        .unwrap();
    assert_eq!(out, AuthorizeOutcome::LoginRequired);
    let mut bad = h.params("1", &v);
    bad.redirect_uri = Some("https://evil.example.com/cb".into());
    let out = h
        .gate
        .authorize()
        .authorize(&bad, &Caller::Anonymous, None)
        .await
        .unwrap();
    assert!(matches!(
        out,
        AuthorizeOutcome::Reject(Error::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn first_request_shows_consent_with_trimmed_scope_and_buzz_cap() {
    let h = harness().await;
    let admin = signed_in(h.owner);
    let narrowed = ClientUpdate {
        allowed_scopes: Some(Scope::AI_SERVICES.bits()),
        ..Default::default()
    };
    h.gate
        .clients()
        .update(&admin, &h.app, narrowed)
        .await
        .unwrap();
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    let out = h
        .gate
        .authorize()
        .authorize(
            &h.params("AIServices VaultWrite", &v),
            &signed_in(h.user),
            None,
        )
        .await
        .unwrap();
    let AuthorizeOutcome::Consent(prompt) = out else {
        panic!("{out:?}")
    };
    assert_eq!(prompt.request.scope, Scope::AI_SERVICES);
    assert_eq!(prompt.trimmed, Scope::VAULT_WRITE);
    assert!(prompt.show_buzz_cap);
    assert_eq!(prompt.buzz_limit, BuzzLimit::consent_default());
}

#[tokio::test]
async fn remembered_consent_skips_the_page_and_wider_request_prompts() {
    let h = harness().await;
    h.code("114689", true).await;
    let v = CodeVerifier::generate(&SeededRandom::new(2));
    let out = h
        .gate
        .authorize()
        .authorize(&h.params("BuzzRead", &v), &signed_in(h.user), None)
        .await
        .unwrap();
    let AuthorizeOutcome::Redirect { location } = out else {
        panic!("{out:?}")
    };
    assert!(query(&location, "code").is_some());
    assert_eq!(query(&location, "state").as_deref(), Some("st4te"));
    assert_eq!(
        query(&location, "iss").as_deref(),
        Some("http://127.0.0.1:8080")
    );
    let out = h
        .gate
        .authorize()
        .authorize(&h.params("Full", &v), &signed_in(h.user), None)
        .await
        .unwrap();
    assert!(matches!(out, AuthorizeOutcome::Consent(_)));
}

#[tokio::test]
async fn unremembered_approval_still_records_a_grant_but_prompts_again() {
    let h = harness().await;
    h.code("114689", false).await;
    let consents = h.gate.consents().list(&signed_in(h.user)).await.unwrap();
    assert_eq!(consents.len(), 1);
    assert!(!consents[0].consent.remembered);
    let v = CodeVerifier::generate(&SeededRandom::new(2));
    let out = h
        .gate
        .authorize()
        .authorize(&h.params("1", &v), &signed_in(h.user), None)
        .await
        .unwrap();
    assert!(matches!(out, AuthorizeOutcome::Consent(_)));
}

#[tokio::test]
async fn deny_redirects_with_access_denied_state_and_iss() {
    let h = harness().await;
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    let answer = ConsentAnswer {
        approved: false,
        remember: true,
        buzz_limit: None,
    };
    let out = h
        .gate
        .authorize()
        .decide(&h.params("1", &v), &signed_in(h.user), &answer, None)
        .await
        .unwrap();
    let AuthorizeOutcome::Redirect { location } = out else {
        panic!()
    };
    assert_eq!(query(&location, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&location, "state").as_deref(), Some("st4te"));
    assert!(h.audit_kinds().contains(&AuditKind::AuthorizationDenied));
}

#[tokio::test]
async fn consent_buzz_limit_is_validated_and_stored() {
    let h = harness().await;
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    let bad = ConsentAnswer {
        approved: true,
        remember: true,
        buzz_limit: Some("{not json".into()),
    };
    let out = h
        .gate
        .authorize()
        .decide(&h.params("114689", &v), &signed_in(h.user), &bad, None)
        .await
        .unwrap();
    let AuthorizeOutcome::RedirectError { location } = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        query(&location, "error_description").as_deref(),
        Some("buzz_limit is not valid JSON")
    );
    let good = ConsentAnswer {
        approved: true,
        remember: true,
        buzz_limit: Some(r#"[{"type":"sliding","limit":300,"window":"day","unit":7}]"#.into()),
    };
    h.gate
        .authorize()
        .decide(&h.params("114689", &v), &signed_in(h.user), &good, None)
        .await
        .unwrap();
    let apps = h.gate.consents().list(&signed_in(h.user)).await.unwrap();
    assert_eq!(
        apps[0].consent.buzz_limit,
        BuzzLimit::per_period(300, 7).unwrap()
    );
    assert!(h.audit_kinds().contains(&AuditKind::BuzzLimitSet));
}

#[tokio::test]
async fn disabled_and_testers_only_apps_refuse_with_json_403() {
    let h = harness().await;
    let admin = Caller::operator();
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    h.gate
        .clients()
        .administer(&admin, &h.app, None, Some(AccessMode::Testers), None)
        .await
        .unwrap();
    let out = h
        .gate
        .authorize()
        .authorize(&h.params("1", &v), &signed_in(h.user), None)
        .await
        .unwrap();
    assert!(matches!(
        out,
        AuthorizeOutcome::Reject(Error::AccessDenied(_))
    ));
    h.gate
        .clients()
        .administer(&admin, &h.app, None, Some(AccessMode::Disabled), None)
        .await
        .unwrap();
    let out = h
        .gate
        .authorize()
        .authorize(&h.params("1", &v), &signed_in(h.user), None)
        .await
        .unwrap();
    assert_eq!(
        out,
        AuthorizeOutcome::Reject(Error::access_denied(
            "This application is not currently available."
        ))
    );
}

// ----- authorization_code ---------------------------------------------------------------------

#[tokio::test]
async fn code_exchange_issues_access_and_refresh_with_the_consented_scope() {
    let h = harness().await;
    let t = h.tokens("114689").await;
    assert!(t.access_token.expose().starts_with("civitai_"));
    assert_eq!(t.expires_in, 3600);
    assert_eq!(t.scope, Scope::AI_SERVICES);
    assert!(t.refresh_token.is_some());
    let rows = h.store.token_rows();
    assert!(
        rows.iter()
            .all(|r| r.hash != crate::token::TokenHash([0; 32]))
    );
    assert!(
        !format!("{rows:?}").contains(t.access_token.expose()),
        "plaintext must never be stored"
    );
}

#[tokio::test]
async fn code_is_single_use_and_replay_revokes_what_it_issued() {
    let h = harness().await;
    let (code, v) = h.code("114689", true).await;
    let t = h.exchange(&code, &v).await.unwrap();
    let again = h.exchange(&code, &v).await.unwrap_err();
    assert_eq!(again.code(), "invalid_grant");
    assert_eq!(
        h.gate
            .tokens()
            .validate_bearer(t.access_token.expose())
            .await
            .unwrap_err()
            .code(),
        "invalid_token"
    );
    assert_eq!(
        h.refresh(&rt(&t), None).await.unwrap_err().code(),
        "invalid_grant"
    );
    assert!(h.audit_kinds().contains(&AuditKind::TokenReuseDetected));
}

#[tokio::test]
async fn pkce_failure_burns_the_code() {
    let h = harness().await;
    let (code, v) = h.code("1", true).await;
    let wrong = CodeVerifier::generate(&SeededRandom::new(999));
    assert_eq!(
        h.exchange(&code, &wrong).await.unwrap_err(),
        Error::invalid_grant("Invalid grant: PKCE verification failed")
    );
    assert_eq!(
        h.exchange(&code, &v).await.unwrap_err().code(),
        "invalid_grant"
    );
}

#[tokio::test]
async fn code_expires_at_600_seconds() {
    let h = harness().await;
    let (code, v) = h.code("1", true).await;
    h.clock.advance(Duration::seconds(600));
    assert_eq!(
        h.exchange(&code, &v).await.unwrap_err().description(),
        "Invalid grant: authorization code has expired"
    );
    let (code, v) = h.code("1", true).await;
    h.clock.advance(Duration::seconds(599));
    assert!(h.exchange(&code, &v).await.is_ok());
}

#[tokio::test]
async fn missing_parameters_are_invalid_request_and_do_not_burn_the_code() {
    let h = harness().await;
    let (code, v) = h.code("1", true).await;
    let g = GrantRequest::AuthorizationCode {
        code: Some(code.clone()),
        code_verifier: None,
        redirect_uri: Some("x".into()),
    };
    assert_eq!(
        h.gate.tokens().token(h.token_req(g)).await.unwrap_err(),
        Error::invalid_request("Missing code_verifier")
    );
    assert!(h.exchange(&code, &v).await.is_ok());
}

#[tokio::test]
async fn wrong_secret_is_invalid_client_and_basic_is_flagged_for_401() {
    let h = harness().await;
    let (code, v) = h.code("1", true).await;
    let g = GrantRequest::AuthorizationCode {
        code: Some(code),
        code_verifier: Some(v.as_str().into()),
        redirect_uri: Some("https://app.example.com/cb".into()),
    };
    let mut req = h.token_req(g);
    req.client = ClientAuth {
        client_id: h.app.clone(),
        secret: Some("wrong".into()),
        method: AuthMethod::Basic,
    };
    assert_eq!(
        h.gate.tokens().token(req).await.unwrap_err(),
        Error::invalid_client(true)
    );
}

#[tokio::test]
async fn id_token_is_signed_only_when_the_request_had_a_nonce() {
    use crate::ports::MockIdTokenSigner;
    let mut signer = MockIdTokenSigner::new();
    signer
        .expect_sign()
        .withf(|c| {
            c.nonce.as_deref() == Some("n0nce")
                && c.sub == "2"
                && c.exp - c.iat == 3600
                && c.iss == "http://127.0.0.1:8080"
        })
        .times(1)
        .returning(|_| Ok("header.claims.sig".into()));
    let h = harness_with_deps(Config::default(), |d| d.id_tokens = Some(Arc::new(signer))).await;
    let v = CodeVerifier::generate(&SeededRandom::new(8));
    let mut p = h.params("1", &v);
    p.nonce = Some("n0nce".into());
    let answer = ConsentAnswer {
        approved: true,
        remember: true,
        buzz_limit: None,
    };
    let AuthorizeOutcome::Redirect { location } = h
        .gate
        .authorize()
        .decide(&p, &signed_in(h.user), &answer, None)
        .await
        .unwrap()
    else {
        panic!()
    };
    let t = h
        .exchange(&query(&location, "code").unwrap(), &v)
        .await
        .unwrap();
    assert_eq!(t.id_token.as_deref(), Some("header.claims.sig"));
    let t2 = h.tokens("1").await;
    assert_eq!(t2.id_token, None);
}

// ----- refresh --------------------------------------------------------------------------------

#[tokio::test]
async fn refresh_rotates_and_the_old_access_token_keeps_its_own_expiry() {
    let h = harness().await;
    let t = h.tokens("114689").await;
    let t2 = h.refresh(&rt(&t), None).await.unwrap();
    assert_ne!(rt(&t), rt(&t2));
    assert_eq!(t2.scope, Scope::AI_SERVICES);
    assert!(h.active(t2.access_token.expose()).await);
    assert!(h.audit_kinds().contains(&AuditKind::TokenRefreshed));
}

#[tokio::test]
async fn refresh_reuse_inside_grace_succeeds() {
    let h = harness().await;
    let t = h.tokens("1").await;
    h.refresh(&rt(&t), None).await.unwrap();
    h.clock.advance(Duration::seconds(9));
    assert!(h.refresh(&rt(&t), None).await.is_ok());
}

#[tokio::test]
async fn refresh_reuse_after_grace_revokes_family() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let t2 = h.refresh(&rt(&t), None).await.unwrap();
    h.clock.advance(Duration::seconds(10));
    assert_eq!(
        h.refresh(&rt(&t), None).await.unwrap_err().code(),
        "invalid_grant"
    );
    assert_eq!(
        h.refresh(&rt(&t2), None).await.unwrap_err().code(),
        "invalid_grant"
    );
    assert!(!h.active(t2.access_token.expose()).await);
    assert!(h.audit_kinds().contains(&AuditKind::TokenReuseDetected));
}

#[tokio::test]
async fn refresh_with_zero_grace_revokes_on_any_reuse() {
    let h = harness_with(Config {
        refresh_grace: Duration::ZERO,
        ..Config::default()
    })
    .await;
    let t = h.tokens("1").await;
    let t2 = h.refresh(&rt(&t), None).await.unwrap();
    assert!(h.refresh(&rt(&t), None).await.is_err());
    assert!(h.refresh(&rt(&t2), None).await.is_err());
}

#[tokio::test]
async fn refresh_narrows_never_widens_and_follows_the_ceiling() {
    let h = harness().await;
    let t = h.tokens("114689").await;
    assert_eq!(
        h.refresh(&rt(&t), Some("Full")).await.unwrap_err().code(),
        "invalid_scope"
    );
    let t2 = h.refresh(&rt(&t), Some("BuzzRead")).await.unwrap();
    assert_eq!(t2.scope, Scope::BUZZ_READ | Scope::USER_READ);
    let narrowed = ClientUpdate {
        allowed_scopes: Some(Scope::NONE.bits()),
        ..Default::default()
    };
    h.gate
        .clients()
        .update(&signed_in(h.owner), &h.app, narrowed)
        .await
        .unwrap();
    let t3 = h.refresh(&rt(&t2), None).await.unwrap();
    assert_eq!(t3.scope, Scope::USER_READ);
}

#[tokio::test]
async fn refresh_token_expires_at_30_days() {
    let h = harness().await;
    let t = h.tokens("1").await;
    h.clock.advance(Duration::days(30));
    assert_eq!(
        h.refresh(&rt(&t), None).await.unwrap_err().description(),
        "Invalid grant: refresh token has expired"
    );
}

#[tokio::test]
async fn refresh_tokens_are_never_bearers() {
    let h = harness().await;
    let t = h.tokens("1").await;
    assert_eq!(
        h.gate
            .tokens()
            .validate_bearer(&rt(&t))
            .await
            .unwrap_err()
            .code(),
        "invalid_token"
    );
}

#[tokio::test]
async fn access_token_valid_at_3599_and_invalid_at_3600() {
    let h = harness().await;
    let t = h.tokens("1").await;
    h.clock.advance(Duration::seconds(3599));
    assert!(h.active(t.access_token.expose()).await);
    h.clock.advance(Duration::seconds(1));
    assert_eq!(
        h.gate
            .tokens()
            .validate_bearer(t.access_token.expose())
            .await
            .unwrap_err()
            .code(),
        "invalid_token"
    );
}

// ----- client credentials ---------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_act_as_owner_with_ceiling_and_no_refresh() {
    let h = harness().await;
    let t = h
        .gate
        .tokens()
        .token(h.token_req(GrantRequest::ClientCredentials { scope: None }))
        .await
        .unwrap();
    assert_eq!(t.scope, Scope::FULL);
    assert!(t.refresh_token.is_none());
    let me = h
        .gate
        .tokens()
        .me(&h.bearer(t.access_token.expose()).await)
        .await
        .unwrap();
    assert_eq!(me.id, h.owner);
}

#[tokio::test]
async fn public_clients_cannot_use_client_credentials_or_send_secrets() {
    let h = harness().await;
    let mut req = h.token_req(GrantRequest::ClientCredentials { scope: None });
    req.client = h.spa_auth();
    assert_eq!(
        h.gate.tokens().token(req.clone()).await.unwrap_err().code(),
        "unauthorized_client"
    );
    req.client.secret = Some("anything".into());
    assert_eq!(
        h.gate.tokens().token(req).await.unwrap_err().code(),
        "invalid_client"
    );
}

#[tokio::test]
async fn public_client_origin_must_be_registered() {
    let h = harness().await;
    let mut req = h.token_req(GrantRequest::RefreshToken {
        refresh_token: Some("x".into()),
        scope: None,
    });
    req.client = h.spa_auth();
    req.origin = Some("https://evil.example.com".into());
    assert_eq!(
        h.gate.tokens().token(req.clone()).await.unwrap_err(),
        Error::OriginNotAllowed
    );
    assert!(h.audit_kinds().contains(&AuditKind::OriginRejected));
    req.origin = Some("https://spa.example.com".into());
    assert_eq!(
        h.gate.tokens().token(req).await.unwrap_err().code(),
        "invalid_grant"
    );
}

#[tokio::test]
async fn unknown_grant_types_are_unsupported() {
    assert_eq!(
        GrantRequest::grant_type(Some("password"))
            .unwrap_err()
            .code(),
        "unsupported_grant_type"
    );
    assert_eq!(
        GrantRequest::grant_type(None).unwrap_err().code(),
        "invalid_request"
    );
    assert!(GrantRequest::grant_type(Some("refresh_token")).is_ok());
}

// ----- device flow ----------------------------------------------------------------------------

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

#[tokio::test]
async fn device_flow_pending_slow_down_approved_then_spent() {
    let h = harness().await;
    let d = start_device(&h).await;
    assert_eq!(d.expires_in, 900);
    assert_eq!(d.interval, 5);
    assert!(d.verification_uri_complete.ends_with(d.user_code.as_str()));
    assert_eq!(poll(&h, &d).await.unwrap_err(), Error::AuthorizationPending);
    assert_eq!(
        poll(&h, &d).await.unwrap_err(),
        Error::SlowDown { interval: 10 }
    );
    let (rec, client) = h
        .gate
        .device()
        .info(&signed_in(h.user), &d.user_code.as_str().to_lowercase())
        .await
        .unwrap();
    assert_eq!(
        (rec.scope, client.id.clone()),
        (Scope::BUZZ_READ | Scope::USER_READ, h.app.clone())
    );
    h.gate
        .device()
        .resolve(&signed_in(h.user), d.user_code.as_str(), true, None)
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(10));
    let t = poll(&h, &d).await.unwrap();
    assert_eq!(t.scope, Scope::BUZZ_READ | Scope::USER_READ);
    h.clock.advance(Duration::seconds(10));
    assert_eq!(poll(&h, &d).await.unwrap_err().code(), "invalid_grant");
    // Device logins show up in Connected Apps, so they can be capped and revoked.
    assert_eq!(
        h.gate
            .consents()
            .list(&signed_in(h.user))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn device_flow_denied_and_expired() {
    let h = harness().await;
    let d = start_device(&h).await;
    h.gate
        .device()
        .resolve(&signed_in(h.user), d.user_code.as_str(), false, None)
        .await
        .unwrap();
    assert_eq!(poll(&h, &d).await.unwrap_err().code(), "access_denied");
    let d2 = start_device(&h).await;
    h.clock.advance(Duration::seconds(900));
    assert_eq!(poll(&h, &d2).await.unwrap_err().code(), "expired_token");
    assert_eq!(
        h.gate
            .device()
            .resolve(&signed_in(h.user), d2.user_code.as_str(), true, None)
            .await
            .unwrap_err()
            .code(),
        "expired_token"
    );
}

#[tokio::test]
async fn device_flow_needs_the_registered_grant() {
    let h = harness().await;
    assert_eq!(
        h.gate
            .device()
            .start(&h.device_req(h.spa_auth(), None))
            .await
            .unwrap_err()
            .code(),
        "unauthorized_client"
    );
}

// ----- revoke, introspect, userinfo, me -------------------------------------------------------

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family_and_unknown_tokens_are_ok() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let caller = Credentials {
        client: Some(h.auth()),
        ..Credentials::default()
    };
    h.gate
        .tokens()
        .revoke(&caller, Some(&rt(&t)))
        .await
        .unwrap();
    assert!(!h.active(t.access_token.expose()).await);
    assert!(
        h.gate
            .tokens()
            .revoke(&caller, Some("civitai_nope"))
            .await
            .is_ok()
    );
    assert_eq!(
        h.gate.tokens().revoke(&caller, None).await.unwrap_err(),
        Error::invalid_request("Missing token parameter")
    );
    assert!(h.audit_kinds().contains(&AuditKind::TokenRevoked));
}

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_token_but_the_user_can() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let other = Credentials {
        client: Some(h.spa_auth()),
        ..Credentials::default()
    };
    h.gate
        .tokens()
        .revoke(&other, Some(t.access_token.expose()))
        .await
        .unwrap();
    assert!(h.active(t.access_token.expose()).await);
    h.gate
        .tokens()
        .revoke(&h.session_creds().await, Some(t.access_token.expose()))
        .await
        .unwrap();
    assert!(!h.active(t.access_token.expose()).await);
}

#[tokio::test]
async fn revocation_reaches_a_cached_token() {
    let h = harness().await;
    let t = h.tokens("1").await;
    h.gate
        .tokens()
        .validate_bearer(t.access_token.expose())
        .await
        .unwrap(); // now cached
    h.gate
        .tokens()
        .revoke(&h.session_creds().await, Some(t.access_token.expose()))
        .await
        .unwrap();
    assert!(!h.active(t.access_token.expose()).await);
}

#[tokio::test]
async fn introspection_reports_active_tokens_with_buzz_limit_and_inactive_ones_bare() {
    let h = harness().await;
    let t = h.tokens("114689").await;
    let i = h
        .gate
        .tokens()
        .introspect(&h.client(h.auth()).await, Some(t.access_token.expose()))
        .await
        .unwrap();
    assert!(i.active);
    assert_eq!(i.record.as_ref().unwrap().kind, TokenKind::Access);
    assert_eq!(i.username.as_deref(), Some("ada"));
    assert_eq!(i.buzz_limit, Some(BuzzLimit::consent_default()));
    let gone = h
        .gate
        .tokens()
        .introspect(&h.client(h.auth()).await, Some("civitai_unknown"))
        .await
        .unwrap();
    assert!(!gone.active && gone.record.is_none());
    assert_eq!(
        h.gate
            .tokens()
            .introspect(&h.client(h.spa_auth()).await, Some("x"))
            .await
            .unwrap_err()
            .code(),
        "unauthorized_client"
    );
}

#[tokio::test]
async fn userinfo_needs_user_read_and_omits_unknown_email_verification() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let info = h
        .gate
        .tokens()
        .userinfo(&h.bearer(t.access_token.expose()).await)
        .await
        .unwrap();
    assert_eq!(
        (info.id, info.username.as_deref(), info.email_verified),
        (h.user, Some("ada"), Some(true))
    );
    let (key, _) = h
        .gate
        .api_keys()
        .create(
            &signed_in(h.user),
            NewApiKey {
                name: "k".into(),
                scope: Some(Scope::NONE),
                buzz_limit: None,
                expires_in_days: None,
            },
        )
        .await
        .unwrap();
    // API keys always carry UserRead too; an access token without it can only come from
    // before that rule, so check the contract on the Bearer directly.
    assert!(
        h.gate
            .tokens()
            .userinfo(&h.bearer(key.expose()).await)
            .await
            .is_ok()
    );
    let bearer = h
        .gate
        .tokens()
        .validate_bearer(t.access_token.expose())
        .await
        .unwrap();
    assert_eq!(
        bearer
            .require(Scope::MODELS_WRITE)
            .unwrap_err()
            .description(),
        "Token does not have ModelsWrite scope"
    );
    let garbage = Credentials {
        bearer: Some("garbage token".into()),
        ..Credentials::default()
    };
    assert_eq!(
        h.gate
            .callers()
            .identify(&garbage)
            .await
            .unwrap_err()
            .code(),
        "invalid_token"
    );
}

#[tokio::test]
async fn me_reports_subject_scope_and_buzz_limit() {
    let h = harness().await;
    let t = h.tokens("114689").await;
    let me = h
        .gate
        .tokens()
        .me(&h.bearer(t.access_token.expose()).await)
        .await
        .unwrap();
    assert_eq!(me.subject, Subject::OAuth(h.app.clone()));
    assert_eq!(me.token_scope, Scope::AI_SERVICES);
    assert_eq!(me.buzz_limit, Some(BuzzLimit::consent_default()));
}

// ----- apps, connected apps, API keys ---------------------------------------------------------

#[tokio::test]
async fn rotate_secret_kills_the_old_secret_and_keeps_tokens() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let new = h
        .gate
        .clients()
        .rotate_secret(&signed_in(h.owner), &h.app)
        .await
        .unwrap();
    assert_eq!(
        h.refresh(&rt(&t), None).await.unwrap_err().code(),
        "invalid_client"
    );
    let mut req = h.token_req(GrantRequest::RefreshToken {
        refresh_token: Some(rt(&t)),
        scope: None,
    });
    req.client.secret = Some(new.expose().into());
    assert!(h.gate.tokens().token(req).await.is_ok());
    assert!(h.active(t.access_token.expose()).await);
}

#[tokio::test]
async fn deleting_an_app_cascades_but_keeps_the_audit_trail() {
    let h = harness().await;
    let t = h.tokens("1").await;
    h.gate
        .tokens()
        .validate_bearer(t.access_token.expose())
        .await
        .unwrap();
    h.gate
        .clients()
        .delete(&signed_in(h.owner), &h.app)
        .await
        .unwrap();
    assert!(!h.active(t.access_token.expose()).await);
    assert!(
        h.gate
            .consents()
            .list(&signed_in(h.user))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(h.audit_kinds().contains(&AuditKind::ClientDeleted));
    assert!(h.audit_kinds().contains(&AuditKind::TokenIssued));
}

#[tokio::test]
async fn apps_of_other_owners_look_missing_and_token_callers_need_user_write() {
    let h = harness().await;
    assert_eq!(
        h.gate
            .clients()
            .get(&signed_in(h.user), &h.app)
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
    let reader = token_caller(h.owner, None, Scope::USER_READ);
    assert!(h.gate.clients().get(&reader, &h.app).await.is_ok());
    assert_eq!(
        h.gate.clients().delete(&reader, &h.app).await.unwrap_err(),
        Error::InsufficientScope {
            required: Scope::USER_WRITE
        }
    );
    let listed = h.gate.clients().list(&signed_in(h.owner)).await.unwrap();
    assert_eq!(listed.len(), 2);
}

#[tokio::test]
async fn a_token_cannot_change_its_own_apps_buzz_limit() {
    let h = harness().await;
    h.tokens("114689").await;
    let own = token_caller(h.user, Some(&h.app), Scope::FULL);
    let e = h
        .gate
        .consents()
        .set_buzz_limit(&own, &h.app, BuzzLimit::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "access_denied");
    let c = h
        .gate
        .consents()
        .set_buzz_limit(
            &signed_in(h.user),
            &h.app,
            BuzzLimit::per_period(10, 1).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(c.buzz_limit, BuzzLimit::per_period(10, 1).unwrap());
    assert_eq!(
        h.gate
            .consents()
            .set_buzz_limit(&signed_in(h.user), &h.spa, BuzzLimit::default())
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
}

#[tokio::test]
async fn connected_apps_revoke_kills_tokens_and_consent() {
    let h = harness().await;
    let t = h.tokens("1").await;
    h.gate
        .consents()
        .revoke(&signed_in(h.user), &h.app)
        .await
        .unwrap();
    assert!(!h.active(t.access_token.expose()).await);
    assert!(h.refresh(&rt(&t), None).await.is_err());
    assert_eq!(
        h.gate
            .consents()
            .revoke(&signed_in(h.user), &h.app)
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
}

#[tokio::test]
async fn api_keys_are_bearers_of_type_api_key_listed_and_deleted() {
    let h = harness().await;
    let caller = signed_in(h.user);
    let new = NewApiKey {
        name: "ci".into(),
        scope: Some(Scope::BUZZ_READ),
        buzz_limit: None,
        expires_in_days: Some(1),
    };
    let (key, rec) = h.gate.api_keys().create(&caller, new).await.unwrap();
    let me = h
        .gate
        .tokens()
        .me(&h.bearer(key.expose()).await)
        .await
        .unwrap();
    assert_eq!(me.subject, Subject::ApiKey(rec.id.to_string()));
    assert_eq!(h.gate.api_keys().list(&caller).await.unwrap().len(), 1);
    h.gate.api_keys().delete(&caller, rec.id).await.unwrap();
    assert!(!h.active(key.expose()).await);
    assert_eq!(
        h.gate
            .api_keys()
            .delete(&caller, rec.id)
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
    let by_token = token_caller(h.user, None, Scope::FULL);
    let new = NewApiKey {
        name: "x".into(),
        scope: Some(Scope::FULL),
        buzz_limit: None,
        expires_in_days: None,
    };
    assert_eq!(
        h.gate
            .api_keys()
            .create(&by_token, new)
            .await
            .unwrap_err()
            .code(),
        "access_denied"
    );
}

// ----- Buzz -----------------------------------------------------------------------------------

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

#[tokio::test]
async fn spend_is_capped_idempotent_and_refundable() {
    let h = harness().await;
    h.make_resource_server().await;
    credit(&h.store, h.user, 10_000).await;
    let t = h.tokens("114689").await;
    h.gate
        .consents()
        .set_buzz_limit(
            &signed_in(h.user),
            &h.app,
            BuzzLimit::per_period(100, 1).unwrap(),
        )
        .await
        .unwrap();
    let at = t.access_token.expose();
    let r = h
        .gate
        .buzz()
        .spend(&h.rs().await, spend(at, 60, "k1", "ai_services"))
        .await
        .unwrap();
    assert_eq!((r.balance, r.limits[0].remaining), (9_940, 40));
    let replay = h
        .gate
        .buzz()
        .spend(&h.rs().await, spend(at, 60, "k1", "ai_services"))
        .await
        .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.balance, 9_940);
    assert_eq!(
        h.gate
            .buzz()
            .spend(&h.rs().await, spend(at, 61, "k1", "ai_services"))
            .await
            .unwrap_err()
            .code(),
        "conflict"
    );
    assert_eq!(
        h.gate
            .buzz()
            .spend(&h.rs().await, spend(at, 41, "k2", "ai_services"))
            .await
            .unwrap_err(),
        Error::InsufficientFunds
    );
    let (_, balance) = h
        .gate
        .buzz()
        .refund(&h.rs().await, r.entry.id)
        .await
        .unwrap();
    assert_eq!(balance, 10_000);
    let (_, again) = h
        .gate
        .buzz()
        .refund(&h.rs().await, r.entry.id)
        .await
        .unwrap();
    assert_eq!(again, 10_000, "a second refund credits nothing");
    assert!(
        h.gate
            .buzz()
            .spend(&h.rs().await, spend(at, 100, "k3", "ai_services"))
            .await
            .is_ok()
    );
    // The sliding day counts spends made at or after now - 24 h.
    // The cap belongs to the (user, app) grant, so a new token of the app shares it.
    h.clock.advance(Duration::days(1) - Duration::seconds(1));
    let t2 = h.tokens("114689").await;
    let at = t2.access_token.expose();
    assert_eq!(
        h.gate
            .buzz()
            .spend(&h.rs().await, spend(at, 1, "k4", "ai_services"))
            .await
            .unwrap_err(),
        Error::InsufficientFunds
    );
    h.clock.advance(Duration::seconds(2));
    assert!(
        h.gate
            .buzz()
            .spend(&h.rs().await, spend(at, 100, "k5", "ai_services"))
            .await
            .is_ok()
    );
    let kinds = h.audit_kinds();
    assert!(kinds.contains(&AuditKind::BuzzSpent) && kinds.contains(&AuditKind::BuzzRefunded));
}

#[tokio::test]
async fn over_balance_is_indistinguishable_from_over_cap() {
    let h = harness().await;
    h.make_resource_server().await;
    credit(&h.store, h.user, 5).await;
    let t = h.tokens("114689").await;
    let e = h
        .gate
        .buzz()
        .spend(
            &h.rs().await,
            spend(t.access_token.expose(), 6, "k", "ai_services"),
        )
        .await
        .unwrap_err();
    assert_eq!(e, Error::InsufficientFunds);
}

#[tokio::test]
async fn spend_needs_the_purpose_scope_and_a_resource_server() {
    let h = harness().await;
    credit(&h.store, h.user, 100).await;
    let t = h.tokens("BuzzRead").await;
    let at = t.access_token.expose();
    assert_eq!(
        h.gate
            .buzz()
            .spend(&h.rs().await, spend(at, 1, "k", "ai_services"))
            .await
            .unwrap_err()
            .code(),
        "unauthorized_client"
    );
    h.make_resource_server().await;
    let e = h
        .gate
        .buzz()
        .spend(&h.rs().await, spend(at, 1, "k", "ai_services"))
        .await
        .unwrap_err();
    assert_eq!(e.description(), "Token does not have AIServicesWrite scope");
    let e = h
        .gate
        .buzz()
        .spend(&h.rs().await, spend(at, 1, "k", "bounty"))
        .await
        .unwrap_err();
    assert_eq!(e.description(), "Token does not have BountiesWrite scope");
    assert_eq!(
        h.gate
            .buzz()
            .spend(&h.rs().await, spend(at, 1, "k", "tip"))
            .await
            .unwrap_err()
            .code(),
        "invalid_request"
    );
}

#[tokio::test]
async fn bounty_spend_ignores_the_cap_but_not_the_balance() {
    let h = harness().await;
    h.make_resource_server().await;
    credit(&h.store, h.user, 1_000).await;
    let t = h.tokens("Full").await;
    h.gate
        .consents()
        .set_buzz_limit(
            &signed_in(h.user),
            &h.app,
            BuzzLimit::per_period(1, 1).unwrap(),
        )
        .await
        .unwrap();
    let at = t.access_token.expose();
    assert!(
        h.gate
            .buzz()
            .spend(&h.rs().await, spend(at, 500, "b1", "bounty"))
            .await
            .is_ok()
    );
    assert_eq!(
        h.gate
            .buzz()
            .spend(&h.rs().await, spend(at, 501, "b2", "bounty"))
            .await
            .unwrap_err(),
        Error::InsufficientFunds
    );
}

#[tokio::test]
async fn balance_needs_buzz_read_and_limits_show_the_apps_budgets() {
    let h = harness().await;
    credit(&h.store, h.user, 42).await;
    let t = h.tokens("114689").await;
    let o = h
        .gate
        .buzz()
        .overview(&h.bearer(t.access_token.expose()).await)
        .await
        .unwrap();
    assert_eq!(o.balances, vec![(Currency::yellow(), 42)]);
    let limits = h
        .gate
        .buzz()
        .limits(&h.bearer(t.access_token.expose()).await)
        .await
        .unwrap();
    assert_eq!((limits[0].limit, limits[0].remaining), (5000, 5000));
    let t2 = h.tokens("1").await;
    assert_eq!(
        h.gate
            .buzz()
            .overview(&h.bearer(t2.access_token.expose()).await)
            .await
            .unwrap_err()
            .code(),
        "insufficient_scope"
    );
}

// ----- sessions and rate limits ---------------------------------------------------------------

#[tokio::test]
async fn login_checks_the_password_and_sessions_resolve_until_logout() {
    let h = harness().await;
    let s = h.gate.sessions();
    assert_eq!(
        s.login("ada", "wrong password", None)
            .await
            .unwrap_err()
            .code(),
        "access_denied"
    );
    assert_eq!(
        s.login("nobody", "correct horse battery", None)
            .await
            .unwrap_err()
            .code(),
        "access_denied"
    );
    let (cookie, session) = s.login("ADA", "correct horse battery", None).await.unwrap();
    let (found, user) = s.resolve(cookie.expose()).await.unwrap().unwrap();
    assert_eq!((found.user_id, user.id), (h.user, h.user));
    assert!(session.check_csrf(Some(&found.csrf_token)).is_ok());
    let without_csrf = Credentials {
        session: Some(cookie.expose().to_owned()),
        ..Credentials::default()
    };
    let caller = h.gate.callers().identify(&without_csrf).await.unwrap();
    assert_eq!(
        s.logout(&caller).await.unwrap_err().code(),
        "access_denied",
        "signing out is a change: it needs the CSRF proof"
    );
    let with_csrf = Credentials {
        csrf_token: Some(session.csrf_token.clone()),
        ..without_csrf
    };
    let caller = h.gate.callers().identify(&with_csrf).await.unwrap();
    s.logout(&caller).await.unwrap();
    assert!(s.resolve(cookie.expose()).await.unwrap().is_none());
    let dup = NewUser {
        username: Username::parse("Ada").unwrap(),
        email: None,
        email_verified: false,
        password: None,
        roles: vec![],
    };
    assert_eq!(s.create_user(dup).await.unwrap_err().code(), "conflict");
}

fn cc(auth: ClientAuth, ip: &str) -> TokenRequest {
    TokenRequest {
        client: auth,
        origin: None,
        ip: Some(ip.into()),
        grant: GrantRequest::ClientCredentials { scope: None },
    }
}

#[tokio::test]
async fn strangers_failing_client_authentication_are_blocked_not_the_client() {
    let h = harness().await;
    let mut wrong = h.auth();
    wrong.secret = Some("not the secret".into());
    for _ in 0..20 {
        let e = h
            .gate
            .tokens()
            .token(cc(wrong.clone(), "10.0.0.1"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalid_client");
    }
    // The address is now refused before any work, even with the right secret...
    let e = h
        .gate
        .tokens()
        .token(cc(h.auth(), "10.0.0.1"))
        .await
        .unwrap_err();
    assert_eq!(e, Error::RateLimited { retry_after: 60 });
    // ...while the client itself, from its own address, is untouched.
    assert!(
        h.gate
            .tokens()
            .token(cc(h.auth(), "10.0.0.2"))
            .await
            .is_ok()
    );
    h.clock.advance(Duration::seconds(60));
    assert!(
        h.gate
            .tokens()
            .token(cc(h.auth(), "10.0.0.1"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_client_bucket_counts_only_authenticated_requests() {
    let h = harness_with(Config {
        rate_limits: super::RateLimits {
            token: Some(3),
            ..super::RateLimits::default()
        },
        ..Config::default()
    })
    .await;
    let mut wrong = h.auth();
    wrong.secret = Some("not the secret".into());
    for i in 0..10 {
        let ip = format!("10.0.1.{i}");
        assert!(h.gate.tokens().token(cc(wrong.clone(), &ip)).await.is_err());
    }
    for _ in 0..3 {
        h.gate
            .tokens()
            .token(cc(h.auth(), "10.0.0.9"))
            .await
            .unwrap();
    }
    let e = h
        .gate
        .tokens()
        .token(cc(h.auth(), "10.0.0.9"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "rate_limited");
}

#[tokio::test]
async fn sign_in_is_throttled_per_account_and_per_address() {
    let h = harness().await;
    let s = h.gate.sessions();
    for i in 0..10 {
        let ip = format!("10.0.2.{i}");
        let e = s
            .login("ada", "wrong password", Some(&ip))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "access_denied");
    }
    let e = s
        .login("ADA", "correct horse battery", Some("10.0.3.1"))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        Error::RateLimited { retry_after: 60 },
        "the account is locked for the window, whatever the address and case"
    );
    assert!(
        s.login("owner", "correct horse battery", Some("10.0.3.1"))
            .await
            .is_ok(),
        "other accounts are not"
    );
    for i in 0..30 {
        let e = s
            .login(&format!("guess{i}"), "wrong password", Some("10.0.4.4"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "access_denied");
    }
    assert_eq!(
        s.login("owner", "correct horse battery", Some("10.0.4.4"))
            .await
            .unwrap_err()
            .code(),
        "rate_limited",
        "30 failures from one address block that address"
    );
    h.clock.advance(Duration::seconds(60));
    assert!(
        s.login("ada", "correct horse battery", Some("10.0.4.4"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn disabled_buckets_never_limit() {
    let limits = super::RateLimits {
        authorize: None,
        token: Some(1),
        client_auth_failures: None,
        revoke: Some(1),
        login_account: None,
        login_ip: None,
    };
    let h = harness_with(Config {
        rate_limits: limits,
        ..Config::default()
    })
    .await;
    for _ in 0..50 {
        h.gate
            .deps
            .check_rate(Bucket::AuthorizeUser(h.user))
            .await
            .unwrap();
        h.gate
            .deps
            .check_failures(Bucket::LoginAccount("ada"))
            .await
            .unwrap();
        h.gate
            .deps
            .record_failure(Bucket::LoginAccount("ada"))
            .await;
    }
}

#[tokio::test]
async fn a_store_outage_is_temporarily_unavailable_not_a_server_error() {
    let h = harness().await;
    let t = h.tokens("1").await;
    h.store.set_down(true);
    let e = h
        .gate
        .tokens()
        .validate_bearer(t.access_token.expose())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "temporarily_unavailable");
    assert_eq!(e.retry_after(), Some(1));
    h.store.set_down(false);
    assert!(h.active(t.access_token.expose()).await);
}

// ----- concurrency (real tasks on a multi-threaded runtime) -----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_64_concurrent_redeemers_wins_the_code() {
    let h = Arc::new(harness().await);
    let (code, v) = h.code("1", true).await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (h, code, v) = (h.clone(), code.clone(), v.clone());
            tokio::spawn(async move { h.exchange(&code, &v).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert_eq!(e.code(), "invalid_grant"),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_refreshes_inside_grace_all_succeed() {
    let h = Arc::new(harness().await);
    let t = h.tokens("1").await;
    let token = rt(&t);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (h, token) = (h.clone(), token.clone());
            tokio::spawn(async move { h.refresh(&token, None).await })
        })
        .collect();
    let mut successors = BTreeSet::new();
    for t in tasks {
        successors.insert(rt(&t
            .await
            .unwrap()
            .expect("a retry inside the grace window succeeds")));
    }
    assert_eq!(successors.len(), 64, "each retry gets its own successor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_without_grace_end_with_one_winner_and_a_dead_family() {
    let h = Arc::new(
        harness_with(Config {
            refresh_grace: Duration::ZERO,
            ..Config::default()
        })
        .await,
    );
    let t = h.tokens("1").await;
    let token = rt(&t);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (h, token) = (h.clone(), token.clone());
            tokio::spawn(async move { h.refresh(&token, None).await })
        })
        .collect();
    let mut ok = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => ok.push(r),
            Err(e) => assert_eq!(e.code(), "invalid_grant", "never a server error"),
        }
    }
    assert_eq!(ok.len(), 1);
    // The reuse revoked the family, the winner's successor included.
    assert!(h.refresh(&rt(&ok[0]), None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_spends_never_exceed_the_cap_by_one_unit() {
    let h = Arc::new(harness().await);
    h.make_resource_server().await;
    credit(&h.store, h.user, 1_000_000).await;
    let t = h.tokens("114689").await;
    let cap = 37;
    h.gate
        .consents()
        .set_buzz_limit(
            &signed_in(h.user),
            &h.app,
            BuzzLimit::per_period(cap, 1).unwrap(),
        )
        .await
        .unwrap();
    let at = t.access_token.expose().to_owned();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (h, at) = (h.clone(), at.clone());
            tokio::spawn(async move {
                h.gate
                    .buzz()
                    .spend(
                        &h.rs().await,
                        spend(&at, 1, &format!("k{i}"), "ai_services"),
                    )
                    .await
            })
        })
        .collect();
    let mut spent = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => spent += 1,
            Err(e) => assert_eq!(e, Error::InsufficientFunds),
        }
    }
    assert_eq!(spent, cap);
    let limits = h.gate.buzz().limits(&h.bearer(&at).await).await.unwrap();
    assert_eq!((limits[0].spend, limits[0].remaining), (cap, 0));
}

fn note(seen: &mut BTreeSet<&'static str>, r: Result<(), Error>) {
    if let Err(e) = r {
        seen.insert(e.code());
    }
}

// ----- every wire error code of SPEC 3 comes out of a real service call -----------------------

#[tokio::test]
async fn every_spec_error_code_is_produced_by_a_service() {
    let h = harness().await;
    credit(&h.store, h.user, 1).await;
    let mut seen = BTreeSet::new();
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    let tokens = h.gate.tokens();
    // invalid_request, invalid_client
    if let AuthorizeOutcome::Reject(e) = h
        .gate
        .authorize()
        .authorize(&AuthorizeParams::default(), &Caller::Anonymous, None)
        .await
        .unwrap()
    {
        seen.insert(e.code());
    }
    let mut unknown = h.token_req(GrantRequest::ClientCredentials { scope: None });
    unknown.client.client_id = ClientId::parse("nope").unwrap();
    note(&mut seen, tokens.token(unknown).await.map(drop));
    // unsupported_response_type, invalid_scope (redirected errors)
    for p in [
        AuthorizeParams {
            response_type: Some("token".into()),
            ..h.params("1", &v)
        },
        h.params("-1", &v),
    ] {
        if let AuthorizeOutcome::RedirectError { location } = h
            .gate
            .authorize()
            .authorize(&p, &signed_in(h.user), None)
            .await
            .unwrap()
        {
            seen.insert(match query(&location, "error").unwrap().as_str() {
                "unsupported_response_type" => "unsupported_response_type",
                "invalid_scope" => "invalid_scope",
                other => panic!("{other}"),
            });
        }
    }
    // access_denied
    let answer = ConsentAnswer {
        approved: false,
        remember: false,
        buzz_limit: None,
    };
    if let AuthorizeOutcome::Redirect { location } = h
        .gate
        .authorize()
        .decide(&h.params("1", &v), &signed_in(h.user), &answer, None)
        .await
        .unwrap()
    {
        if query(&location, "error").as_deref() == Some("access_denied") {
            seen.insert("access_denied");
        }
    }
    // invalid_grant, unauthorized_client, origin_not_allowed, unsupported_grant_type
    note(
        &mut seen,
        h.refresh("civitai_unknown", None).await.map(drop),
    );
    let mut spa = h.token_req(GrantRequest::ClientCredentials { scope: None });
    spa.client = h.spa_auth();
    note(&mut seen, tokens.token(spa.clone()).await.map(drop));
    spa.origin = Some("https://evil.example.com".into());
    note(&mut seen, tokens.token(spa).await.map(drop));
    note(
        &mut seen,
        GrantRequest::grant_type(Some("password")).map(drop),
    );
    // invalid_token, insufficient_scope
    let unknown = Credentials {
        bearer: Some("civitai_unknown".into()),
        ..Credentials::default()
    };
    note(
        &mut seen,
        h.gate.callers().identify(&unknown).await.map(drop),
    );
    let t = h.tokens("1").await;
    note(
        &mut seen,
        h.gate
            .buzz()
            .overview(&h.bearer(t.access_token.expose()).await)
            .await
            .map(drop),
    );
    // insufficient_funds
    h.make_resource_server().await;
    let t = h.tokens("114689").await;
    note(
        &mut seen,
        h.gate
            .buzz()
            .spend(
                &h.rs().await,
                spend(t.access_token.expose(), 2, "k", "ai_services"),
            )
            .await
            .map(drop),
    );
    // authorization_pending, slow_down, expired_token
    let d = start_device(&h).await;
    note(&mut seen, poll(&h, &d).await.map(drop));
    note(&mut seen, poll(&h, &d).await.map(drop));
    h.clock.advance(Duration::seconds(900));
    note(&mut seen, poll(&h, &d).await.map(drop));
    // rate_limited
    for _ in 0..21 {
        note(
            &mut seen,
            h.gate.deps.check_rate(Bucket::RevokeIp("1.2.3.4")).await,
        );
    }
    // temporarily_unavailable
    h.store.set_down(true);
    let x = Credentials {
        bearer: Some("civitai_x".into()),
        ..Credentials::default()
    };
    note(&mut seen, h.gate.callers().identify(&x).await.map(drop));
    h.store.set_down(false);

    let spec3 = [
        "invalid_request",
        "invalid_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "origin_not_allowed",
        "invalid_token",
        "insufficient_scope",
        "insufficient_funds",
        "authorization_pending",
        "slow_down",
        "expired_token",
        "rate_limited",
        "temporarily_unavailable",
    ];
    let missing: Vec<_> = spec3.iter().filter(|c| !seen.contains(*c)).collect();
    assert!(missing.is_empty(), "never produced: {missing:?}");
}

#[tokio::test]
async fn api_keys_default_to_read_only() {
    let h = harness().await;
    let new = NewApiKey {
        name: "default".into(),
        scope: None,
        buzz_limit: None,
        expires_in_days: None,
    };
    let (_, rec) = h
        .gate
        .api_keys()
        .create(&signed_in(h.user), new)
        .await
        .unwrap();
    assert_eq!(rec.scope, Scope::READ_ONLY.with_user_read());
}

#[tokio::test]
async fn crediting_is_for_admins_and_positive_amounts() {
    let h = harness().await;
    let admin = Caller::operator();
    assert_eq!(
        h.gate
            .buzz()
            .credit(&admin, h.user, "yellow", 100)
            .await
            .unwrap(),
        100
    );
    assert_eq!(
        h.gate
            .buzz()
            .credit(&admin, h.user, "yellow", 0)
            .await
            .unwrap_err()
            .code(),
        "invalid_request"
    );
    assert_eq!(
        h.gate
            .buzz()
            .credit(&admin, h.user, "", 5)
            .await
            .unwrap_err()
            .code(),
        "invalid_request"
    );
    assert_eq!(
        h.gate
            .buzz()
            .credit(&signed_in(h.user), h.user, "yellow", 5)
            .await
            .unwrap_err()
            .code(),
        "access_denied"
    );
}

// ----- SPEC 13: revocation reaches everything, callers, access modes --------------------------

async fn revoke_app(h: &H) {
    h.gate
        .consents()
        .revoke(&signed_in(h.user), &h.app)
        .await
        .unwrap();
}

#[tokio::test]
async fn revoking_an_app_kills_its_unused_codes_even_after_a_new_approval() {
    let h = harness().await;
    let (old_code, old_v) = h.code("1", false).await;
    revoke_app(&h).await;
    assert_eq!(
        h.exchange(&old_code, &old_v).await.unwrap_err().code(),
        "invalid_grant"
    );
    let (stale, stale_v) = h.code("1", false).await; // approves again: a new consent
    revoke_app(&h).await;
    h.clock.advance(Duration::seconds(1));
    let (fresh, fresh_v) = h.code("1", false).await;
    assert_eq!(
        h.exchange(&stale, &stale_v).await.unwrap_err(),
        Error::invalid_grant("Invalid grant: the user has revoked this app's access"),
        "a code from before a revocation stays dead after the user approves again"
    );
    assert!(h.exchange(&fresh, &fresh_v).await.is_ok());
}

#[tokio::test]
async fn revoking_an_app_kills_its_approved_device_grants() {
    let h = harness().await;
    let d = start_device(&h).await;
    h.gate
        .device()
        .resolve(&signed_in(h.user), d.user_code.as_str(), true, None)
        .await
        .unwrap();
    revoke_app(&h).await;
    assert_eq!(poll(&h, &d).await.unwrap_err().code(), "invalid_grant");
}

#[tokio::test]
async fn refresh_without_a_consent_fails_closed_and_revokes_what_it_wrote() {
    let h = harness().await;
    let t = h.tokens("1").await;
    // A consent lost without its tokens (the state a racing revocation leaves for a moment).
    crate::ports::ConsentStore::delete(&h.store, h.user, &h.app)
        .await
        .unwrap();
    assert_eq!(
        h.refresh(&rt(&t), None).await.unwrap_err().code(),
        "invalid_grant"
    );
    let live = h
        .store
        .token_rows()
        .into_iter()
        .filter(|r| r.revoked_at.is_none() && r.kind == TokenKind::Refresh)
        .count();
    assert_eq!(live, 0, "the rotated rows were revoked with the family");
}

#[tokio::test]
async fn no_consent_means_no_spending_and_the_owner_cap_bounds_client_credentials() {
    let h = harness().await;
    h.make_resource_server().await;
    credit(&h.store, h.user, 1000).await;
    credit(&h.store, h.owner, 1000).await;
    let t = h.tokens("114689").await;
    crate::ports::ConsentStore::delete(&h.store, h.user, &h.app)
        .await
        .unwrap();
    let e = h
        .gate
        .buzz()
        .spend(
            &h.rs().await,
            spend(t.access_token.expose(), 1, "a", "ai_services"),
        )
        .await
        .unwrap_err();
    assert_eq!(e, Error::InsufficientFunds, "no consent is never 'no cap'");
    // The owner caps what the app spends for them through client_credentials.
    let cap = ClientUpdate {
        owner_buzz_limit: Some(
            BuzzLimit::new(vec![crate::buzz::Budget::Absolute {
                limit: 100,
                currencies: None,
            }])
            .unwrap(),
        ),
        ..Default::default()
    };
    assert_eq!(
        h.gate
            .clients()
            .update(&Caller::operator(), &h.app, cap.clone())
            .await
            .unwrap_err()
            .code(),
        "access_denied",
        "only the owner sets the owner's cap"
    );
    h.gate
        .clients()
        .update(&signed_in(h.owner), &h.app, cap)
        .await
        .unwrap();
    let cc = h
        .gate
        .tokens()
        .token(h.token_req(GrantRequest::ClientCredentials { scope: None }))
        .await
        .unwrap();
    let rs = h.rs().await;
    let pay =
        |amount, key: &'static str| spend(cc.access_token.expose(), amount, key, "ai_services");
    assert!(h.gate.buzz().spend(&rs, pay(100, "c1")).await.is_ok());
    assert_eq!(
        h.gate.buzz().spend(&rs, pay(1, "c2")).await.unwrap_err(),
        Error::InsufficientFunds
    );
}

#[tokio::test]
async fn access_modes_apply_to_every_way_of_getting_a_token() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let (code, v) = h.code("1", true).await;
    let d = start_device(&h).await;
    h.gate
        .device()
        .resolve(&signed_in(h.user), d.user_code.as_str(), true, None)
        .await
        .unwrap();
    async fn mode(h: &H, m: AccessMode) {
        h.gate
            .clients()
            .administer(&Caller::operator(), &h.app, None, Some(m), None)
            .await
            .unwrap();
    }
    mode(&h, AccessMode::Disabled).await;
    let disabled = |r: Result<TokenResponse, Error>| r.unwrap_err().code() == "unauthorized_client";
    assert!(disabled(h.refresh(&rt(&t), None).await), "refresh");
    assert!(disabled(h.exchange(&code, &v).await), "code exchange");
    assert!(disabled(poll(&h, &d).await), "device exchange");
    assert!(
        disabled(
            h.gate
                .tokens()
                .token(h.token_req(GrantRequest::ClientCredentials { scope: None }))
                .await
        ),
        "client credentials"
    );
    assert_eq!(
        h.gate
            .device()
            .start(&h.device_req(h.auth(), None))
            .await
            .unwrap_err()
            .code(),
        "unauthorized_client",
        "device start"
    );
    mode(&h, AccessMode::Testers).await;
    assert_eq!(
        h.refresh(&rt(&t), None).await.unwrap_err().code(),
        "invalid_grant",
        "ada is not a tester"
    );
    mode(&h, AccessMode::Open).await;
    assert!(
        h.refresh(&rt(&t), None).await.is_ok(),
        "the family survived the pause"
    );
}

#[tokio::test]
async fn introspection_is_for_resource_servers_and_the_tokens_own_client() {
    let h = harness().await;
    let t = h.tokens("1").await;
    // A second confidential app of the owner: neither the token's client nor a resource server.
    let other = h
        .gate
        .clients()
        .create(
            &signed_in(h.owner),
            crate::memory::sample_registration("Other"),
        )
        .await
        .unwrap();
    let other = h
        .client(ClientAuth {
            client_id: other.client.id,
            secret: other.secret.map(|s| s.expose().to_owned()),
            method: AuthMethod::Basic,
        })
        .await;
    let own = h.client(h.auth()).await;
    let key = h
        .gate
        .api_keys()
        .create(
            &signed_in(h.user),
            NewApiKey {
                name: "k".into(),
                scope: None,
                buzz_limit: None,
                expires_in_days: None,
            },
        )
        .await
        .unwrap()
        .0;
    let active = |caller: Caller, token: String| {
        let gate = h.gate.clone();
        async move {
            gate.tokens()
                .introspect(&caller, Some(&token))
                .await
                .unwrap()
                .active
        }
    };
    let access = t.access_token.expose().to_owned();
    assert!(!active(other.clone(), access.clone()).await);
    assert!(!active(other.clone(), rt(&t)).await);
    assert!(!active(other, key.expose().to_owned()).await);
    assert!(active(own.clone(), access.clone()).await);
    assert!(!active(own.clone(), key.expose().to_owned()).await);
    h.make_resource_server().await;
    let rs = h.rs().await;
    assert!(active(rs.clone(), access).await);
    assert!(active(rs.clone(), key.expose().to_owned()).await);
    // A refresh token rotated out past the grace window is inactive.
    let old = rt(&t);
    h.refresh(&old, None).await.unwrap();
    assert!(
        active(rs.clone(), old.clone()).await,
        "inside the grace window"
    );
    h.clock.advance(Duration::seconds(10));
    assert!(!active(rs, old).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redemptions_of_one_code_have_exactly_one_winner() {
    let h = Arc::new(harness().await);
    let (code, v) = h.code("1", true).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (h, code, v) = (h.clone(), code.clone(), v.clone());
            tokio::spawn(async move { h.exchange(&code, &v).await })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(tokens) => winners.push(tokens),
            Err(e) => assert_eq!(e.code(), "invalid_grant"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one token response");
    assert!(
        !h.active(winners[0].access_token.expose()).await,
        "the code was replayed, so what it issued is revoked"
    );
}

#[tokio::test]
async fn auth_time_is_when_the_user_signed_in() {
    let h = harness().await;
    h.clock.advance(Duration::hours(2));
    let v = CodeVerifier::generate(&SeededRandom::new(77));
    let answer = ConsentAnswer {
        approved: true,
        remember: false,
        buzz_limit: None,
    };
    // `signed_in` sessions started at the epoch; the code is issued two hours later.
    let AuthorizeOutcome::Redirect { location } = h
        .gate
        .authorize()
        .decide(&h.params("1", &v), &signed_in(h.user), &answer, None)
        .await
        .unwrap()
    else {
        panic!("approved")
    };
    let code = query(&location, "code").unwrap();
    h.exchange(&code, &v).await.unwrap();
    let row = h
        .store
        .token_rows()
        .into_iter()
        .find(|r| r.kind == TokenKind::Access)
        .unwrap();
    assert_eq!(row.auth_time, Some(time::OffsetDateTime::UNIX_EPOCH));
}

/// A token store whose `find` lets a revocation land after it read the row: exactly the
/// interleaving where a validation would otherwise cache a revoked token back.
struct RevokedMeanwhile {
    inner: MemoryStore,
    gate: std::sync::OnceLock<Buzzgate>,
}

#[async_trait::async_trait]
impl crate::ports::TokenStore for RevokedMeanwhile {
    async fn insert(
        &self,
        t: &[crate::token::TokenRecord],
    ) -> crate::ports::StoreResult<crate::ports::InsertOutcome> {
        self.inner.insert(t).await
    }
    async fn find(
        &self,
        hash: &crate::token::TokenHash,
    ) -> crate::ports::StoreResult<Option<crate::token::TokenRecord>> {
        let row = self.inner.find(hash).await?;
        if let (Some(r), Some(gate)) = (&row, self.gate.get())
            && r.revoked_at.is_none()
        {
            self.inner.revoke(hash, gate.deps.now()).await?;
            gate.deps.invalidate(&[*hash]).await.unwrap();
        }
        Ok(row)
    }
    async fn rotate_refresh(
        &self,
        p: &crate::token::TokenHash,
        r: &crate::grant::refresh_token::RefreshRotation,
    ) -> crate::ports::StoreResult<crate::grant::refresh_token::RotationDecision> {
        self.inner.rotate_refresh(p, r).await
    }
    async fn revoke(
        &self,
        h: &crate::token::TokenHash,
        now: time::OffsetDateTime,
    ) -> crate::ports::StoreResult<Option<crate::token::TokenRecord>> {
        self.inner.revoke(h, now).await
    }
    async fn revoke_family(
        &self,
        f: crate::ids::FamilyId,
        now: time::OffsetDateTime,
    ) -> crate::ports::StoreResult<Vec<crate::token::TokenHash>> {
        self.inner.revoke_family(f, now).await
    }
    async fn revoke_for_user_client(
        &self,
        u: UserId,
        c: &ClientId,
        now: time::OffsetDateTime,
    ) -> crate::ports::StoreResult<Vec<crate::token::TokenHash>> {
        self.inner.revoke_for_user_client(u, c, now).await
    }
    async fn list_api_keys(
        &self,
        u: UserId,
    ) -> crate::ports::StoreResult<Vec<crate::token::TokenRecord>> {
        self.inner.list_api_keys(u).await
    }
    async fn revoke_api_key(
        &self,
        u: UserId,
        id: crate::ids::TokenId,
        now: time::OffsetDateTime,
    ) -> crate::ports::StoreResult<Option<crate::token::TokenHash>> {
        self.inner.revoke_api_key(u, id, now).await
    }
    async fn sweep_expired(
        &self,
        before: time::OffsetDateTime,
        batch: u32,
    ) -> crate::ports::StoreResult<u32> {
        self.inner.sweep_expired(before, batch).await
    }
}

#[tokio::test]
async fn a_revoke_between_a_validations_read_and_its_cache_put_is_never_cached_back() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let racing = Arc::new(RevokedMeanwhile {
        inner: h.store.clone(),
        gate: std::sync::OnceLock::new(),
    });
    let gate = Buzzgate::new({
        let mut d = h
            .store
            .deps(Arc::new(SeededRandom::new(12)), Config::default());
        d.tokens = racing.clone();
        d
    });
    racing.gate.set(gate.clone()).ok();
    // This validation read the row while it was live; the revocation landed right after.
    let _ = gate.tokens().validate_bearer(t.access_token.expose()).await;
    assert!(
        !h.active(t.access_token.expose()).await,
        "the late cache put was refused: the revoked token is not served from the cache"
    );
}

#[tokio::test]
async fn app_tokens_never_manage_the_account_whatever_their_scope() {
    let h = harness().await;
    let app_token = token_caller(h.owner, Some(&h.spa), Scope::FULL);
    let e = h
        .gate
        .clients()
        .rotate_secret(&app_token, &h.app)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "access_denied");
    assert!(
        e.description()
            .contains("App tokens cannot manage the account")
    );
    assert_eq!(
        h.gate
            .clients()
            .delete(&app_token, &h.app)
            .await
            .unwrap_err()
            .code(),
        "access_denied"
    );
    assert!(h.gate.clients().list(&app_token).await.is_err());
    assert!(h.gate.consents().list(&app_token).await.is_err());
    assert!(h.gate.api_keys().list(&app_token).await.is_err());
    // The owner's app is untouched: its secret still authenticates.
    assert!(h.client(h.auth()).await.client().is_ok());
}

#[tokio::test]
async fn buzz_accounts_show_every_pool_with_its_lifetime_credits() {
    let h = harness().await;
    h.make_resource_server().await;
    let t = h.tokens("AIServices BuzzRead").await;
    let none = h
        .gate
        .buzz()
        .accounts(&h.bearer(t.access_token.expose()).await)
        .await
        .unwrap();
    assert_eq!(
        none.iter()
            .map(|a| (a.currency.as_str(), a.balance, a.lifetime))
            .collect::<Vec<_>>(),
        vec![("yellow", 0, 0)],
        "the default pool is always there"
    );
    credit(&h.store, h.user, 500).await;
    let rs = h.rs().await;
    let r = h
        .gate
        .buzz()
        .spend(&rs, spend(t.access_token.expose(), 40, "s1", "ai_services"))
        .await
        .unwrap();
    h.gate
        .buzz()
        .spend(&rs, spend(t.access_token.expose(), 10, "s2", "ai_services"))
        .await
        .unwrap();
    h.gate.buzz().refund(&rs, r.entry.id).await.unwrap();
    let a = h
        .gate
        .buzz()
        .accounts(&h.bearer(t.access_token.expose()).await)
        .await
        .unwrap();
    assert_eq!((a[0].balance, a[0].lifetime), (490, 500));
    let no_buzz_read = h.tokens("UserRead").await;
    assert_eq!(
        h.gate
            .buzz()
            .accounts(&h.bearer(no_buzz_read.access_token.expose()).await)
            .await
            .unwrap_err(),
        Error::InsufficientScope {
            required: Scope::BUZZ_READ
        }
    );
}

// ----- OpenID Connect scopes (issue 18) -------------------------------------------------------

/// Signs by writing the claims as JSON: the test reads what an id_token would carry.
struct JsonSigner;

impl crate::ports::IdTokenSigner for JsonSigner {
    fn sign(&self, claims: &crate::ports::IdTokenClaims) -> Result<String, Error> {
        Ok(serde_json::to_string(claims).unwrap())
    }
    fn jwks(&self) -> serde_json::Value {
        serde_json::json!({"keys": []})
    }
}

#[tokio::test]
async fn openid_asks_for_an_id_token_and_oidc_scopes_release_their_claims() {
    let h = harness_with_deps(Config::default(), |d| {
        d.id_tokens = Some(Arc::new(JsonSigner))
    })
    .await;
    let (code, v) = h.code("openid email", false).await;
    let t = h.exchange(&code, &v).await.unwrap();
    assert_eq!(t.scope, Scope::USER_READ);
    assert!(
        t.refresh_token.is_some(),
        "offline_access or not, a refresh token"
    );
    let claims: serde_json::Value = serde_json::from_str(
        t.id_token
            .as_deref()
            .expect("openid: an id_token, no nonce needed"),
    )
    .unwrap();
    assert_eq!(claims["sub"], h.user.0.to_string());
    assert_eq!(claims["aud"], h.app.as_str());
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert!(claims.get("nonce").is_none() && claims.get("name").is_none());
    let info = h
        .gate
        .tokens()
        .userinfo(&h.bearer(t.access_token.expose()).await)
        .await
        .unwrap();
    assert_eq!(info.email.as_deref(), Some("ada@example.com"));
    assert_eq!(
        (info.username, info.name, info.preferred_username),
        (None, None, None),
        "email alone releases no profile claims"
    );
    // The OIDC scopes survive rotation.
    let r = h.refresh(&rt(&t), Some("openid")).await.unwrap();
    assert_eq!(
        r.scope,
        Scope::USER_READ,
        "OIDC names never narrow a refresh"
    );
    let info = h
        .gate
        .tokens()
        .userinfo(&h.bearer(r.access_token.expose()).await)
        .await
        .unwrap();
    assert!(info.email.is_some() && info.name.is_none());

    let (code, v) = h.code("openid profile", false).await;
    let t = h.exchange(&code, &v).await.unwrap();
    let claims: serde_json::Value = serde_json::from_str(t.id_token.as_deref().unwrap()).unwrap();
    assert_eq!(
        (&claims["name"], &claims["preferred_username"]),
        (&serde_json::json!("ada"), &serde_json::json!("ada"))
    );
    assert!(claims.get("email").is_none());

    // A Civitai-style grant: no id_token without a nonce, every claim at userinfo.
    let (code, v) = h.code("1", false).await;
    let t = h.exchange(&code, &v).await.unwrap();
    assert!(t.id_token.is_none());
    let info = h
        .gate
        .tokens()
        .userinfo(&h.bearer(t.access_token.expose()).await)
        .await
        .unwrap();
    assert!(info.email.is_some() && info.username.is_some());
}

#[tokio::test]
async fn a_credit_past_the_largest_balance_is_refused_not_saturated() {
    let h = harness().await;
    let admin = Caller::operator();
    let big = u64::try_from(i64::MAX).unwrap() - 10;
    assert_eq!(
        h.gate.buzz().credit(&admin, h.user, "yellow", big).await,
        Ok(i64::MAX - 10)
    );
    let e = h
        .gate
        .buzz()
        .credit(&admin, h.user, "yellow", 11)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_request");
    assert!(e.description().contains("largest possible balance"));
    assert_eq!(
        h.gate.buzz().credit(&admin, h.user, "yellow", 10).await,
        Ok(i64::MAX),
        "nothing was lost: the balance is exactly what was credited"
    );
    assert!(
        h.gate
            .buzz()
            .credit(&admin, h.user, "yellow", u64::MAX)
            .await
            .is_err()
    );
}
