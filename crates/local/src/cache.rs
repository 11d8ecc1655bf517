//! [`LocalCache`]: the token-validation cache of one node (or the local layer in front of a
//! shared one), bounded in bytes and evicting.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use buzzgate_domain::ports::{CACHE_TOMBSTONE_SECS, Clock, StoreResult, TokenCache};
use buzzgate_domain::token::{TokenHash, TokenRecord};
use moka::Expiry;
use moka::sync::Cache;
use time::OffsetDateTime;

/// What one cached entry costs in resident memory: the record and its strings, plus the
/// cache's own per-entry bookkeeping (hash-table slot, access-order and expiry nodes, the
/// frequency sketch), about 530 bytes. Calibrated with `cargo xtask memory`: with the
/// bookkeeping left out, a 16 MiB bound held 31 MiB.
fn weight(_: &TokenHash, entry: &Entry) -> u32 {
    const BOOKKEEPING: usize = 560;
    let r = &entry.record;
    let heap = r.name.as_ref().map_or(0, String::len)
        + r.client_id.as_ref().map_or(0, |c| c.as_str().len())
        + r.buzz_limit.as_ref().map_or(0, |l| l.budgets().len() * 96);
    u32::try_from(std::mem::size_of::<Entry>() + heap + BOOKKEEPING).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone)]
struct Entry {
    record: TokenRecord,
    /// When the entry stops being served (the domain's clock).
    until: OffsetDateTime,
    /// The same instant on the monotonic clock, for eviction.
    expires: Instant,
}

/// Each entry lives until its own `until`, not a cache-wide TTL.
struct UntilExpiry;

impl Expiry<TokenHash, Entry> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &TokenHash,
        entry: &Entry,
        created_at: Instant,
    ) -> Option<StdDuration> {
        Some(entry.expires.saturating_duration_since(created_at))
    }
    fn expire_after_update(
        &self,
        _: &TokenHash,
        entry: &Entry,
        updated_at: Instant,
        _: Option<StdDuration>,
    ) -> Option<StdDuration> {
        Some(entry.expires.saturating_duration_since(updated_at))
    }
}

/// How many stripes guard "check the tombstone, then insert" against a concurrent
/// invalidation of the same hash (a hash always maps to the same stripe).
const STRIPES: usize = 64;

/// A node's token-validation cache. Cheap to clone (the maps are shared).
#[derive(Clone)]
pub struct LocalCache {
    entries: Cache<TokenHash, Entry>,
    tombstones: Cache<TokenHash, ()>,
    stripes: Arc<[Mutex<()>; STRIPES]>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("entries", &self.entries.entry_count())
            .field("weighted_bytes", &self.entries.weighted_size())
            .finish_non_exhaustive()
    }
}

impl LocalCache {
    /// The default bound: 16 MiB of cached records.
    pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
    /// At most this many tombstones (32 bytes and bookkeeping each); past it the oldest go,
    /// which only costs a store read for a token that was revoked anyway.
    const MAX_TOMBSTONES: u64 = 1_000_000;

    /// A cache of at most `max_bytes` of records (estimated), on `clock`.
    pub fn new(max_bytes: u64, clock: Arc<dyn Clock>) -> LocalCache {
        LocalCache {
            entries: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(weight)
                .expire_after(UntilExpiry)
                .build(),
            tombstones: Cache::builder()
                .max_capacity(Self::MAX_TOMBSTONES)
                .time_to_live(StdDuration::from_secs(CACHE_TOMBSTONE_SECS))
                .build(),
            stripes: Arc::new(std::array::from_fn(|_| Mutex::new(()))),
            clock,
        }
    }

    /// The stripe of `hash`: a put and an invalidation of one hash never interleave.
    fn stripe(&self, hash: &TokenHash) -> MutexGuard<'_, ()> {
        let i = usize::from(hash.0[0]) % STRIPES;
        // Nothing is left half-done under these locks, so a poisoned one is usable.
        self.stripes[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many entries and (estimated) bytes are held now, after pending evictions.
    pub fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    /// Puts unless tombstoned; `true` when stored. (The layered cache asks.)
    pub fn put_unless_revoked(&self, record: &TokenRecord, until: OffsetDateTime) -> bool {
        let _stripe = self.stripe(&record.hash);
        if self.tombstones.contains_key(&record.hash) {
            return false;
        }
        let left = until - self.clock.now();
        let Ok(left) = StdDuration::try_from(left) else {
            self.entries.invalidate(&record.hash);
            return false;
        };
        if left.is_zero() {
            self.entries.invalidate(&record.hash);
            return false;
        }
        self.entries.insert(
            record.hash,
            Entry {
                record: record.clone(),
                until,
                expires: Instant::now() + left,
            },
        );
        true
    }

    /// Drops `hashes` and leaves their tombstones.
    pub fn forget(&self, hashes: &[TokenHash]) {
        for h in hashes {
            let _stripe = self.stripe(h);
            self.tombstones.insert(*h, ());
            self.entries.invalidate(h);
        }
    }

    /// Drops every entry (not the tombstones): for a layer that lost its revocation feed.
    pub fn forget_all(&self) {
        self.entries.invalidate_all();
    }

    /// The record behind `hash`, if cached and not past its `until`.
    pub fn lookup(&self, hash: &TokenHash) -> Option<TokenRecord> {
        let e = self.entries.get(hash)?;
        if self.clock.now() < e.until {
            Some(e.record)
        } else {
            self.entries.invalidate(hash);
            None
        }
    }
}

#[async_trait]
impl TokenCache for LocalCache {
    async fn get(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        Ok(self.lookup(hash))
    }

    async fn put(&self, record: &TokenRecord, until: OffsetDateTime) -> StoreResult<()> {
        self.put_unless_revoked(record, until);
        Ok(())
    }

    async fn invalidate(&self, hashes: &[TokenHash]) -> StoreResult<()> {
        self.forget(hashes);
        Ok(())
    }
}
