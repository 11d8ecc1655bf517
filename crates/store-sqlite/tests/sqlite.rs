//! The SQLite adapter's own tests: what the contract suite cannot see (the file, the schema,
//! WAL, cascades in the tables themselves, bounded sweeps, cancellation, two pools racing).

mod common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use buzzgate_domain::StoreError;
use buzzgate_domain::audit::{AuditEvent, AuditKind};
use buzzgate_domain::buzz::{BuzzLimit, Currency, SpendSubject, status_windows};
use buzzgate_domain::client::Client;
use buzzgate_domain::grant::refresh_token::RotationDecision;
use buzzgate_domain::ports::{
    AuditLog, BuzzStore, ClientStore, CodeStore, ConsentStore, DeviceStore, InsertOutcome,
    ManualClock, SessionStore, SpendOutcome, TokenStore, UserStore,
};
use buzzgate_domain::token::TokenKind;
use buzzgate_domain::user::{Session, User, Username};
use buzzgate_store_sqlite::SqliteStore;
use buzzgate_testkit::{self as fx, now};
use common::TempDb;
use sqlx::{Connection, Row};
use time::Duration;

async fn count(store: &SqliteStore, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

async fn pragma(store: &SqliteStore, name: &str) -> String {
    let row = sqlx::query(&format!("PRAGMA {name}"))
        .fetch_one(store.pool())
        .await
        .unwrap();
    row.try_get::<String, _>(0)
        .unwrap_or_else(|_| row.get::<i64, _>(0).to_string())
}

#[tokio::test]
async fn first_start_creates_the_file_and_schema_and_reopening_keeps_the_data() {
    let db = TempDb::new();
    assert!(!db.path.exists());
    let store = db.open().await;
    assert!(db.path.exists(), "the file is created on first start");
    for table in [
        "users",
        "clients",
        "consents",
        "tokens",
        "revoked_families",
        "authorization_codes",
        "device_authorizations",
        "sessions",
        "buzz_balances",
        "buzz_ledger",
        "audit_log",
    ] {
        let n = count(
            &store,
            &format!(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
            ),
        )
        .await;
        assert_eq!(n, 1, "table {table}");
    }
    let (u, c) = fx::user_and_client(&store, &store).await;
    store
        .credit(u.id, &Currency::yellow(), 42, now())
        .await
        .unwrap();
    store.pool().close().await;
    drop(store);

    let again = db.open().await;
    assert_eq!(UserStore::get(&again, u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(
        ClientStore::get(&again, &c.id).await.unwrap().as_deref(),
        Some(&c)
    );
    assert_eq!(
        again.balances(u.id).await.unwrap(),
        vec![(Currency::yellow(), 42)]
    );
    assert_eq!(
        count(&again, "SELECT COUNT(*) FROM _sqlx_migrations").await,
        9,
        "each of the nine migrations is applied once"
    );
    again.migrate().await.unwrap();
}

#[tokio::test]
async fn wal_foreign_keys_and_busy_timeout_are_on() {
    let db = TempDb::new();
    let store = db.open().await;
    assert_eq!(pragma(&store, "journal_mode").await, "wal");
    assert_eq!(pragma(&store, "foreign_keys").await, "1");
    assert_eq!(pragma(&store, "busy_timeout").await, "5000");
    // Both URL spellings name the same file.
    let other = SqliteStore::connect(&format!("sqlite:{}", db.path.display()))
        .await
        .unwrap();
    let u = fx::user(&store).await;
    assert_eq!(UserStore::get(&other, u.id).await.unwrap(), Some(u));
    store.ping().await.unwrap();
}

#[tokio::test]
async fn in_memory_stores_are_private_and_memory_urls_work() {
    let a = SqliteStore::in_memory().await.unwrap();
    let b = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let u = fx::user(&a).await;
    assert_eq!(UserStore::get(&b, u.id).await.unwrap(), None);
    assert_eq!(UserStore::get(&a, u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(pragma(&a, "foreign_keys").await, "1");
    // The pool may replace its one connection (a dropped transaction closes it): the data
    // stays, held by the store's own keeper connection.
    a.pool().acquire().await.unwrap().close().await.unwrap();
    assert_eq!(UserStore::get(&a, u.id).await.unwrap(), Some(u));
    a.ping().await.unwrap();
}

#[tokio::test]
async fn an_unopenable_database_is_unavailable() {
    let missing = common::dir().join("no-such-directory").join("x.db");
    let err = SqliteStore::connect(&common::url_of(&missing))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn deleting_a_client_cascades_in_the_tables_and_keeps_audit_and_ledger() {
    let db = TempDb::new();
    let store = db.open().await;
    let (u, c) = fx::user_and_client(&store, &store).await;
    let (_, other) = fx::user_and_client(&store, &store).await;
    let fam = fx::family();
    let (_, a) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fam));
    let (_, r) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fam));
    let (_, key) = fx::token(TokenKind::ApiKey, u.id, None, None);
    TokenStore::insert(&store, &[a, r, key.clone()])
        .await
        .unwrap();
    let consent = fx::consent(u.id, &c.id);
    ConsentStore::save(&store, &consent, None).await.unwrap();
    CodeStore::insert(&store, &fx::code(u.id, &c.id))
        .await
        .unwrap();
    DeviceStore::insert(&store, &fx::device(&c)).await.unwrap();
    CodeStore::insert(&store, &fx::code(other.owner, &other.id))
        .await
        .unwrap();
    store
        .credit(u.id, &Currency::yellow(), 10, now())
        .await
        .unwrap();
    store
        .spend(&fx::spend(u.id, &c.id, 3, "k", BuzzLimit::default()))
        .await
        .unwrap();
    store
        .record(&AuditEvent::new(AuditKind::ClientCreated, now()).client(&c.id))
        .await
        .unwrap();

    let deleted = ClientStore::delete(&store, &c.id).await.unwrap().unwrap();
    assert_eq!(deleted.len(), 2);
    let id = c.id.as_str();
    for table in [
        "tokens",
        "consents",
        "authorization_codes",
        "device_authorizations",
    ] {
        assert_eq!(
            count(
                &store,
                &format!("SELECT COUNT(*) FROM {table} WHERE client_id = '{id}'")
            )
            .await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM authorization_codes").await,
        1,
        "another app's code stays"
    );
    assert!(
        store.find(&key.hash).await.unwrap().is_some(),
        "API keys stay"
    );
    assert_eq!(
        count(
            &store,
            &format!("SELECT COUNT(*) FROM audit_log WHERE client_id = '{id}'")
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &store,
            &format!("SELECT COUNT(*) FROM buzz_ledger WHERE subject_id = '{id}'")
        )
        .await,
        1,
        "the ledger outlives the app"
    );
    // A consent for the deleted app is not stored (as in the reference store).
    assert_eq!(
        ConsentStore::save(&store, &consent, None).await.unwrap(),
        buzzgate_domain::ports::Conditional::Missing
    );
    assert_eq!(ConsentStore::get(&store, u.id, &c.id).await.unwrap(), None);
}

#[tokio::test]
async fn foreign_key_violations_are_conflicts_and_write_nothing() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (u, c) = fx::user_and_client(&store, &store).await;
    let ghost = fx::client(u.id);
    let fam = fx::family();
    let (_, good) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fam));
    let (_, bad) = fx::token(TokenKind::Refresh, u.id, Some(&ghost.id), Some(fam));
    let err = TokenStore::insert(&store, &[good.clone(), bad])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.find(&good.hash).await.unwrap(),
        None,
        "all or nothing"
    );
    let err = CodeStore::insert(&store, &fx::code(u.id, &ghost.id))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let err = DeviceStore::insert(&store, &fx::device(&ghost))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        TokenStore::insert(&store, std::slice::from_ref(&good))
            .await
            .unwrap(),
        InsertOutcome::Inserted
    );
}

