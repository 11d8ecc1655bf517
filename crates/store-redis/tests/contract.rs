//! The shared contract suite over the Redis adapter: once with the shared Redis cache on two
//! connections ("nodes"), once with a `LayeredCache` per node.

mod common;

use std::sync::Arc;
use std::time::Duration;

use buzzgate_store_redis::LayeredCache;
use buzzgate_testkit::Ports;

/// Every port this adapter provides, on a fresh prefix; `cache_peer` is a second connection
/// on the same prefix. With `layered`, both caches are in-process layers over Redis.
async fn fixture(layered: bool) -> Option<Ports> {
    let prefix = common::fresh_prefix();
    let store = Arc::new(common::store_on(&prefix).await?);
    let peer = common::store_on(&prefix).await?;
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
        rate_limiter: Some(store),
        cache: Some(cache),
        cache_peer: Some(cache_peer),
        ..Ports::default()
    })
}

buzzgate_testkit::contract_suite!(redis, async { fixture(false).await });
buzzgate_testkit::contract_suite!(redis_layered, async { fixture(true).await });
