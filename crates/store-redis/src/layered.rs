//! A two-level `TokenCache`: a short-lived in-process layer ([`LocalCache`], bounded in bytes)
//! in front of the shared Redis cache, kept honest by the revocation channel. A revocation on
//! any node drops the entry from every node's layer as soon as the message arrives and leaves
//! a tombstone there, so a read that fetched from Redis before the revocation cannot put it
//! back; the local TTL bounds staleness even if a message were lost, and the local layer is
//! bypassed whenever the subscription is down.
//!
//! Not an adapter of a port of its own but a composite of two `TokenCache`s (the shared one in
//! `cache.rs`, under the name every adapter gives its `TokenCache`, and `buzzgate-local`'s
//! `LocalCache`), so it keeps a file of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use buzzgate_domain::ports::{StoreResult, TokenCache};
use buzzgate_domain::token::{TokenHash, TokenRecord};
use buzzgate_local::LocalCache;
use futures::StreamExt;
use time::OffsetDateTime;

use crate::RedisStore;
use crate::cache::RevocationStream;

#[derive(Debug)]
struct Inner {
    remote: RedisStore,
    local_ttl: time::Duration,
    local: LocalCache,
    /// Whether revocations are being received; when not, the local layer is not used.
    listening: AtomicBool,
    listener: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self.listener.get_mut().ok().and_then(Option::take) {
            h.abort();
        }
    }
}

/// A node's token cache: in-process entries (at most `local_ttl` old) over the shared
/// [`RedisStore`] cache, with revocations fanned out to every node. Cheap to clone; the
/// listener task stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct LayeredCache {
    inner: Arc<Inner>,
}

impl LayeredCache {
    /// Subscribes to revocations (so none published after this returns is missed) and starts
    /// the listener. `local_ttl` bounds how long an entry is served from memory; keep it at
    /// or below the revocation promise (1 s). The local layer holds at most
    /// [`LocalCache::DEFAULT_MAX_BYTES`]; see [`LayeredCache::with_local`]. Needs a Tokio
    /// runtime.
    pub async fn new(remote: RedisStore, local_ttl: StdDuration) -> StoreResult<LayeredCache> {
        let local = LocalCache::new(LocalCache::DEFAULT_MAX_BYTES, remote.clock.clone());
        Self::with_local(remote, local, local_ttl).await
    }

    /// As [`LayeredCache::new`], with the given local layer (its byte bound).
    pub async fn with_local(
        remote: RedisStore,
        local: LocalCache,
        local_ttl: StdDuration,
    ) -> StoreResult<LayeredCache> {
        let stream = remote.subscribe_revocations().await?;
        let inner = Arc::new(Inner {
            remote,
            local_ttl: time::Duration::try_from(local_ttl).unwrap_or(time::Duration::SECOND),
            local,
            listening: AtomicBool::new(true),
            listener: Mutex::default(),
        });
        let task = tokio::spawn(listen(Arc::downgrade(&inner), stream));
        *inner.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        Ok(LayeredCache { inner })
    }

    /// The shared store behind the local layer.
    pub fn remote(&self) -> &RedisStore {
        &self.inner.remote
    }

    /// How many entries the local layer holds (for metrics and tests).
    pub fn local_len(&self) -> usize {
        usize::try_from(self.inner.local.usage().0).unwrap_or(usize::MAX)
    }

    fn remember(&self, record: &TokenRecord, until: OffsetDateTime) {
        let inner = &self.inner;
        if !inner.listening.load(Ordering::SeqCst) {
            return;
        }
        let local_until = until.min(inner.remote.clock.now() + inner.local_ttl);
        inner.local.put_unless_revoked(record, local_until);
    }
}

/// Applies revocations until the cache is dropped; on a lost subscription, drops every local
/// entry, stops using them, and resubscribes with backoff.
async fn listen(inner: Weak<Inner>, mut stream: RevocationStream) {
    loop {
        while let Some(hash) = stream.next().await {
            let Some(inner) = inner.upgrade() else { return };
            inner.local.forget(&[hash]);
        }
        let remote = {
            let Some(inner) = inner.upgrade() else { return };
            inner.listening.store(false, Ordering::SeqCst);
            inner.local.forget_all();
            inner.remote.clone()
        };
        let mut delay = StdDuration::from_millis(50);
        stream = loop {
            tokio::time::sleep(delay).await;
            if inner.strong_count() == 0 {
                return;
            }
            match remote.subscribe_revocations().await {
                Ok(s) => break s,
                Err(_) => delay = (delay * 2).min(StdDuration::from_secs(5)),
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        // Anything may have been revoked while we were deaf.
        inner.local.forget_all();
        inner.listening.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl TokenCache for LayeredCache {
    async fn get(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        let inner = &self.inner;
        if inner.listening.load(Ordering::SeqCst)
            && let Some(r) = inner.local.lookup(hash)
        {
            return Ok(Some(r));
        }
        let entry = inner.remote.cache_entry(hash).await?;
        Ok(entry.map(|e| {
            // A revocation that arrived meanwhile left a tombstone: this is not kept.
            self.remember(&e.record, e.until);
            e.record
        }))
    }

    async fn put(&self, record: &TokenRecord, until: OffsetDateTime) -> StoreResult<()> {
        // Refused remotely (a revocation's tombstone stands): not kept locally either.
        if self.inner.remote.put_unless_revoked(record, until).await? {
            self.remember(record, until);
        }
        Ok(())
    }

    async fn invalidate(&self, hashes: &[TokenHash]) -> StoreResult<()> {
        // Locally first: this node must not serve it even if Redis is unreachable.
        self.inner.local.forget(hashes);
        self.inner.remote.invalidate(hashes).await
    }
}
