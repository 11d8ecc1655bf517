//! The contract suite against the in-process adapters (token cache and rate limiter), and
//! their bounds: memory for the cache, key count for the limiter.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use buzzgate_domain::ids::UserId;
use buzzgate_domain::ports::{ManualClock, RateLimiter, RateWindow, SystemClock, TokenCache};
use buzzgate_domain::token::TokenKind;
use buzzgate_local::{LocalCache, LocalRateLimiter};
use buzzgate_testkit::{self as fx, Ports, contract_suite, now};
use time::Duration;

async fn ports() -> Option<Ports> {
    let clock = Arc::new(SystemClock);
    let cache = Arc::new(LocalCache::new(LocalCache::DEFAULT_MAX_BYTES, clock));
    Some(Ports {
        cache: Some(cache),
        rate_limiter: Some(Arc::new(LocalRateLimiter::default())),
        ..Ports::default()
    })
}

contract_suite!(local, ports());

#[tokio::test]
async fn the_cache_stays_within_its_byte_bound() {
    let cache = LocalCache::new(1024 * 1024, Arc::new(SystemClock));
    for _ in 0..20_000 {
        let (_, t) = fx::token(TokenKind::Access, UserId(1), None, None);
        cache.put(&t, now() + Duration::minutes(5)).await.unwrap();
    }
    let (entries, bytes) = cache.usage();
    assert!(bytes <= 1024 * 1024, "{bytes} bytes held");
    assert!(
        entries > 500 && entries < 20_000,
        "{entries} entries: evicted down to the bound, not emptied"
    );
}

#[tokio::test]
async fn entries_expire_at_their_own_until() {
    let start = now();
    let clock = Arc::new(ManualClock::new(start));
    let cache = LocalCache::new(LocalCache::DEFAULT_MAX_BYTES, clock.clone());
    let (_, t) = fx::token(TokenKind::Access, UserId(1), None, None);
    cache.put(&t, start + Duration::seconds(30)).await.unwrap();
    assert!(cache.get(&t.hash).await.unwrap().is_some());
    clock.advance(Duration::seconds(30));
    assert_eq!(cache.get(&t.hash).await.unwrap(), None);
    // Already past: nothing is stored.
    cache.put(&t, start).await.unwrap();
    assert_eq!(cache.get(&t.hash).await.unwrap(), None);
}

#[tokio::test]
async fn idle_rate_limit_keys_are_evicted() {
    let rl = LocalRateLimiter::new(1_000_000, StdDuration::from_millis(200));
    let w = RateWindow::containing(now(), 60);
    for i in 0..5_000 {
        rl.count(&format!("rl:login:ip:10.0.{}.{}", i / 256, i % 256), w, 1)
            .await
            .unwrap();
    }
    assert!(rl.keys() > 0);
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    assert_eq!(rl.keys(), 0, "an address seen once does not stay");
    let small = LocalRateLimiter::new(100, StdDuration::from_secs(60));
    for i in 0..5_000 {
        small.count(&format!("k{i}"), w, 1).await.unwrap();
    }
    assert!(small.keys() <= 100, "{} keys", small.keys());
}
