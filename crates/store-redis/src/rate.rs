//! `RateLimiter`: fixed windows, one counter key per (key, window start) incremented by one
//! script, so a hit is atomic across nodes. The window comes from the domain.

use std::sync::LazyLock;

use async_trait::async_trait;
use buzzgate_domain::ports::{RateLimiter, RateWindow, StoreResult};

use crate::RedisStore;

/// KEYS[1] = window counter; ARGV[1] = its expiry (ms), set when the window's first hit
/// creates it; ARGV[2] = how much to add (0 only reads, creating nothing).
const COUNT_LUA: &str = r#"
local add = tonumber(ARGV[2])
if add == 0 then
  return tonumber(redis.call('GET', KEYS[1]) or '0')
end
local n = redis.call('INCRBY', KEYS[1], add)
if n == add then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"#;

static COUNT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(COUNT_LUA));

#[async_trait]
impl RateLimiter for RedisStore {
    async fn count(&self, key: &str, window: RateWindow, add: u32) -> StoreResult<u64> {
        // A key per window start: an old counter can never be mistaken for the current one,
        // and one window from the first hit is at least the time left in it.
        let ttl_ms = i64::try_from(window.secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        let mut inv = COUNT.prepare_invoke();
        inv.key(format!("{}rate:{key}:{}", self.prefix, window.start))
            .arg(ttl_ms)
            .arg(add);
        let mut conn = self.conn();
        let count: i64 = self.run(inv.invoke_async(&mut conn)).await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
