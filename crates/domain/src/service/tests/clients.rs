//! Apps: secrets, deletion, owners, the owner's cap, access modes on every way to a token, and
//! app tokens kept away from the account.

use crate::audit::AuditKind;
use crate::buzz::BuzzLimit;
use crate::client::AccessMode;
use crate::error::Error;
use crate::scope::Scope;
use crate::service::Caller;
use crate::service::tokens::GrantRequest;
use crate::token::TokenResponse;

use super::{H, err_code, harness, poll, rt, signed_in, start_device, token_caller};

#[tokio::test]
async fn rotate_secret_kills_the_old_secret_and_keeps_tokens() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let new = h
        .apps()
        .rotate_secret(&signed_in(h.owner), &h.app)
        .await
        .unwrap();
    assert_eq!(err_code(h.refresh(&rt(&t), None).await), "invalid_client");
    let mut req = h.token_req(GrantRequest::RefreshToken {
        refresh_token: Some(rt(&t)),
        scope: None,
    });
    req.client.secret = Some(new.expose().into());
    assert!(h.token(req).await.is_ok());
    assert!(h.active(t.access_token.expose()).await);
}

#[tokio::test]
async fn deleting_an_app_cascades_but_keeps_the_audit_trail() {
    let h = harness().await;
    let t = h.tokens("1").await;
    h.validate(t.access_token.expose()).await.unwrap();
    h.apps().delete(&signed_in(h.owner), &h.app).await.unwrap();
    assert!(!h.active(t.access_token.expose()).await);
    assert!(h.connected_apps().await.is_empty());
    assert!(h.audit_kinds().contains(&AuditKind::ClientDeleted));
    assert!(h.audit_kinds().contains(&AuditKind::TokenIssued));
}

#[tokio::test]
async fn apps_of_other_owners_look_missing_and_token_callers_need_user_write() {
    let h = harness().await;
    assert_eq!(
        err_code(h.apps().get(&signed_in(h.user), &h.app).await),
        "not_found"
    );
    let reader = token_caller(h.owner, None, Scope::USER_READ);
    assert!(h.apps().get(&reader, &h.app).await.is_ok());
    assert_eq!(
        h.apps().delete(&reader, &h.app).await.unwrap_err(),
        Error::InsufficientScope {
            required: Scope::USER_WRITE,
            name: "UserWrite".into()
        }
    );
    let listed = h.apps().list(&signed_in(h.owner)).await.unwrap();
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
    let c = h.cap(BuzzLimit::per_period(10, 1).unwrap()).await;
    assert_eq!(c.buzz_limit, BuzzLimit::per_period(10, 1).unwrap());
    assert_eq!(
        err_code(
            h.gate
                .consents()
                .set_buzz_limit(&signed_in(h.user), &h.spa, BuzzLimit::default())
                .await
        ),
        "not_found"
    );
}

#[tokio::test]
async fn access_modes_apply_to_every_way_of_getting_a_token() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let (code, v) = h.code("1", true).await;
    let d = start_device(&h).await;
    h.resolve(&d, true).await;
    async fn mode(h: &H, m: AccessMode) {
        h.apps()
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
            h.token(h.token_req(GrantRequest::ClientCredentials { scope: None }))
                .await
        ),
        "client credentials"
    );
    assert_eq!(
        err_code(h.gate.device().start(&h.device_req(h.auth(), None)).await),
        "unauthorized_client",
        "device start"
    );
    mode(&h, AccessMode::Testers).await;
    assert_eq!(
        err_code(h.refresh(&rt(&t), None).await),
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
async fn app_tokens_never_manage_the_account_whatever_their_scope() {
    let h = harness().await;
    let app_token = token_caller(h.owner, Some(&h.spa), Scope::FULL);
    let e = h
        .apps()
        .rotate_secret(&app_token, &h.app)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "access_denied");
    assert!(
        e.description()
            .contains("App tokens cannot manage the account")
    );
    assert_eq!(
        err_code(h.apps().delete(&app_token, &h.app).await),
        "access_denied"
    );
    assert!(h.apps().list(&app_token).await.is_err());
    assert!(h.gate.consents().list(&app_token).await.is_err());
    assert!(h.gate.api_keys().list(&app_token).await.is_err());
    // The owner's app is untouched: its secret still authenticates.
    assert!(h.client(h.auth()).await.client().is_ok());
}
