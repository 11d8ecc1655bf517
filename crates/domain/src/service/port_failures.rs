//! The services when a port fails: mockall stands in for one port at a time, the in-memory
//! adapter for the rest. A failing store is `temporarily_unavailable`, never a 500 or a lie.

use std::sync::Arc;

use super::authorize::AuthorizeOutcome;
use super::device::DeviceStartRequest;
use super::rate_limit::Bucket;
use super::tests::{answer, bare_user, client_creds, code_grant, signed_in};
use super::tokens::TokenRequest;
use super::{Buzzgate, Caller, Config, Deps};
use crate::authorize::AuthorizeParams;
use crate::client::{AuthMethod, ClientAuth, ClientRegistration};
use crate::error::{Error, StoreError};
use crate::ids::{ClientId, UserId};
use crate::memory::MemoryStore;
use crate::pkce::{CodeChallenge, CodeVerifier};
use crate::ports::*;
use crate::token::TokenResponse;

struct World {
    store: MemoryStore,
    user: UserId,
    app: ClientId,
    secret: String,
}

/// The call failed as an outage must: `temporarily_unavailable`, never a 500.
fn unavailable<T: std::fmt::Debug>(r: Result<T, Error>) -> Error {
    let e = r.unwrap_err();
    assert_eq!(e.code(), "temporarily_unavailable");
    e
}

fn down() -> StoreError {
    StoreError::Unavailable("connection refused".into())
}

async fn world() -> World {
    let store = MemoryStore::new(Arc::new(ManualClock::at_epoch()));
    let gate = Buzzgate::new(store.deps(Arc::new(SeededRandom::new(5)), Config::default()));
    let new = |n: &str| bare_user(n, Some("correct horse battery"));
    let owner = gate.sessions().create_user(new("owner")).await.unwrap().id;
    let user = gate.sessions().create_user(new("ada")).await.unwrap().id;
    let reg = ClientRegistration {
        name: "App".into(),
        redirect_uris: vec!["https://app.example.com/cb".into()],
        grants: Some(vec![
            "authorization_code".into(),
            "refresh_token".into(),
            "urn:ietf:params:oauth:grant-type:device_code".into(),
        ]),
        ..Default::default()
    };
    let created = gate
        .clients()
        .create(&Caller::operator_for(owner), reg)
        .await
        .unwrap();
    World {
        store,
        user,
        app: created.client.id,
        secret: created.secret.unwrap().expose().into(),
    }
}

impl World {
    /// Services over the shared in-memory state, with `adjust` swapping in mocks.
    fn gate(&self, adjust: impl FnOnce(&mut Deps)) -> Buzzgate {
        let mut deps = self
            .store
            .deps(Arc::new(SeededRandom::new(9)), Config::default());
        adjust(&mut deps);
        Buzzgate::new(deps)
    }
    fn auth(&self) -> ClientAuth {
        ClientAuth {
            client_id: self.app.clone(),
            secret: Some(self.secret.clone()),
            method: AuthMethod::Post,
        }
    }
    fn params(&self, v: &CodeVerifier) -> AuthorizeParams {
        AuthorizeParams {
            response_type: Some("code".into()),
            client_id: Some(self.app.to_string()),
            redirect_uri: Some("https://app.example.com/cb".into()),
            scope: Some("1".into()),
            state: Some("s".into()),
            code_challenge: Some(CodeChallenge::from_verifier(v).as_str().into()),
            code_challenge_method: Some("S256".into()),
            nonce: None,
            resources: Vec::new(),
        }
    }
    /// Tokens issued by a gate with no mock.
    async fn tokens(&self) -> TokenResponse {
        let plain = self.gate(|_| {});
        let (code, v) = self.code(&plain).await;
        plain
            .tokens()
            .token(self.exchange(&code, &v))
            .await
            .unwrap()
    }
    async fn code(&self, gate: &Buzzgate) -> (String, CodeVerifier) {
        let v = CodeVerifier::generate(&SeededRandom::new(3));
        let answer = answer(true, true, None);
        match gate
            .authorize()
            .decide(&self.params(&v), &signed_in(self.user), &answer, None)
            .await
            .unwrap()
        {
            AuthorizeOutcome::Redirect { location } => {
                let url = url::Url::parse(&location).unwrap();
                (
                    url.query_pairs()
                        .find(|(k, _)| k == "code")
                        .unwrap()
                        .1
                        .into_owned(),
                    v,
                )
            }
            other => panic!("{other:?}"),
        }
    }
    fn exchange(&self, code: &str, v: &CodeVerifier) -> TokenRequest {
        TokenRequest {
            client: self.auth(),
            origin: None,
            ip: None,
            grant: code_grant(code, Some(v.as_str()), "https://app.example.com/cb"),
            resources: Vec::new(),
        }
    }
}

