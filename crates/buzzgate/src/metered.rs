//! Metrics of the stores (docs/operations.md, "Metrics"): decorators of the domain's ports
//! that count what the real store answered, and the process's one Prometheus recorder.
//!
//! The domain stays free of metrics: these wrap the ports in the composition root
//! (`compose::build`), after the store decided, so a count is what happened (a refresh
//! rotated, a family revoked on reuse, a spend charged or refused) and never a guess.
//! Every `Err` a wrapped port returns counts in `buzzgate_store_errors_total{port,kind}`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use buzzgate_domain::StoreError;
use buzzgate_domain::audit::AuditEvent;
use buzzgate_domain::buzz::{BudgetWindow, Currency, LedgerEntry, SpendRequest, SpendSubject};
use buzzgate_domain::grant::refresh_token::{RefreshRotation, RotationDecision};
use buzzgate_domain::ids::{ClientId, FamilyId, SpendId, TokenId, UserId};
use buzzgate_domain::ports::{
    BuzzStore, InsertOutcome, OutcomeEvents, RateLimiter, RateWindow, RefundOutcome, SpendOutcome,
    StoreResult, TokenCache, TokenStore,
};
use buzzgate_domain::token::{TokenHash, TokenRecord};
use buzzgate_local::Lookups;
use metrics::counter;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use time::OffsetDateTime;
use tracing::Instrument;

/// Tokens written by a grant (authorization code, client credentials, device code, API key),
/// by `kind` (`access`, `refresh`, `apiKey`). Rotations count in [`REFRESHED`].
pub const ISSUED: &str = "buzzgate_tokens_issued_total";
/// Refresh tokens rotated (a new access and refresh token issued for one presented).
pub const REFRESHED: &str = "buzzgate_tokens_refreshed_total";
/// Refresh token reuse outside the grace window: the family was revoked.
pub const REUSE: &str = "buzzgate_refresh_reuse_detected_total";
/// Tokens revoked, by `reason`.
pub const REVOKED: &str = "buzzgate_tokens_revoked_total";
/// Spend decisions of the Buzz store, by `decision` and `code`.
pub const SPENDS: &str = "buzzgate_buzz_spend_decisions_total";
/// Refunds, by `outcome`.
pub const REFUNDS: &str = "buzzgate_buzz_refunds_total";
/// Errors a store answered, by `port` and `kind`.
pub const STORE_ERRORS: &str = "buzzgate_store_errors_total";

/// Latency buckets (seconds): from a cached validation to a slow Argon2 sign-in.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Group-commit batch sizes (at most `buzzgate_local::batch::MAX_BATCH`).
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The process's Prometheus recorder, installed on first call (the `metrics` facade has one
/// global recorder per process, so every node and test in a process shares it). `None` if
/// another recorder was installed first.
pub fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(buzzgate_http::metrics::DURATION.into()),
                    SECONDS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(buzzgate_local::batch::BATCH_SIZE.into()),
                        BATCH,
                    )
                })
                .map_err(|e| e.to_string())
                .and_then(|b| b.install_recorder().map_err(|e| e.to_string()));
            match handle {
                Ok(h) => {
                    zeroes();
                    // Histogram samples wait in the recorder until folded into their buckets:
                    // fold them every few seconds even if nothing scrapes (bounded memory).
                    let upkeep = h.clone();
                    let spawned = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(Duration::from_secs(5));
                                upkeep.run_upkeep();
                            }
                        });
                    if let Err(e) = spawned {
                        tracing::warn!(error = %e, "metrics upkeep thread not started");
                    }
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics is empty");
                    None
                }
            }
        })
        .clone()
}

/// The series an alert watches, present at 0 from the start, so a rule on their rate sees
/// a first occurrence (a series born at 1 has no increase to compute).
fn zeroes() {
    for port in ["tokens", "buzz", "token_cache", "rate_limiter"] {
        for kind in ["unavailable", "conflict", "internal"] {
            counter!(STORE_ERRORS, "port" => port, "kind" => kind).absolute(0);
        }
    }
    counter!(REUSE).absolute(0);
    counter!(REFRESHED).absolute(0);
}

