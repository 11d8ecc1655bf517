//! `buzzgate-local`: the in-process adapters a node runs on, built for production (the
//! domain's `MemoryStore` is for tests only).
//!
//! - [`LocalCache`] (`TokenCache`): validated tokens in a concurrent cache bounded in bytes
//!   (16 MiB by default) that evicts the least recently used entries past the bound and each
//!   entry when its token or the cache TTL expires; invalidations leave tombstones so a
//!   validation that read a row before its revocation cannot put it back.
//! - [`LocalRateLimiter`] (`RateLimiter`): fixed-window counters in a concurrent map whose
//!   idle keys are evicted, so an address seen once does not stay forever.
//!
//! - [`CachedClients`], [`CachedConsents`], [`CachedUsers`]: the reads of every token,
//!   introspection and userinfo request served from memory for a bounded time (0.5 s by
//!   default), dropped at once by this node's writes.
//!
//! - [`batch::GroupCommit`]: group commit for the SQL adapters: writes that arrive together
//!   share one transaction and one commit, each caller waiting for its own.
//!
//! The caches and the limiter are moka caches (sharded, lock-free reads; the same design as Caffeine).

pub mod batch;
mod cache;
mod rate;
mod reads;

pub use cache::LocalCache;
pub use rate::{LocalRateLimiter, RecentCounts};
pub use reads::{
    CachedClients, CachedConsents, CachedUsers, Lookups, ReadCaches, ReadFanout, ReadKey,
};
