//! [`LocalRateLimiter`]: fixed-window counters of one node (or the fallback when the shared
//! limiter is unreachable), in a concurrent map whose idle keys are evicted.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use buzzgate_domain::ports::{RateLimiter, RateWindow, StoreResult};
use moka::sync::Cache;

/// One key's counter: the window it counts (its start) and the count in it. Only hits of
/// the same key ever wait on its lock.
type Counter = Mutex<(i64, u64)>;

/// Counts hits per key and window. Keys idle for longer than `idle` are evicted, and at most
/// `max_keys` are held (the least recently used go first), so memory stays bounded whatever
/// the number of addresses. Cheap to clone (shared).
#[derive(Clone)]
pub struct LocalRateLimiter {
    counters: Cache<String, Arc<Counter>>,
}

impl std::fmt::Debug for LocalRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRateLimiter")
            .field("keys", &self.counters.entry_count())
            .finish()
    }
}

impl Default for LocalRateLimiter {
    fn default() -> Self {
        // Every window is a minute: a key idle for two has nothing left to count.
        LocalRateLimiter::new(1_000_000, StdDuration::from_secs(120))
    }
}

impl LocalRateLimiter {
    pub fn new(max_keys: u64, idle: StdDuration) -> LocalRateLimiter {
        LocalRateLimiter {
            counters: Cache::builder()
                .max_capacity(max_keys)
                .time_to_idle(idle)
                .build(),
        }
    }

    /// How many keys are held now, after pending evictions.
    pub fn keys(&self) -> u64 {
        self.counters.run_pending_tasks();
        self.counters.entry_count()
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn count(&self, key: &str, window: RateWindow, add: u32) -> StoreResult<u64> {
        let counter = self
            .counters
            .get_with_by_ref(key, || Arc::new(Mutex::new((window.start, 0))));
        // Every critical section leaves the pair consistent, so a poisoned lock is usable.
        let mut c = counter.lock().unwrap_or_else(|p| p.into_inner());
        if c.0 < window.start {
            *c = (window.start, 0);
        }
        c.1 = c.1.saturating_add(u64::from(add));
        Ok(c.1)
    }
}

/// A shared (remote) limiter with this node's recent view of the counts it has seen, for
/// [`RateLimiter::peek`]: a peek of a count this node read or changed within `max_age` is
/// answered from memory, with no round trip. Every `count` and `count_each` still goes to
/// the shared limiter, and what it answers updates the view at once, so a peek never lags
/// this node's own hits; another node's hits are seen within `max_age` (docs/security.md
/// "Throttling"). Counts only grow within a window, so the view keeps the larger of what it
/// holds and what it learns, whatever order concurrent answers arrive in.
pub struct RecentCounts {
    shared: Arc<dyn RateLimiter>,
    seen: Cache<String, (i64, u64)>,
}

impl std::fmt::Debug for RecentCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentCounts")
            .field("keys", &self.seen.entry_count())
            .finish()
    }
}

impl RecentCounts {
    /// At most this many keys are held (the least recently used go first): a flood of
    /// addresses evicts the view, which only costs round trips.
    pub const MAX_KEYS: u64 = 10_000;

    pub fn new(shared: Arc<dyn RateLimiter>, max_age: StdDuration) -> RecentCounts {
        RecentCounts {
            shared,
            seen: Cache::builder()
                .max_capacity(Self::MAX_KEYS)
                .time_to_live(max_age)
                .build(),
        }
    }

    fn learn(&self, key: &str, window: RateWindow, count: u64) {
        self.seen
            .entry_by_ref(key)
            .and_upsert_with(|held| match held.map(|e| e.into_value()) {
                Some((start, held)) if start == window.start => (start, held.max(count)),
                // A later window already seen: an answer about an older one is stale.
                Some(newer) if newer.0 > window.start => newer,
                _ => (window.start, count),
            });
    }
}

#[async_trait]
impl RateLimiter for RecentCounts {
    async fn count(&self, key: &str, window: RateWindow, add: u32) -> StoreResult<u64> {
        let n = self.shared.count(key, window, add).await?;
        self.learn(key, window, n);
        Ok(n)
    }

    async fn count_each(
        &self,
        hits: &[(String, u32)],
        window: RateWindow,
    ) -> StoreResult<Vec<u64>> {
        let counts = self.shared.count_each(hits, window).await?;
        for ((key, _), n) in hits.iter().zip(&counts) {
            self.learn(key, window, *n);
        }
        Ok(counts)
    }

    async fn peek(&self, key: &str, window: RateWindow) -> StoreResult<u64> {
        if let Some((start, n)) = self.seen.get(key)
            && start == window.start
        {
            return Ok(n);
        }
        let n = self.shared.peek(key, window).await?;
        self.learn(key, window, n);
        Ok(n)
    }
}