fn kind(e: &StoreError) -> &'static str {
    match e {
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Conflict(_) => "conflict",
        StoreError::Internal(_) => "internal",
    }
}

/// Counts an `Err` of `port` and passes the result on.
fn seen<T>(port: &'static str, r: StoreResult<T>) -> StoreResult<T> {
    if let Err(e) = &r {
        counter!(STORE_ERRORS, "port" => port, "kind" => kind(e)).increment(1);
    }
    r
}

/// Awaits one call of a store port inside its span for an exporter of traces
/// (docs/operations.md, "Traces"): named `Port.method`, with the port and method names and,
/// when the store answers an error, its kind; never an argument or a result. With traces
/// off the span is disabled where it is made: nothing is allocated or recorded.
macro_rules! traced {
    ($port:literal, $method:literal, $call:expr) => {
        traced(
            tracing::info_span!(
                target: crate::traces::TARGET,
                concat!($port, ".", $method),
                buzzgate.port = $port,
                buzzgate.method = $method,
                error.type = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            ),
            $call,
        )
        .await
    };
}

async fn traced<T>(
    span: tracing::Span,
    call: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    let r = call.instrument(span.clone()).await;
    if let Err(e) = &r {
        span.record("error.type", kind(e));
        span.record("otel.status_code", "ERROR");
    }
    r
}

fn revoked(reason: &'static str, n: usize) {
    if n > 0 {
        counter!(REVOKED, "reason" => reason).increment(n as u64);
    }
}

/// [`TokenStore`] counting issued, rotated, reused and revoked tokens.
pub struct MeteredTokens(pub Arc<dyn TokenStore>);

impl std::fmt::Debug for MeteredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeteredTokens")
    }
}

fn issued(tokens: &[TokenRecord], outcome: InsertOutcome) {
    if outcome == InsertOutcome::Inserted {
        for t in tokens {
            counter!(ISSUED, "kind" => t.kind.as_str()).increment(1);
        }
    }
}

fn rotated(decision: &RotationDecision) {
    match decision {
        RotationDecision::Rotate { superseded, .. } => {
            counter!(REFRESHED).increment(1);
            revoked("superseded", superseded.len());
        }
        RotationDecision::RevokeFamily { .. } => counter!(REUSE).increment(1),
        RotationDecision::Reject(_) => {}
    }
}

#[async_trait]
impl TokenStore for MeteredTokens {
    async fn insert(&self, tokens: &[TokenRecord]) -> StoreResult<InsertOutcome> {
        let out = seen(
            "tokens",
            traced!("TokenStore", "insert", self.0.insert(tokens)),
        )?;
        issued(tokens, out);
        Ok(out)
    }

    async fn insert_audited(
        &self,
        tokens: &[TokenRecord],
        events: &OutcomeEvents,
    ) -> StoreResult<(InsertOutcome, bool)> {
        let out = seen(
            "tokens",
            traced!(
                "TokenStore",
                "insert_audited",
                self.0.insert_audited(tokens, events)
            ),
        )?;
        issued(tokens, out.0);
        Ok(out)
    }

