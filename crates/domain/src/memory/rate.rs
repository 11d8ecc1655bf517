//! `RateLimiter` over the in-memory state: one fixed-window counter per key (the domain decides).

use async_trait::async_trait;

use super::MemoryStore;
use crate::ports::{RateLimiter, RateWindow, StoreResult};

#[async_trait]
impl RateLimiter for MemoryStore {
    async fn count(&self, key: &str, window: RateWindow, add: u32) -> StoreResult<u64> {
        let mut s = self.lock()?;
        let entry = s.rate.entry(key.to_owned()).or_insert((window.start, 0));
        if entry.0 < window.start {
            *entry = (window.start, 0);
        }
        entry.1 = entry.1.saturating_add(u64::from(add));
        Ok(entry.1)
    }
}
