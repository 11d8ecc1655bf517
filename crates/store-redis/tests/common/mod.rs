//! Shared test setup: a store on a fresh random key prefix, or a skip when Redis is down.

#![allow(dead_code)]

use buzzgate_domain::ports::OsRandom;
use buzzgate_store_redis::RedisStore;

/// A key prefix no other test uses, so tests run in parallel on one server.
pub fn fresh_prefix() -> String {
    format!(
        "bgtest:{}:",
        buzzgate_domain::ids::new_uuid(&OsRandom).simple()
    )
}

/// A store on a fresh prefix, or `None` after printing `SKIP redis: <why>` (a panic when
/// `BUZZGATE_REQUIRE_SERVICES=1`).
pub async fn store() -> Option<RedisStore> {
    store_on(&fresh_prefix()).await
}

/// A store (its own connection: another "node") on `prefix`.
pub async fn store_on(prefix: &str) -> Option<RedisStore> {
    match RedisStore::connect(&buzzgate_testkit::redis_url(), prefix).await {
        Ok(s) => Some(s),
        Err(e) => buzzgate_testkit::skip("redis", &e.to_string()),
    }
}

/// A plain connection for inspecting keys (TTLs) behind the store's back.
pub async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(buzzgate_testkit::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
