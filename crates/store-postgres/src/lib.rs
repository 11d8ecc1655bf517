//! PostgreSQL adapter for Buzzgate's durable ports: clients, consents, tokens (with refresh
//! families and their tombstones), authorization codes, device authorizations, users,
//! sessions, Buzz balances and the spend ledger, the audit log and a fixed-window rate
//! limiter. (The token cache is Redis' or in-process, never Postgres'.)
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), buzzgate_domain::StoreError> {
//! use buzzgate_store_postgres::PgStore;
//!
//! // Connects and runs the embedded migrations (idempotent; safe when nodes start together).
//! let store = PgStore::connect("postgres://buzzgate@db/buzzgate").await?;
//! // Or with a pool size and a schema of its own:
//! let store = PgStore::builder("postgres://buzzgate@db/buzzgate")
//!     .max_connections(32)
//!     .schema("buzzgate")
//!     .connect()
//!     .await?;
//! # let _ = store; Ok(()) }
//! ```
//!
//! # Atomicity
//!
//! Every **ATOMIC** port method is one statement or one transaction at READ COMMITTED (never
//! SERIALIZABLE, so no serialization failure can reach a caller):
//! - code redemption: `UPDATE … WHERE redeemed_family IS NULL RETURNING` (one winner);
//! - refresh rotation: the presented row `SELECT … FOR UPDATE`, the family's tombstone checked
//!   under a shared advisory lock on the family that `revoke_family` takes exclusively;
//! - token inserts take the same shared family lock, so a revocation and an insert into the
//!   same family are ordered (the tombstone refuses every later insert);
//! - spend: an advisory lock on (user, subject) for the budgets, the balance row
//!   `FOR UPDATE`, the idempotency key, the window sums, the domain's decision, the debit and
//!   the ledger row, in one transaction; a concurrent duplicate that still trips the unique
//!   idempotency index is retried and answered as a replay;
//! - device poll/resolve: the row `FOR UPDATE`, the domain's decision, the write;
//! - rate limits: one `INSERT … ON CONFLICT … DO UPDATE … RETURNING`.
//!
//! Transactions are cancel-safe: a transaction whose future is dropped closes its connection
//! instead of returning it to the pool (the server rolls back), so no connection ever goes
//! back to the pool inside a transaction. A deadlock (a client deleted while one of its tokens
//! rotates) is retried.
//!
//! # Errors
//!
//! Connection failures, pool timeouts and server shutdowns are `StoreError::Unavailable`;
//! unique and foreign-key violations are `StoreError::Conflict`; anything else `Internal`.

mod appends;
mod audit;
mod buzz;
mod clients;
mod codes;
mod devices;
mod rate;
mod rotations;
mod sessions;
mod spends;
mod tokens;
mod users;

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use buzzgate_domain::StoreError;
use buzzgate_domain::ports::{Clock, InsertOutcome, SpendOutcome, StoreResult, SystemClock};
use buzzgate_local::batch::GroupCommit;

use crate::appends::{Append, Appender};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgConnection, PgPool, Postgres};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The versions of the migrations this build carries, oldest first (`buzzgate config check`
/// compares them with the database's `_sqlx_migrations`).
pub fn migration_versions() -> Vec<i64> {
    MIGRATOR.iter().map(|m| m.version).collect()
}

/// Default upper bound of the pool.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// Default wait for a connection (also bounds connecting to an unreachable server).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default server-side bound on one statement.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// How often a transaction that failed with a deadlock (or a duplicate idempotency key) is
/// run again before the error is returned.
const MAX_ATTEMPTS: u32 = 3;

/// Every durable port over one `sqlx::PgPool`. Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    /// Rate-limiter hits, to sweep expired windows every so often.
    hits: Arc<AtomicU64>,
    /// Token inserts and audit events, group-committed (started on first use).
    appends: Arc<OnceLock<GroupCommit<Append, InsertOutcome>>>,
    /// Buzz spends, group-committed (started on first use; crate::spends).
    spends: Arc<OnceLock<GroupCommit<spends::Charge, SpendOutcome>>>,
    /// Refresh rotations, group-committed (started on first use; crate::rotations).
    rotations: Arc<OnceLock<GroupCommit<rotations::Rotation, rotations::Rotated>>>,
}