#[tokio::test]
async fn sweeps_respect_the_batch_and_the_loop_ends() {
    let db = TempDb::new();
    let store = db.open().await;
    let (u, c) = fx::user_and_client(&store, &store).await;
    let t0 = now();
    let mut dead = fx::expired_tokens(u.id, &c.id, 23, t0 - Duration::minutes(5));
    let (_, mut revoked) = fx::token(TokenKind::ApiKey, u.id, None, None);
    revoked.revoked_at = Some(t0 - Duration::minutes(5));
    dead.push(revoked);
    let (_, live) = fx::token(TokenKind::Access, u.id, Some(&c.id), None);
    TokenStore::insert(&store, &dead).await.unwrap();
    TokenStore::insert(&store, std::slice::from_ref(&live))
        .await
        .unwrap();
    // Two tombstones older than the cut-off, one newer.
    store
        .revoke_family(fx::family(), t0 - Duration::minutes(5))
        .await
        .unwrap();
    store
        .revoke_family(fx::family(), t0 - Duration::minutes(5))
        .await
        .unwrap();
    let fresh = fx::family();
    store
        .revoke_family(fresh, t0 + Duration::minutes(5))
        .await
        .unwrap();

    let mut batches = Vec::new();
    loop {
        let n = TokenStore::sweep_expired(&store, t0, 10).await.unwrap();
        batches.push(n);
        if n < 10 {
            break;
        }
        assert!(batches.len() < 10, "the loop ends");
    }
    assert_eq!(
        batches,
        vec![10, 10, 6],
        "24 tokens and 2 tombstones, 10 at a time"
    );
    assert_eq!(TokenStore::sweep_expired(&store, t0, 10).await.unwrap(), 0);
    let (_, late) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fresh));
    fx::assert_sweep_kept(&store, &live, late).await;

    for _ in 0..7 {
        let mut code = fx::code(u.id, &c.id);
        code.expires_at = t0 - Duration::seconds(1);
        CodeStore::insert(&store, &code).await.unwrap();
        let (_, mut s) = Session::start(
            u.id,
            t0 - Duration::hours(2),
            Duration::hours(1),
            &buzzgate_domain::ports::OsRandom,
        );
        s.expires_at = t0 - Duration::seconds(1);
        SessionStore::insert(&store, &s).await.unwrap();
    }
    let code_rounds = [(3, 3), (3, 3), (3, 1)];
    fx::assert_sweeps(|n| CodeStore::sweep_expired(&store, t0, n), &code_rounds).await;
    fx::assert_sweeps(
        |n| SessionStore::sweep_expired(&store, t0, n),
        &[(5, 5), (5, 2)],
    )
    .await;
    fx::assert_sweeps(|n| DeviceStore::sweep_expired(&store, t0, n), &[(0, 0)]).await;

    // The sweeps find their rows through the expiry indexes, not by scanning the table.
    for (table, index) in [
        ("authorization_codes", "authorization_codes_expires"),
        ("sessions", "sessions_expires"),
        ("device_authorizations", "device_authorizations_expires"),
    ] {
        let plan: Vec<String> = sqlx::query(&format!(
            "EXPLAIN QUERY PLAN SELECT rowid FROM {table} WHERE expires_at < 1 LIMIT 5"
        ))
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect();
        assert!(plan.iter().any(|d| d.contains(index)), "{table}: {plan:?}");
    }
}

