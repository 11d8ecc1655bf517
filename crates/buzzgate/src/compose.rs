//! The composition root: picks adapters from the configuration and wires the domain's
//! services, the HTTP router and the background sweeper.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use buzzgate_crypto::{Argon2Hasher, Es256KeySet};
use buzzgate_domain::ports::{
    AuditLog, BuzzStore, ClientStore, Clock, CodeStore, ConsentStore, DeviceStore, Failures,
    FallbackRateLimiter, IdTokenSigner, OsRandom, OutageReport, RateLimiter, SessionStore,
    SystemClock, TokenCache, TokenStore, UserStore,
};
use buzzgate_domain::service::maintenance::SweepPolicy;
use buzzgate_domain::service::{Buzzgate, Config as CoreConfig, Deps, RateLimits};
use buzzgate_domain::token::{TokenMinter, TokenPrefix};
use buzzgate_http::{AppState, Readiness, Settings};
use buzzgate_local::{
    CachedClients, CachedConsents, CachedUsers, LocalCache, LocalRateLimiter, ReadCaches,
    ReadFanout, RecentCounts,
};
use buzzgate_store_postgres::PgStore;
use buzzgate_store_redis::{LayeredCache, RedisReadFanout, RedisStore, listen_reads};
use buzzgate_store_sqlite::SqliteStore;

use crate::config::Config;
use crate::metered::{MeteredBuzz, MeteredCache, MeteredLimiter, MeteredTokens};

/// The durable store the configuration names.
#[derive(Debug, Clone)]
pub enum Durable {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Connects to the durable store and creates or migrates its schema.
pub async fn durable(cfg: &Config, clock: Arc<dyn Clock>) -> Result<Durable, String> {
    if cfg.is_postgres() {
        let mut b = PgStore::builder(&cfg.database_url)
            .clock(clock)
            .max_connections(cfg.database_max_connections);
        if let Some(s) = &cfg.database_schema {
            b = b.schema(s);
        }
        b.connect()
            .await
            .map(Durable::Postgres)
            .map_err(|e| format!("cannot open the Postgres database: {e}"))
    } else {
        SqliteStore::connect(&cfg.database_url)
            .await
            .map(|s| Durable::Sqlite(s.with_clock(clock)))
            .map_err(|e| format!("cannot open the SQLite database {}: {e}", cfg.database_url))
    }
}

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

struct SqlReady(Durable);

#[async_trait]
impl Readiness for SqlReady {
    fn name(&self) -> &str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        // Bounded below the pool's 5 s acquire timeout: a probe with a 1–2 s timeout must see
        // the 503, not time out itself, while the database is down (docs/operations.md).
        let ping = async {
            match &self.0 {
                Durable::Sqlite(s) => s.ping().await,
                Durable::Postgres(p) => p.ping().await,
            }
        };
        match tokio::time::timeout(READY_TIMEOUT, ping).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "the database did not answer within {} ms",
                READY_TIMEOUT.as_millis()
            )),
        }
    }
}

struct RedisReady(RedisStore);

