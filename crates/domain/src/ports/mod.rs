//! The ports: every store and outside dependency as an async trait. Adapters implement them;
//! services run on them.
//!
//! The contract every adapter keeps:
//! - Each method marked **ATOMIC** is one indivisible step under any concurrency and across
//!   any number of nodes. Where it takes a decision object from the domain (`RefreshRotation`,
//!   `DevicePoll`, `DeviceResolution`, `SpendRequest`), the adapter loads the current state
//!   under a lock (or with a conditional write), asks the domain object, and applies exactly
//!   what it says before releasing the lock. The rules stay in the domain; the atomicity is
//!   the adapter's.
//! - Only hashes of tokens, codes and secrets reach a port.
//! - A store that cannot be reached answers `StoreError::Unavailable`, never a panic; a race
//!   is never an error (it is decided by the atomic method).

mod fallback;
mod system;

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditQuery};
use crate::buzz::{BudgetWindow, BuzzLimit, Currency, LedgerEntry, SpendRequest, SpendSubject};
use crate::client::{Client, Origin};
use crate::consent::Consent;
use crate::error::{Error, StoreError};
use crate::grant::authorization_code::{AuthorizationCodeRecord, CodeRedemption};
use crate::grant::device_code::{
    DeviceAuthorization, DevicePoll, DevicePollStep, DeviceResolution, UserCode,
};
use crate::grant::refresh_token::{RefreshRotation, RotationDecision};
use crate::ids::{ClientId, FamilyId, SpendId, TokenId, UserId};
use crate::token::{TokenHash, TokenRecord};
use crate::user::{NewUser, Session, User, Username};

pub use crate::rate::{RateDecision, RateWindow};
pub use fallback::{Failures, FallbackRateLimiter, OutageReport};
pub use system::{Clock, ManualClock, OsRandom, Random, SeededRandom, SystemClock};

pub type StoreResult<T> = Result<T, StoreError>;

/// The outcome of a write made on condition that the record is still the revision the caller
/// read (compare-and-set). The service reads again and retries on `Stale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    /// Written; the stored revision is one more than the one read.
    Written,
    /// The record was changed, created or deleted since it was read: nothing was written.
    Stale,
    /// There is no such record (for a consent: no such app): nothing was written.
    Missing,
}

/// A client with the counts the owner's list shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSummary {
    pub client: Client,
    pub active_tokens: u64,
    pub consents: u64,
}

/// Registered apps.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Fails with `Conflict` if the id exists.
    async fn insert(&self, client: &Client) -> StoreResult<()>;
    /// The app, shared: a caching adapter hands out the value it holds rather than a copy
    /// (every token request and introspection reads one or two apps: docs/benchmarks.md).
    async fn get(&self, id: &ClientId) -> StoreResult<Option<Arc<Client>>>;
    /// The owner's apps, newest first, with live-token and consent counts.
    async fn list_by_owner(&self, owner: UserId) -> StoreResult<Vec<ClientSummary>>;
    /// Apps whose name contains `text` (case-insensitive; `%` and `_` are plain characters)
    /// or whose id is `text`, newest first, at most `limit`; every app when `text` is empty.
    /// The admin page's search.
    async fn search(&self, text: &str, limit: usize) -> StoreResult<Vec<Client>>;
    /// **ATOMIC** compare-and-set: replaces the stored client if its revision is still
    /// `client.revision` (the one read), storing `client.revision + 1`; `Stale` if it changed
    /// since, `Missing` if it no longer exists.
    async fn update(&self, client: &Client) -> StoreResult<Conditional>;
    /// **ATOMIC**: deletes the client and every token, authorization code, device
    /// authorization and consent of it. Audit entries are not touched. Returns the hashes of
    /// the tokens deleted (for cache invalidation), or `None` if the client did not exist.
    async fn delete(&self, id: &ClientId) -> StoreResult<Option<Vec<TokenHash>>>;
    /// Whether any public client lists `origin` in its allowed origins (CORS preflights,
    /// which carry no client id).
    async fn origin_registered(&self, origin: &Origin) -> StoreResult<bool>;
}