/// Options of a [`PgStore`]; start with [`PgStore::builder`].
#[derive(Clone)]
pub struct PgStoreBuilder {
    url: String,
    schema: Option<String>,
    max_connections: u32,
    min_connections: u32,
    acquire_timeout: Duration,
    statement_timeout: Option<Duration>,
    migrate: bool,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PgStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: it is never printed.
        f.debug_struct("PgStoreBuilder")
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("migrate", &self.migrate)
            .finish_non_exhaustive()
    }
}

impl PgStoreBuilder {
    /// Puts every table in `schema` (created if missing): each connection runs
    /// `SET search_path TO <schema>` when it opens. ASCII letters, digits and `_`, at most 63.
    pub fn schema(mut self, schema: &str) -> Self {
        self.schema = Some(schema.to_owned());
        self
    }

    /// The pool's upper bound (default [`DEFAULT_MAX_CONNECTIONS`]).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Connections kept open while idle (default 0).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long a call waits for a connection before answering `Unavailable` (default
    /// [`DEFAULT_ACQUIRE_TIMEOUT`]). Also bounds [`PgStoreBuilder::connect`] when the
    /// server cannot be reached.
    pub fn acquire_timeout(mut self, t: Duration) -> Self {
        self.acquire_timeout = t;
        self
    }

    /// The server-side `statement_timeout` of every connection (default
    /// [`DEFAULT_STATEMENT_TIMEOUT`]; `None` keeps the server's setting).
    pub fn statement_timeout(mut self, t: Option<Duration>) -> Self {
        self.statement_timeout = t;
        self
    }

    /// Whether [`PgStoreBuilder::connect`] runs the migrations (default `true`).
    pub fn run_migrations(mut self, yes: bool) -> Self {
        self.migrate = yes;
        self
    }

    /// Where "now" comes from where a port passes none (live user codes, live-token counts).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Opens the pool (one connection is established to check the server), creates the
    /// schema if one was set, and runs the migrations unless disabled.
    pub async fn connect(self) -> StoreResult<PgStore> {
        let mut connect = PgConnectOptions::from_str(&self.url)
            .map_err(|_| StoreError::Internal("invalid postgres connection url".into()))?
            .application_name("buzzgate");
        if let Some(t) = self.statement_timeout {
            connect = connect.options([("statement_timeout", format!("{}ms", t.as_millis()))]);
        }
        let mut pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections.min(self.max_connections))
            .acquire_timeout(self.acquire_timeout);
        let schema = match &self.schema {
            Some(s) => Some(quote_schema(s)?),
            None => None,
        };
        if let Some(quoted) = &schema {
            let set: Arc<str> = format!("SET search_path TO {quoted}").into();
            pool = pool.after_connect(move |conn, _meta| {
                let set = set.clone();
                Box::pin(async move { conn.execute(&*set).await.map(|_| ()) })
            });
        }
        let pool = pool.connect_with(connect).await.map_err(map_err)?;
        if let Some(quoted) = &schema {
            match pool
                .execute(format!("CREATE SCHEMA IF NOT EXISTS {quoted}").as_str())
                .await
            {
                Ok(_) => {}
                // Two nodes creating it at the same instant: the other one won.
                Err(e) if db_code(&e).is_some_and(|c| c == "23505" || c == "42P06") => {}
                Err(e) => return Err(map_err(e)),
            }
        }
        let store = PgStore {
            pool,
            clock: self.clock,
            hits: Arc::default(),
            appends: Arc::default(),
            spends: Arc::default(),
            rotations: Arc::default(),
        };
        if self.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }
}

