//! The `refresh_token` grant: rotation, the grace window, reuse revoking the family, narrowing,
//! and token lifetimes.

use time::Duration;

use crate::audit::AuditKind;
use crate::client::ClientUpdate;
use crate::scope::Scope;
use crate::service::Config;

use super::{err_code, harness, harness_with, rt, signed_in};

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

/// One `token.refreshed` per rotation, with its user and scope, whether the store writes it in
/// the rotation's commit (`audit_with_tokens`, as the composed server runs) or the service
/// records it after.
#[tokio::test]
async fn a_refresh_records_one_event_whoever_writes_it() {
    for audit_with_tokens in [false, true] {
        let h = harness_with(Config {
            audit_with_tokens,
            ..Config::default()
        })
        .await;
        let t = h.tokens("114689").await;
        let t2 = h.refresh(&rt(&t), None).await.unwrap();
        let refreshed: Vec<_> = h
            .store
            .audit_events()
            .into_iter()
            .filter(|e| e.kind == AuditKind::TokenRefreshed)
            .collect();
        assert_eq!(
            refreshed.len(),
            1,
            "audit_with_tokens = {audit_with_tokens}"
        );
        assert_eq!(
            (refreshed[0].user_id, refreshed[0].scope),
            (Some(h.user), Some(t2.scope))
        );
        assert_eq!(refreshed[0].client_id.as_ref(), Some(&h.app));
    }
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
    assert_eq!(err_code(h.refresh(&rt(&t), None).await), "invalid_grant");
    assert_eq!(err_code(h.refresh(&rt(&t2), None).await), "invalid_grant");
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
        err_code(h.refresh(&rt(&t), Some("Full")).await),
        "invalid_scope"
    );
    let t2 = h.refresh(&rt(&t), Some("BuzzRead")).await.unwrap();
    assert_eq!(t2.scope, Scope::BUZZ_READ | Scope::USER_READ);
    let narrowed = ClientUpdate {
        allowed_scopes: Some(Scope::NONE.into()),
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
    assert_eq!(err_code(h.validate(&rt(&t)).await), "invalid_token");
}

#[tokio::test]
async fn access_token_valid_at_3599_and_invalid_at_3600() {
    let h = harness().await;
    let t = h.tokens("1").await;
    h.clock.advance(Duration::seconds(3599));
    assert!(h.active(t.access_token.expose()).await);
    h.clock.advance(Duration::seconds(1));
    assert_eq!(
        err_code(h.validate(t.access_token.expose()).await),
        "invalid_token"
    );
}
