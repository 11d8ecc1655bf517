//! Rate limits: failed client authentication, the client bucket, sign-in throttling, disabled
//! buckets.

use time::Duration;

use crate::client::ClientAuth;
use crate::error::Error;
use crate::service::rate_limit::Bucket;
use crate::service::tokens::{GrantRequest, TokenRequest};
use crate::service::{Config, RateLimits};

use super::{err_code, harness, harness_with};

fn cc(auth: ClientAuth, ip: &str) -> TokenRequest {
    TokenRequest {
        client: auth,
        origin: None,
        ip: Some(ip.into()),
        grant: GrantRequest::ClientCredentials { scope: None },
        resources: Vec::new(),
    }
}

#[tokio::test]
async fn strangers_failing_client_authentication_are_blocked_not_the_client() {
    let h = harness().await;
    let mut wrong = h.auth();
    wrong.secret = Some("not the secret".into());
    for _ in 0..20 {
        let e = h.token(cc(wrong.clone(), "10.0.0.1")).await.unwrap_err();
        assert_eq!(e.code(), "invalid_client");
    }
    // The address is now refused whatever it presents, even the right secret...
    let e = h.token(cc(h.auth(), "10.0.0.1")).await.unwrap_err();
    assert_eq!(e, Error::RateLimited { retry_after: 60 });
    // ...while the client itself, from its own address, is untouched.
    assert!(h.token(cc(h.auth(), "10.0.0.2")).await.is_ok());
    h.clock.advance(Duration::seconds(60));
    assert!(h.token(cc(h.auth(), "10.0.0.1")).await.is_ok());
}

