//! A ban (`AdminService::set_banned`) through every grant: what was issued before it is
//! revoked, and nothing approved before it turns into tokens after it (docs/operations.md,
//! "Admin CLI").

use time::Duration;

use crate::service::Caller;
use crate::service::tokens::GrantRequest;

use super::{err_code, harness, poll, rt, start_device};

async fn ban(h: &super::H, name: &str, banned: bool) -> usize {
    let done = h
        .gate
        .admin()
        .set_banned(&Caller::operator(), name, banned)
        .await
        .unwrap();
    done.tokens_revoked
}

#[tokio::test]
async fn a_banned_users_grants_issue_nothing_and_their_refresh_tokens_are_dead() {
    let h = harness().await;
    let live = h.tokens("UserRead").await;
    let key = h.api_key(None).await;
    // Approved before the ban, redeemed after: a code and a device login.
    let (code, verifier) = h.code("UserRead", true).await;
    let d = start_device(&h).await;
    h.resolve(&d, true).await;
    h.clock.advance(Duration::seconds(10));

    assert_eq!(ban(&h, "ada", true).await, 3, "access, refresh, API key");
    assert!(!h.active(live.access_token.expose()).await);
    assert!(!h.active(key.expose()).await);
    assert_eq!(err_code(h.refresh(&rt(&live), None).await), "invalid_grant");
    assert_eq!(
        err_code(h.exchange(&code, &verifier).await),
        "invalid_grant"
    );
    assert_eq!(err_code(poll(&h, &d).await), "invalid_grant");

    // Lifting the ban brings back none of them; new grants work again.
    assert_eq!(ban(&h, "ada", false).await, 0);
    assert!(!h.active(live.access_token.expose()).await);
    assert!(!h.active(key.expose()).await);
    assert_eq!(err_code(h.refresh(&rt(&live), None).await), "invalid_grant");
    let again = h.tokens("UserRead").await;
    assert!(h.active(again.access_token.expose()).await);
}

#[tokio::test]
async fn an_app_of_a_banned_owner_gets_no_client_credentials_tokens() {
    let h = harness().await;
    let grant = || h.token_req(GrantRequest::ClientCredentials { scope: None });
    let before = h.token(grant()).await.unwrap();
    assert_eq!(ban(&h, "owner", true).await, 1);
    assert!(!h.active(before.access_token.expose()).await);
    assert_eq!(err_code(h.token(grant()).await), "invalid_grant");
    // Ada's tokens for the owner's app are hers, not the owner's: untouched.
    let ada = h.tokens("UserRead").await;
    assert!(h.active(ada.access_token.expose()).await);
    ban(&h, "owner", false).await;
    assert!(h.token(grant()).await.is_ok());
}
