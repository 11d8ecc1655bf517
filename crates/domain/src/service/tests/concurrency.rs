//! Concurrency, with real tasks on a multi-threaded runtime: codes, refreshes and spends.

use std::collections::BTreeSet;
use std::sync::Arc;

use time::Duration;

use crate::buzz::BuzzLimit;
use crate::error::Error;
use crate::service::Config;

use super::{H, harness, harness_with, rt};
use crate::token::TokenResponse;

/// Runs `n` tasks at once, all spawned before any is awaited; what each returned, in order.
async fn at_once<T, F>(n: usize, task: impl Fn(usize) -> F) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(task(i))).collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// `n` tasks redeem one fresh code at once.
async fn redeem_at_once(h: &Arc<H>, n: usize) -> Vec<Result<TokenResponse, Error>> {
    let (code, v) = h.code("1", true).await;
    at_once(n, |_| {
        let (h, code, v) = (h.clone(), code.clone(), v.clone());
        async move { h.exchange(&code, &v).await }
    })
    .await
}

/// `n` tasks refresh one fresh refresh token at once.
async fn refresh_at_once(h: &Arc<H>, n: usize) -> Vec<Result<TokenResponse, Error>> {
    let token = rt(&h.tokens("1").await);
    at_once(n, |_| {
        let (h, token) = (h.clone(), token.clone());
        async move { h.refresh(&token, None).await }
    })
    .await
}

/// The successes; every other result must have failed with `code` (never a server error).
fn winners<T>(results: Vec<Result<T, Error>>, code: &str) -> Vec<T> {
    let mut ok = Vec::new();
    for r in results {
        match r {
            Ok(t) => ok.push(t),
            Err(e) => assert_eq!(e.code(), code, "never a server error"),
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_64_concurrent_redeemers_wins_the_code() {
    let h = Arc::new(harness().await);
    let wins = winners(redeem_at_once(&h, 64).await, "invalid_grant").len();
    assert_eq!(wins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_refreshes_inside_grace_all_succeed() {
    let h = Arc::new(harness().await);
    let results = refresh_at_once(&h, 64).await;
    let mut successors = BTreeSet::new();
    for r in results {
        successors.insert(rt(&r.expect("a retry inside the grace window succeeds")));
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
    let results = refresh_at_once(&h, 64).await;
    let ok = winners(results, "invalid_grant");
    assert_eq!(ok.len(), 1);
    // The reuse revoked the family, the winner's successor included.
    assert!(h.refresh(&rt(&ok[0]), None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_spends_never_exceed_the_cap_by_one_unit() {
    let h = Arc::new(harness().await);
    let t = h.ready_to_spend(1_000_000, "114689").await;
    let cap = 37;
    h.cap(BuzzLimit::per_period(cap, 1).unwrap()).await;
    let at = t.access_token.expose().to_owned();
    let results = at_once(64, |i| {
        let (h, at) = (h.clone(), at.clone());
        async move { h.pay(&at, 1, &format!("k{i}"), "ai_services").await }
    })
    .await;
    let mut spent = 0;
    for r in results {
        match r {
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
    let winners = winners(redeem_at_once(&h, 32).await, "invalid_grant");
    assert_eq!(winners.len(), 1, "exactly one token response");
    assert!(
        !h.active(winners[0].access_token.expose()).await,
        "the code was replayed, so what it issued is revoked"
    );
}