/// `"name"` for a plain identifier; anything else is refused (it is spliced into SQL).
fn quote_schema(s: &str) -> StoreResult<String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(format!("\"{s}\""))
    } else {
        Err(StoreError::Internal(
            "schema name must be 1-63 ASCII letters, digits or '_', not starting with a digit"
                .into(),
        ))
    }
}

impl PgStore {
    /// A builder for a store on `url` with the defaults.
    pub fn builder(url: &str) -> PgStoreBuilder {
        PgStoreBuilder {
            url: url.to_owned(),
            schema: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            min_connections: 0,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            statement_timeout: Some(DEFAULT_STATEMENT_TIMEOUT),
            migrate: true,
            clock: Arc::new(SystemClock),
        }
    }

    /// Connects with the defaults and runs the migrations.
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        Self::builder(url).connect().await
    }

    /// Connects with every table in `schema` (created if missing) and runs the migrations
    /// there. Tests give each case a schema of its own.
    pub async fn connect_in_schema(url: &str, schema: &str) -> StoreResult<PgStore> {
        Self::builder(url).schema(schema).connect().await
    }

    /// A store over an existing pool (no migrations are run; call [`PgStore::migrate`]).
    pub fn from_pool(pool: PgPool) -> PgStore {
        PgStore {
            pool,
            clock: Arc::new(SystemClock),
            hits: Arc::default(),
            appends: Arc::default(),
            spends: Arc::default(),
            rotations: Arc::default(),
        }
    }

    /// Replaces the clock (see [`PgStoreBuilder::clock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Applies the embedded migrations that are not applied yet. Idempotent; several nodes
    /// may run it at once (sqlx serialises them on an advisory lock of the database).
    pub async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        // The migrator holds a session-level advisory lock while it runs; if this future is
        // dropped half-way, the lock must not go back to the pool with the connection.
        // Migrations run once per start, so closing this one connection costs nothing.
        conn.close_on_drop();
        // A migration that builds an index on a large table may take longer than the
        // per-statement bound of ordinary queries.
        (&mut *conn)
            .execute("SET statement_timeout = 0")
            .await
            .map_err(map_err)?;
        // `run_direct` is `run` on a connection; `run(&mut conn)` would make this future
        // not `Send` for every lifetime ("`Acquire` is not general enough"), so a server
        // could not start the store from a spawned task.
        MIGRATOR.run_direct(&mut *conn).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => map_err(e),
            other => StoreError::Internal(format!("migration failed: {other}")),
        })
    }

    /// One round trip to the server: `Ok` when it answers.
    pub async fn ping(&self) -> StoreResult<()> {
        self.pool.execute("SELECT 1").await.map_err(map_err)?;
        Ok(())
    }

    /// The underlying pool (for health checks and operators' queries).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection; later calls answer `Unavailable`.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    async fn begin(&self) -> StoreResult<Tx> {
        Tx::begin(&self.pool).await.map_err(map_err)
    }

    /// Submits a write that only adds rows to the group commit, and waits for its commit.
    pub(crate) async fn append(&self, write: Append) -> StoreResult<InsertOutcome> {
        self.appends
            .get_or_init(|| {
                // One batch in flight: a batch is one statement (two for those with
                // families), so while it commits the next one grows, and bigger batches cost
                // Postgres less per row than more of them at once (measured with 1, 2 and 4
                // in flight: docs/benchmarks.md).
                GroupCommit::start(Appender {
                    pool: self.pool.clone(),
                })
            })
            .submit(write)
            .await
    }

    /// Submits a refresh rotation to the group commit, and waits for its commit.
    pub(crate) async fn rotate(
        &self,
        rotation: rotations::Rotation,
    ) -> StoreResult<rotations::Rotated> {
        self.rotations
            .get_or_init(|| {
                GroupCommit::start(rotations::Rotator {
                    pool: self.pool.clone(),
                })
            })
            .submit(rotation)
            .await
    }
}

