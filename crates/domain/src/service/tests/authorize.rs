//! Authorize and consent: sign-in redirects, the consent page, remembered and denied consents,
//! Buzz caps set at consent, and access modes at authorize.

use crate::audit::AuditKind;
use crate::buzz::BuzzLimit;
use crate::client::{AccessMode, ClientUpdate};
use crate::error::Error;
use crate::pkce::CodeVerifier;
use crate::ports::SeededRandom;
use crate::scope::Scope;
use crate::service::Caller;
use crate::service::authorize::AuthorizeOutcome;

use super::{answer, harness, query, signed_in};

#[tokio::test]
async fn signed_out_user_is_sent_to_login_after_client_checks() {
    let h = harness().await;
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    let out = h.authorize(&h.params("1", &v), &Caller::Anonymous).await;
    assert_eq!(out, AuthorizeOutcome::LoginRequired);
    let mut bad = h.params("1", &v);
    bad.redirect_uri = Some("https://evil.example.com/cb".into());
    let out = h.authorize(&bad, &Caller::Anonymous).await;
    assert!(matches!(
        out,
        AuthorizeOutcome::Reject(Error::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn first_request_shows_consent_with_trimmed_scope_and_buzz_cap() {
    let h = harness().await;
    let admin = signed_in(h.owner);
    let narrowed = ClientUpdate {
        allowed_scopes: Some(Scope::AI_SERVICES.into()),
        ..Default::default()
    };
    h.apps().update(&admin, &h.app, narrowed).await.unwrap();
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    let out = h
        .authorize(&h.params("AIServices VaultWrite", &v), &signed_in(h.user))
        .await;
    let AuthorizeOutcome::Consent(prompt) = out else {
        panic!("{out:?}")
    };
    assert_eq!(prompt.request.scope, Scope::AI_SERVICES);
    assert_eq!(prompt.trimmed, Scope::VAULT_WRITE);
    assert!(prompt.show_buzz_cap);
    assert_eq!(prompt.buzz_limit, BuzzLimit::consent_default());
}

#[tokio::test]
async fn remembered_consent_skips_the_page_and_wider_request_prompts() {
    let h = harness().await;
    h.code("114689", true).await;
    let v = CodeVerifier::generate(&SeededRandom::new(2));
    let out = h
        .authorize(&h.params("BuzzRead", &v), &signed_in(h.user))
        .await;
    let AuthorizeOutcome::Redirect { location } = out else {
        panic!("{out:?}")
    };
    assert!(query(&location, "code").is_some());
    assert_eq!(query(&location, "state").as_deref(), Some("st4te"));
    assert_eq!(
        query(&location, "iss").as_deref(),
        Some("http://127.0.0.1:8080")
    );
    let out = h.authorize(&h.params("Full", &v), &signed_in(h.user)).await;
    assert!(matches!(out, AuthorizeOutcome::Consent(_)));
}

#[tokio::test]
async fn unremembered_approval_still_records_a_grant_but_prompts_again() {
    let h = harness().await;
    h.code("114689", false).await;
    let consents = h.connected_apps().await;
    assert_eq!(consents.len(), 1);
    assert!(!consents[0].consent.remembered);
    let v = CodeVerifier::generate(&SeededRandom::new(2));
    let out = h.authorize(&h.params("1", &v), &signed_in(h.user)).await;
    assert!(matches!(out, AuthorizeOutcome::Consent(_)));
}

#[tokio::test]
async fn deny_redirects_with_access_denied_state_and_iss() {
    let h = harness().await;
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    let answer = answer(false, true, None);
    let out = h.decide(&h.params("1", &v), &answer).await;
    let AuthorizeOutcome::Redirect { location } = out else {
        panic!()
    };
    assert_eq!(query(&location, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&location, "state").as_deref(), Some("st4te"));
    assert!(h.audit_kinds().contains(&AuditKind::AuthorizationDenied));
}

#[tokio::test]
async fn consent_buzz_limit_is_validated_and_stored() {
    let h = harness().await;
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    let bad = answer(true, true, Some("{not json"));
    let out = h.decide(&h.params("114689", &v), &bad).await;
    let AuthorizeOutcome::RedirectError { location } = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        query(&location, "error_description").as_deref(),
        Some("buzz_limit is not valid JSON")
    );
    let good = answer(
        true,
        true,
        Some(r#"[{"type":"sliding","limit":300,"window":"day","unit":7}]"#),
    );
    h.decide(&h.params("114689", &v), &good).await;
    let apps = h.connected_apps().await;
    assert_eq!(
        apps[0].consent.buzz_limit,
        BuzzLimit::per_period(300, 7).unwrap()
    );
    assert!(h.audit_kinds().contains(&AuditKind::BuzzLimitSet));
}

#[tokio::test]
async fn disabled_and_testers_only_apps_refuse_with_json_403() {
    let h = harness().await;
    let _admin = Caller::operator();
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    h.set_access_mode(AccessMode::Testers).await;
    let out = h.authorize(&h.params("1", &v), &signed_in(h.user)).await;
    assert!(matches!(
        out,
        AuthorizeOutcome::Reject(Error::AccessDenied(_))
    ));
    h.set_access_mode(AccessMode::Disabled).await;
    let out = h.authorize(&h.params("1", &v), &signed_in(h.user)).await;
    assert_eq!(
        out,
        AuthorizeOutcome::Reject(Error::access_denied(
            "This application is not currently available."
        ))
    );
}
