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

/// [`COUNT_LUA`] for each key: KEYS[i] = a window counter, ARGV[1] = the expiry (ms),
/// ARGV[1 + i] = what to add to KEYS[i]. Every key carries the store's hash-tagged prefix, so
/// all are in one Redis Cluster slot.
const COUNT_EACH_LUA: &str = r#"
local out = {}
for i, key in ipairs(KEYS) do
  local add = tonumber(ARGV[i + 1])
  if add == 0 then
    out[i] = tonumber(redis.call('GET', key) or '0')
  else
    local n = redis.call('INCRBY', key, add)
    if n == add then redis.call('PEXPIRE', key, ARGV[1]) end
    out[i] = n
  end
end
return out
"#;

static COUNT_EACH: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(COUNT_EACH_LUA));

/// One window's expiry in milliseconds: a key per window start means an old counter can never
/// be mistaken for the current one, and one window from the first hit is at least the time
/// left in it.
fn ttl_ms(window: RateWindow) -> i64 {
    i64::try_from(window.secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000)
}

#[async_trait]
impl RateLimiter for RedisStore {
    async fn count(&self, key: &str, window: RateWindow, add: u32) -> StoreResult<u64> {
        let mut inv = COUNT.prepare_invoke();
        inv.key(self.rate_key(key, window))
            .arg(ttl_ms(window))
            .arg(add);
        let mut conn = self.conn();
        let count: i64 = self.run(inv.invoke_async(&mut conn)).await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn count_each(
        &self,
        hits: &[(String, u32)],
        window: RateWindow,
    ) -> StoreResult<Vec<u64>> {
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = COUNT_EACH.prepare_invoke();
        inv.arg(ttl_ms(window));
        for (key, add) in hits {
            inv.key(self.rate_key(key, window)).arg(*add);
        }
        let mut conn = self.conn();
        let counts: Vec<i64> = self.run(inv.invoke_async(&mut conn)).await?;
        Ok(counts
            .into_iter()
            .map(|n| u64::try_from(n).unwrap_or(0))
            .collect())
    }
}

impl RedisStore {
    fn rate_key(&self, key: &str, window: RateWindow) -> String {
        format!("{}rate:{key}:{}", self.prefix, window.start)
    }
}
