//! Contract cases: Rate limits and the token cache.

#[allow(unused_imports)]
use super::prelude::*;

fn key() -> String {
    format!(
        "contract:{}",
        buzzgate_domain::ids::new_uuid(&buzzgate_domain::ports::OsRandom).simple()
    )
}

pub async fn rate_limit_fixed_window(p: &Ports) {
    let (rl,) = need!(p, rate_limiter);
    let (k, other) = (key(), key());
    // Mid-window, so the whole case fits in one 60 s window.
    let t = time::macros::datetime!(2026-03-01 10:00:30 UTC);
    let w = RateWindow::containing(t, 60);
    assert_eq!(
        rl.count(&k, w, 0).await.unwrap(),
        0,
        "a read creates nothing"
    );
    for i in 1..=3 {
        assert_eq!(rl.count(&k, w, 1).await.unwrap(), i);
    }
    assert_eq!(rl.count(&k, w, 0).await.unwrap(), 3, "a read adds nothing");
    assert_eq!(rl.count(&k, w, 2).await.unwrap(), 5);
    assert_eq!(
        rl.count(&other, w, 1).await.unwrap(),
        1,
        "keys are independent"
    );
    let next = RateWindow::containing(t + Duration::seconds(30), 60);
    assert_eq!(
        rl.count(&k, next, 1).await.unwrap(),
        1,
        "the next window starts over"
    );
}

pub async fn concurrent_hits_respect_the_limit(p: &Ports) {
    let (rl,) = need!(p, rate_limiter);
    let k = key();
    let t = time::macros::datetime!(2026-03-01 10:00:30 UTC);
    let w = RateWindow::containing(t, 60);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (rl, k) = (
                p.node(i).rate_limiter.clone().unwrap_or_else(|| rl.clone()),
                k.clone(),
            );
            tokio::spawn(async move {
                let n = rl.count(&k, w, 1).await.unwrap();
                buzzgate_domain::rate::decide(n, 20, w, t).allowed
            })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    assert_eq!(allowed, 20, "every count is distinct, so exactly 20 pass");
    assert_eq!(rl.count(&k, w, 0).await.unwrap(), 64);
}

pub async fn rate_limit_count_each_is_count_per_key(p: &Ports) {
    let (rl,) = need!(p, rate_limiter);
    let (a, b) = (key(), key());
    let t = time::macros::datetime!(2026-03-01 10:00:30 UTC);
    let w = RateWindow::containing(t, 60);
    assert_eq!(rl.count_each(&[], w).await.unwrap(), Vec::<u64>::new());
    assert_eq!(
        rl.count_each(&[(a.clone(), 0), (b.clone(), 1)], w)
            .await
            .unwrap(),
        vec![0, 1],
        "a read creates nothing; a hit counts"
    );
    rl.count(&a, w, 2).await.unwrap();
    assert_eq!(
        rl.count_each(&[(a.clone(), 1), (b.clone(), 0), (a.clone(), 0)], w)
            .await
            .unwrap(),
        vec![3, 1, 3],
        "each hit in order, shared with count"
    );
    // Concurrent calls from every node: each hit is counted once.
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (rl, a, b) = (
                p.node(i).rate_limiter.clone().unwrap_or_else(|| rl.clone()),
                a.clone(),
                b.clone(),
            );
            tokio::spawn(async move { rl.count_each(&[(b, 0), (a, 1)], w).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap()[1]);
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (4..36).collect::<Vec<u64>>(),
        "every count is distinct"
    );
    let next = RateWindow::containing(t + Duration::seconds(30), 60);
    assert_eq!(
        rl.count_each(&[(a.clone(), 1)], next).await.unwrap(),
        vec![1],
        "the next window starts over"
    );
}