/// Grants per (user, app).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ConsentStore: Send + Sync {
    async fn get(&self, user: UserId, client: &ClientId) -> StoreResult<Option<Consent>>;
    /// [`ConsentStore::get`] where a recent answer will do, its absence included: a caching
    /// adapter may answer from what it read at most its documented bound ago
    /// (`BUZZGATE_READ_CACHE_MS` in the composed server), dropped at once by this node's own
    /// writes and by the fan-out of other nodes'. The domain peeks only for the cap an
    /// introspection reports; a grant's consent check and a spend's budgets read `get`
    /// (docs/security.md, "Caches and other nodes").
    async fn peek(&self, user: UserId, client: &ClientId) -> StoreResult<Option<Consent>> {
        self.get(user, client).await
    }
    /// **ATOMIC** compare-and-set on what the caller read of (user, client):
    /// - `read: None` (there was no consent): inserts `consent` with revision 0; `Stale` if
    ///   one exists by now.
    /// - `read: Some(r)`: if the stored consent is still revision `r`, replaces its scope,
    ///   `remembered`, Buzz limit and `updated_at` and stores revision `r + 1`; `Stale` if it
    ///   changed or was deleted since. `created_at` is never rewritten, so a consent revoked
    ///   meanwhile cannot come back with its old creation time (`consent::covers_grant`).
    ///
    /// `Missing`, storing nothing, when the app no longer exists (its deletion won the race).
    async fn save(&self, consent: &Consent, read: Option<u64>) -> StoreResult<Conditional>;
    /// **ATOMIC**: replaces the Buzz limit of an existing consent (and its `updated_at`, and
    /// adds one to its revision);
    /// `None`, writing nothing, when (user, client) has no consent. Never creates one.
    async fn set_buzz_limit(
        &self,
        user: UserId,
        client: &ClientId,
        limit: &BuzzLimit,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Consent>>;
    /// The user's consents, newest first.
    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Consent>>;
    /// `false` when there was none.
    async fn delete(&self, user: UserId, client: &ClientId) -> StoreResult<bool>;
}

/// The audit event of each outcome of a token insert ([`TokenStore::insert_audited`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeEvents {
    pub inserted: AuditEvent,
    pub family_revoked: AuditEvent,
}

impl OutcomeEvents {
    pub fn of(&self, outcome: InsertOutcome) -> &AuditEvent {
        match outcome {
            InsertOutcome::Inserted => &self.inserted,
            InsertOutcome::FamilyRevoked => &self.family_revoked,
        }
    }
}

/// The result of inserting tokens of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// The family was revoked (for example by a concurrent reuse of its code) before these
    /// rows could be written: nothing was written.
    FamilyRevoked,
}

