//! Concurrency, with real tasks on a multi-threaded runtime: codes, refreshes and spends.

use std::collections::BTreeSet;
use std::sync::Arc;

use time::Duration;

use crate::buzz::BuzzLimit;
use crate::error::Error;
use crate::service::Config;

use super::{credit, harness, harness_with, rt};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_64_concurrent_redeemers_wins_the_code() {
    let h = Arc::new(harness().await);
    let (code, v) = h.code("1", true).await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (h, code, v) = (h.clone(), code.clone(), v.clone());
            tokio::spawn(async move { h.exchange(&code, &v).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert_eq!(e.code(), "invalid_grant"),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_refreshes_inside_grace_all_succeed() {
    let h = Arc::new(harness().await);
    let t = h.tokens("1").await;
    let token = rt(&t);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (h, token) = (h.clone(), token.clone());
            tokio::spawn(async move { h.refresh(&token, None).await })
        })
        .collect();
    let mut successors = BTreeSet::new();
    for t in tasks {
        successors.insert(rt(&t
            .await
            .unwrap()
            .expect("a retry inside the grace window succeeds")));
    }
    assert_eq!(successors.len(), 64, "each retry gets its own successor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_without_grace_end_with_one_winner_and_a_dead_family() {
    let h = Arc::new(
        harness_with(Config {
            refresh_grace: Duration::ZERO,
            ..Config::default()
        })
        .await,
    );
    let t = h.tokens("1").await;
    let token = rt(&t);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (h, token) = (h.clone(), token.clone());
            tokio::spawn(async move { h.refresh(&token, None).await })
        })
        .collect();
    let mut ok = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => ok.push(r),
            Err(e) => assert_eq!(e.code(), "invalid_grant", "never a server error"),
        }
    }
    assert_eq!(ok.len(), 1);
    // The reuse revoked the family, the winner's successor included.
    assert!(h.refresh(&rt(&ok[0]), None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_spends_never_exceed_the_cap_by_one_unit() {
    let h = Arc::new(harness().await);
    h.make_resource_server().await;
    credit(&h.store, h.user, 1_000_000).await;
    let t = h.tokens("114689").await;
    let cap = 37;
    h.cap(BuzzLimit::per_period(cap, 1).unwrap()).await;
    let at = t.access_token.expose().to_owned();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (h, at) = (h.clone(), at.clone());
            tokio::spawn(async move { h.pay(&at, 1, &format!("k{i}"), "ai_services").await })
        })
        .collect();
    let mut spent = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => spent += 1,
            Err(e) => assert_eq!(e, Error::InsufficientFunds),
        }
    }
    assert_eq!(spent, cap);
    let limits = h.gate.buzz().limits(&h.bearer(&at).await).await.unwrap();
    assert_eq!((limits[0].spend, limits[0].remaining), (cap, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redemptions_of_one_code_have_exactly_one_winner() {
    let h = Arc::new(harness().await);
    let (code, v) = h.code("1", true).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (h, code, v) = (h.clone(), code.clone(), v.clone());
            tokio::spawn(async move { h.exchange(&code, &v).await })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(tokens) => winners.push(tokens),
            Err(e) => assert_eq!(e.code(), "invalid_grant"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one token response");
    assert!(
        !h.active(winners[0].access_token.expose()).await,
        "the code was replayed, so what it issued is revoked"
    );
}
