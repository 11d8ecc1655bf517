//! The `authorization_code` grant: exchange, single use and replay, PKCE, expiry, client
//! authentication, id_token and auth_time.

use std::sync::Arc;

use time::Duration;

use crate::audit::AuditKind;
use crate::client::{AuthMethod, ClientAuth};
use crate::error::Error;
use crate::pkce::CodeVerifier;
use crate::ports::SeededRandom;
use crate::scope::Scope;
use crate::service::Config;
use crate::service::authorize::AuthorizeOutcome;
use crate::token::TokenKind;

use super::{answer, code_grant, err_code, harness, harness_with_deps, query, rt};

#[tokio::test]
async fn code_exchange_issues_access_and_refresh_with_the_consented_scope() {
    let h = harness().await;
    let t = h.tokens("114689").await;
    assert!(t.access_token.expose().starts_with("civitai_"));
    assert_eq!(t.expires_in, 3600);
    assert_eq!(t.scope, Scope::AI_SERVICES);
    assert!(t.refresh_token.is_some());
    let rows = h.store.token_rows();
    assert!(
        rows.iter()
            .all(|r| r.hash != crate::token::TokenHash([0; 32]))
    );
    assert!(
        !format!("{rows:?}").contains(t.access_token.expose()),
        "plaintext must never be stored"
    );
}

#[tokio::test]
async fn code_is_single_use_and_replay_revokes_what_it_issued() {
    let h = harness().await;
    let (code, v) = h.code("114689", true).await;
    let t = h.exchange(&code, &v).await.unwrap();
    let again = h.exchange(&code, &v).await.unwrap_err();
    assert_eq!(again.code(), "invalid_grant");
    assert_eq!(
        err_code(h.validate(t.access_token.expose()).await),
        "invalid_token"
    );
    assert_eq!(err_code(h.refresh(&rt(&t), None).await), "invalid_grant");
    assert!(h.audit_kinds().contains(&AuditKind::TokenReuseDetected));
}

#[tokio::test]
async fn pkce_failure_burns_the_code() {
    let h = harness().await;
    let (code, v) = h.code("1", true).await;
    let wrong = CodeVerifier::generate(&SeededRandom::new(999));
    assert_eq!(
        h.exchange(&code, &wrong).await.unwrap_err(),
        Error::invalid_grant("Invalid grant: PKCE verification failed")
    );
    assert_eq!(err_code(h.exchange(&code, &v).await), "invalid_grant");
}

#[tokio::test]
async fn code_expires_at_600_seconds() {
    let h = harness().await;
    let (code, v) = h.code("1", true).await;
    h.clock.advance(Duration::seconds(600));
    assert_eq!(
        h.exchange(&code, &v).await.unwrap_err().description(),
        "Invalid grant: authorization code has expired"
    );
    let (code, v) = h.code("1", true).await;
    h.clock.advance(Duration::seconds(599));
    assert!(h.exchange(&code, &v).await.is_ok());
}

#[tokio::test]
async fn missing_parameters_are_invalid_request_and_do_not_burn_the_code() {
    let h = harness().await;
    let (code, v) = h.code("1", true).await;
    let g = code_grant(&code, None, "x");
    assert_eq!(
        h.token(h.token_req(g)).await.unwrap_err(),
        Error::invalid_request("Missing code_verifier")
    );
    assert!(h.exchange(&code, &v).await.is_ok());
}

#[tokio::test]
async fn wrong_secret_is_invalid_client_and_basic_is_flagged_for_401() {
    let h = harness().await;
    let (code, v) = h.code("1", true).await;
    let g = code_grant(&code, Some(v.as_str()), "https://app.example.com/cb");
    let mut req = h.token_req(g);
    req.client = ClientAuth {
        client_id: h.app.clone(),
        secret: Some("wrong".into()),
        method: AuthMethod::Basic,
    };
    assert_eq!(h.token(req).await.unwrap_err(), Error::invalid_client(true));
}

#[tokio::test]
async fn id_token_is_signed_only_when_the_request_had_a_nonce() {
    use crate::ports::MockIdTokenSigner;
    let mut signer = MockIdTokenSigner::new();
    signer
        .expect_sign()
        .withf(|c| {
            c.nonce.as_deref() == Some("n0nce")
                && c.sub == "2"
                && c.exp - c.iat == 3600
                && c.iss == "http://127.0.0.1:8080"
        })
        .times(1)
        .returning(|_| Ok("header.claims.sig".into()));
    let h = harness_with_deps(Config::default(), |d| d.id_tokens = Some(Arc::new(signer))).await;
    let v = CodeVerifier::generate(&SeededRandom::new(8));
    let mut p = h.params("1", &v);
    p.nonce = Some("n0nce".into());
    let answer = answer(true, true, None);
    let AuthorizeOutcome::Redirect { location } = h.decide(&p, &answer).await else {
        panic!()
    };
    let t = h
        .exchange(&query(&location, "code").unwrap(), &v)
        .await
        .unwrap();
    assert_eq!(t.id_token.as_deref(), Some("header.claims.sig"));
    let t2 = h.tokens("1").await;
    assert_eq!(t2.id_token, None);
}

#[tokio::test]
async fn auth_time_is_when_the_user_signed_in() {
    let h = harness().await;
    h.clock.advance(Duration::hours(2));
    let v = CodeVerifier::generate(&SeededRandom::new(77));
    let answer = answer(true, false, None);
    // `signed_in` sessions started at the epoch; the code is issued two hours later.
    let AuthorizeOutcome::Redirect { location } = h.decide(&h.params("1", &v), &answer).await
    else {
        panic!("approved")
    };
    let code = query(&location, "code").unwrap();
    h.exchange(&code, &v).await.unwrap();
    let row = h
        .store
        .token_rows()
        .into_iter()
        .find(|r| r.kind == TokenKind::Access)
        .unwrap();
    assert_eq!(row.auth_time, Some(time::OffsetDateTime::UNIX_EPOCH));
}