/// Access tokens, refresh tokens (with families) and personal API keys.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// **ATOMIC**: inserts all rows or none. Rows carrying a family id are refused as a whole
    /// (`FamilyRevoked`) if that family has been revoked, even if the revocation happened
    /// before any row of it existed (a family revocation leaves a tombstone).
    async fn insert(&self, tokens: &[TokenRecord]) -> StoreResult<InsertOutcome>;
    /// **ATOMIC**: as [`TokenStore::insert`], and in the same commit the audit event of its
    /// outcome (`events.inserted` or `events.family_revoked`), for a store that is also the
    /// node's [`AuditLog`] (one commit instead of two, docs/benchmarks.md). Returns the outcome
    /// and whether the event was written. The default writes the tokens only and returns
    /// `false`: the caller then records the event through the `AuditLog`. The service calls
    /// it only when the composition root says both ports are this store
    /// (`Config::audit_with_tokens`).
    async fn insert_audited(
        &self,
        tokens: &[TokenRecord],
        events: &OutcomeEvents,
    ) -> StoreResult<(InsertOutcome, bool)> {
        let _ = events;
        Ok((self.insert(tokens).await?, false))
    }
    async fn find(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>>;
    /// **ATOMIC** refresh rotation: lock the row with `presented` (and learn whether its family
    /// is revoked), call `rotation.decide(row, family_revoked)`, apply the decision
    /// (`Rotate`: insert both successors and, when `mark_rotated`, set the presented row's
    /// `rotated_at = rotation.now` if still unset; revoke the family's other live heads (refresh
    /// rows neither rotated nor revoked) and return their hashes in `superseded`, so the family
    /// keeps one live head; `RevokeFamily` and `Reject`: write nothing,
    /// the service then calls `revoke_family`, whose tombstone stops any concurrent
    /// successor), commit, and return the decision. Concurrent calls serialise on the
    /// presented row; none may fail with a serialization error.
    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        rotation: &RefreshRotation,
    ) -> StoreResult<RotationDecision>;
    /// **ATOMIC**: as [`TokenStore::rotate_refresh`], and when the decision is `Rotate`, in
    /// the same commit the event `refreshed` completed by [`RotationDecision::audited`], for a
    /// store that is also the node's [`AuditLog`] (`Config::audit_with_tokens`; one commit
    /// instead of two, docs/benchmarks.md, "W2"). Returns the decision and whether the event
    /// was written. The default rotates only and returns `false`: the caller then records the
    /// event through the `AuditLog`.
    async fn rotate_refresh_audited(
        &self,
        presented: &TokenHash,
        rotation: &RefreshRotation,
        refreshed: &AuditEvent,
    ) -> StoreResult<(RotationDecision, bool)> {
        let _ = refreshed;
        Ok((self.rotate_refresh(presented, rotation).await?, false))
    }
    /// Revokes one token. Returns the row if it existed (revoked now or before).
    async fn revoke(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<TokenRecord>>;
    /// **ATOMIC**: revokes every token of the family and leaves a tombstone so later inserts
    /// into it fail. Returns the hashes revoked now (for cache invalidation).
    async fn revoke_family(
        &self,
        family: FamilyId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>>;
    /// Revokes every access and refresh token of (user, client). Returns the hashes revoked.
    async fn revoke_for_user_client(
        &self,
        user: UserId,
        client: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>>;
    /// **ATOMIC**: revokes every live token of the user (access and refresh tokens of every
    /// app, and personal API keys) and leaves a tombstone on each of the user's families, so
    /// a rotation or insert racing this call either is revoked by it or writes nothing (a
    /// banned user, `AdminService::set_banned`). Returns the hashes revoked now (for cache
    /// invalidation); tokens revoked before are not returned again.
    async fn revoke_for_user(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>>;
    /// The user's personal API keys (not revoked), newest first.
    async fn list_api_keys(&self, user: UserId) -> StoreResult<Vec<TokenRecord>>;
    /// Revokes the user's API key `id`; `None` if it is not theirs or does not exist.
    async fn revoke_api_key(
        &self,
        user: UserId,
        id: TokenId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<TokenHash>>;
    /// Deletes at most `batch` rows that expired (or were revoked) before `before`. Returns
    /// how many were deleted; the caller loops while it returns `batch`.
    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32>;
}

/// Authorization codes (short-lived; Redis in a cluster).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait CodeStore: Send + Sync {
    async fn insert(&self, code: &AuthorizationCodeRecord) -> StoreResult<()>;
    /// **ATOMIC** single-use take: exactly one of any number of concurrent callers gets
    /// `Redeemed` (and the record is marked redeemed with `family` in the same step); every
    /// other caller gets `AlreadyRedeemed` with the winner's family. Redeemed records are kept
    /// until they expire so a replay can be detected.
    async fn redeem(&self, hash: &TokenHash, family: FamilyId) -> StoreResult<CodeRedemption>;
    /// Deletes at most `batch` codes that expired before `before`.
    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32>;
}

/// Device authorizations (RFC 8628).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Fails with `Conflict` if the user code is taken by a live authorization.
    async fn insert(&self, rec: &DeviceAuthorization) -> StoreResult<()>;
    async fn find_by_user_code(&self, code: &UserCode) -> StoreResult<Option<DeviceAuthorization>>;
    /// **ATOMIC**: load by user code, `resolution.apply(row)`, store the result if `Ok`.
    async fn resolve(
        &self,
        code: &UserCode,
        resolution: &DeviceResolution,
    ) -> StoreResult<Result<DeviceAuthorization, Error>>;
    /// **ATOMIC**: load by device-code hash, `poll.decide(row)`, write `step.write` if any.
    /// Two concurrent polls of an approved code: exactly one gets the grant.
    async fn poll(&self, device: &TokenHash, poll: &DevicePoll) -> StoreResult<DevicePollStep>;
    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32>;
}

/// The user directory. Embedders implement it over their own users.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user with an already-hashed password. `Conflict` if the username is taken
    /// (compared case-insensitively).
    async fn create(
        &self,
        user: &NewUser,
        password_hash: Option<String>,
        now: OffsetDateTime,
    ) -> StoreResult<User>;
    async fn get(&self, id: UserId) -> StoreResult<Option<User>>;
    async fn find_by_username(&self, username: &Username) -> StoreResult<Option<User>>;
    /// At most `limit` users in id order, starting after the id `after` (0: from the first).
    async fn list(&self, after: i64, limit: u32) -> StoreResult<Vec<User>>;
    /// Sets (`Some`) or clears (`None`) the user's `banned_at`. Returns the user as stored
    /// now, `None` if there is no such user.
    async fn set_banned(&self, id: UserId, at: Option<OffsetDateTime>)
    -> StoreResult<Option<User>>;
}

/// Browser sessions, by cookie hash.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert(&self, session: &Session) -> StoreResult<()>;
    async fn get(&self, id_hash: &TokenHash) -> StoreResult<Option<Session>>;
    async fn delete(&self, id_hash: &TokenHash) -> StoreResult<()>;
    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32>;
}