// ----- transactions ---------------------------------------------------------------------------

/// A transaction on a pooled connection. `BEGIN`, `COMMIT` and `ROLLBACK` are sent by hand
/// (not with `sqlx::Transaction`, whose `begin` is not cancel-safe): a `Tx` dropped while open
/// (its future was cancelled, or an error skipped the rollback) closes the connection, which
/// makes the server roll back and release every lock, instead of handing a connection that is
/// inside a transaction back to the pool.
pub(crate) struct Tx {
    conn: PoolConnection<Postgres>,
    open: bool,
}

impl Tx {
    pub(crate) async fn begin(pool: &PgPool) -> Result<Tx, sqlx::Error> {
        let conn = pool.acquire().await?;
        // Armed before BEGIN is even sent.
        let mut tx = Tx { conn, open: true };
        (&mut *tx.conn).execute("BEGIN").await?;
        Ok(tx)
    }

    /// `BEGIN` and the first statements of the transaction in one simple-query message: one
    /// round trip for all of them. The statements run one after another, each with its own
    /// snapshot (READ COMMITTED), so a read after a lock sees what was committed before the
    /// lock was granted. `sql` takes no parameters: only text the caller formatted itself
    /// (UUIDs, say) may be inlined in it. Returns the rows of every statement.
    pub(crate) async fn begin_with(
        pool: &PgPool,
        sql: &str,
    ) -> Result<(Tx, Vec<sqlx::postgres::PgRow>), sqlx::Error> {
        let conn = pool.acquire().await?;
        // Armed before BEGIN is even sent: a failure below drops it open, which closes the
        // connection and so rolls back whatever began.
        let mut tx = Tx { conn, open: true };
        // A query without arguments goes out as one simple-query message.
        let sql = format!("BEGIN; {sql}");
        let rows = (&mut *tx.conn).fetch_all(sql.as_str()).await?;
        Ok((tx, rows))
    }

    async fn commit(mut self) -> Result<(), sqlx::Error> {
        (&mut *self.conn).execute("COMMIT").await?;
        self.open = false;
        Ok(())
    }

    async fn rollback(mut self) {
        if (&mut *self.conn).execute("ROLLBACK").await.is_ok() {
            self.open = false;
        }
    }
}

impl Deref for Tx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

/// What a transaction body asks for at its end.
pub(crate) enum Done<T> {
    Commit(T),
    /// Nothing to keep (a refusal, a replay): roll back.
    Rollback(T),
}