/// `peek` reads without counting; it never lags what this node counted (alone or in a
/// `count_each`), and sees another node's hits within the adapter's bound (a second here,
/// polled for two).
pub async fn rate_limit_peek_lags_only_other_nodes(p: &Ports) {
    let (rl,) = need!(p, rate_limiter);
    let other = p.node(1).rate_limiter.clone().unwrap_or_else(|| rl.clone());
    let k = key();
    let t = time::macros::datetime!(2026-03-01 10:00:30 UTC);
    let w = RateWindow::containing(t, 60);
    assert_eq!(rl.peek(&k, w).await.unwrap(), 0, "nothing counted yet");
    assert_eq!(rl.count(&k, w, 1).await.unwrap(), 1);
    assert_eq!(
        rl.peek(&k, w).await.unwrap(),
        1,
        "a peek never lags this node's own hit"
    );
    assert_eq!(rl.count_each(&[(k.clone(), 2)], w).await.unwrap(), vec![3]);
    assert_eq!(
        rl.peek(&k, w).await.unwrap(),
        3,
        "nor hits counted together"
    );
    assert_eq!(
        rl.count(&k, w, 0).await.unwrap(),
        3,
        "a peek counts nothing"
    );
    assert_eq!(
        other.count(&k, w, 5).await.unwrap(),
        8,
        "another node's hits"
    );
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(2);
    loop {
        let n = rl.peek(&k, w).await.unwrap();
        if n == 8 {
            break;
        }
        assert_eq!(
            n, 3,
            "a peek answers the shared count or this node's last view"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "another node's hits still unseen after 2 s"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    let next = RateWindow::containing(t + Duration::seconds(30), 60);
    assert_eq!(
        rl.peek(&k, next).await.unwrap(),
        0,
        "the next window starts over"
    );
    assert_eq!(rl.count(&k, next, 1).await.unwrap(), 1);
    // A late read of the older window (a node whose clock is behind): whatever it answers,
    // it never replaces the newer window's count.
    rl.peek(&k, w).await.unwrap();
    assert_eq!(
        rl.peek(&k, next).await.unwrap(),
        1,
        "an older window's answer never replaces the newer window's"
    );
}

/// An access token of user 1, as a cache holds it.
fn cacheable() -> buzzgate_domain::token::TokenRecord {
    fx::token(
        TokenKind::Access,
        buzzgate_domain::ids::UserId(1),
        None,
        None,
    )
    .1
}

pub async fn cache_round_trip(p: &Ports) {
    let (cache,) = need!(p, cache);
    let t = cacheable();
    assert_eq!(cache.get(&t.hash).await.unwrap(), None);
    cache.put(&t, now() + Duration::seconds(30)).await.unwrap();
    assert_eq!(cache.get(&t.hash).await.unwrap(), Some(t.clone()));
    cache.invalidate(&[t.hash]).await.unwrap();
    assert_eq!(cache.get(&t.hash).await.unwrap(), None);
    cache.invalidate(&[]).await.unwrap();
    let short = cacheable();
    cache
        .put(&short, now() + Duration::milliseconds(200))
        .await
        .unwrap();
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    assert_eq!(
        cache.get(&short.hash).await.unwrap(),
        None,
        "entries never outlive `until`"
    );
}

/// A validation that read a token before its revocation must not cache it after: the
/// invalidation's tombstone refuses the late put, on this node and on every other.
pub async fn cache_put_after_invalidate_is_refused(p: &Ports) {
    let (cache,) = need!(p, cache);
    let t = cacheable();
    cache.invalidate(&[t.hash]).await.unwrap();
    cache.put(&t, now() + Duration::seconds(60)).await.unwrap();
    assert_eq!(
        cache.get(&t.hash).await.unwrap(),
        None,
        "a revoked token is never cached back"
    );
    if let Some(peer) = &p.cache_peer {
        peer.put(&t, now() + Duration::seconds(60)).await.unwrap();
        assert_eq!(
            peer.get(&t.hash).await.unwrap(),
            None,
            "nor by another node"
        );
        assert_eq!(cache.get(&t.hash).await.unwrap(), None);
    }
    let fresh = cacheable();
    cache
        .put(&fresh, now() + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(
        cache.get(&fresh.hash).await.unwrap(),
        Some(fresh),
        "other tokens are cached as before"
    );
}

/// Puts racing an invalidation of the same hash: once the invalidation is done, no put
/// before or after it leaves the token cached (the tombstone check and the insert are one
/// step against the invalidation). 50 rounds of 16 tasks.
pub async fn concurrent_puts_never_outlive_an_invalidation(p: &Ports) {
    let (cache,) = need!(p, cache);
    for _ in 0..50 {
        let t = cacheable();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (cache, t) = (cache.clone(), t.clone());
                tokio::spawn(async move {
                    if i == 8 {
                        cache.invalidate(&[t.hash]).await.unwrap();
                    } else {
                        cache.put(&t, now() + Duration::seconds(60)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            cache.get(&t.hash).await.unwrap(),
            None,
            "a put that raced the invalidation left the revoked token cached"
        );
    }
}

pub async fn cache_invalidation_reaches_peer(p: &Ports) {
    let (cache, peer) = need!(p, cache, cache_peer);
    let t = cacheable();
    cache.put(&t, now() + Duration::seconds(60)).await.unwrap();
    peer.put(&t, now() + Duration::seconds(60)).await.unwrap();
    assert!(peer.get(&t.hash).await.unwrap().is_some());
    cache.invalidate(&[t.hash]).await.unwrap();
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(1);
    loop {
        if peer.get(&t.hash).await.unwrap().is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the peer still serves a revoked token after 1 s"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}