/// The outcome of an atomic spend.
#[derive(Debug, Clone, PartialEq)]
pub enum SpendOutcome {
    /// Charged now; `balance` is the new balance of the currency; `report` the sums of
    /// `req.report` with this spend counted, or empty when the store leaves them to the caller.
    Spent {
        entry: LedgerEntry,
        balance: i64,
        report: Vec<u64>,
    },
    /// The idempotency key was seen with the same parameters: nothing charged (`report` as
    /// for `Spent`).
    Replayed {
        entry: LedgerEntry,
        balance: i64,
        report: Vec<u64>,
    },
    /// Refused by the domain's decision (`insufficient_funds`) or a key conflict.
    Rejected(Error),
}

/// The outcome of an atomic refund.
#[derive(Debug, Clone, PartialEq)]
pub enum RefundOutcome {
    Refunded { entry: LedgerEntry, balance: i64 },
    AlreadyRefunded { entry: LedgerEntry, balance: i64 },
    NotFound,
}

/// Buzz accounts (balance per user and currency) and the spend ledger.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait BuzzStore: Send + Sync {
    /// Adds `amount` to the balance; returns the new balance.
    async fn credit(
        &self,
        user: UserId,
        currency: &Currency,
        amount: u64,
        now: OffsetDateTime,
    ) -> StoreResult<i64>;
    /// Every currency the user holds, sorted by currency name.
    async fn balances(&self, user: UserId) -> StoreResult<Vec<(Currency, i64)>>;
    /// The user's most recent ledger entries, newest first.
    async fn history(&self, user: UserId, limit: u32) -> StoreResult<Vec<LedgerEntry>>;
    /// Per currency, the sum of the user's spends that were not refunded (every purpose),
    /// sorted by currency name; currencies with none are absent.
    async fn net_spent(&self, user: UserId) -> StoreResult<Vec<(Currency, u64)>>;
    /// **ATOMIC** spend, in one transaction: (1) an entry with the same (user, subject,
    /// resource server, idempotency key) → `entry.replay_of(req)`: `Ok` → `Replayed`, `Err` → `Rejected`;
    /// (2) lock the balance of (user, currency); (3) for each of `req.windows()`, sum the
    /// amounts of not-refunded entries of (user, subject) with purpose `ai_services`, created
    /// at or after `since`, in the window's currencies; (4) `req.decide(balance, sums)`:
    /// `Err` → `Rejected`; (5) debit and insert `LedgerEntry::from_request(req)`. Under any
    /// number of concurrent spends no budget and no balance is exceeded by a single unit.
    async fn spend(&self, req: &SpendRequest) -> StoreResult<SpendOutcome>;
    /// **ATOMIC**: as [`BuzzStore::spend`], and when the outcome is `Spent`, `event` in the
    /// same commit, for a store that is also the node's [`AuditLog`] (one commit instead of
    /// two, docs/benchmarks.md). Returns the outcome and whether the event was written. The
    /// default spends only and returns `false`: the caller then records the event through the
    /// `AuditLog`. The service calls it only when the composition root says both ports are
    /// this store (`Config::audit_with_tokens`).
    async fn spend_audited(
        &self,
        req: &SpendRequest,
        event: &AuditEvent,
    ) -> StoreResult<(SpendOutcome, bool)> {
        let _ = event;
        Ok((self.spend(req).await?, false))
    }
    /// **ATOMIC**: refunds the spend `id` for the resource server `by` (credits it back and
    /// marks it refunded, once, as `entry.refund(by, now)` decides; another resource server's
    /// spend is `NotFound`).
    async fn refund(
        &self,
        id: SpendId,
        by: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<RefundOutcome>;
    /// Spend per window, as in `spend` step (3), for reporting limits.
    async fn window_spend(
        &self,
        user: UserId,
        subject: &SpendSubject,
        windows: &[BudgetWindow],
    ) -> StoreResult<Vec<u64>>;
}

