//! The Redis adapter's own behaviour beyond the contract suite: real expiries, retention of
//! expired records, lost-update freedom under 64 tasks, the revocation fan-out between two
//! nodes, and outages answered quickly as `Unavailable`.

mod common;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use buzzgate_domain::StoreError;
use buzzgate_domain::error::Error;
use buzzgate_domain::grant::authorization_code::CodeRedemption;
use buzzgate_domain::grant::device_code::{DevicePoll, DeviceResolution, DeviceStatus};
use buzzgate_domain::ids::UserId;
use buzzgate_domain::ports::{
    CodeStore, DeviceStore, OsRandom, RateLimiter, RateWindow, SessionStore, TokenCache,
};
use buzzgate_domain::rate;
use buzzgate_domain::token::TokenKind;
use buzzgate_domain::user::Session;
use buzzgate_store_redis::{LayeredCache, RedisStore};
use buzzgate_testkit::{self as fx, now};
use futures::StreamExt;
use redis::AsyncCommands;
use time::Duration;

async fn pttl(key: &str) -> i64 {
    common::raw().await.pttl(key).await.unwrap()
}

#[tokio::test]
async fn every_record_gets_a_real_expiry() {
    let Some(store) = common::store().await else {
        return;
    };
    let p = store.prefix().to_owned();
    let client = fx::client(UserId(1));

    let code = fx::code(UserId(1), &client.id);
    CodeStore::insert(&store, &code).await.unwrap();
    let t = pttl(&format!("{p}code:{}", code.hash.to_hex())).await;
    // 600 s of life plus the 10 min retention.
    assert!(t > 1_100_000 && t <= 1_200_000, "code PTTL {t}");

    let dev = fx::device(&client);
    DeviceStore::insert(&store, &dev).await.unwrap();
    for key in [
        format!("{p}device:{}", dev.device_hash.to_hex()),
        format!("{p}usercode:{}", dev.user_code.as_str()),
    ] {
        let t = pttl(&key).await;
        assert!(t > 1_400_000 && t <= 1_500_000, "{key} PTTL {t}");
    }
    // A rewrite keeps the expiry.
    let poll = DevicePoll {
        client_id: client.id.clone(),
        now: now(),
    };
    store.poll(&dev.device_hash, &poll).await.unwrap();
    assert!(pttl(&format!("{p}device:{}", dev.device_hash.to_hex())).await > 1_400_000);

    let (_, session) = Session::start(UserId(7), now(), Duration::hours(1), &OsRandom);
    SessionStore::insert(&store, &session).await.unwrap();
    assert!(pttl(&format!("{p}session:{}", session.id_hash.to_hex())).await > 3_600_000);

    let (_, token) = fx::token(TokenKind::Access, UserId(1), None, None);
    store
        .put(&token, now() + Duration::seconds(30))
        .await
        .unwrap();
    let t = pttl(&format!("{p}cache:{}", token.hash.to_hex())).await;
    assert!(t > 25_000 && t <= 30_000, "cache PTTL {t}");

    // The expiry indexes expire too (with their longest-lived member): every key has a TTL.
    for index in ["codes:exp", "devices:exp", "sessions:exp"] {
        let t = pttl(&format!("{p}{index}")).await;
        assert!(t > 1_000_000, "{index} PTTL {t}");
    }

    let at = time::macros::datetime!(2026-03-01 10:00:30 UTC);
    store
        .count("login:1.2.3.4", RateWindow::containing(at, 60), 1)
        .await
        .unwrap();
    let t = pttl(&format!(
        "{p}rate:login:1.2.3.4:{}",
        at.unix_timestamp() - 30
    ))
    .await;
    assert!(t > 55_000 && t <= 60_000, "rate PTTL {t}");
}

