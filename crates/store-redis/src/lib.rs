//! Redis adapter for Buzzgate's short-lived and hot ports: authorization codes, device
//! authorizations, browser sessions, the rate limiter and the token cache (with revocation
//! fan-out over pub/sub).
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), buzzgate_domain::StoreError> {
//! use buzzgate_store_redis::{LayeredCache, RedisStore};
//!
//! let store = RedisStore::connect("redis://127.0.0.1:6379", "bg:").await?;
//! // `store` implements CodeStore, DeviceStore, SessionStore, RateLimiter and TokenCache.
//! // A node that wants an in-process cache layer in front of the shared one:
//! let cache = LayeredCache::new(store.clone(), std::time::Duration::from_secs(1)).await?;
//! # let _ = cache; Ok(()) }
//! ```
//!
//! # Layout (every key starts with the prefix given to [`RedisStore::connect`])
//!
//! | key | value | expiry |
//! |---|---|---|
//! | `code:{hash}` | hash: `rec` = record JSON, `fam` = redeeming family | lifetime + retention |
//! | `codes:exp` | zset of code hashes scored by `expires_at` (µs) | longest member; for `sweep_expired` |
//! | `device:{hash}` | record JSON | lifetime + retention |
//! | `usercode:{code}` | device hash | lifetime + retention |
//! | `devices:exp` | zset of `{hash}:{user code}` scored by `expires_at` (µs) | longest member; for `sweep_expired` |
//! | `session:{hash}` | record JSON | lifetime + retention |
//! | `sessions:exp` | zset of session hashes scored by `expires_at` (µs) | longest member; for `sweep_expired` |
//! | `rate:{key}:{window start}` | counter | one window |
//! | `cache:{hash}` | `{record, until}` JSON | `until` |
//! | `revoked:{hash}` | tombstone: a `cache:{hash}` put is refused while it stands | `CACHE_TOMBSTONE_SECS` |
//! | channel `revocations` | comma-separated hex hashes | |
//!
//! # Time
//!
//! Redis expiries are computed from each record's own timeline (`expires_at − issued_at` /
//! `created_at`) plus a retention period (default 10 minutes, see
//! [`RedisStore::with_retention`]), not from Redis' clock: the record outlives its expiry a
//! little so the domain, which decides expiry itself from the `now` it is given, can still
//! answer "expired" (RFC 8628 `expired_token`, a code replay) instead of "unknown".
//! `sweep_expired` deletes records whose `expires_at` is before `before`, exactly like the
//! in-memory store; records that Redis already dropped are counted as swept once their index
//! entry is removed. Run the sweeper periodically so the expiry indexes stay small. Every key,
//! the indexes included, has a TTL: nothing here is the only copy of anything durable.
//!
//! # Atomicity
//!
//! - `CodeStore::redeem` is one Lua script: `HSETNX fam` picks the single winner.
//! - `DeviceStore::resolve` / `poll` are optimistic: read the record, ask the domain
//!   (`DeviceResolution::apply`, `DevicePoll::decide`), then a compare-and-set script writes
//!   the result only if the record is still byte-for-byte what was read (`KEEPTTL`); a lost
//!   race re-reads and decides again (bounded). This is WATCH/MULTI/EXEC without needing a
//!   dedicated connection per call, so everything runs over one auto-reconnecting
//!   `ConnectionManager`.
//! - The rate limiter is one `INCRBY` + `PEXPIRE` script per count (the domain decides).
//! - A cache `put` is one script that refuses while the hash's revocation tombstone stands.
//!
//! Lua scripts build some key names from the prefix, so a deployment on Redis Cluster must
//! use a hash-tagged prefix (for example `{bg}:`) to keep every key in one slot.
//!
//! # Errors
//!
//! Connection refused, I/O errors, timeouts (every call is bounded, 3 s by default) and
//! cluster/loading states map to `StoreError::Unavailable`; anything else to `Internal`.
//! A Redis outage never panics. After an outage error, calls fail at once with `Unavailable`
//! for [`OUTAGE_COOLDOWN`] (a circuit breaker shared by the store's clones), so while Redis is
//! down requests take the fallbacks without each paying the reconnect attempts; the first call
//! after the cool-down tries Redis again (docs/security.md, "Three nodes under fire").

mod cache;
mod codes;
mod devices;
mod layered;
mod rate;
mod reads;
mod sessions;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration as StdDuration, Instant};