/// A failure inside a transaction body: a driver error (kept whole so a deadlock can be
/// recognised and retried) or a store error (a row that does not parse).
#[derive(Debug)]
pub(crate) enum Fail {
    Db(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl Fail {
    /// Worth running the whole transaction again: a deadlock or serialization failure, or a
    /// concurrent duplicate spend that reached the unique idempotency index first (the next
    /// attempt finds its ledger row and answers a replay).
    fn is_retryable(&self) -> bool {
        let Fail::Db(e) = self else { return false };
        match db_code(e).as_deref() {
            Some("40001" | "40P01") => true,
            Some("23505") => constraint(e) == Some(buzz::IDEMPOTENCY_INDEX),
            _ => false,
        }
    }

    fn into_store(self) -> StoreError {
        match self {
            Fail::Db(e) => map_err(e),
            Fail::Store(e) => e,
        }
    }
}

/// Runs `$body` (an expression of type `Result<Done<T>, Fail>` that may use `$c: &mut
/// PgConnection` and `?`) in a transaction, commits or rolls back as it asks, and runs it
/// again after a deadlock. Evaluates to `StoreResult<T>`.
macro_rules! transaction {
    ($store:expr, |$c:ident| $body:expr) => {
        $crate::transaction!(
            @begin async { Ok::<_, $crate::Fail>(($store.begin().await?, ())) },
            |$c, _opened| $body
        )
    };
    // `$begin` opens the transaction and may run its first statements in the same round trip
    // (`Tx::begin_with`): an async block of type `Result<(Tx, F), Fail>`, whose `F` the body
    // sees as `$first`. A retryable failure there runs the whole transaction again too.
    (@begin $begin:expr, |$c:ident, $first:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (mut tx, $first) = match $begin.await {
                Ok(opened) => opened,
                Err(e) => {
                    if e.is_retryable() && attempt < $crate::MAX_ATTEMPTS {
                        continue;
                    }
                    break Err(e.into_store());
                }
            };
            let outcome: Result<$crate::Done<_>, $crate::Fail> = async {
                let $c: &mut sqlx::PgConnection = &mut tx;
                $body
            }
            .await;
            match outcome {
                Ok($crate::Done::Commit(v)) => {
                    tx.commit().await.map_err($crate::map_err)?;
                    break Ok(v);
                }
                Ok($crate::Done::Rollback(v)) => {
                    tx.rollback().await;
                    break Ok(v);
                }
                Err(e) => {
                    tx.rollback().await;
                    if e.is_retryable() && attempt < $crate::MAX_ATTEMPTS {
                        continue;
                    }
                    break Err(e.into_store());
                }
            }
        }
    }};
}
pub(crate) use transaction;

// ----- errors ---------------------------------------------------------------------------------

fn db_code(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn constraint(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

/// Driver errors to port errors. Messages name the failure, never a value (a hash, a secret).
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                "23505" => StoreError::Conflict(format!(
                    "duplicate key ({})",
                    db.constraint().unwrap_or("unique constraint")
                )),
                "23503" => StoreError::Conflict(format!(
                    "a referenced row does not exist ({})",
                    db.constraint().unwrap_or("foreign key")
                )),
                // Connection exceptions, insufficient resources, operator intervention
                // (shutdown, statement timeout), and a deadlock that outlived its retries.
                c if c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("57")
                    || c == "40001"
                    || c == "40P01" =>
                {
                    StoreError::Unavailable(format!("postgres: {} ({code})", db.message()))
                }
                _ => StoreError::Internal(format!("postgres: {} ({code})", db.message())),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(format!("postgres: {e}")),
        _ => StoreError::Internal(format!("postgres: {e}")),
    }
}

/// A stored value that does not parse back into its domain type.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored {what} is invalid"))
}

/// 32 stored bytes back into a hash.
pub(crate) fn hash_from(
    bytes: Vec<u8>,
    what: &str,
) -> StoreResult<buzzgate_domain::token::TokenHash> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| corrupt(what))?;
    Ok(buzzgate_domain::token::TokenHash(arr))
}

pub(crate) fn scope_from(v: i64) -> StoreResult<buzzgate_domain::Scope> {
    buzzgate_domain::Scope::try_from(v).map_err(|_| corrupt("scope"))
}

pub(crate) fn oidc_from(v: i16) -> StoreResult<buzzgate_domain::OidcScopes> {
    u8::try_from(v)
        .ok()
        .and_then(buzzgate_domain::OidcScopes::from_bits)
        .ok_or_else(|| corrupt("OIDC scopes"))
}

/// Scope columns are `BIGINT` (migration 0005): bits 0..=62 always fit.
pub(crate) fn scope_to(s: buzzgate_domain::Scope) -> i64 {
    i64::from(s)
}

pub(crate) fn client_id_from(s: &str) -> StoreResult<buzzgate_domain::ids::ClientId> {
    buzzgate_domain::ids::ClientId::parse(s).ok_or_else(|| corrupt("client id"))
}

/// A compare-and-set revision from its BIGINT column.
pub(crate) fn revision_from(v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| corrupt("revision"))
}

/// `u64` amounts and intervals into BIGINT, saturating.
pub(crate) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