#[tokio::test]
async fn the_client_bucket_counts_only_authenticated_requests() {
    let h = harness_with(Config {
        rate_limits: RateLimits {
            token: Some(3),
            ..RateLimits::default()
        },
        ..Config::default()
    })
    .await;
    let mut wrong = h.auth();
    wrong.secret = Some("not the secret".into());
    for i in 0..10 {
        let ip = format!("10.0.1.{i}");
        assert!(h.token(cc(wrong.clone(), &ip)).await.is_err());
    }
    for _ in 0..3 {
        h.token(cc(h.auth(), "10.0.0.9")).await.unwrap();
    }
    let e = h.token(cc(h.auth(), "10.0.0.9")).await.unwrap_err();
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
        err_code(
            s.login("owner", "correct horse battery", Some("10.0.4.4"))
                .await
        ),
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
    let limits = RateLimits {
        authorize: None,
        token: Some(1),
        client_auth_failures: None,
        revoke: Some(1),
        login_account: None,
        login_ip: None,
        signup_ip: None,
        register_ip: None,
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

/// A limiter that counts the calls made to it (over the memory store's counters).
struct Calls {
    inner: std::sync::Arc<dyn crate::ports::RateLimiter>,
    calls: std::sync::Mutex<Vec<Vec<(String, u32)>>>,
    lag: bool,
}

#[async_trait::async_trait]
impl crate::ports::RateLimiter for Calls {
    async fn count(
        &self,
        key: &str,
        window: crate::rate::RateWindow,
        add: u32,
    ) -> crate::ports::StoreResult<u64> {
        self.calls.lock().unwrap().push(vec![(key.to_owned(), add)]);
        self.inner.count(key, window, add).await
    }

    async fn count_each(
        &self,
        hits: &[(String, u32)],
        window: crate::rate::RateWindow,
    ) -> crate::ports::StoreResult<Vec<u64>> {
        self.calls.lock().unwrap().push(hits.to_vec());
        self.inner.count_each(hits, window).await
    }

    /// Recorded as `("peek <key>", 0)`. With `lag`, answers 0 whatever was counted: another
    /// node's view that has not yet seen any of the failures.
    async fn peek(
        &self,
        key: &str,
        window: crate::rate::RateWindow,
    ) -> crate::ports::StoreResult<u64> {
        self.calls
            .lock()
            .unwrap()
            .push(vec![(format!("peek {key}"), 0)]);
        if self.lag {
            return Ok(0);
        }
        self.inner.peek(key, window).await
    }
}

/// A harness whose limiter records its calls (`lag`: see [`Calls::peek`]), and a closure
/// that takes the calls recorded so far.
async fn recorded(lag: bool) -> (super::H, impl Fn() -> Vec<Vec<(String, u32)>>) {
    let calls = std::sync::Arc::new(Calls {
        inner: std::sync::Arc::new(crate::memory::MemoryStore::new(std::sync::Arc::new(
            crate::ports::ManualClock::at_epoch(),
        ))),
        calls: Default::default(),
        lag,
    });
    let limiter = calls.clone();
    let h = super::harness_with_deps(Config::default(), move |d| d.rate_limiter = limiter).await;
    let taken = move || std::mem::take(&mut *calls.calls.lock().unwrap());
    taken();
    (h, taken)
}

#[tokio::test]
async fn only_a_client_authentication_peeks_at_its_address_failures() {
    let (h, taken) = recorded(false).await;
    let address = Bucket::ClientAuthFailures("10.0.6.1").key();
    // Introspection, revocation and spends authenticate without counting the client.
    h.gate
        .deps
        .authenticate_client(&h.auth(), Some("10.0.6.1"))
        .await
        .unwrap();
    assert_eq!(
        taken(),
        vec![vec![(format!("peek {address}"), 0)]],
        "a lone read of the address's failures is a peek"
    );
    let mut wrong = h.auth();
    wrong.secret = Some("not the secret".into());
    h.gate
        .deps
        .authenticate_client(&wrong, Some("10.0.6.1"))
        .await
        .unwrap_err();
    assert_eq!(
        taken(),
        vec![vec![(address, 1)]],
        "a failure is counted on the shared count"
    );
    for bucket in [
        Bucket::LoginIp("10.0.6.1"),
        Bucket::LoginAccount("ada"),
        Bucket::DeviceCodeFailures(crate::ids::UserId(3)),
    ] {
        h.gate.deps.check_failures(bucket).await.unwrap();
        assert_eq!(
            taken(),
            vec![vec![(bucket.key(), 0)]],
            "{bucket:?} is read from the shared count, never a view"
        );
    }
}

/// Another node's view has not seen this address's 20 failures: the right secret passes
/// there for as long as the view lags, but no failure ever does: each is judged on the
/// shared count, so the 21st wrong secret is refused as a rate limit on every node.
#[tokio::test]
async fn a_lagging_view_never_lets_a_failure_past_the_limit() {
    let (h, _taken) = recorded(true).await;
    let (right, mut wrong) = (h.auth(), h.auth());
    wrong.secret = Some("not the secret".into());
    let deps = &h.gate.deps;
    let from_the_address = move |auth| deps.authenticate_client(auth, Some("10.0.6.2"));
    for i in 0..20 {
        let e = from_the_address(&wrong).await.unwrap_err();
        assert_eq!(e.code(), "invalid_client", "failure {}", i + 1);
    }
    let e = from_the_address(&wrong).await.unwrap_err();
    assert_eq!(
        e,
        Error::RateLimited { retry_after: 60 },
        "the 21st failure"
    );
    from_the_address(&right)
        .await
        .expect("the holder of the secret passes while the view lags");
    let e = h.token(cc(h.auth(), "10.0.6.2")).await.unwrap_err();
    assert_eq!(
        e,
        Error::RateLimited { retry_after: 60 },
        "a token request reads the shared count with its own bucket's hit"
    );
}

#[tokio::test]
async fn a_token_request_costs_one_limiter_call_whatever_its_outcome() {
    let (h, taken) = recorded(false).await;

    h.token(cc(h.auth(), "10.0.5.1")).await.unwrap();
    let client = Bucket::TokenClient(&h.app).key();
    let address = Bucket::ClientAuthFailures("10.0.5.1").key();
    assert_eq!(
        taken(),
        vec![vec![(address.clone(), 0), (client.clone(), 1)]],
        "the address's failures read and the client's bucket counted, in one call"
    );

    let mut wrong = h.auth();
    wrong.secret = Some("not the secret".into());
    let e = h.token(cc(wrong.clone(), "10.0.5.1")).await.unwrap_err();
    assert_eq!(e.code(), "invalid_client");
    assert_eq!(
        taken(),
        vec![vec![(address.clone(), 1)]],
        "a failure counts against the address only, never the client it named"
    );

    for _ in 1..20 {
        h.token(cc(wrong.clone(), "10.0.5.1")).await.unwrap_err();
    }
    taken();
    let e = h.token(cc(wrong, "10.0.5.1")).await.unwrap_err();
    assert_eq!(e, Error::RateLimited { retry_after: 60 }, "21st failure");
    let e = h.token(cc(h.auth(), "10.0.5.1")).await.unwrap_err();
    assert_eq!(
        e,
        Error::RateLimited { retry_after: 60 },
        "a full window refuses the right secret as well"
    );
    assert_eq!(taken().len(), 2, "still one call each");
}
