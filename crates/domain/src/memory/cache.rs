//! `TokenCache` over the in-memory state: validated tokens until their expiry, and tombstones
//! that refuse a late `put` after an invalidation.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::ports::{CACHE_TOMBSTONE_SECS, StoreResult, TokenCache};
use crate::token::{TokenHash, TokenRecord};

#[async_trait]
impl TokenCache for MemoryStore {
    async fn get(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        let now = self.clock.now();
        let s = self.lock()?;
        Ok(s.cache
            .get(hash)
            .filter(|(_, until)| now < *until)
            .map(|(r, _)| r.clone()))
    }
    async fn put(&self, record: &TokenRecord, until: OffsetDateTime) -> StoreResult<()> {
        let now = self.clock.now();
        let mut s = self.lock()?;
        if s.tombstones.get(&record.hash).is_some_and(|t| now < *t) {
            return Ok(());
        }
        s.cache.insert(record.hash, (record.clone(), until));
        Ok(())
    }
    async fn invalidate(&self, hashes: &[TokenHash]) -> StoreResult<()> {
        let until = self.clock.now() + time::Duration::seconds(CACHE_TOMBSTONE_SECS as i64);
        let mut s = self.lock()?;
        for h in hashes {
            s.cache.remove(h);
            s.tombstones.insert(*h, until);
        }
        Ok(())
    }
}
