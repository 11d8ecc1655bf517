//! The device flow: polling states, denial and expiry, and the registered grant.

use time::Duration;

use crate::error::Error;
use crate::scope::Scope;

use super::{err_code, harness, poll, signed_in, start_device};

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
    h.resolve(&d, true).await;
    h.clock.advance(Duration::seconds(10));
    let t = poll(&h, &d).await.unwrap();
    assert_eq!(t.scope, Scope::BUZZ_READ | Scope::USER_READ);
    h.clock.advance(Duration::seconds(10));
    assert_eq!(err_code(poll(&h, &d).await), "invalid_grant");
    // Device logins show up in Connected Apps, so they can be capped and revoked.
    assert_eq!(h.connected_apps().await.len(), 1);
}

#[tokio::test]
async fn device_flow_denied_and_expired() {
    let h = harness().await;
    let d = start_device(&h).await;
    h.resolve(&d, false).await;
    assert_eq!(err_code(poll(&h, &d).await), "access_denied");
    let d2 = start_device(&h).await;
    h.clock.advance(Duration::seconds(900));
    assert_eq!(err_code(poll(&h, &d2).await), "expired_token");
    assert_eq!(
        err_code(
            h.gate
                .device()
                .resolve(&signed_in(h.user), d2.user_code.as_str(), true, None)
                .await
        ),
        "expired_token"
    );
}

#[tokio::test]
async fn device_flow_needs_the_registered_grant() {
    let h = harness().await;
    assert_eq!(
        err_code(
            h.gate
                .device()
                .start(&h.device_req(h.spa_auth(), None))
                .await
        ),
        "unauthorized_client"
    );
}

/// RFC 8628 5.1: user codes are short, so wrong ones are throttled per user. Looking up
/// and approving a real code costs nothing; the budget is the authorize setting.
#[tokio::test]
async fn device_user_code_guesses_are_throttled_per_user() {
    let h = super::harness_with(crate::service::Config {
        rate_limits: crate::service::RateLimits {
            authorize: Some(3),
            ..crate::service::RateLimits::default()
        },
        ..crate::service::Config::default()
    })
    .await;
    let d = start_device(&h).await;
    let devices = h.gate.device();
    let ada = signed_in(h.user);
    // Real lookups are not guesses.
    for _ in 0..5 {
        devices.info(&ada, d.user_code.as_str()).await.unwrap();
    }
    assert_eq!(
        err_code(devices.info(&ada, "BCDF-GHJK").await),
        "invalid_grant"
    );
    assert_eq!(
        err_code(devices.info(&ada, "not a code").await),
        "invalid_request"
    );
    assert_eq!(
        err_code(devices.resolve(&ada, "BCDF-GHJL", true, None).await),
        "invalid_grant"
    );
    // Three wrong codes spend the budget: even the right one now waits for the window.
    assert_eq!(
        devices.info(&ada, d.user_code.as_str()).await.unwrap_err(),
        Error::RateLimited { retry_after: 60 }
    );
    assert_eq!(
        err_code(
            devices
                .resolve(&ada, d.user_code.as_str(), true, None)
                .await
        ),
        "rate_limited"
    );
    // Another user's budget is their own.
    devices
        .info(&signed_in(h.owner), d.user_code.as_str())
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(60));
    h.resolve(&d, true).await;
}
