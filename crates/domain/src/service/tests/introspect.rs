//! Introspection: what it reports, and who may introspect which tokens.

use time::Duration;

use crate::buzz::BuzzLimit;
use crate::client::{AuthMethod, ClientAuth};
use crate::service::Caller;
use crate::token::TokenKind;

use super::{err_code, harness, rt, signed_in};

#[tokio::test]
async fn introspection_reports_active_tokens_with_buzz_limit_and_inactive_ones_bare() {
    let h = harness().await;
    let t = h.tokens("114689").await;
    let i = h
        .introspect(&h.client(h.auth()).await, Some(t.access_token.expose()))
        .await
        .unwrap();
    assert!(i.active);
    assert_eq!(i.record.as_ref().unwrap().kind, TokenKind::Access);
    assert_eq!(i.username.as_deref(), Some("ada"));
    assert_eq!(i.buzz_limit, Some(BuzzLimit::consent_default()));
    let gone = h
        .introspect(&h.client(h.auth()).await, Some("civitai_unknown"))
        .await
        .unwrap();
    assert!(!gone.active && gone.record.is_none());
    assert_eq!(
        err_code(h.introspect(&h.client(h.spa_auth()).await, Some("x")).await),
        "unauthorized_client"
    );
}

#[tokio::test]
async fn introspection_is_for_resource_servers_and_the_tokens_own_client() {
    let h = harness().await;
    let t = h.tokens("1").await;
    // A second confidential app of the owner: neither the token's client nor a resource server.
    let other = another_app(&h, "Other", false).await;
    let own = h.client(h.auth()).await;
    let key = h.api_key(None).await;
    let active = |caller: Caller, token: String| {
        let gate = h.gate.clone();
        async move {
            gate.tokens()
                .introspect(&caller, Some(&token))
                .await
                .unwrap()
                .active
        }
    };
    let access = t.access_token.expose().to_owned();
    assert!(!active(other.clone(), access.clone()).await);
    assert!(!active(other.clone(), rt(&t)).await);
    assert!(!active(other, key.expose().to_owned()).await);
    assert!(active(own.clone(), access.clone()).await);
    assert!(!active(own.clone(), key.expose().to_owned()).await);
    h.make_resource_server().await;
    let rs = h.rs().await;
    assert!(active(rs.clone(), access).await);
    assert!(active(rs.clone(), key.expose().to_owned()).await);
    // A refresh token rotated out past the grace window is inactive.
    let old = rt(&t);
    h.refresh(&old, None).await.unwrap();
    assert!(
        active(rs.clone(), old.clone()).await,
        "inside the grace window"
    );
    h.clock.advance(Duration::seconds(10));
    assert!(!active(rs, old).await);
}

#[tokio::test]
async fn an_app_introspecting_its_owners_token_reports_the_owners_cap_as_a_resource_server_does() {
    let h = harness().await;
    let cap = BuzzLimit::new(vec![crate::buzz::Budget::Absolute {
        limit: 100,
        currencies: None,
    }])
    .unwrap();
    let update = crate::client::ClientUpdate {
        owner_buzz_limit: Some(cap.clone()),
        ..Default::default()
    };
    h.gate
        .clients()
        .update(&signed_in(h.owner), &h.app, update)
        .await
        .unwrap();
    let cc = h
        .token(h.token_req(crate::service::tokens::GrantRequest::ClientCredentials { scope: None }))
        .await
        .unwrap();
    let token = Some(cc.access_token.expose());
    // The app authenticated for this request is the token's app: its cap is read from it.
    let own = h
        .introspect(&h.client(h.auth()).await, token)
        .await
        .unwrap();
    assert!(own.active);
    // A resource server of the same owner, without a cap of its own, reports the token
    // app's cap, not its own.
    let rs = another_app(&h, "RS", true).await;
    let seen = h.introspect(&rs, token).await.unwrap();
    assert_eq!(own.buzz_limit, Some(cap));
    assert_eq!(seen.buzz_limit, own.buzz_limit);
}

/// Another confidential app of the owner, made a resource server or not, as it calls.
async fn another_app(h: &super::H, name: &str, resource_server: bool) -> Caller {
    let created = h
        .gate
        .clients()
        .create(
            &signed_in(h.owner),
            crate::memory::sample_registration(name),
        )
        .await
        .unwrap();
    if resource_server {
        h.gate
            .clients()
            .administer(
                &Caller::operator(),
                &created.client.id,
                None,
                None,
                Some(true),
            )
            .await
            .unwrap();
    }
    h.client(ClientAuth {
        client_id: created.client.id,
        secret: created.secret.map(|s| s.expose().to_owned()),
        method: AuthMethod::Basic,
    })
    .await
}
