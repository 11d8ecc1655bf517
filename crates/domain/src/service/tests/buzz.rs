//! Buzz: spends under caps, idempotency and refunds, purposes, balances and limits, credits,
//! and no spending without a consent.

use time::Duration;

use crate::audit::AuditKind;
use crate::buzz::{BuzzLimit, Currency};
use crate::client::ClientUpdate;
use crate::error::Error;
use crate::scope::Scope;
use crate::service::Caller;
use crate::service::tokens::GrantRequest;

use super::{credit, err_code, harness, signed_in, spend};

#[tokio::test]
async fn spend_is_capped_idempotent_and_refundable() {
    let h = harness().await;
    let t = h.ready_to_spend(10_000, "114689").await;
    h.cap(BuzzLimit::per_period(100, 1).unwrap()).await;
    let at = t.access_token.expose();
    let r = h.pay(at, 60, "k1", "ai_services").await.unwrap();
    assert_eq!((r.balance, r.limits[0].remaining), (9_940, 40));
    let replay = h.pay(at, 60, "k1", "ai_services").await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.balance, 9_940);
    assert_eq!(
        err_code(h.pay(at, 61, "k1", "ai_services").await),
        "conflict"
    );
    assert_eq!(
        h.pay(at, 41, "k2", "ai_services").await.unwrap_err(),
        Error::InsufficientFunds
    );
    let (_, balance) = h.refund(r.entry.id).await.unwrap();
    assert_eq!(balance, 10_000);
    let (_, again) = h.refund(r.entry.id).await.unwrap();
    assert_eq!(again, 10_000, "a second refund credits nothing");
    assert!(h.pay(at, 100, "k3", "ai_services").await.is_ok());
    // The sliding day counts spends made at or after now - 24 h.
    // The cap belongs to the (user, app) grant, so a new token of the app shares it.
    h.clock.advance(Duration::days(1) - Duration::seconds(1));
    let t2 = h.tokens("114689").await;
    let at = t2.access_token.expose();
    assert_eq!(
        h.pay(at, 1, "k4", "ai_services").await.unwrap_err(),
        Error::InsufficientFunds
    );
    h.clock.advance(Duration::seconds(2));
    assert!(h.pay(at, 100, "k5", "ai_services").await.is_ok());
    let kinds = h.audit_kinds();
    assert!(kinds.contains(&AuditKind::BuzzSpent) && kinds.contains(&AuditKind::BuzzRefunded));
}

#[tokio::test]
async fn over_balance_is_indistinguishable_from_over_cap() {
    let h = harness().await;
    let t = h.ready_to_spend(5, "114689").await;
    let e = h
        .pay(t.access_token.expose(), 6, "k", "ai_services")
        .await
        .unwrap_err();
    assert_eq!(e, Error::InsufficientFunds);
}

#[tokio::test]
async fn spend_needs_the_purpose_scope_and_a_resource_server() {
    let h = harness().await;
    credit(&h.store, h.user, 100).await;
    let t = h.tokens("BuzzRead").await;
    let at = t.access_token.expose();
    assert_eq!(
        err_code(h.pay(at, 1, "k", "ai_services").await),
        "unauthorized_client"
    );
    h.make_resource_server().await;
    let e = h.pay(at, 1, "k", "ai_services").await.unwrap_err();
    assert_eq!(e.description(), "Token does not have AIServicesWrite scope");
    let e = h.pay(at, 1, "k", "bounty").await.unwrap_err();
    assert_eq!(e.description(), "Token does not have BountiesWrite scope");
    assert_eq!(err_code(h.pay(at, 1, "k", "tip").await), "invalid_request");
}

#[tokio::test]
async fn bounty_spend_ignores_the_cap_but_not_the_balance() {
    let h = harness().await;
    let t = h.ready_to_spend(1_000, "Full").await;
    let at = t.access_token.expose();
    h.cap(BuzzLimit::per_period(1, 1).unwrap()).await;
    assert!(h.pay(at, 500, "b1", "bounty").await.is_ok());
    assert_eq!(
        h.pay(at, 501, "b2", "bounty").await.unwrap_err(),
        Error::InsufficientFunds
    );
}

#[tokio::test]
async fn balance_needs_buzz_read_and_limits_show_the_apps_budgets() {
    let h = harness().await;
    credit(&h.store, h.user, 42).await;
    let t = h.tokens("114689").await;
    let o = h.overview(t.access_token.expose()).await.unwrap();
    assert_eq!(o.balances, vec![(Currency::yellow(), 42)]);
    let limits = h
        .gate
        .buzz()
        .limits(&h.bearer(t.access_token.expose()).await)
        .await
        .unwrap();
    assert_eq!((limits[0].limit, limits[0].remaining), (5000, 5000));
    let t2 = h.tokens("1").await;
    assert_eq!(
        err_code(h.overview(t2.access_token.expose()).await),
        "insufficient_scope"
    );
}