/// Two pools over one database file, and a user of a client holding `buzz` yellow Buzz.
async fn two_pools_with_buzz(db: &TempDb, buzz: u64) -> (SqliteStore, SqliteStore, User, Client) {
    let (a, b) = (db.open().await, db.open().await);
    let (u, c) = fx::user_and_client(&a, &a).await;
    a.credit(u.id, &Currency::yellow(), buzz, now())
        .await
        .unwrap();
    (a, b, u, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_spends_on_two_pools_stop_exactly_at_the_cap() {
    let db = TempDb::new();
    let (a, b, u, c) = two_pools_with_buzz(&db, 1_000).await;
    let cap = 23;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let req = fx::spend(
                u.id,
                &c.id,
                2,
                &format!("s{i}"),
                BuzzLimit::per_period(cap * 2, 1).unwrap(),
            );
            tokio::spawn(async move { store.spend(&req).await.expect("never an error") })
        })
        .collect();
    let mut spent = 0;
    for t in tasks {
        if let SpendOutcome::Spent { .. } = t.await.unwrap() {
            spent += 1;
        }
    }
    assert_eq!(spent, cap);
    assert_eq!(
        b.balances(u.id).await.unwrap(),
        vec![(Currency::yellow(), 1_000 - 2 * cap as i64)],
        "exactly the cap left the balance"
    );
    let limit = BuzzLimit::per_period(cap * 2, 1).unwrap();
    assert_eq!(
        a.window_spend(
            u.id,
            &SpendSubject::OAuth(c.id.clone()),
            &status_windows(&limit, now())
        )
        .await
        .unwrap(),
        vec![cap * 2]
    );
    assert_eq!(a.history(u.id, 100).await.unwrap().len(), cap as usize);
}

