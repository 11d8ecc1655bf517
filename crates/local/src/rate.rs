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