#[tokio::test]
async fn code_store_outage_is_temporarily_unavailable() {
    let w = world().await;
    let mut codes = MockCodeStore::new();
    codes.expect_redeem().returning(|_, _| Err(down()));
    let gate = w.gate(|d| d.codes = Arc::new(codes));
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    let e = unavailable(gate.tokens().token(w.exchange("c0de", &v)).await);
    assert_eq!(e.retry_after(), Some(1));
}

/// The code's one redemption answers with tokens even when a replay revoked its family
/// before the rows were written: they are refused by the family's tombstone, so the response
/// carries tokens that were issued and revoked at once (RFC 6749 §4.1.2). Exactly one request
/// ever gets a token response for a code.
#[tokio::test]
async fn tokens_into_a_family_revoked_meanwhile_are_issued_dead() {
    let w = world().await;
    let plain = w.gate(|_| {});
    let (code, v) = w.code(&plain).await;
    let mut tokens = MockTokenStore::new();
    tokens
        .expect_insert()
        .times(1)
        .returning(|_| Ok(InsertOutcome::FamilyRevoked));
    let gate = w.gate(|d| d.tokens = Arc::new(tokens));
    let t = gate.tokens().token(w.exchange(&code, &v)).await.unwrap();
    let revoked = w
        .store
        .audit_events()
        .into_iter()
        .any(|e| e.kind == crate::audit::AuditKind::TokenRevoked);
    assert!(revoked, "the dead issue is audited as a revocation");
    assert!(
        plain
            .tokens()
            .validate_bearer(t.access_token.expose())
            .await
            .is_err(),
        "the tokens were never stored: they do not work"
    );
}

#[tokio::test]
async fn cache_read_failure_falls_back_to_the_store() {
    let w = world().await;
    let t = w.tokens().await;
    let mut cache = MockTokenCache::new();
    cache.expect_get().times(1).returning(|_| Err(down()));
    cache.expect_put().times(1).returning(|_, _| Err(down()));
    let gate = w.gate(|d| d.cache = Arc::new(cache));
    let token = t.access_token.expose();
    let bearer = gate.tokens().validate_bearer(token).await.unwrap();
    assert_eq!(bearer.user_id(), w.user);
}

#[tokio::test]
async fn revocation_is_not_reported_while_caches_may_still_accept_the_token() {
    let w = world().await;
    let t = w.tokens().await;
    let mut cache = MockTokenCache::new();
    cache
        .expect_invalidate()
        .times(1)
        .returning(|_| Err(down()));
    let gate = w.gate(|d| d.cache = Arc::new(cache));
    let caller = client_creds(w.auth());
    let token = t.access_token.expose();
    unavailable(gate.tokens().revoke(&caller, Some(token)).await);
}

#[tokio::test]
async fn audit_failure_never_fails_the_request_but_is_counted() {
    let w = world().await;
    let mut audit = MockAuditLog::new();
    audit.expect_record().returning(|_| Err(down()));
    let gate = w.gate(|d| d.audit = Arc::new(audit));
    let (code, v) = w.code(&gate).await;
    assert!(gate.tokens().token(w.exchange(&code, &v)).await.is_ok());
    assert!(
        gate.deps.audit_failures.count() >= 2,
        "authorization.granted and token.issued"
    );
}

#[tokio::test]
async fn rate_limiter_outage_never_passes_silently() {
    let w = world().await;
    let mut rl = MockRateLimiter::new();
    rl.expect_count().returning(|_, _, _| Err(down()));
    let gate = w.gate(|d| d.rate_limiter = Arc::new(rl));
    unavailable(gate.deps.check_rate(Bucket::RevokeIp("1.1.1.1")).await);
    assert_eq!(
        gate.deps
            .check_failures(Bucket::LoginIp("1.1.1.1"))
            .await
            .unwrap_err()
            .code(),
        "temporarily_unavailable",
        "a limiter that cannot answer never lets a throttled request through"
    );
}

#[tokio::test]
async fn rate_limiter_is_asked_with_the_bucket_key_limit_and_a_minute_window() {
    let w = world().await;
    let mut rl = MockRateLimiter::new();
    rl.expect_count()
        .withf(|key, window, add| key == "rl:authorize:user:7" && window.secs == 60 && *add == 1)
        .times(1)
        .returning(|_, _, _| Ok(11));
    let gate = w.gate(|d| d.rate_limiter = Arc::new(rl));
    // The 11th authorize of the minute (limit 10) waits until the window ends: the clock
    // is at the epoch, the start of a window.
    assert_eq!(
        gate.deps
            .check_rate(Bucket::AuthorizeUser(UserId(7)))
            .await
            .unwrap_err(),
        Error::RateLimited { retry_after: 60 }
    );
}