/// The audit log. Rows have no foreign keys.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Newest first, at most `query.effective_limit()`.
    async fn query(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>>;
}

/// Counts hits per key in fixed windows. The adapter only counts; whether a request passes
/// is decided by the domain ([`crate::rate::decide`]), the same way for every adapter.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// **ATOMIC** across nodes: adds `add` to the count of `key` in `window` and returns the
    /// count after it. A counter left from an earlier window counts as 0; `add = 0` only
    /// reads. A hit from a node whose clock is behind may be counted in the newer window.
    async fn count(&self, key: &str, window: RateWindow, add: u32) -> StoreResult<u64>;

    /// Several hits in one window, each exactly as [`RateLimiter::count`] (atomic per key,
    /// not as a whole), their counts in order. A remote limiter answers them in one round
    /// trip (a client's authentication and its own bucket, docs/benchmarks.md).
    async fn count_each(
        &self,
        hits: &[(String, u32)],
        window: RateWindow,
    ) -> StoreResult<Vec<u64>> {
        let mut counts = Vec::with_capacity(hits.len());
        for (key, add) in hits {
            counts.push(self.count(key, window, *add).await?);
        }
        Ok(counts)
    }

    /// The count of `key` in `window`, as [`RateLimiter::count`] with `add = 0` would read it,
    /// or as this node last learned it if it learned it recently: an adapter may answer from
    /// its own view, which never lags what this node counted itself and lags other nodes'
    /// counts by at most a bound the adapter documents (`BUZZGATE_READ_CACHE_MS` in the
    /// composed server). The domain peeks only where a rule tolerates that lag
    /// (`Bucket::read_may_lag`, docs/security.md "Throttling").
    async fn peek(&self, key: &str, window: RateWindow) -> StoreResult<u64> {
        self.count(key, window, 0).await
    }
}

/// How long an invalidated hash stays refused by [`TokenCache::put`]: far longer than the
/// time between a validation's store read and its `put`, so a revocation that lands between
/// the two can never be cached back (SPEC 3.3).
pub const CACHE_TOMBSTONE_SECS: u64 = 120;

/// A token-validation cache in front of the token store. Entries never outlive their token
/// or the cache TTL; a revocation invalidates them on every node.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenCache: Send + Sync {
    async fn get(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>>;
    /// Caches `record` until `until`, unless its hash was invalidated in the last
    /// [`CACHE_TOMBSTONE_SECS`] seconds: then nothing is stored (the caller read the row
    /// before the revocation and must not resurrect it).
    async fn put(&self, record: &TokenRecord, until: OffsetDateTime) -> StoreResult<()>;
    /// Drops the entries on every node and leaves a tombstone per hash (see `put`).
    async fn invalidate(&self, hashes: &[TokenHash]) -> StoreResult<()>;
}

/// Password hashing (argon2id in production). Async so adapters can move the work off the
/// request executor.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    async fn hash(&self, password: &str, salt: [u8; 16]) -> Result<String, Error>;
    async fn verify(&self, password: &str, phc: &str) -> bool;
}

/// The claims of an OIDC id_token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub auth_time: i64,
    /// Released with the `profile` scope (OIDC Core §5.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    /// Released with the `email` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// Signs id_tokens (ES256) and publishes the JWKS.
#[cfg_attr(test, mockall::automock)]
pub trait IdTokenSigner: Send + Sync {
    fn sign(&self, claims: &IdTokenClaims) -> Result<String, Error>;
    fn jwks(&self) -> serde_json::Value;
}

/// Why a client ID metadata document could not be had (SPEC 14).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// A guard refused it before or while fetching: the URL's form, its address (private,
    /// loopback, link-local …), a redirect, its size. Fetching it again will not help.
    #[error("refused: {0}")]
    Refused(String),
    /// The server did not answer well (down, slow, an error status); may work later.
    #[error("unreachable: {0}")]
    Unreachable(String),
}

/// Client ID metadata documents (SPEC 14, docs/mcp.md): the document at an https URL, fetched
/// with every guard of the spec (https only; no private, loopback or link-local address, also
/// after DNS resolution; no redirects; size and time limits), cached by its HTTP cache headers
/// within bounds, concurrent fetches of one URL coalesced.
#[async_trait]
pub trait ClientMetadataDocuments: Send + Sync {
    async fn fetch(&self, url: &str) -> Result<Arc<Vec<u8>>, FetchError>;
}
