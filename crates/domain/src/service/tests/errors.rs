//! Every wire error code of SPEC 3 comes out of a real service call; a store outage is
//! `temporarily_unavailable`.

use std::collections::BTreeSet;

use time::Duration;

use crate::authorize::AuthorizeParams;
use crate::error::Error;
use crate::ids::ClientId;
use crate::pkce::CodeVerifier;
use crate::ports::SeededRandom;
use crate::service::Caller;
use crate::service::authorize::AuthorizeOutcome;
use crate::service::rate_limit::Bucket;
use crate::service::tokens::GrantRequest;

use super::{answer, bearer_creds, credit, harness, poll, query, signed_in, start_device};

fn note(seen: &mut BTreeSet<&'static str>, r: Result<(), Error>) {
    if let Err(e) = r {
        seen.insert(e.code());
    }
}

#[tokio::test]
async fn every_spec_error_code_is_produced_by_a_service() {
    let h = harness().await;
    credit(&h.store, h.user, 1).await;
    let mut seen = BTreeSet::new();
    let v = CodeVerifier::generate(&SeededRandom::new(1));
    let tokens = h.gate.tokens();
    // invalid_request, invalid_client
    if let AuthorizeOutcome::Reject(e) = h
        .authorize(&AuthorizeParams::default(), &Caller::Anonymous)
        .await
    {
        seen.insert(e.code());
    }
    let mut unknown = h.token_req(GrantRequest::ClientCredentials { scope: None });
    unknown.client.client_id = ClientId::parse("nope").unwrap();
    note(&mut seen, tokens.token(unknown).await.map(drop));
    // unsupported_response_type, invalid_scope (redirected errors)
    for p in [
        AuthorizeParams {
            response_type: Some("token".into()),
            ..h.params("1", &v)
        },
        h.params("-1", &v),
    ] {
        if let AuthorizeOutcome::RedirectError { location } =
            h.authorize(&p, &signed_in(h.user)).await
        {
            seen.insert(match query(&location, "error").unwrap().as_str() {
                "unsupported_response_type" => "unsupported_response_type",
                "invalid_scope" => "invalid_scope",
                other => panic!("{other}"),
            });
        }
    }
    // access_denied
    let answer = answer(false, false, None);
    if let AuthorizeOutcome::Redirect { location } = h.decide(&h.params("1", &v), &answer).await {
        if query(&location, "error").as_deref() == Some("access_denied") {
            seen.insert("access_denied");
        }
    }
    // invalid_grant, unauthorized_client, origin_not_allowed, unsupported_grant_type
    note(
        &mut seen,
        h.refresh("civitai_unknown", None).await.map(drop),
    );
    let mut spa = h.token_req(GrantRequest::ClientCredentials { scope: None });
    spa.client = h.spa_auth();
    note(&mut seen, tokens.token(spa.clone()).await.map(drop));
    spa.origin = Some("https://evil.example.com".into());
    note(&mut seen, tokens.token(spa).await.map(drop));
    note(
        &mut seen,
        GrantRequest::grant_type(Some("password")).map(drop),
    );
    // invalid_token, insufficient_scope
    let unknown = bearer_creds("civitai_unknown");
    note(
        &mut seen,
        h.gate.callers().identify(&unknown).await.map(drop),
    );
    let t = h.tokens("1").await;
    note(
        &mut seen,
        h.gate
            .buzz()
            .overview(&h.bearer(t.access_token.expose()).await)
            .await
            .map(drop),
    );
    // insufficient_funds
    h.make_resource_server().await;
    let t = h.tokens("114689").await;
    note(
        &mut seen,
        h.pay(t.access_token.expose(), 2, "k", "ai_services")
            .await
            .map(drop),
    );
    // authorization_pending, slow_down, expired_token
    let d = start_device(&h).await;
    note(&mut seen, poll(&h, &d).await.map(drop));
    note(&mut seen, poll(&h, &d).await.map(drop));
    h.clock.advance(Duration::seconds(900));
    note(&mut seen, poll(&h, &d).await.map(drop));
    // rate_limited
    for _ in 0..21 {
        note(
            &mut seen,
            h.gate.deps.check_rate(Bucket::RevokeIp("1.2.3.4")).await,
        );
    }
    // temporarily_unavailable
    h.store.set_down(true);
    let x = bearer_creds("civitai_x");
    note(&mut seen, h.gate.callers().identify(&x).await.map(drop));
    h.store.set_down(false);

    let spec3 = [
        "invalid_request",
        "invalid_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "origin_not_allowed",
        "invalid_token",
        "insufficient_scope",
        "insufficient_funds",
        "authorization_pending",
        "slow_down",
        "expired_token",
        "rate_limited",
        "temporarily_unavailable",
    ];
    let missing: Vec<_> = spec3.iter().filter(|c| !seen.contains(*c)).collect();
    assert!(missing.is_empty(), "never produced: {missing:?}");
}

#[tokio::test]
async fn a_store_outage_is_temporarily_unavailable_not_a_server_error() {
    let h = harness().await;
    let t = h.tokens("1").await;
    h.store.set_down(true);
    let e = h.validate(t.access_token.expose()).await.unwrap_err();
    assert_eq!(e.code(), "temporarily_unavailable");
    assert_eq!(e.retry_after(), Some(1));
    h.store.set_down(false);
    assert!(h.active(t.access_token.expose()).await);
}
