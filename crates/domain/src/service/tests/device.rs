//! The device flow: polling states, denial and expiry, and the registered grant.

use time::Duration;

use crate::error::Error;
use crate::scope::Scope;

use super::{harness, poll, signed_in, start_device};

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
