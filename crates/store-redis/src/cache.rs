//! `TokenCache` shared by every node, and the revocation channel: `invalidate` deletes the
//! entries and publishes their hashes so in-process layers ([`crate::LayeredCache`]) drop
//! theirs too.

use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use async_trait::async_trait;
use buzzgate_domain::ports::{CACHE_TOMBSTONE_SECS, StoreResult, TokenCache};
use buzzgate_domain::token::{TokenHash, TokenRecord};
use futures::{Stream, StreamExt};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{CONNECT_TIMEOUT, RedisStore, bounded, from_json, ms, to_json};

/// A cached record with the instant it stops being served (so a local layer never keeps it
/// longer than the shared cache would).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CacheEntry {
    pub record: TokenRecord,
    pub until: OffsetDateTime,
}

/// The hashes revoked anywhere, as published by [`TokenCache::invalidate`] on any node. The
/// stream ends when the subscription's connection is lost: treat that as "anything may have
/// been revoked" (drop local state) and subscribe again.
pub struct RevocationStream(Pin<Box<dyn Stream<Item = TokenHash> + Send>>);

impl std::fmt::Debug for RevocationStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevocationStream")
    }
}

impl Stream for RevocationStream {
    type Item = TokenHash;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TokenHash>> {
        self.0.as_mut().poll_next(cx)
    }
}

impl RedisStore {
    fn revocations_channel(&self) -> String {
        format!("{}revocations", self.prefix)
    }

    /// Subscribes to `channel` on a connection of its own; returns once the subscription is
    /// active (every message published after this call is seen) with the messages' payloads.
    /// The stream ends when that connection is lost.
    pub(crate) async fn subscribe(
        &self,
        channel: String,
    ) -> StoreResult<impl Stream<Item = String> + Send + 'static> {
        let client = self.client.clone();
        let pubsub = bounded(CONNECT_TIMEOUT * 2, async move {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok(pubsub)
        })
        .await?;
        Ok(pubsub
            .into_on_message()
            .map(|msg| msg.get_payload::<String>().unwrap_or_default()))
    }

    /// Subscribes to the revocation channel. Returns once the subscription is active, so
    /// every invalidation published after this call is seen.
    pub async fn subscribe_revocations(&self) -> StoreResult<RevocationStream> {
        let hashes = self
            .subscribe(self.revocations_channel())
            .await?
            .flat_map(|payload| {
                let hashes: Vec<TokenHash> =
                    payload.split(',').filter_map(TokenHash::from_hex).collect();
                futures::stream::iter(hashes)
            });
        Ok(RevocationStream(Box::pin(hashes)))
    }

    /// The entry behind `hash` if it is still to be served.
    pub(crate) async fn cache_entry(&self, hash: &TokenHash) -> StoreResult<Option<CacheEntry>> {
        let mut conn = self.conn();
        let json: Option<String> = self.run(conn.get(self.hkey("cache", hash))).await?;
        let now = self.clock.now();
        Ok(json
            .as_deref()
            .map(from_json::<CacheEntry>)
            .transpose()?
            .filter(|e| now < e.until))
    }
}

/// KEYS[1] = the entry, KEYS[2] = its revocation tombstone; ARGV[1] = the entry JSON,
/// ARGV[2] = its TTL (ms). Stores nothing (and returns 0) while the tombstone stands.
const PUT_LUA: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

static PUT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PUT_LUA));

impl RedisStore {
    /// [`TokenCache::put`], telling whether the entry was stored (`false`: the hash was
    /// revoked within [`CACHE_TOMBSTONE_SECS`], or `until` is already past).
    pub async fn put_unless_revoked(
        &self,
        record: &TokenRecord,
        until: OffsetDateTime,
    ) -> StoreResult<bool> {
        let key = self.hkey("cache", &record.hash);
        let ttl = ms(until - self.clock.now());
        let mut conn = self.conn();
        if ttl <= 0 {
            // Already past: make sure no older entry is served in its place.
            self.run(conn.del::<_, ()>(key)).await?;
            return Ok(false);
        }
        let entry = CacheEntry {
            record: record.clone(),
            until,
        };
        let mut inv = PUT.prepare_invoke();
        inv.key(key)
            .key(self.hkey("revoked", &record.hash))
            .arg(to_json(&entry)?)
            .arg(ttl);
        let stored: i64 = self.run(inv.invoke_async(&mut conn)).await?;
        Ok(stored == 1)
    }
}

#[async_trait]
impl TokenCache for RedisStore {
    async fn get(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        Ok(self.cache_entry(hash).await?.map(|e| e.record))
    }

    async fn put(&self, record: &TokenRecord, until: OffsetDateTime) -> StoreResult<()> {
        self.put_unless_revoked(record, until).await.map(|_| ())
    }

    async fn invalidate(&self, hashes: &[TokenHash]) -> StoreResult<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = hashes.iter().map(|h| self.hkey("cache", h)).collect();
        let payload = hashes
            .iter()
            .map(TokenHash::to_hex)
            .collect::<Vec<_>>()
            .join(",");
        // Delete and leave tombstones first, then tell the other nodes, in one transaction: a
        // node that re-reads after the message can no longer find the entry, and a validation
        // that read the row before the revocation cannot put it back.
        let mut pipe = redis::pipe();
        pipe.atomic().del(keys).ignore();
        for h in hashes {
            pipe.pset_ex(
                self.hkey("revoked", h),
                1,
                CACHE_TOMBSTONE_SECS.saturating_mul(1000),
            )
            .ignore();
        }
        pipe.publish(self.revocations_channel(), payload).ignore();
        let mut conn = self.conn();
        self.run(pipe.exec_async(&mut conn)).await
    }
}
