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