use buzzgate_domain::StoreError;
use buzzgate_domain::ports::{Clock, StoreResult, SystemClock};
use buzzgate_domain::token::TokenHash;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind};
use time::{Duration, OffsetDateTime};

pub use cache::RevocationStream;
pub use layered::LayeredCache;
pub use reads::{RedisReadFanout, listen_reads};

/// How long a call may take before it is answered `Unavailable`.
const DEFAULT_OP_TIMEOUT: StdDuration = StdDuration::from_secs(3);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: StdDuration = StdDuration::from_secs(2);
/// After a call fails for an outage, how long the following calls fail at once instead of
/// waiting on reconnect attempts.
pub const OUTAGE_COOLDOWN: StdDuration = StdDuration::from_millis(500);
/// How long expired codes, devices and sessions are kept before Redis drops them itself.
const DEFAULT_RETENTION: Duration = Duration::minutes(10);

/// Every Redis-backed port over one auto-reconnecting multiplexed connection. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: Arc<str>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    op_timeout: StdDuration,
    /// Milliseconds since [`EPOCH`] until which calls fail at once (0: closed).
    down_until: Arc<AtomicU64>,
}

/// The origin of `down_until`'s clock (monotonic).
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn millis_now() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: only the prefix is shown.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("retention", &self.retention)
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects (and checks the connection) to `url`; every key is put under `key_prefix`
    /// (production: `bg:`). An unreachable server is `Unavailable` within a few seconds.
    pub async fn connect(url: &str, key_prefix: &str) -> StoreResult<RedisStore> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Internal(format!("invalid redis url: {}", e.category())))?;
        let conn = bounded(
            CONNECT_TIMEOUT * 3,
            ConnectionManager::new_with_config(client.clone(), manager_config()),
        )
        .await?;
        Ok(Self::assemble(client, conn, key_prefix))
    }

    /// Like [`RedisStore::connect`] without connecting now: the first call connects. Lets a
    /// server start while Redis is down (calls answer `Unavailable` until it is back).
    pub fn connect_lazy(url: &str, key_prefix: &str) -> StoreResult<RedisStore> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Internal(format!("invalid redis url: {}", e.category())))?;
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config())
            .map_err(map_err)?;
        Ok(Self::assemble(client, conn, key_prefix))
    }

    fn assemble(client: redis::Client, conn: ConnectionManager, prefix: &str) -> RedisStore {
        RedisStore {
            client,
            conn,
            prefix: prefix.into(),
            clock: Arc::new(SystemClock),
            retention: DEFAULT_RETENTION,
            op_timeout: DEFAULT_OP_TIMEOUT,
            down_until: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The clock the token cache compares `until` against (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long codes, device authorizations and sessions are kept after `expires_at`
    /// (default 10 minutes) so expiry and replays are still recognised.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention.max(Duration::ZERO);
        self
    }

    /// The bound on each call (default 3 s).
    pub fn with_op_timeout(mut self, timeout: StdDuration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    fn hkey(&self, kind: &str, hash: &TokenHash) -> String {
        self.key(kind, &hash.to_hex())
    }

    /// A connection handle for one call (clones share the multiplexed connection).
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Runs one Redis round trip under the call timeout, mapping errors; fails at once while
    /// the circuit is open after an outage (see [`OUTAGE_COOLDOWN`]).
    async fn run<T>(&self, fut: impl Future<Output = redis::RedisResult<T>>) -> StoreResult<T> {
        if millis_now() < self.down_until.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("redis is down".into()));
        }
        let out = bounded(self.op_timeout, fut).await;
        match &out {
            Err(StoreError::Unavailable(_)) => {
                let cooldown = u64::try_from(OUTAGE_COOLDOWN.as_millis()).unwrap_or(500);
                self.down_until
                    .store(millis_now().saturating_add(cooldown), Ordering::Relaxed);
            }
            Ok(_) => self.down_until.store(0, Ordering::Relaxed),
            Err(_) => {}
        }
        out
    }

    /// The Redis expiry of a record living from `start` to `expires_at`: its lifetime plus
    /// the retention, at least one millisecond.
    fn record_ttl_ms(&self, start: OffsetDateTime, expires_at: OffsetDateTime) -> i64 {
        let lifetime = (expires_at - start).max(Duration::ZERO);
        ms(lifetime + self.retention).max(1)
    }
}

