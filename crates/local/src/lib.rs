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
//! Both are moka caches (sharded, lock-free reads; the same design as Caffeine).

mod cache;
mod rate;

pub use cache::LocalCache;
pub use rate::LocalRateLimiter;
