//! SQLite adapter for Buzzgate's durable ports: the embedded default store of the `buzzgate`
//! binary. One file holds clients, consents, tokens (with family tombstones and API keys),
//! authorization codes, device authorizations, users, sessions, Buzz balances and ledger, the
//! audit log and rate-limit counters.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), buzzgate_domain::StoreError> {
//! use buzzgate_store_sqlite::SqliteStore;
//!
//! // Creates the file and the schema on first start; later starts apply new migrations.
//! let store = SqliteStore::connect("sqlite://buzzgate.db").await?;
//! store.ping().await?;
//! // `store` implements ClientStore, ConsentStore, TokenStore, CodeStore, DeviceStore,
//! // UserStore, SessionStore, BuzzStore and AuditLog.
//! # Ok(()) }
//! ```
//!
//! # Atomicity
//!
//! SQLite has one writer at a time. Every method that writes takes the write lock first
//! (`BEGIN IMMEDIATE`), then reads the state it decides on, asks the domain's decision object
//! (`RefreshRotation::decide`, `DevicePoll::decide`, `DeviceResolution::apply`,
//! `SpendRequest::decide`, `LedgerEntry::replay_of` / `refund`), writes what it says and
//! commits. Nothing read inside such a transaction can change before the commit, on this
//! connection pool or on any other pool or process using the same file, so every **ATOMIC**
//! method of the ports is one indivisible step. Waiting for the lock is bounded by the busy
//! timeout (5 s) plus a few retries; only then is the call answered `Unavailable`.
//!
//! A call whose future is dropped mid-transaction (a client hung up) leaves no open
//! transaction behind: sqlx rolls it back, and the pool checks every connection coming back
//! and drops one that is still inside a transaction.
//!
//! # Errors
//!
//! Unique and foreign-key violations are `StoreError::Conflict` (for example a token for an
//! app that was deleted meanwhile). A database that cannot be opened, is locked for longer
//! than the busy timeout, is full or fails with an I/O error, and an exhausted pool, are
//! `Unavailable`; anything else is `Internal`.

mod appends;
mod audit;
mod buzz;
mod clients;
mod codes;
mod convert;
mod devices;
mod sessions;
mod tokens;
mod users;

use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration as StdDuration;

use buzzgate_domain::StoreError;
use buzzgate_domain::ports::{Clock, InsertOutcome, OsRandom, StoreResult, SystemClock};
use buzzgate_local::batch::GroupCommit;
use sqlx::error::ErrorKind;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Sqlite, Transaction};
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::appends::{Append, Appender};

