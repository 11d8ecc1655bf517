//! The `client_credentials` grant, public clients at the token endpoint, browser origins, and
//! unknown grant types.

use crate::audit::AuditKind;
use crate::error::Error;
use crate::scope::Scope;
use crate::service::tokens::GrantRequest;

use super::{err_code, harness};

#[tokio::test]
async fn client_credentials_act_as_owner_with_ceiling_and_no_refresh() {
    let h = harness().await;
    let t = h
        .token(h.token_req(GrantRequest::ClientCredentials { scope: None }))
        .await
        .unwrap();
    assert_eq!(t.scope, Scope::FULL);
    assert!(t.refresh_token.is_none());
    let me = h.me(t.access_token.expose()).await.unwrap();
    assert_eq!(me.id, h.owner);
}

#[tokio::test]
async fn public_clients_cannot_use_client_credentials_or_send_secrets() {
    let h = harness().await;
    let mut req = h.token_req(GrantRequest::ClientCredentials { scope: None });
    req.client = h.spa_auth();
    assert_eq!(err_code(h.token(req.clone()).await), "unauthorized_client");
    req.client.secret = Some("anything".into());
    assert_eq!(err_code(h.token(req).await), "invalid_client");
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
        h.token(req.clone()).await.unwrap_err(),
        Error::OriginNotAllowed
    );
    assert!(h.audit_kinds().contains(&AuditKind::OriginRejected));
    req.origin = Some("https://spa.example.com".into());
    assert_eq!(err_code(h.token(req).await), "invalid_grant");
}

#[tokio::test]
async fn unknown_grant_types_are_unsupported() {
    assert_eq!(
        err_code(GrantRequest::grant_type(Some("password"))),
        "unsupported_grant_type"
    );
    assert_eq!(err_code(GrantRequest::grant_type(None)), "invalid_request");
    assert!(GrantRequest::grant_type(Some("refresh_token")).is_ok());
}
