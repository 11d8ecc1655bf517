//! `DeviceStore`: the record JSON by device hash, a user-code index, and optimistic
//! read-decide-compare-and-set for `resolve` and `poll` (the decision is the domain's Rust
//! code, so it cannot run inside Lua).

use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use buzzgate_domain::StoreError;
use buzzgate_domain::error::Error;
use buzzgate_domain::grant::device_code::{
    DeviceAuthorization, DevicePoll, DevicePollStep, DeviceResolution, UserCode,
};
use buzzgate_domain::ports::{DeviceStore, StoreResult};
use buzzgate_domain::token::TokenHash;
use redis::AsyncCommands;
use time::OffsetDateTime;

use crate::{RedisStore, from_json, micros, to_json};

/// Lost compare-and-set rounds before giving up. Every round has a winner (the value changed
/// because someone wrote), so this only bounds starvation under extreme contention.
const MAX_ATTEMPTS: u32 = 200;

/// KEYS: user-code key, device key, expiry index. ARGV: device hash, user code, record JSON,
/// TTL ms, expiry score (µs), the record's creation (µs). Refuses (0) when the user code
/// points at an authorization still live at the new one's creation, as the in-memory store
/// does with its clock.
const INSERT_LUA: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local e = redis.call('ZSCORE', KEYS[3], cur .. ':' .. ARGV[2])
  if e and tonumber(e) > tonumber(ARGV[6]) and redis.call('EXISTS', ARGV[7] .. cur) == 1 then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1] .. ':' .. ARGV[2])
-- The index lives as long as its longest-lived member, so every key has a TTL.
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[3], ARGV[4]) end
return 1
"#;

/// KEYS[1] = device key; ARGV = expected JSON, new JSON. Writes only if unchanged.
const CAS_LUA: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
"#;

/// KEYS = user-code key, device key; ARGV = expected device hash, expected JSON, new JSON.
const CAS_BY_USER_CODE_LUA: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'KEEPTTL')
return 1
"#;

static INSERT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(INSERT_LUA));
static CAS: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(CAS_LUA));
static CAS_BY_USER_CODE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(CAS_BY_USER_CODE_LUA));

/// A short random pause after a lost round, so contenders spread out instead of colliding
/// again in lockstep.
async fn backoff(attempt: u32) {
    let jitter = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let cap_us = u64::from(attempt.min(20)) * 100 + 50;
    tokio::time::sleep(StdDuration::from_micros(jitter % cap_us)).await;
}

fn contended() -> StoreError {
    StoreError::Unavailable("device authorization too contended; retry".into())
}

impl RedisStore {
    fn user_code_key(&self, code: &UserCode) -> String {
        self.key("usercode", code.as_str())
    }

    async fn get_string(&self, key: &str) -> StoreResult<Option<String>> {
        let mut conn = self.conn();
        self.run(conn.get::<_, Option<String>>(key)).await
    }

    async fn compare_and_set(&self, key: &str, old: &str, new: &str) -> StoreResult<bool> {
        let mut inv = CAS.prepare_invoke();
        inv.key(key).arg(old).arg(new);
        let mut conn = self.conn();
        let n: i64 = self.run(inv.invoke_async(&mut conn)).await?;
        Ok(n == 1)
    }
}

#[async_trait]
impl DeviceStore for RedisStore {
    async fn insert(&self, rec: &DeviceAuthorization) -> StoreResult<()> {
        let hex = rec.device_hash.to_hex();
        let mut inv = INSERT.prepare_invoke();
        inv.key(self.user_code_key(&rec.user_code))
            .key(self.key("device", &hex))
            .key(format!("{}devices:exp", self.prefix))
            .arg(&hex)
            .arg(rec.user_code.as_str())
            .arg(to_json(rec)?)
            .arg(self.record_ttl_ms(rec.created_at, rec.expires_at))
            .arg(micros(rec.expires_at))
            .arg(micros(rec.created_at))
            .arg(format!("{}device:", self.prefix));
        let mut conn = self.conn();
        let n: i64 = self.run(inv.invoke_async(&mut conn)).await?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict("user code in use".into()))
        }
    }

    async fn find_by_user_code(&self, code: &UserCode) -> StoreResult<Option<DeviceAuthorization>> {
        let Some(hex) = self.get_string(&self.user_code_key(code)).await? else {
            return Ok(None);
        };
        self.get_string(&self.key("device", &hex))
            .await?
            .map(|j| from_json(&j))
            .transpose()
    }

    async fn resolve(
        &self,
        code: &UserCode,
        resolution: &DeviceResolution,
    ) -> StoreResult<Result<DeviceAuthorization, Error>> {
        let uc_key = self.user_code_key(code);
        for attempt in 0..MAX_ATTEMPTS {
            let Some(hex) = self.get_string(&uc_key).await? else {
                return Ok(resolution.apply(None));
            };
            let dev_key = self.key("device", &hex);
            let old = self.get_string(&dev_key).await?;
            let current: Option<DeviceAuthorization> = old.as_deref().map(from_json).transpose()?;
            let next = resolution.apply(current.as_ref());
            let (Some(old), Ok(rec)) = (old, &next) else {
                // A refusal writes nothing: deciding on what was read is the whole step.
                return Ok(next);
            };
            let mut inv = CAS_BY_USER_CODE.prepare_invoke();
            inv.key(&uc_key)
                .key(&dev_key)
                .arg(&hex)
                .arg(&old)
                .arg(to_json(rec)?);
            let mut conn = self.conn();
            let n: i64 = self.run(inv.invoke_async(&mut conn)).await?;
            if n == 1 {
                return Ok(next);
            }
            backoff(attempt).await;
        }
        Err(contended())
    }

    async fn poll(&self, device: &TokenHash, poll: &DevicePoll) -> StoreResult<DevicePollStep> {
        let key = self.hkey("device", device);
        for attempt in 0..MAX_ATTEMPTS {
            let old = self.get_string(&key).await?;
            let current: Option<DeviceAuthorization> = old.as_deref().map(from_json).transpose()?;
            let step = poll.decide(current.as_ref());
            let (Some(old), Some(write)) = (old, &step.write) else {
                return Ok(step);
            };
            if self.compare_and_set(&key, &old, &to_json(write)?).await? {
                return Ok(step);
            }
            backoff(attempt).await;
        }
        Err(contended())
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        self.sweep("devices:exp", "device", Some("usercode"), before, batch)
            .await
    }
}