/// Holds the write lock of `store`'s database on a connection of its own until dropped.
async fn hold_write_lock(store: &SqliteStore) -> sqlx::pool::PoolConnection<sqlx::Sqlite> {
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_dropped_mid_transaction_leaves_no_lock_behind() {
    let db = TempDb::new();
    let (a, b, u, c) = two_pools_with_buzz(&db, 1_000_000).await;

    // Dropped while waiting for the lock: the BEGIN completes later, unobserved.
    let mut blocker = hold_write_lock(&b).await;
    let waiting = tokio::time::timeout(
        StdDuration::from_millis(100),
        a.spend(&fx::spend(u.id, &c.id, 1, "dropped", BuzzLimit::default())),
    )
    .await;
    assert!(waiting.is_err(), "the spend was waiting for the lock");
    sqlx::query("ROLLBACK")
        .execute(&mut *blocker)
        .await
        .unwrap();
    drop(blocker);

    // Dropped at every point of its life: before, inside and after the transaction.
    for i in 0..200u64 {
        let req = fx::spend(u.id, &c.id, 1, &format!("c{i}"), BuzzLimit::default());
        let _ = tokio::time::timeout(StdDuration::from_micros(i * 15), a.spend(&req)).await;
    }
    for (i, store) in [&a, &b].into_iter().enumerate() {
        let req = fx::spend(u.id, &c.id, 1, &format!("after-{i}"), BuzzLimit::default());
        let quick = tokio::time::timeout(StdDuration::from_secs(3), store.spend(&req))
            .await
            .expect("no connection kept the write lock");
        assert!(matches!(
            quick.unwrap(),
            SpendOutcome::Spent { .. } | SpendOutcome::Replayed { .. }
        ));
    }
    // No pooled connection is left inside a transaction.
    let mut held = Vec::new();
    for _ in 0..a.pool().num_idle() {
        let conn = a.pool().acquire().await.unwrap();
        assert!(!conn.is_in_transaction());
        held.push(conn);
    }
    drop(held);
    // Every charge that happened is in the ledger, and nothing else left the balance.
    let history = a.history(u.id, 1_000).await.unwrap();
    let charged: u64 = history.iter().map(|e| e.amount).sum();
    assert_eq!(
        a.balances(u.id).await.unwrap(),
        vec![(Currency::yellow(), 1_000_000 - charged as i64)]
    );

    // The single-connection in-memory store recovers the same way.
    let m = SqliteStore::in_memory().await.unwrap();
    let (mu, mc) = fx::user_and_client(&m, &m).await;
    m.credit(mu.id, &Currency::yellow(), 100, now())
        .await
        .unwrap();
    for i in 0..50u64 {
        let req = fx::spend(mu.id, &mc.id, 1, &format!("m{i}"), BuzzLimit::default());
        let _ = tokio::time::timeout(StdDuration::from_micros(i * 20), m.spend(&req)).await;
    }
    let spent: u64 = m
        .history(mu.id, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.amount)
        .sum();
    assert_eq!(
        m.balances(mu.id).await.unwrap(),
        vec![(Currency::yellow(), 100 - spent as i64)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotations_on_two_pools_have_one_winner_and_a_revocation_stops_every_successor() {
    let db = TempDb::new();
    let (a, b) = (db.open().await, db.open().await);
    let (u, c) = fx::user_and_client(&a, &a).await;
    let (_, r) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fx::family()));
    TokenStore::insert(&a, std::slice::from_ref(&r))
        .await
        .unwrap();
    let at = now();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let rot = fx::rotation(&c.id, at, Duration::ZERO);
            let hash = r.hash;
            tokio::spawn(async move { store.rotate_refresh(&hash, &rot).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap() {
            RotationDecision::Rotate { mark_rotated, .. } => {
                assert!(mark_rotated);
                winners += 1;
            }
            RotationDecision::RevokeFamily { .. } => {}
            RotationDecision::Reject(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(b.find(&r.hash).await.unwrap().unwrap().rotated_at, Some(at));

    // A rotation racing a family revocation on the other pool: once both are done, nothing of
    // the family is usable, whichever went first.
    for _ in 0..20 {
        let fam = fx::family();
        let (_, r) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fam));
        TokenStore::insert(&a, std::slice::from_ref(&r))
            .await
            .unwrap();
        let rot = fx::rotation(&c.id, now(), Duration::seconds(10));
        let (a2, b2) = (a.clone(), b.clone());
        let rotate = tokio::spawn(async move { a2.rotate_refresh(&r.hash, &rot).await.unwrap() });
        let revoke = tokio::spawn(async move { b2.revoke_family(fam, now()).await.unwrap() });
        let (decision, _) = (rotate.await.unwrap(), revoke.await.unwrap());
        if let RotationDecision::Rotate {
            access, refresh, ..
        } = decision
        {
            for t in [access, refresh] {
                assert!(a.find(&t.hash).await.unwrap().unwrap().revoked_at.is_some());
            }
        }
        let rows = count(
            &a,
            &format!(
                "SELECT COUNT(*) FROM tokens WHERE family_id = '{fam}' AND revoked_at IS NULL"
            ),
        )
        .await;
        assert_eq!(rows, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usernames_differing_in_case_race_to_one_account() {
    let db = TempDb::new();
    let (a, b) = (db.open().await, db.open().await);
    let base = format!(
        "Race{}",
        buzzgate_domain::ids::new_uuid(&buzzgate_domain::ports::OsRandom).simple()
    );
    let names = [base.to_uppercase(), base.to_lowercase(), base.clone()];
    let created = fx::race_usernames([Arc::new(a.clone()), Arc::new(b)], names).await;
    assert_eq!(created, 1);
    let found = a
        .find_by_username(&Username::parse(&base.to_lowercase()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.username.as_str().to_lowercase(), base.to_lowercase());
}

#[tokio::test]
async fn instants_keep_their_microseconds() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (u, c) = fx::user_and_client(&store, &store).await;
    let (_, mut t) = fx::token(TokenKind::Access, u.id, Some(&c.id), None);
    let base = time::macros::datetime!(2026-03-01 10:00:00.123456789 UTC);
    t.issued_at = base;
    t.expires_at = Some(base + Duration::hours(1));
    TokenStore::insert(&store, std::slice::from_ref(&t))
        .await
        .unwrap();
    let back = store.find(&t.hash).await.unwrap().unwrap();
    assert_eq!(
        back.issued_at,
        time::macros::datetime!(2026-03-01 10:00:00.123456 UTC),
        "microseconds kept, nanoseconds dropped"
    );
    let mut early = t.clone();
    early.hash = buzzgate_domain::token::TokenHash::of("before 1970");
    early.issued_at = time::macros::datetime!(1969-12-31 23:59:59.5 UTC);
    TokenStore::insert(&store, std::slice::from_ref(&early))
        .await
        .unwrap();
    assert_eq!(
        store.find(&early.hash).await.unwrap().unwrap().issued_at,
        early.issued_at
    );
}

#[tokio::test]
async fn the_store_clock_decides_live_user_codes_and_live_token_counts() {
    let clock = Arc::new(ManualClock::new(now()));
    let store = SqliteStore::in_memory()
        .await
        .unwrap()
        .with_clock(clock.clone());
    let (u, c) = fx::user_and_client(&store, &store).await;
    let first = fx::device(&c);
    DeviceStore::insert(&store, &first).await.unwrap();
    let mut second = fx::device(&c);
    second.user_code = first.user_code.clone();
    assert!(matches!(
        DeviceStore::insert(&store, &second).await,
        Err(StoreError::Conflict(_))
    ));
    clock.advance(Duration::seconds(901));
    DeviceStore::insert(&store, &second).await.unwrap();
    assert_eq!(
        store.find_by_user_code(&first.user_code).await.unwrap(),
        Some(second.clone()),
        "the newest authorization owns a reused code"
    );

    let (_, t) = fx::token(TokenKind::Access, u.id, Some(&c.id), None);
    TokenStore::insert(&store, std::slice::from_ref(&t))
        .await
        .unwrap();
    clock.set(now() + Duration::hours(2));
    assert_eq!(
        store.list_by_owner(u.id).await.unwrap()[0].active_tokens,
        0,
        "by the store's clock the token has expired"
    );
    clock.set(now());
    assert_eq!(store.list_by_owner(u.id).await.unwrap()[0].active_tokens, 1);
}