#[tokio::test]
async fn consent_write_failure_issues_no_code() {
    let w = world().await;
    let mut consents = MockConsentStore::new();
    consents.expect_get().returning(|_, _| Ok(None));
    consents.expect_save().returning(|_, _| Err(down()));
    let mut codes = MockCodeStore::new();
    codes.expect_insert().times(0);
    let gate = w.gate(|d| {
        d.consents = Arc::new(consents);
        d.codes = Arc::new(codes);
    });
    let v = CodeVerifier::generate(&SeededRandom::new(3));
    let answer = answer(true, true, None);
    let (p, ada) = (w.params(&v), signed_in(w.user));
    unavailable(gate.authorize().decide(&p, &ada, &answer, None).await);
}

#[tokio::test]
async fn client_store_outage_at_authorize_is_an_error_not_a_redirect() {
    let w = world().await;
    let mut clients = MockClientStore::new();
    clients.expect_get().returning(|_| Err(down()));
    let gate = w.gate(|d| d.clients = Arc::new(clients));
    let v = CodeVerifier::generate(&SeededRandom::new(3));
    let (p, ada) = (w.params(&v), signed_in(w.user));
    unavailable(gate.authorize().authorize(&p, &ada, None).await);
}

#[tokio::test]
async fn adapter_internal_errors_become_server_error_without_details() {
    let w = world().await;
    let mut tokens = MockTokenStore::new();
    tokens.expect_find().returning(|_| {
        Err(StoreError::Internal(
            "relation \"tokens\" has secret=abc".into(),
        ))
    });
    let gate = w.gate(|d| d.tokens = Arc::new(tokens));
    let e = gate
        .tokens()
        .validate_bearer("civitai_x")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "server_error");
    assert!(!e.description().contains("secret"));
}

#[tokio::test]
async fn device_start_retries_a_user_code_collision() {
    let w = world().await;
    let mut devices = MockDeviceStore::new();
    let mut first = true;
    devices.expect_insert().times(2).returning(move |_| {
        if std::mem::take(&mut first) {
            Err(StoreError::Conflict("user code in use".into()))
        } else {
            Ok(())
        }
    });
    let gate = w.gate(|d| d.devices = Arc::new(devices));
    let req = DeviceStartRequest {
        client: w.auth(),
        origin: None,
        ip: None,
        scope: None,
    };
    assert!(gate.device().start(&req).await.is_ok());
}

#[tokio::test]
async fn login_of_an_unknown_user_still_verifies_a_hash() {
    let w = world().await;
    let mut passwords = MockPasswordHasher::new();
    passwords.expect_verify().times(1).returning(|_, _| false);
    let gate = w.gate(|d| d.passwords = Arc::new(passwords));
    assert_eq!(
        gate.sessions()
            .login("nobody", "whatever password", None)
            .await
            .unwrap_err()
            .code(),
        "access_denied"
    );
}

#[tokio::test]
async fn spend_store_outage_is_temporarily_unavailable() {
    let w = world().await;
    let plain = w.gate(|_| {});
    let admin = Caller::operator();
    plain
        .clients()
        .administer(&admin, &w.app, None, None, Some(true))
        .await
        .unwrap();
    let t = {
        let mut p = w.params(&CodeVerifier::generate(&SeededRandom::new(3)));
        p.scope = Some("AIServices".into());
        let v = CodeVerifier::generate(&SeededRandom::new(3));
        let answer = answer(true, true, None);
        let AuthorizeOutcome::Redirect { location } = plain
            .authorize()
            .decide(&p, &signed_in(w.user), &answer, None)
            .await
            .unwrap()
        else {
            panic!()
        };
        let code = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        plain.tokens().token(w.exchange(&code, &v)).await.unwrap()
    };
    let rs = plain
        .clients()
        .get(&Caller::operator(), &w.app)
        .await
        .unwrap();
    let mut buzz = MockBuzzStore::new();
    buzz.expect_spend().returning(|_| Err(down()));
    let gate = w.gate(|d| d.buzz = Arc::new(buzz));
    let call = super::buzz::SpendCall {
        token: t.access_token.expose().into(),
        amount: 1,
        currency: None,
        purpose: "ai_services".into(),
        idempotency_key: "k".into(),
        description: None,
    };
    unavailable(gate.buzz().spend(&Caller::Client(Arc::new(rs)), call).await);
}

#[tokio::test]
async fn duplicate_username_is_conflict() {
    let w = world().await;
    let mut users = MockUserStore::new();
    users
        .expect_create()
        .returning(|_, _, _| Err(StoreError::Conflict("username taken".into())));
    let gate = w.gate(|d| d.users = Arc::new(users));
    let new = bare_user("ada", None);
    assert_eq!(
        gate.sessions().create_user(new).await.unwrap_err().code(),
        "conflict"
    );
}
