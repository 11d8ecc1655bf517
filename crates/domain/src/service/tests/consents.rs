//! Connected apps: revoking a consent reaches tokens, unused codes, approved device grants and
//! refreshes.

use time::Duration;

use crate::error::Error;
use crate::token::TokenKind;

use super::{H, err_code, harness, poll, rt, start_device};

#[tokio::test]
async fn connected_apps_revoke_kills_tokens_and_consent() {
    let h = harness().await;
    let t = h.tokens("1").await;
    h.revoke_consent().await.unwrap();
    assert!(!h.active(t.access_token.expose()).await);
    assert!(h.refresh(&rt(&t), None).await.is_err());
    assert_eq!(err_code(h.revoke_consent().await), "not_found");
}

async fn revoke_app(h: &H) {
    h.revoke_consent().await.unwrap();
}

#[tokio::test]
async fn revoking_an_app_kills_its_unused_codes_even_after_a_new_approval() {
    let h = harness().await;
    let (old_code, old_v) = h.code("1", false).await;
    revoke_app(&h).await;
    assert_eq!(
        err_code(h.exchange(&old_code, &old_v).await),
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
    h.resolve(&d, true).await;
    revoke_app(&h).await;
    assert_eq!(err_code(poll(&h, &d).await), "invalid_grant");
}

#[tokio::test]
async fn refresh_without_a_consent_fails_closed_and_revokes_what_it_wrote() {
    let h = harness().await;
    let t = h.tokens("1").await;
    // A consent lost without its tokens (the state a racing revocation leaves for a moment).
    crate::ports::ConsentStore::delete(&h.store, h.user, &h.app)
        .await
        .unwrap();
    assert_eq!(err_code(h.refresh(&rt(&t), None).await), "invalid_grant");
    let live = h
        .store
        .token_rows()
        .into_iter()
        .filter(|r| r.revoked_at.is_none() && r.kind == TokenKind::Refresh)
        .count();
    assert_eq!(live, 0, "the rotated rows were revoked with the family");
}