/// How long a statement waits for another connection's lock before SQLITE_BUSY.
const BUSY_TIMEOUT: StdDuration = StdDuration::from_secs(5);
/// How long a call waits for a free connection of the pool.
const ACQUIRE_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Connections per pool on a file. Readers run in parallel (WAL); writers take turns.
const MAX_CONNECTIONS: u32 = 8;
/// `BEGIN IMMEDIATE` attempts before a busy database is `Unavailable`.
const BEGIN_ATTEMPTS: u32 = 4;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The versions of the migrations this build carries, oldest first (`buzzgate config check`
/// compares them with the database's `_sqlx_migrations`).
pub fn migration_versions() -> Vec<i64> {
    MIGRATOR.iter().map(|m| m.version).collect()
}

/// Every durable port over one SQLite database. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    clock: Arc<dyn Clock>,
    /// In-memory databases only: a connection outside the pool that keeps the database alive
    /// while the pool replaces its own connection.
    keeper: Option<Arc<Mutex<SqliteConnection>>>,
    /// Token inserts and audit events, group-committed (started on first use).
    appends: Arc<OnceLock<GroupCommit<Append, InsertOutcome>>>,
    /// One permit: this node's writes, in arrival order ([`SqliteStore::begin_write`],
    /// [`SqliteStore::write_turn`]).
    write_gate: Arc<Semaphore>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("pool", &self.pool)
            .field("clock", &self.clock)
            .field("in_memory", &self.keeper.is_some())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `url` and brings its schema up to date.
    /// Accepts `sqlite://buzzgate.db`, `sqlite:buzzgate.db`, `sqlite:///abs/path.db` and
    /// `sqlite::memory:` (a private in-memory database, see [`SqliteStore::in_memory`]).
    pub async fn connect(url: &str) -> StoreResult<SqliteStore> {
        if is_memory_url(url) {
            return Self::in_memory().await;
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("invalid sqlite url: {e}")))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        Self::open(options, MAX_CONNECTIONS, false).await
    }

    /// A private in-memory database with the schema (for tests and experiments): nothing is
    /// shared with any other store, and everything is gone when the last clone is dropped.
    pub async fn in_memory() -> StoreResult<SqliteStore> {
        let name = format!(
            "file:buzzgate-memory-{}",
            buzzgate_domain::ids::new_uuid(&OsRandom).simple()
        );
        let options = SqliteConnectOptions::new()
            .filename(name)
            .in_memory(true)
            .shared_cache(true);
        // One pooled connection: a shared-cache database locks per table and would answer
        // SQLITE_LOCKED to a second writer instead of waiting.
        Self::open(options, 1, true).await
    }

    async fn open(
        options: SqliteConnectOptions,
        max_connections: u32,
        memory: bool,
    ) -> StoreResult<SqliteStore> {
        let options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let keeper = if memory {
            let conn = options.connect().await.map_err(map_err)?;
            Some(Arc::new(Mutex::new(conn)))
        } else {
            None
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_release(|conn, _meta| {
                Box::pin(async move {
                    if conn.is_in_transaction() {
                        // A transaction dropped without being awaited queues its ROLLBACK on
                        // the connection's worker; one round trip lets it run.
                        let _ = conn.ping().await;
                    }
                    // Still inside a transaction: close the connection (which rolls back)
                    // rather than hand the write lock to the next caller.
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(options)
            .await
            .map_err(map_err)?;
        let store = SqliteStore {
            pool,
            clock: Arc::new(SystemClock),
            keeper,
            appends: Arc::default(),
            write_gate: Arc::new(Semaphore::new(1)),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the embedded migrations that are not applied yet (run by `connect`).
    pub async fn migrate(&self) -> StoreResult<()> {
        let mut attempt: u64 = 0;
        loop {
            match MIGRATOR.run(&self.pool).await {
                Ok(()) => return Ok(()),
                // Another process migrating the same new file at the same moment: once it is
                // done, a second run finds everything applied.
                Err(_) if attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(StdDuration::from_millis(100 * attempt)).await;
                }
                Err(sqlx::migrate::MigrateError::Execute(e)) => return Err(map_err(e)),
                Err(e) => return Err(StoreError::Internal(format!("migration failed: {e}"))),
            }
        }
    }

    /// The clock that decides which device user codes are still taken and which tokens count
    /// as live in an owner's app list (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// One round trip to the database (for a readiness probe).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// The connection pool (for inspection and maintenance such as `VACUUM INTO`).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Submits a write that only adds rows to the group commit, and waits for its commit.
    pub(crate) async fn append(&self, write: Append) -> StoreResult<InsertOutcome> {
        self.appends
            .get_or_init(|| {
                GroupCommit::start(Appender {
                    store: SqliteStore {
                        appends: Arc::default(),
                        ..self.clone()
                    },
                })
            })
            .submit(write)
            .await
    }

    /// This node's turn to write, on the write gate: held across a lone autocommit write
    /// (an INSERT, UPDATE or DELETE outside [`SqliteStore::begin_write`]), so it queues with
    /// the transactions in arrival order instead of meeting them on `SQLITE_BUSY` and its
    /// growing sleeps (an ungated code insert waited a second behind the group commit:
    /// docs/benchmarks.md, "What each change bought").
    pub(crate) async fn write_turn(&self) -> StoreResult<OwnedSemaphorePermit> {
        self.write_gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the write gate is closed".into()))
    }

    /// A transaction holding the database's write lock from its first statement. This node's
    /// writers queue for it in arrival order on the write gate (SQLite has one writer at a
    /// time; without the gate they raced on `SQLITE_BUSY` with growing sleeps, and the unlucky
    /// waited a second, docs/benchmarks.md); another process's writers are still met with
    /// the busy retries below.
    pub(crate) async fn begin_write(&self) -> StoreResult<Tx> {
        let gate = self.write_turn().await?;
        let mut attempt = 0;
        loop {
            match self.pool.begin_with("BEGIN IMMEDIATE").await {
                Ok(tx) => return Ok(Tx { tx, _gate: gate }),
                Err(e) if is_busy(&e) && attempt + 1 < BEGIN_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(StdDuration::from_millis(5 << attempt)).await;
                }
                Err(e) => return Err(map_err(e)),
            }
        }
    }
}

/// A write transaction and its place on the write gate (released when it ends).
pub(crate) struct Tx {
    tx: Transaction<'static, Sqlite>,
    _gate: OwnedSemaphorePermit,
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for Tx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

/// Commits `tx` when `out` is `Ok`, rolls it back otherwise.
pub(crate) async fn finish<T>(tx: Tx, out: StoreResult<T>) -> StoreResult<T> {
    match out {
        Ok(v) => {
            tx.commit().await.map_err(map_err)?;
            Ok(v)
        }
        Err(e) => {
            // The error is what the caller needs; a failed rollback closes the connection.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

fn is_memory_url(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// SQLITE_BUSY or SQLITE_LOCKED (any extended code).
fn is_busy(e: &sqlx::Error) -> bool {
    matches!(sqlite_code(e), Some(5 | 6))
}

/// The primary result code of a database error.
fn sqlite_code(e: &sqlx::Error) -> Option<i32> {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff),
        _ => None,
    }
}

/// Constraint violations are conflicts; a database that cannot be reached, is locked, full or
/// failing is unavailable; the rest is internal.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        // The messages may reach an HTTP response: no table or column names.
        match db.kind() {
            ErrorKind::UniqueViolation => {
                return StoreError::Conflict("a record with this key already exists".into());
            }
            ErrorKind::ForeignKeyViolation => {
                return StoreError::Conflict(
                    "the app this record belongs to does not exist (any more)".into(),
                );
            }
            _ => {}
        }
    }
    let unavailable = match &e {
        sqlx::Error::Database(_) => matches!(
            sqlite_code(&e),
            // BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL
            Some(5 | 6 | 8 | 10 | 13 | 14 | 15)
        ),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    };
    let msg = format!("sqlite: {e}");
    if unavailable {
        StoreError::Unavailable(msg)
    } else {
        StoreError::Internal(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buzzgate_domain::ids::UserId;
    use buzzgate_domain::ports::{ClientStore, CodeStore, SessionStore};
    use buzzgate_domain::token::TokenHash;
    use buzzgate_domain::user::Session;
    use buzzgate_testkit as fixtures;

    /// Lone autocommit writes queue on the write gate with the transactions: while another
    /// writer holds its turn, they wait for it rather than racing it on `SQLITE_BUSY`.
    #[tokio::test]
    async fn lone_writes_wait_for_their_turn_on_the_write_gate() {
        let store = SqliteStore::in_memory().await.expect("in-memory database");
        let owner = UserId(1);
        let client = fixtures::client(owner);
        ClientStore::insert(&store, &client).await.expect("the app");
        let code = fixtures::code(owner, &client.id);
        let session = Session {
            id_hash: TokenHash([7; 32]),
            user_id: owner,
            csrf_token: "csrf".into(),
            created_at: fixtures::now(),
            expires_at: fixtures::now() + time::Duration::hours(1),
        };

        let turn = store.write_turn().await.expect("the gate");
        let (a, b) = (store.clone(), store.clone());
        let code_insert = tokio::spawn(async move { CodeStore::insert(&a, &code).await });
        let session_insert = tokio::spawn(async move { SessionStore::insert(&b, &session).await });
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        assert!(
            !code_insert.is_finished(),
            "the code insert went past the gate"
        );
        assert!(
            !session_insert.is_finished(),
            "the session insert went past the gate"
        );

        drop(turn);
        code_insert
            .await
            .unwrap()
            .expect("the code, once its turn came");
        session_insert
            .await
            .unwrap()
            .expect("the session, once its turn came");
        assert!(
            SessionStore::get(&store, &TokenHash([7; 32]))
                .await
                .unwrap()
                .is_some()
        );
    }
}