#[tokio::test]
async fn cache_entries_past_until_are_not_stored() {
    let Some(store) = common::store().await else {
        return;
    };
    let (_, token) = fx::token(TokenKind::Access, UserId(1), None, None);
    store
        .put(&token, now() + Duration::seconds(30))
        .await
        .unwrap();
    store
        .put(&token, now() - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(TokenCache::get(&store, &token.hash).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redeemers_see_the_winners_family() {
    let Some(store) = common::store().await else {
        return;
    };
    let code = fx::code(UserId(1), &fx::client(UserId(1)).id);
    CodeStore::insert(&store, &code).await.unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (store, fam) = (store.clone(), fx::family());
            tokio::spawn(async move { (fam, store.redeem(&code.hash, fam).await.unwrap()) })
        })
        .collect();
    let mut winner = None;
    let mut seen = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (fam, CodeRedemption::Redeemed(rec)) => {
                assert_eq!(rec.redeemed, Some(fam));
                assert!(winner.replace(fam).is_none(), "two winners");
            }
            (_, CodeRedemption::AlreadyRedeemed { family }) => seen.push(family),
            (_, CodeRedemption::NotFound) => panic!("the code exists"),
        }
    }
    assert_eq!(seen.len(), 63);
    assert!(seen.iter().all(|f| *f == winner));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_polls_lose_no_update() {
    // 64 polls at one instant of a pending code: the first is "pending", every later one is
    // too fast and adds 5 s to the interval. A lost update would leave the interval short.
    let Some(store) = common::store().await else {
        return;
    };
    let client = fx::client(UserId(1));
    let dev = fx::device(&client);
    DeviceStore::insert(&store, &dev).await.unwrap();
    let poll = DevicePoll {
        client_id: client.id.clone(),
        now: now(),
    };
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (store, poll) = (store.clone(), poll.clone());
            tokio::spawn(async move { store.poll(&dev.device_hash, &poll).await.unwrap().result })
        })
        .collect();
    let (mut pending, mut slow) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Err(Error::AuthorizationPending) => pending += 1,
            Err(Error::SlowDown { .. }) => slow += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((pending, slow), (1, 63));
    let stored = store
        .find_by_user_code(&dev.user_code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.interval, 5 + 63 * 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_resolutions_have_one_winner() {
    let Some(store) = common::store().await else {
        return;
    };
    let dev = fx::device(&fx::client(UserId(1)));
    DeviceStore::insert(&store, &dev).await.unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (store, code) = (store.clone(), dev.user_code.clone());
            tokio::spawn(async move {
                let r = DeviceResolution {
                    user_id: UserId(i),
                    auth_time: now(),
                    approve: true,
                    now: now(),
                };
                store.resolve(&code, &r).await.unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        if let Ok(rec) = t.await.unwrap() {
            winners.push(rec);
        }
    }
    assert_eq!(winners.len(), 1);
    let stored = store
        .find_by_user_code(&dev.user_code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, winners[0]);
    assert!(matches!(stored.status, DeviceStatus::Approved { .. }));
}

#[tokio::test]
async fn expired_records_are_kept_for_precise_answers() {
    let Some(store) = common::store().await else {
        return;
    };
    let client = fx::client(UserId(1));
    let mut dev = fx::device(&client);
    dev.expires_at = dev.created_at + Duration::seconds(1);
    DeviceStore::insert(&store, &dev).await.unwrap();
    let late = DevicePoll {
        client_id: client.id.clone(),
        now: dev.expires_at + Duration::seconds(5),
    };
    // "expired_token", not "unknown device_code" (RFC 8628 §3.5).
    assert_eq!(
        store
            .poll(&dev.device_hash, &late)
            .await
            .unwrap()
            .result
            .unwrap_err()
            .code(),
        "expired_token"
    );
    let late_approval = DeviceResolution {
        user_id: UserId(1),
        auth_time: late.now,
        approve: true,
        now: late.now,
    };
    assert_eq!(
        store
            .resolve(&dev.user_code, &late_approval)
            .await
            .unwrap()
            .unwrap_err()
            .code(),
        "expired_token"
    );

    // The expired code's user code is free again for a new authorization.
    let mut next = fx::device(&client);
    next.user_code = dev.user_code.clone();
    next.created_at = dev.expires_at + Duration::seconds(1);
    next.expires_at = next.created_at + Duration::seconds(900);
    DeviceStore::insert(&store, &next).await.unwrap();
    assert_eq!(
        store.find_by_user_code(&dev.user_code).await.unwrap(),
        Some(next.clone())
    );
    // Sweeping the old one leaves the new one's user code alone.
    assert_eq!(
        DeviceStore::sweep_expired(&store, next.created_at, 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.find_by_user_code(&dev.user_code).await.unwrap(),
        Some(next)
    );
}

#[tokio::test]
async fn sweeping_deletes_by_expires_at_in_bounded_batches() {
    let Some(store) = common::store().await else {
        return;
    };
    let p = store.prefix().to_owned();
    let mut sessions = Vec::new();
    for i in 0..5 {
        let (_, mut s) = Session::start(UserId(i), now(), Duration::hours(1), &OsRandom);
        s.expires_at = now() + Duration::seconds(i64::from(i as i32) * 10);
        SessionStore::insert(&store, &s).await.unwrap();
        sessions.push(s);
    }
    let cut = now() + Duration::seconds(25);
    assert_eq!(
        SessionStore::sweep_expired(&store, cut, 2).await.unwrap(),
        2
    );
    assert_eq!(
        SessionStore::sweep_expired(&store, cut, 2).await.unwrap(),
        1
    );
    assert_eq!(
        SessionStore::sweep_expired(&store, cut, 2).await.unwrap(),
        0
    );
    for (i, s) in sessions.iter().enumerate() {
        let kept = SessionStore::get(&store, &s.id_hash)
            .await
            .unwrap()
            .is_some();
        assert_eq!(kept, i >= 3, "session {i}");
    }
    let left: i64 = common::raw()
        .await
        .zcard(format!("{p}sessions:exp"))
        .await
        .unwrap();
    assert_eq!(left, 2, "the expiry index shrinks with the sweep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_counts_exactly_under_concurrency() {
    let Some(store) = common::store().await else {
        return;
    };
    let at = time::macros::datetime!(2026-03-01 10:00:45 UTC);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let w = RateWindow::containing(at, 60);
                rate::decide(store.count("k", w, 1).await.unwrap(), 20, w, at)
            })
        })
        .collect();
    let mut decisions = Vec::new();
    for t in tasks {
        decisions.push(t.await.unwrap());
    }
    assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 20);
    for d in decisions.iter().filter(|d| !d.allowed) {
        assert_eq!((d.remaining, d.retry_after), (0, 15));
    }
    let mut remaining: Vec<u32> = decisions
        .iter()
        .filter(|d| d.allowed)
        .map(|d| d.remaining)
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_the_other_node_within_a_second() {
    let prefix = common::fresh_prefix();
    let (Some(a), Some(b)) = (
        common::store_on(&prefix).await,
        common::store_on(&prefix).await,
    ) else {
        return;
    };
    // A local TTL far beyond the promise: only the fan-out can make node B forget in time.
    let long = StdDuration::from_secs(60);
    let node_a = LayeredCache::new(a, long).await.unwrap();
    let node_b = LayeredCache::new(b, long).await.unwrap();
    let (_, token) = fx::token(TokenKind::Access, UserId(1), None, None);
    let until = now() + Duration::minutes(5);
    node_a.put(&token, until).await.unwrap();
    node_b.put(&token, until).await.unwrap();
    assert_eq!(node_b.get(&token.hash).await.unwrap(), Some(token.clone()));
    assert_eq!(node_b.local_len(), 1, "served from node B's memory");

    let started = Instant::now();
    node_a.invalidate(&[token.hash]).await.unwrap();
    assert_eq!(node_a.get(&token.hash).await.unwrap(), None);
    while node_b.local_len() > 0 {
        assert!(
            started.elapsed() < StdDuration::from_secs(1),
            "node B still holds a revoked token after 1 s"
        );
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    assert_eq!(node_b.get(&token.hash).await.unwrap(), None);
}

#[tokio::test]
async fn revocations_can_be_subscribed_to() {
    let Some(store) = common::store().await else {
        return;
    };
    let mut revoked = store.subscribe_revocations().await.unwrap();
    let (_, t1) = fx::token(TokenKind::Access, UserId(1), None, None);
    let (_, t2) = fx::token(TokenKind::Access, UserId(1), None, None);
    store.invalidate(&[t1.hash, t2.hash]).await.unwrap();
    let got: Vec<_> = tokio::time::timeout(
        StdDuration::from_secs(1),
        revoked.by_ref().take(2).collect(),
    )
    .await
    .unwrap();
    assert_eq!(got, vec![t1.hash, t2.hash]);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_quickly() {
    let started = Instant::now();
    let err = RedisStore::connect("redis://127.0.0.1:1", "bgtest:")
        .await
        .unwrap_err();
    fx::assert_unavailable_soon(&err, started, StdDuration::from_secs(5));

    // A lazily connected store answers every port with Unavailable, without panicking.
    let lazy = Arc::new(RedisStore::connect_lazy("redis://127.0.0.1:1", "bgtest:").unwrap());
    let started = Instant::now();
    let code = fx::code(UserId(1), &fx::client(UserId(1)).id);
    assert!(matches!(
        CodeStore::insert(lazy.as_ref(), &code).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        lazy.redeem(&code.hash, fx::family()).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        lazy.count("k", RateWindow::containing(now(), 60), 1).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        TokenCache::get(lazy.as_ref(), &code.hash).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        lazy.subscribe_revocations().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < StdDuration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_invalid_url_is_refused() {
    assert!(matches!(
        RedisStore::connect("not a url", "bg:").await,
        Err(StoreError::Internal(_))
    ));
}