#[tokio::test]
async fn crediting_is_for_admins_and_positive_amounts() {
    let h = harness().await;
    let admin = Caller::operator();
    assert_eq!(h.credit_ada(&admin, "yellow", 100).await.unwrap(), 100);
    assert_eq!(
        err_code(h.credit_ada(&admin, "yellow", 0).await),
        "invalid_request"
    );
    assert_eq!(
        err_code(h.credit_ada(&admin, "", 5).await),
        "invalid_request"
    );
    assert_eq!(
        err_code(h.credit_ada(&signed_in(h.user), "yellow", 5).await),
        "access_denied"
    );
}

#[tokio::test]
async fn no_consent_means_no_spending_and_the_owner_cap_bounds_client_credentials() {
    let h = harness().await;
    h.make_resource_server().await;
    credit(&h.store, h.user, 1000).await;
    credit(&h.store, h.owner, 1000).await;
    let t = h.tokens("114689").await;
    crate::ports::ConsentStore::delete(&h.store, h.user, &h.app)
        .await
        .unwrap();
    let e = h
        .pay(t.access_token.expose(), 1, "a", "ai_services")
        .await
        .unwrap_err();
    assert_eq!(e, Error::InsufficientFunds, "no consent is never 'no cap'");
    // The owner caps what the app spends for them through client_credentials.
    let cap = ClientUpdate {
        owner_buzz_limit: Some(
            BuzzLimit::new(vec![crate::buzz::Budget::Absolute {
                limit: 100,
                currencies: None,
            }])
            .unwrap(),
        ),
        ..Default::default()
    };
    assert_eq!(
        err_code(
            h.gate
                .clients()
                .update(&Caller::operator(), &h.app, cap.clone())
                .await
        ),
        "access_denied",
        "only the owner sets the owner's cap"
    );
    h.gate
        .clients()
        .update(&signed_in(h.owner), &h.app, cap)
        .await
        .unwrap();
    let cc = h
        .token(h.token_req(GrantRequest::ClientCredentials { scope: None }))
        .await
        .unwrap();
    let rs = h.rs().await;
    let pay =
        |amount, key: &'static str| spend(cc.access_token.expose(), amount, key, "ai_services");
    assert!(h.gate.buzz().spend(&rs, pay(100, "c1")).await.is_ok());
    assert_eq!(
        h.gate.buzz().spend(&rs, pay(1, "c2")).await.unwrap_err(),
        Error::InsufficientFunds
    );
}

#[tokio::test]
async fn buzz_accounts_show_every_pool_with_its_lifetime_credits() {
    let h = harness().await;
    h.make_resource_server().await;
    let t = h.tokens("AIServices BuzzRead").await;
    let none = h.accounts(t.access_token.expose()).await.unwrap();
    assert_eq!(
        none.iter()
            .map(|a| (a.currency.as_str(), a.balance, a.lifetime))
            .collect::<Vec<_>>(),
        vec![("yellow", 0, 0)],
        "the default pool is always there"
    );
    credit(&h.store, h.user, 500).await;
    let r = h
        .pay(t.access_token.expose(), 40, "s1", "ai_services")
        .await
        .unwrap();
    h.pay(t.access_token.expose(), 10, "s2", "ai_services")
        .await
        .unwrap();
    h.refund(r.entry.id).await.unwrap();
    let a = h.accounts(t.access_token.expose()).await.unwrap();
    assert_eq!((a[0].balance, a[0].lifetime), (490, 500));
    let no_buzz_read = h.tokens("UserRead").await;
    assert_eq!(
        h.accounts(no_buzz_read.access_token.expose())
            .await
            .unwrap_err(),
        Error::InsufficientScope {
            required: Scope::BUZZ_READ,
            name: "BuzzRead".into()
        }
    );
}

#[tokio::test]
async fn a_credit_past_the_largest_balance_is_refused_not_saturated() {
    let h = harness().await;
    let admin = Caller::operator();
    let big = u64::try_from(i64::MAX).unwrap() - 10;
    assert_eq!(h.credit_ada(&admin, "yellow", big).await, Ok(i64::MAX - 10));
    let e = h.credit_ada(&admin, "yellow", 11).await.unwrap_err();
    assert_eq!(e.code(), "invalid_request");
    assert!(e.description().contains("largest possible balance"));
    assert_eq!(
        h.credit_ada(&admin, "yellow", 10).await,
        Ok(i64::MAX),
        "nothing was lost: the balance is exactly what was credited"
    );
    assert!(h.credit_ada(&admin, "yellow", u64::MAX).await.is_err());
}