    async fn find(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        seen("tokens", traced!("TokenStore", "find", self.0.find(hash)))
    }

    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        rotation: &RefreshRotation,
    ) -> StoreResult<RotationDecision> {
        let d = seen(
            "tokens",
            traced!(
                "TokenStore",
                "rotate_refresh",
                self.0.rotate_refresh(presented, rotation)
            ),
        )?;
        rotated(&d);
        Ok(d)
    }

    async fn rotate_refresh_audited(
        &self,
        presented: &TokenHash,
        rotation: &RefreshRotation,
        refreshed: &AuditEvent,
    ) -> StoreResult<(RotationDecision, bool)> {
        let out = seen(
            "tokens",
            traced!(
                "TokenStore",
                "rotate_refresh_audited",
                self.0
                    .rotate_refresh_audited(presented, rotation, refreshed)
            ),
        )?;
        rotated(&out.0);
        Ok(out)
    }

    async fn revoke(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<TokenRecord>> {
        let r = seen(
            "tokens",
            traced!("TokenStore", "revoke", self.0.revoke(hash, now)),
        )?;
        // Revoked by this call (not an earlier one): stamped now, or not stamped in the row
        // the store read before writing.
        if let Some(t) = &r
            && t.revoked_at.is_none_or(|at| at == now)
        {
            revoked("revoke", 1);
        }
        Ok(r)
    }

    async fn revoke_family(
        &self,
        family: FamilyId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>> {
        let r = seen(
            "tokens",
            traced!(
                "TokenStore",
                "revoke_family",
                self.0.revoke_family(family, now)
            ),
        )?;
        revoked("family", r.len());
        Ok(r)
    }

    async fn revoke_for_user_client(
        &self,
        user: UserId,
        client: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>> {
        let r = seen(
            "tokens",
            traced!(
                "TokenStore",
                "revoke_for_user_client",
                self.0.revoke_for_user_client(user, client, now)
            ),
        )?;
        revoked("consent", r.len());
        Ok(r)
    }

    async fn revoke_for_user(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>> {
        let r = seen(
            "tokens",
            traced!(
                "TokenStore",
                "revoke_for_user",
                self.0.revoke_for_user(user, now)
            ),
        )?;
        revoked("user_banned", r.len());
        Ok(r)
    }

    async fn list_api_keys(&self, user: UserId) -> StoreResult<Vec<TokenRecord>> {
        seen(
            "tokens",
            traced!("TokenStore", "list_api_keys", self.0.list_api_keys(user)),
        )
    }

    async fn revoke_api_key(
        &self,
        user: UserId,
        id: TokenId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<TokenHash>> {
        let r = seen(
            "tokens",
            traced!(
                "TokenStore",
                "revoke_api_key",
                self.0.revoke_api_key(user, id, now)
            ),
        )?;
        revoked("api_key", usize::from(r.is_some()));
        Ok(r)
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        seen(
            "tokens",
            traced!(
                "TokenStore",
                "sweep_expired",
                self.0.sweep_expired(before, batch)
            ),
        )
    }
}

/// [`BuzzStore`] counting spend decisions and refunds.
pub struct MeteredBuzz(pub Arc<dyn BuzzStore>);

impl std::fmt::Debug for MeteredBuzz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeteredBuzz")
    }
}

fn decided(out: &SpendOutcome) {
    let (decision, code) = match out {
        SpendOutcome::Spent { .. } => ("spent", "none"),
        SpendOutcome::Replayed { .. } => ("replayed", "none"),
        SpendOutcome::Rejected(e) => ("refused", e.code()),
    };
    counter!(SPENDS, "decision" => decision, "code" => code).increment(1);
}

#[async_trait]
impl BuzzStore for MeteredBuzz {
    async fn credit(
        &self,
        user: UserId,
        currency: &Currency,
        amount: u64,
        now: OffsetDateTime,
    ) -> StoreResult<i64> {
        seen(
            "buzz",
            traced!(
                "BuzzStore",
                "credit",
                self.0.credit(user, currency, amount, now)
            ),
        )
    }

    async fn balances(&self, user: UserId) -> StoreResult<Vec<(Currency, i64)>> {
        seen(
            "buzz",
            traced!("BuzzStore", "balances", self.0.balances(user)),
        )
    }

    async fn history(&self, user: UserId, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        seen(
            "buzz",
            traced!("BuzzStore", "history", self.0.history(user, limit)),
        )
    }

    async fn net_spent(&self, user: UserId) -> StoreResult<Vec<(Currency, u64)>> {
        seen(
            "buzz",
            traced!("BuzzStore", "net_spent", self.0.net_spent(user)),
        )
    }

    async fn spend(&self, req: &SpendRequest) -> StoreResult<SpendOutcome> {
        let out = seen("buzz", traced!("BuzzStore", "spend", self.0.spend(req)))?;
        decided(&out);
        Ok(out)
    }

    async fn spend_audited(
        &self,
        req: &SpendRequest,
        event: &AuditEvent,
    ) -> StoreResult<(SpendOutcome, bool)> {
        let out = seen(
            "buzz",
            traced!(
                "BuzzStore",
                "spend_audited",
                self.0.spend_audited(req, event)
            ),
        )?;
        decided(&out.0);
        Ok(out)
    }

    async fn refund(
        &self,
        id: SpendId,
        by: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<RefundOutcome> {
        let out = seen(
            "buzz",
            traced!("BuzzStore", "refund", self.0.refund(id, by, now)),
        )?;
        let outcome = match &out {
            RefundOutcome::Refunded { .. } => "refunded",
            RefundOutcome::AlreadyRefunded { .. } => "already_refunded",
            RefundOutcome::NotFound => "not_found",
        };
        counter!(REFUNDS, "outcome" => outcome).increment(1);
        Ok(out)
    }

    async fn window_spend(
        &self,
        user: UserId,
        subject: &SpendSubject,
        windows: &[BudgetWindow],
    ) -> StoreResult<Vec<u64>> {
        seen(
            "buzz",
            traced!(
                "BuzzStore",
                "window_spend",
                self.0.window_spend(user, subject, windows)
            ),
        )
    }
}

/// [`TokenCache`] counting hits and misses (`cache="token"`): the node's whole token cache,
/// in-process or layered over Redis.
pub struct MeteredCache(Arc<dyn TokenCache>, Lookups);

impl MeteredCache {
    /// Registers its counters with the process's recorder, which must be installed first
    /// ([`recorder`]) for them to count.
    pub fn new(cache: Arc<dyn TokenCache>) -> MeteredCache {
        MeteredCache(cache, Lookups::new("token"))
    }
}

impl std::fmt::Debug for MeteredCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeteredCache")
    }
}

#[async_trait]
impl TokenCache for MeteredCache {
    async fn get(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        let r = seen(
            "token_cache",
            traced!("TokenCache", "get", self.0.get(hash)),
        )?;
        self.1.record(r.is_some());
        Ok(r)
    }

    async fn put(&self, record: &TokenRecord, until: OffsetDateTime) -> StoreResult<()> {
        seen(
            "token_cache",
            traced!("TokenCache", "put", self.0.put(record, until)),
        )
    }

    async fn invalidate(&self, hashes: &[TokenHash]) -> StoreResult<()> {
        seen(
            "token_cache",
            traced!("TokenCache", "invalidate", self.0.invalidate(hashes)),
        )
    }
}

/// A shared [`RateLimiter`] (Redis or Postgres) counting its failures: each is a request the
/// node's own limiter answered instead (`port="rate_limiter"`).
pub struct MeteredLimiter(pub Arc<dyn RateLimiter>);

impl std::fmt::Debug for MeteredLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeteredLimiter")
    }
}

#[async_trait]
impl RateLimiter for MeteredLimiter {
    async fn count(&self, key: &str, window: RateWindow, add: u32) -> StoreResult<u64> {
        seen(
            "rate_limiter",
            traced!("RateLimiter", "count", self.0.count(key, window, add)),
        )
    }

    async fn count_each(
        &self,
        hits: &[(String, u32)],
        window: RateWindow,
    ) -> StoreResult<Vec<u64>> {
        seen(
            "rate_limiter",
            traced!("RateLimiter", "count_each", self.0.count_each(hits, window)),
        )
    }
}
