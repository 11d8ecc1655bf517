//! The read caches' fan-out (`RedisReadFanout`, `listen_reads`): two "nodes", each with its own
//! read caches (a TTL of a minute, so only the fan-out can explain a fresh read) over one
//! shared durable store, and one Redis. A write through node A is seen by node B at once.

mod common;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use buzzgate_domain::buzz::BuzzLimit;
use buzzgate_domain::memory::MemoryStore;
use buzzgate_domain::ports::{ClientStore, ConsentStore, SystemClock};
use buzzgate_local::{CachedClients, CachedConsents, ReadCaches, ReadFanout};
use buzzgate_store_redis::{RedisReadFanout, listen_reads};
use buzzgate_testkit::{self as fx, now};

struct Node {
    clients: Arc<CachedClients>,
    consents: Arc<CachedConsents>,
}

async fn node(durable: &Arc<MemoryStore>, prefix: &str) -> Option<Node> {
    let redis = common::store_on(prefix).await?;
    let ttl = StdDuration::from_secs(60);
    let fanout: Arc<dyn ReadFanout> = Arc::new(RedisReadFanout(redis.clone()));
    let clients = Arc::new(CachedClients::new(durable.clone(), ttl).with_fanout(fanout.clone()));
    let consents = Arc::new(CachedConsents::new(durable.clone(), ttl).with_fanout(fanout));
    listen_reads(redis, ReadCaches::new(&clients, &consents))
        .await
        .unwrap();
    Some(Node { clients, consents })
}

/// Polls `check` until it holds, failing after 2 s (the caches' TTL is a minute).
async fn within<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < StdDuration::from_secs(2),
            "the other node still serves its cached copy"
        );
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_node_is_seen_by_the_other_at_once() {
    let prefix = common::fresh_prefix();
    let durable = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
    let Some(a) = node(&durable, &prefix).await else {
        return;
    };
    let b = node(&durable, &prefix).await.expect("second node");
    let (u, c) = fx::user_and_client(durable.as_ref(), durable.as_ref()).await;
    durable.save(&fx::consent(u.id, &c.id), None).await.unwrap();

    // B caches the app and the consent.
    let cached = b.clients.get(&c.id).await.unwrap().unwrap();
    assert_eq!(cached.name, c.name);
    let cap = b
        .consents
        .get(u.id, &c.id)
        .await
        .unwrap()
        .unwrap()
        .buzz_limit;
    assert_eq!(cap, BuzzLimit::consent_default());

    // A renames the app (any update: a rotated secret goes the same way).
    let mut renamed = c.clone();
    renamed.name = "Renamed through A".into();
    a.clients.update(&renamed).await.unwrap();
    within(|| async { b.clients.get(&c.id).await.unwrap().unwrap().name == "Renamed through A" })
        .await;

    // A lowers the cap.
    let lower = BuzzLimit::per_period(10, 1).unwrap();
    a.consents
        .set_buzz_limit(u.id, &c.id, &lower, now())
        .await
        .unwrap();
    within(|| async {
        b.consents
            .get(u.id, &c.id)
            .await
            .unwrap()
            .unwrap()
            .buzz_limit
            == lower
    })
    .await;

    // A deletes the app and revokes the consent.
    a.consents.delete(u.id, &c.id).await.unwrap();
    within(|| async { b.consents.get(u.id, &c.id).await.unwrap().is_none() }).await;
    a.clients.delete(&c.id).await.unwrap();
    within(|| async { b.clients.get(&c.id).await.unwrap().is_none() }).await;
}
