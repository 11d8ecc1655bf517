//! A two-level `TokenCache`: a short-lived in-process map in front of the shared Redis cache,
//! kept honest by the revocation channel. A revocation on any node removes the local entry
//! on every node as soon as the message arrives; the local TTL bounds staleness even if a
//! message were lost, and the local layer is bypassed whenever the subscription is down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use buzzgate_domain::ports::{StoreResult, TokenCache};
use buzzgate_domain::token::{TokenHash, TokenRecord};
use futures::StreamExt;
use time::OffsetDateTime;

use crate::RedisStore;
use crate::cache::RevocationStream;

/// Beyond this many local entries the expired ones are dropped, and if that is not enough,
/// all of them (the shared cache still has them).
const MAX_LOCAL: usize = 100_000;

#[derive(Debug)]
struct Local {
    record: TokenRecord,
    until: OffsetDateTime,
    stale_at: Instant,
}

#[derive(Debug)]
struct Inner {
    remote: RedisStore,
    local_ttl: StdDuration,
    local: Mutex<HashMap<TokenHash, Local>>,
    /// Bumped (under the map's lock) by every revocation, so a read that fetched from Redis
    /// before a revocation does not put its stale answer in the map after it.
    epoch: AtomicU64,
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

impl Inner {
    fn map(&self) -> MutexGuard<'_, HashMap<TokenHash, Local>> {
        // Every critical section leaves the map consistent, so a poisoned lock is usable.
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget(&self, hash: &TokenHash) {
        let mut map = self.map();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        map.remove(hash);
    }

    fn forget_all(&self) {
        let mut map = self.map();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        map.clear();
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
    /// or below the revocation promise (1 s). Needs a Tokio runtime.
    pub async fn new(remote: RedisStore, local_ttl: StdDuration) -> StoreResult<LayeredCache> {
        let stream = remote.subscribe_revocations().await?;
        let inner = Arc::new(Inner {
            remote,
            local_ttl,
            local: Mutex::default(),
            epoch: AtomicU64::new(0),
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
        self.inner.map().len()
    }

    fn remember(&self, record: &TokenRecord, until: OffsetDateTime, epoch: Option<u64>) {
        let inner = &self.inner;
        if !inner.listening.load(Ordering::SeqCst) {
            return;
        }
        let mut map = inner.map();
        if epoch.is_some_and(|e| e != inner.epoch.load(Ordering::SeqCst)) {
            return;
        }
        if map.len() >= MAX_LOCAL {
            let now = Instant::now();
            map.retain(|_, l| l.stale_at > now);
            if map.len() >= MAX_LOCAL {
                map.clear();
            }
        }
        map.insert(
            record.hash,
            Local {
                record: record.clone(),
                until,
                stale_at: Instant::now() + inner.local_ttl,
            },
        );
    }
}

/// Applies revocations until the cache is dropped; on a lost subscription, drops every local
/// entry, stops using them, and resubscribes with backoff.
async fn listen(inner: Weak<Inner>, mut stream: RevocationStream) {
    loop {
        while let Some(hash) = stream.next().await {
            let Some(inner) = inner.upgrade() else { return };
            inner.forget(&hash);
        }
        let remote = {
            let Some(inner) = inner.upgrade() else { return };
            inner.listening.store(false, Ordering::SeqCst);
            inner.forget_all();
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
        inner.forget_all();
        inner.listening.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl TokenCache for LayeredCache {
    async fn get(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        let inner = &self.inner;
        let now = inner.remote.clock.now();
        if inner.listening.load(Ordering::SeqCst) {
            let mut map = inner.map();
            match map.get(hash) {
                Some(l) if l.stale_at > Instant::now() && now < l.until => {
                    return Ok(Some(l.record.clone()));
                }
                Some(_) => {
                    map.remove(hash);
                }
                None => {}
            }
        }
        let epoch = inner.epoch.load(Ordering::SeqCst);
        let entry = inner.remote.cache_entry(hash).await?;
        Ok(entry.map(|e| {
            self.remember(&e.record, e.until, Some(epoch));
            e.record
        }))
    }

    async fn put(&self, record: &TokenRecord, until: OffsetDateTime) -> StoreResult<()> {
        let epoch = self.inner.epoch.load(Ordering::SeqCst);
        // Refused remotely (a revocation's tombstone stands): not kept locally either. A
        // revocation published after the remote put bumps the epoch or finds the local
        // entry, so it is never served past the message.
        if self.inner.remote.put_unless_revoked(record, until).await? {
            self.remember(record, until, Some(epoch));
        }
        Ok(())
    }

    async fn invalidate(&self, hashes: &[TokenHash]) -> StoreResult<()> {
        // Locally first: this node must not serve it even if Redis is unreachable.
        for h in hashes {
            self.inner.forget(h);
        }
        self.inner.remote.invalidate(hashes).await
    }
}