#[async_trait]
impl Readiness for RedisReady {
    fn name(&self) -> &str {
        "redis"
    }
    fn required(&self) -> bool {
        false
    }
    async fn check(&self) -> Result<(), String> {
        let probe = buzzgate_domain::token::TokenHash([0; 32]);
        TokenCache::get(&self.0, &probe)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Loads the id_token keys from `path` (the current key and the retired ones still
/// published; `crate::keys`), creating the file (mode 0600) on first start.
pub fn signing_key(path: &str) -> Result<Es256KeySet, String> {
    crate::keys::load_or_create(path)
}

/// Everything a running node holds.
pub struct Node {
    pub core: Buzzgate,
    pub state: AppState,
    pub durable: Durable,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

fn core_config(cfg: &Config) -> Result<CoreConfig, String> {
    let prefix = TokenPrefix::parse(&cfg.token_prefix)
        .map_err(|e| format!("BUZZGATE_TOKEN_PREFIX: {}", e.description()))?;
    Ok(CoreConfig {
        issuer: cfg.issuer.clone(),
        minter: TokenMinter {
            prefix,
            ..TokenMinter::default()
        },
        refresh_grace: time::Duration::seconds(i64::from(cfg.refresh_grace_seconds)),
        cache_ttl: time::Duration::seconds(60),
        rate_limits: RateLimits {
            authorize: cfg.rate_limit_authorize,
            token: cfg.rate_limit_token,
            client_auth_failures: cfg.rate_limit_client_auth,
            revoke: cfg.rate_limit_revoke,
            login_account: cfg.rate_limit_login_account,
            login_ip: cfg.rate_limit_login_ip,
            signup_ip: cfg.rate_limit_signup_ip,
            register_ip: cfg.rate_limit_register_ip,
        },
        signup_open: cfg.signup,
        registration_open: cfg.registration,
        cimd_allow_http_loopback: cfg.cimd_allow_http_loopback,
        catalogue: Arc::new(cfg.scopes.clone()),
        // Tokens and the audit log are the same SQL store (sql_ports).
        audit_with_tokens: true,
    })
}

/// The durable ports, all over one SQL store.
type SqlPorts = (
    Arc<dyn ClientStore>,
    Arc<dyn ConsentStore>,
    Arc<dyn TokenStore>,
    Arc<dyn CodeStore>,
    Arc<dyn DeviceStore>,
    Arc<dyn UserStore>,
    Arc<dyn SessionStore>,
    Arc<dyn BuzzStore>,
    Arc<dyn AuditLog>,
);

fn sql_ports<S>(s: Arc<S>) -> SqlPorts
where
    S: ClientStore
        + ConsentStore
        + TokenStore
        + CodeStore
        + DeviceStore
        + UserStore
        + SessionStore
        + BuzzStore
        + AuditLog
        + 'static,
{
    (
        s.clone(),
        s.clone(),
        s.clone(),
        s.clone(),
        s.clone(),
        s.clone(),
        s.clone(),
        s.clone(),
        s,
    )
}

/// Logs outages of a shared rate limiter (the first, then one in every thousand).
fn report_outage() -> OutageReport {
    Arc::new(|error: &str, outages: u64| {
        tracing::warn!(
            error,
            outages,
            "shared rate limiter unavailable; the in-process limiter answers"
        );
    })
}

/// Builds a node from the configuration. `with_signer` false skips the key file (CLI use).
pub async fn build(cfg: &Config, with_signer: bool) -> Result<Node, String> {
    // The recorder first: the caches register their counters when they are made.
    let metrics = metrics_endpoint(cfg);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let durable = durable(cfg, clock.clone()).await?;
    let local_cache = LocalCache::new(cfg.cache_max_bytes(), clock.clone());
    let local_limiter: Arc<dyn RateLimiter> = Arc::new(LocalRateLimiter::default());
    let (
        mut clients,
        mut consents,
        tokens,
        mut codes,
        mut devices,
        mut users,
        mut sessions,
        buzz,
        audit,
    ) = match &durable {
        Durable::Sqlite(s) => sql_ports(Arc::new(s.clone())),
        Durable::Postgres(p) => sql_ports(Arc::new(p.clone())),
    };
    // Counted where the store decided (docs/operations.md, "Metrics").
    let tokens: Arc<dyn TokenStore> = Arc::new(MeteredTokens(tokens));
    let buzz: Arc<dyn BuzzStore> = Arc::new(MeteredBuzz(buzz));
    let redis = match &cfg.redis_url {
        Some(url) => Some(
            RedisStore::connect_lazy(url, &cfg.redis_prefix)
                .map_err(|e| format!("REDIS_URL: {e}"))?
                .with_clock(clock.clone()),
        ),
        None => None,
    };
    if cfg.read_cache_ms > 0 {
        let ttl = StdDuration::from_millis(cfg.read_cache_ms);
        let mut cached_clients = CachedClients::new(clients, ttl);
        let mut cached_consents = CachedConsents::new(consents, ttl);
        // With Redis, writes are fanned out to every node's caches (ms instead of the TTL).
        if let Some(r) = &redis {
            let fanout: Arc<dyn ReadFanout> = Arc::new(RedisReadFanout(r.clone()));
            cached_clients = cached_clients.with_fanout(fanout.clone());
            cached_consents = cached_consents.with_fanout(fanout);
        }
        let (cached_clients, cached_consents) =
            (Arc::new(cached_clients), Arc::new(cached_consents));
        if let Some(r) = &redis {
            listen_reads(
                r.clone(),
                ReadCaches::new(&cached_clients, &cached_consents),
            )
            .await
            .map_err(|e| format!("cannot reach Redis at REDIS_URL: {e}"))?;
        }
        clients = cached_clients;
        consents = cached_consents;
        users = Arc::new(CachedUsers::new(users, ttl));
    }
    // One node (SQLite): its own limiter. A Postgres cluster without Redis shares its limits
    // through Postgres, with the node's own limiter taking over if Postgres cannot answer.
    let mut rate_limiter: Arc<dyn RateLimiter> = match &durable {
        Durable::Sqlite(_) => local_limiter.clone(),
        Durable::Postgres(p) => Arc::new(
            FallbackRateLimiter::new(
                Arc::new(MeteredLimiter(Arc::new(p.clone()))),
                local_limiter.clone(),
            )
            .on_outage(report_outage()),
        ),
    };
    let mut cache: Arc<dyn TokenCache> = Arc::new(local_cache.clone());
    let mut checks: Vec<Arc<dyn Readiness>> = vec![Arc::new(SqlReady(durable.clone()))];
    if let Some(redis) = redis {
        let shared = Arc::new(redis.clone());
        codes = shared.clone();
        devices = shared.clone();
        sessions = shared.clone();
        rate_limiter = Arc::new(
            FallbackRateLimiter::new(Arc::new(MeteredLimiter(shared)), local_limiter.clone())
                .on_outage(report_outage()),
        );
        cache = Arc::new(
            LayeredCache::with_local(redis.clone(), local_cache, StdDuration::from_secs(1))
                .await
                .map_err(|e| format!("cannot reach Redis at REDIS_URL: {e}"))?,
        );
        checks.push(Arc::new(RedisReady(redis)));
    }
    let cache: Arc<dyn TokenCache> = Arc::new(MeteredCache::new(cache));
    // A shared limiter (Postgres or Redis) with the node's recent view of the counts it has
    // seen, for the reads the domain allows to lag (an address's failed client
    // authentications before an authenticated request; docs/security.md "Throttling").
    if cfg.read_cache_ms > 0 && !matches!(durable, Durable::Sqlite(_)) {
        rate_limiter = Arc::new(RecentCounts::new(
            rate_limiter,
            StdDuration::from_millis(cfg.read_cache_ms),
        ));
    }
    let id_tokens: Option<Arc<dyn IdTokenSigner>> = if with_signer {
        Some(crate::keys::WatchedKeys::load(
            &cfg.signing_key_file,
            crate::keys::RELOAD_EVERY,
        )?)
    } else {
        None
    };
    let deps = Deps {
        clients,
        consents,
        tokens,
        codes,
        devices,
        users,
        sessions,
        buzz,
        audit,
        rate_limiter,
        cache,
        passwords: Arc::new(Argon2Hasher::default()),
        id_tokens,
        documents: cfg.cimd.then(|| {
            if cfg.cimd_allow_http_loopback {
                tracing::warn!(
                    "BUZZGATE_CIMD_ALLOW_HTTP_LOOPBACK is on: client metadata documents on http://127.0.0.1 are fetched (development only)"
                );
            }
            Arc::new(buzzgate_fetch::Fetcher::new(buzzgate_fetch::FetchSettings {
                allow_http_loopback: cfg.cimd_allow_http_loopback,
                ..buzzgate_fetch::FetchSettings::default()
            })) as Arc<dyn buzzgate_domain::ports::ClientMetadataDocuments>
        }),
        clock,
        random: Arc::new(OsRandom),
        config: core_config(cfg)?,
        audit_failures: Failures::reporting(Arc::new(|error: &str, failures: u64| {
            tracing::warn!(
                error,
                failures,
                "audit write failed; the request it describes went through unaudited"
            );
        })),
    };
    let core = Buzzgate::new(deps);
    let settings = Settings {
        scope_as_array: cfg.scope_as_array,
        trusted_proxies: cfg.trusted_proxies,
        secure_cookies: cfg.issuer.starts_with("https://"),
        limits: cfg.edge_limits(),
        metrics,
        request_spans: crate::traces::request_spans(cfg),
    };
    let state = AppState::new(core.clone(), settings, checks);
    Ok(Node {
        core,
        state,
        durable,
    })
}

/// `GET /metrics` as configured: the process's recorder (installed on first use) and the
/// optional bearer token; `None` when `BUZZGATE_METRICS=off`.
fn metrics_endpoint(cfg: &Config) -> Option<buzzgate_http::metrics::MetricsEndpoint> {
    if !cfg.metrics {
        return None;
    }
    let handle = crate::metered::recorder();
    Some(buzzgate_http::metrics::MetricsEndpoint {
        render: Arc::new(move || handle.as_ref().map(|h| h.render()).unwrap_or_default()),
        token: cfg.metrics_token.0.clone(),
    })
}

/// Sweeps expired rows every `interval` until the process ends. Failures are logged and
/// retried at the next tick.
pub fn spawn_sweeper(core: Buzzgate, interval: StdDuration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let policy = SweepPolicy::default();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match core.maintenance().sweep(&policy).await {
                Ok(r) => tracing::debug!(?r, "swept expired rows"),
                Err(e) => tracing::warn!(error = %e, "sweep failed; retrying at the next tick"),
            }
        }
    })
}
