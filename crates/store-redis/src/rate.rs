//! `RateLimiter`: fixed windows, one counter key per (key, window start) incremented by one
//! script, so a hit is atomic across nodes. The window comes from the caller's `now`.

use std::sync::LazyLock;

use async_trait::async_trait;
use buzzgate_domain::ports::{RateDecision, RateLimiter, StoreResult};
use time::OffsetDateTime;

use crate::RedisStore;

/// KEYS[1] = window counter; ARGV[1] = its expiry (ms), set by the window's first hit.
const HIT_LUA: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"#;

static HIT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(HIT_LUA));

#[async_trait]
impl RateLimiter for RedisStore {
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        window_secs: u64,
        now: OffsetDateTime,
    ) -> StoreResult<RateDecision> {
        let window = i64::try_from(window_secs.max(1)).unwrap_or(i64::MAX);
        let start = now.unix_timestamp().div_euclid(window) * window;
        // One window from the first hit is at least the time left in it; a key per window
        // start means an old counter can never be mistaken for the current one.
        let ttl_ms = window.saturating_mul(1000);
        let mut inv = HIT.prepare_invoke();
        inv.key(format!("{}rate:{key}:{start}", self.prefix))
            .arg(ttl_ms);
        let mut conn = self.conn();
        let count: i64 = self.run(inv.invoke_async(&mut conn)).await?;
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        let allowed = count <= limit;
        let retry_after = if allowed {
            0
        } else {
            (start.saturating_add(window) - now.unix_timestamp()).max(1) as u64
        };
        Ok(RateDecision {
            allowed,
            remaining: limit.saturating_sub(count),
            retry_after,
        })
    }
}