fn manager_config() -> ConnectionManagerConfig {
    // Few, short reconnect attempts: a caller waiting on a reconnect is bounded by the call
    // timeout anyway, and an outage must surface as `Unavailable`, not as a hang.
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(DEFAULT_OP_TIMEOUT))
        .set_number_of_retries(2)
        .set_min_delay(StdDuration::from_millis(50))
        .set_max_delay(StdDuration::from_millis(500))
}

async fn bounded<T>(
    limit: StdDuration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> StoreResult<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(map_err),
        Err(_) => Err(StoreError::Unavailable("redis call timed out".into())),
    }
}

/// Outages (refused, I/O, timeouts, a server not ready) are `Unavailable`; the rest is a bug
/// or a misconfiguration: `Internal`.
pub(crate) fn map_err(e: RedisError) -> StoreError {
    let unavailable = e.is_io_error()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::ReadOnly
            )
        );
    let msg = format!("redis: {e}");
    if unavailable {
        StoreError::Unavailable(msg)
    } else {
        StoreError::Internal(msg)
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(format!("encoding a record: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Internal(format!("decoding a record: {e}")))
}

/// Whole milliseconds of a duration (saturating).
fn ms(d: Duration) -> i64 {
    i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX)
}

/// Unix microseconds: the score of expiry indexes (exact in a double until year 2255).
fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// Deletes up to `batch` members of expiry index KEYS[1] scored below ARGV[1], deleting
/// `ARGV[3] .. member` for each (and, for devices, the user-code index entry if it still
/// points at the device: members are `{hash}:{user code}` when ARGV[4] is set).
const SWEEP_LUA: &str = r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  if ARGV[4] ~= '' then
    local sep = string.find(id, ':', 1, true)
    local h = string.sub(id, 1, sep - 1)
    local uc = ARGV[4] .. string.sub(id, sep + 1)
    redis.call('DEL', ARGV[3] .. h)
    if redis.call('GET', uc) == h then redis.call('DEL', uc) end
  else
    redis.call('DEL', ARGV[3] .. id)
  end
  redis.call('ZREM', KEYS[1], id)
end
return #ids
"#;

impl RedisStore {
    /// Shared sweep of one expiry index.
    async fn sweep(
        &self,
        index: &str,
        record_kind: &str,
        user_code_kind: Option<&str>,
        before: OffsetDateTime,
        batch: u32,
    ) -> StoreResult<u32> {
        if batch == 0 {
            return Ok(0);
        }
        static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SWEEP_LUA));
        let mut inv = SCRIPT.prepare_invoke();
        inv.key(format!("{}{index}", self.prefix))
            .arg(micros(before))
            .arg(batch)
            .arg(format!("{}{record_kind}:", self.prefix))
            .arg(
                user_code_kind
                    .map(|k| format!("{}{k}:", self.prefix))
                    .unwrap_or_default(),
            );
        let mut conn = self.conn();
        let n: i64 = self.run(inv.invoke_async(&mut conn)).await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}
