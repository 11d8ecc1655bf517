//! The shared contract suite over the Redis adapter: once with the shared Redis cache on two
//! connections ("nodes"), once with a `LayeredCache` per node.

mod common;

use std::sync::Arc;
use std::time::Duration;

use buzzgate_domain::ports::RateLimiter;
use buzzgate_local::RecentCounts;
use buzzgate_store_redis::LayeredCache;
use buzzgate_testkit::Ports;

/// Every port this adapter provides, on a fresh prefix; `cache_peer` and `node2` are a
/// second connection on the same prefix (another node). With `layered`, both caches are
/// in-process layers over Redis, and both limiters keep a node's recent view of the counts
/// (`RecentCounts`), as the composed server runs them.
async fn fixture(layered: bool) -> Option<Ports> {
    let prefix = common::fresh_prefix();
    let store = Arc::new(common::store_on(&prefix).await?);
    let peer = common::store_on(&prefix).await?;
    let node2 = Arc::new(peer.clone());
    let (limiter, limiter2): (Arc<dyn RateLimiter>, Arc<dyn RateLimiter>) = if layered {
        let view = Duration::from_secs(1);
        (
            Arc::new(RecentCounts::new(store.clone(), view)),
            Arc::new(RecentCounts::new(node2.clone(), view)),
        )
    } else {
        (store.clone(), node2.clone())
    };
    let (cache, cache_peer): (
        Arc<dyn buzzgate_domain::ports::TokenCache>,
        Arc<dyn buzzgate_domain::ports::TokenCache>,
    ) = if layered {
        let ttl = Duration::from_secs(1);
        (
            Arc::new(LayeredCache::new((*store).clone(), ttl).await.ok()?),
            Arc::new(LayeredCache::new(peer, ttl).await.ok()?),
        )
    } else {
        (store.clone(), Arc::new(peer))
    };
    Some(Ports {
        codes: Some(store.clone()),
        devices: Some(store.clone()),
        sessions: Some(store.clone()),
        rate_limiter: Some(limiter),
        cache: Some(cache),
        cache_peer: Some(cache_peer.clone()),
        node2: Some(Box::new(Ports {
            codes: Some(node2.clone()),
            devices: Some(node2.clone()),
            sessions: Some(node2.clone()),
            rate_limiter: Some(limiter2),
            cache: Some(cache_peer),
            ..Ports::default()
        })),
        ..Ports::default()
    })
}

buzzgate_testkit::contract_suite!(redis, async { fixture(false).await });
buzzgate_testkit::contract_suite!(redis_layered, async { fixture(true).await });
