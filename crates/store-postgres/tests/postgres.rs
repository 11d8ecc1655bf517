//! What the contract suite cannot see from the ports alone: the schema (indexes, foreign keys,
//! cascades), migrations run twice and by several nodes at once, bounded sweeps row by row,
//! error mapping (foreign keys, an unreachable server), 64-task races across two pools, and
//! cancellation in the middle of a transaction.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use buzzgate_domain::StoreError;
use buzzgate_domain::buzz::{
    BuzzLimit, Currency, IdempotencyKey, SpendPurpose, SpendRequest, SpendSubject,
};
use buzzgate_domain::grant::refresh_token::RotationDecision;
use buzzgate_domain::ids::{ClientId, SpendId, UserId};
use buzzgate_domain::ports::{
    BuzzStore, ClientStore, CodeStore, ConsentStore, DeviceStore, InsertOutcome, OsRandom,
    SessionStore, SpendOutcome, TokenStore, UserStore,
};
use buzzgate_domain::token::{TokenHash, TokenKind};
use buzzgate_domain::user::Session;
use buzzgate_store_postgres::PgStore;
use buzzgate_testkit::{self as fx, now};
use sqlx::{Connection, Executor};
use time::Duration;

/// A row count of `table` in `schema`, behind the store's back.
async fn count(schema: &str, sql_where: &str, table: &str) -> i64 {
    let mut c = common::raw().await.unwrap();
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".{table} WHERE {sql_where}"
    ))
    .fetch_one(&mut c)
    .await
    .unwrap()
}

// ----- migrations and schema ------------------------------------------------------------------

/// The migrations in `migrations/`, all applied once.
const MIGRATIONS: i64 = 12;

#[tokio::test]
async fn migrations_are_idempotent() {
    let Some((store, schema)) = common::store().await else {
        return;
    };
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    // A second node starting on a migrated schema changes nothing either.
    let again = common::store_in(&schema).await.unwrap();
    again.migrate().await.unwrap();
    assert_eq!(
        count(&schema, "success", "_sqlx_migrations").await,
        MIGRATIONS
    );
    let (u, c) = fx::user_and_client(&store, &store).await;
    assert_eq!(UserStore::get(&again, u.id).await.unwrap(), Some(u));
    assert!(ClientStore::get(&again, &c.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_of_one_new_schema_all_succeed() {
    let Some(mut raw) = common::raw()
        .await
        .map_or_else(|e| buzzgate_testkit::skip("postgres", &e), Some)
    else {
        return;
    };
    // Four nodes start at once on a schema nobody created yet.
    let schema = format!("bg_{}", buzzgate_domain::ids::new_uuid(&OsRandom).simple());
    let url = common::url();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move { PgStore::connect_in_schema(&url, &schema).await })
        })
        .collect();
    let mut stores = Vec::new();
    for t in tasks {
        stores.push(t.await.unwrap().expect("every node starts"));
    }
    // Stamp it so a later run drops it like any other test schema.
    raw.execute(
        format!(
            "COMMENT ON SCHEMA \"{schema}\" IS 'buzzgate test schema, created at {}'",
            time::OffsetDateTime::now_utc().unix_timestamp()
        )
        .as_str(),
    )
    .await
    .unwrap();
    assert_eq!(
        count(&schema, "success", "_sqlx_migrations").await,
        MIGRATIONS
    );
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&schema)
    .fetch_one(&mut raw)
    .await
    .unwrap();
    assert_eq!(tables, 14, "13 tables and sqlx's own");
    // Every node works on the one schema.
    let u = fx::user(&stores[0]).await;
    for s in &stores {
        assert_eq!(
            UserStore::get(s, u.id).await.unwrap().map(|x| x.id),
            Some(u.id)
        );
    }
}

#[tokio::test]
async fn hot_path_indexes_exist() {
    let Some((_store, schema)) = common::store().await else {
        return;
    };
    let mut raw = common::raw().await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = $1")
            .bind(&schema)
            .fetch_all(&mut raw)
            .await
            .unwrap();
    let def = |name: &str| {
        rows.iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("index {name} is missing"))
    };
    let unique = [
        // Migration 0011: the hash is the primary key; the id is unique where it is looked up.
        ("tokens_pkey", "(hash)"),
        (
            "tokens_api_key_id_key",
            "(id) WHERE (kind = 'apiKey'::text)",
        ),
        ("device_authorizations_user_code_key", "(user_code_key)"),
        ("users_username_lower_key", "(lower(username))"),
        (
            "buzz_ledger_idempotency_key",
            "(user_id, subject_type, subject_id, resource_server, idempotency_key)",
        ),
    ];
    let plain = [
        ("tokens_family_idx", "(family_id)"),
        ("tokens_client_idx", "(client_id)"),
        ("tokens_user_client_idx", "(user_id, client_id)"),
        ("tokens_api_keys_idx", "(user_id, issued_at DESC)"),
        ("tokens_expires_at_idx", "(expires_at)"),
        ("tokens_revoked_at_idx", "(revoked_at)"),
        ("revoked_families_revoked_at_idx", "(revoked_at)"),
        ("auth_codes_expires_at_idx", "(expires_at)"),
        ("auth_codes_client_idx", "(client_id)"),
        ("device_authorizations_expires_at_idx", "(expires_at)"),
        ("device_authorizations_client_idx", "(client_id)"),
        ("sessions_expires_at_idx", "(expires_at)"),
        ("consents_client_idx", "(client_id)"),
        (
            "buzz_ledger_window_idx",
            "(user_id, subject_type, subject_id, created_at)",
        ),
        (
            "buzz_ledger_running_idx",
            "(user_id, subject_type, subject_id, currency, created_at, running)",
        ),
        (
            "buzz_ledger_refunded_idx",
            "(user_id, subject_type, subject_id, created_at)",
        ),
        ("tokens_family_heads_idx", "(family_id)"),
        // Migration 0012: ascending, read backwards for the newest first.
        ("audit_events_at_idx", "(at, id)"),
        ("audit_events_client_idx", "(client_id, at, id)"),
        ("audit_events_user_idx", "(user_id, at, id)"),
        ("rate_limits_window_end_idx", "(window_end)"),
    ];
    let every = unique.iter().map(|i| (i, true));
    for ((name, columns), unique) in every.chain(plain.iter().map(|i| (i, false))) {
        let d = def(name);
        assert_eq!(d.starts_with("CREATE UNIQUE INDEX"), unique, "{d}");
        assert!(d.contains(columns), "{name}: {d}");
    }
}

#[tokio::test]
async fn audit_and_ledger_have_no_foreign_keys_and_grants_cascade_from_clients() {
    let Some((_store, schema)) = common::store().await else {
        return;
    };
    let mut raw = common::raw().await.unwrap();
    let fks: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT tc.table_name::text, ccu.table_name::text, rc.delete_rule::text \
         FROM information_schema.table_constraints tc \
         JOIN information_schema.referential_constraints rc \
           ON rc.constraint_schema = tc.constraint_schema AND rc.constraint_name = tc.constraint_name \
         JOIN information_schema.constraint_column_usage ccu \
           ON ccu.constraint_schema = tc.constraint_schema AND ccu.constraint_name = tc.constraint_name \
         WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = $1",
    )
    .bind(&schema)
    .fetch_all(&mut raw)
    .await
    .unwrap();
    let from: HashSet<&str> = fks.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(
        from,
        HashSet::from(["tokens", "auth_codes", "device_authorizations", "consents"]),
        "{fks:?}"
    );
    for (table, to, rule) in &fks {
        assert_eq!(
            (to.as_str(), rule.as_str()),
            ("clients", "CASCADE"),
            "{table}"
        );
    }
    assert!(!from.contains("audit_events") && !from.contains("buzz_ledger"));
}

#[tokio::test]
async fn deleting_a_client_cascades_to_every_grant_row_but_not_audit() {
    let Some((store, schema)) = common::store().await else {
        return;
    };
    let (u, c) = fx::user_and_client(&store, &store).await;
    let (_, other_client) = fx::user_and_client(&store, &store).await;
    let fam = fx::family();
    let (_, a) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fam));
    let (_, r) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fam));
    let (_, kept) = fx::token(TokenKind::Access, u.id, Some(&other_client.id), None);
    TokenStore::insert(&store, &[a.clone(), r.clone(), kept.clone()])
        .await
        .unwrap();
    CodeStore::insert(&store, &fx::code(u.id, &c.id))
        .await
        .unwrap();
    DeviceStore::insert(&store, &fx::device(&c)).await.unwrap();
    ConsentStore::save(&store, &fx::consent(u.id, &c.id), None)
        .await
        .unwrap();
    buzzgate_domain::ports::AuditLog::record(
        &store,
        &buzzgate_domain::audit::AuditEvent::new(
            buzzgate_domain::audit::AuditKind::ClientCreated,
            now(),
        )
        .client(&c.id),
    )
    .await
    .unwrap();
    let of_client = format!("client_id = '{}'", c.id.as_str());
    let deleted = ClientStore::delete(&store, &c.id).await.unwrap().unwrap();
    assert_eq!(
        deleted.into_iter().collect::<HashSet<_>>(),
        HashSet::from([a.hash, r.hash])
    );
    for table in ["tokens", "auth_codes", "device_authorizations", "consents"] {
        assert_eq!(count(&schema, &of_client, table).await, 0, "{table}");
    }
    assert_eq!(count(&schema, &of_client, "audit_events").await, 1);
    assert!(store.find(&kept.hash).await.unwrap().is_some());
}

// ----- sweeps ---------------------------------------------------------------------------------

#[tokio::test]
async fn sweeps_delete_in_bounded_batches_and_keep_recent_tombstones() {
    let Some((store, schema)) = common::store().await else {
        return;
    };
    let (u, c) = fx::user_and_client(&store, &store).await;
    let t0 = now();
    let mut dead = Vec::new();
    for i in 0..25 {
        let (_, mut t) = fx::token(TokenKind::Access, u.id, Some(&c.id), None);
        if i < 20 {
            t.expires_at = Some(t0 - Duration::minutes(5));
        } else {
            t.revoked_at = Some(t0 - Duration::minutes(5));
        }
        dead.push(t);
    }
    TokenStore::insert(&store, &dead).await.unwrap();
    let (_, live) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fx::family()));
    TokenStore::insert(&store, std::slice::from_ref(&live))
        .await
        .unwrap();
    // A family revoked just now: its tombstone must outlive this sweep.
    let fresh = fx::family();
    store.revoke_family(fresh, t0).await.unwrap();
    let mut batches = Vec::new();
    loop {
        let n = TokenStore::sweep_expired(&store, t0 - Duration::seconds(1), 10)
            .await
            .unwrap();
        batches.push(n);
        if n < 10 {
            break;
        }
    }
    assert_eq!(batches, vec![10, 10, 5]);
    assert_eq!(count(&schema, "TRUE", "tokens").await, 1);
    let (_, late) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fresh));
    fx::assert_sweep_kept(&store, &live, late).await;
    // Once it is older than the horizon and its family has no row left, it goes too.
    assert_eq!(
        TokenStore::sweep_expired(&store, t0 + Duration::seconds(1), 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(count(&schema, "TRUE", "revoked_families").await, 0);

    // Codes, devices and sessions: the same bound.
    for _ in 0..7 {
        let mut code = fx::code(u.id, &c.id);
        code.expires_at = t0 - Duration::seconds(5);
        CodeStore::insert(&store, &code).await.unwrap();
        let mut device = fx::device(&c);
        device.expires_at = t0 - Duration::seconds(5);
        DeviceStore::insert(&store, &device).await.unwrap();
        let (_, mut session) = Session::start(u.id, t0, Duration::hours(1), &OsRandom);
        session.expires_at = t0 - Duration::seconds(5);
        SessionStore::insert(&store, &session).await.unwrap();
    }
    CodeStore::insert(&store, &fx::code(u.id, &c.id))
        .await
        .unwrap();
    fx::assert_sweeps(
        |n| CodeStore::sweep_expired(&store, t0, n),
        &[(3, 3), (5, 4)],
    )
    .await;
    fx::assert_sweeps(
        |n| DeviceStore::sweep_expired(&store, t0, n),
        &[(4, 4), (4, 3)],
    )
    .await;
    fx::assert_sweeps(
        |n| SessionStore::sweep_expired(&store, t0, n),
        &[(6, 6), (6, 1)],
    )
    .await;
    assert_eq!(
        count(&schema, "TRUE", "auth_codes").await,
        1,
        "the live code"
    );
    assert_eq!(count(&schema, "TRUE", "device_authorizations").await, 0);
    assert_eq!(count(&schema, "TRUE", "sessions").await, 0);
}

// ----- errors ---------------------------------------------------------------------------------

#[tokio::test]
async fn foreign_key_violations_are_conflicts() {
    let Some((store, schema)) = common::store().await else {
        return;
    };
    let u = fx::user(&store).await;
    let ghost = fx::client(u.id); // never stored
    let (_, t) = fx::token(TokenKind::Access, u.id, Some(&ghost.id), None);
    assert!(matches!(
        TokenStore::insert(&store, std::slice::from_ref(&t)).await,
        Err(StoreError::Conflict(_))
    ));
    let (_, f) = fx::token(
        TokenKind::Refresh,
        u.id,
        Some(&ghost.id),
        Some(fx::family()),
    );
    assert!(matches!(
        TokenStore::insert(&store, std::slice::from_ref(&f)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        CodeStore::insert(&store, &fx::code(u.id, &ghost.id)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        DeviceStore::insert(&store, &fx::device(&ghost)).await,
        Err(StoreError::Conflict(_))
    ));
    // As in the reference store, a consent for an app that is gone is simply not kept.
    assert_eq!(
        ConsentStore::save(&store, &fx::consent(u.id, &ghost.id), None)
            .await
            .unwrap(),
        buzzgate_domain::ports::Conditional::Missing
    );
    assert_eq!(
        ConsentStore::get(&store, u.id, &ghost.id).await.unwrap(),
        None
    );
    assert_eq!(count(&schema, "TRUE", "tokens").await, 0);
    // The pool is fine after every refusal.
    store.ping().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_quickly() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = PgStore::builder(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .acquire_timeout(StdDuration::from_millis(500))
        .connect()
        .await
        .unwrap_err();
    fx::assert_unavailable_soon(&err, started, StdDuration::from_secs(3));
    // A store whose pool is gone answers Unavailable too, never a panic.
    let Some((store, _)) = common::store().await else {
        return;
    };
    store.close().await;
    assert!(matches!(
        store.find(&TokenHash::of("x")).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
}

// ----- races across two pools -----------------------------------------------------------------

/// Two stores (two pools, two "nodes") on one fresh schema.
async fn two_nodes() -> Option<(Arc<PgStore>, Arc<PgStore>, String)> {
    let schema = common::fresh_schema().await?;
    let a = common::store_in(&schema).await?;
    let b = common::store_in(&schema).await?;
    Some((Arc::new(a), Arc::new(b), schema))
}

fn spend_in(user: UserId, client: &ClientId, currency: &str, key: &str, cap: u64) -> SpendRequest {
    SpendRequest::new(
        SpendId::generate(&OsRandom),
        user,
        SpendSubject::OAuth(client.clone()),
        fx::resource_server(),
        SpendPurpose::AiServices,
        1,
        Currency::parse(currency).unwrap(),
        IdempotencyKey::parse(key).unwrap(),
        None,
        BuzzLimit::per_period(cap, 1).unwrap(),
        now(),
    )
    .unwrap()
}

/// The spend batch sums budget windows by prefix sums (migration 0010); `window_spend` still
/// scans the ledger. Over a few hundred spends in two currencies and two subjects, across
/// minutes and days, with refunds, replays, and instants that go back (another node's clock),
/// every window the batch reports equals the scan, on either node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_sums_agree_with_the_ledger_scan() {
    let Some((a, b, _schema)) = two_nodes().await else {
        return;
    };
    let (u, c) = fx::user_and_client(a.as_ref(), a.as_ref()).await;
    let other = fx::client(u.id); // the ledger keeps no foreign keys: it need not be stored
    let (yellow, blue) = (Currency::yellow(), Currency::parse("blue").unwrap());
    for cur in [&yellow, &blue] {
        a.credit(u.id, cur, 1_000_000, now()).await.unwrap();
    }
    let windows = |at: time::OffsetDateTime| {
        let w = |since: Option<time::OffsetDateTime>, cs: Option<Vec<Currency>>| {
            buzzgate_domain::buzz::BudgetWindow {
                since,
                currencies: cs,
            }
        };
        vec![
            w(None, None),
            w(Some(at - Duration::hours(1)), None),
            w(Some(at - Duration::days(1)), Some(vec![yellow.clone()])),
            w(Some(at - Duration::minutes(10)), Some(vec![blue.clone()])),
            w(
                Some(at - Duration::days(7)),
                Some(vec![yellow.clone(), blue.clone()]),
            ),
            w(Some(at), None),
        ]
    };
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut at = now() - Duration::days(3);
    let mut spent: Vec<SpendId> = Vec::new();
    for i in 0..300u64 {
        // Mostly forward, by seconds to hours; now and then a little back.
        at = match next(10) {
            0 => at - Duration::milliseconds(next(900) as i64 + 1),
            1..=6 => at + Duration::seconds(next(120) as i64),
            _ => at + Duration::minutes(next(180) as i64),
        };
        let client = if next(4) == 0 { &other.id } else { &c.id };
        let currency = if next(3) == 0 { &blue } else { &yellow };
        let key = if next(12) == 0 && i > 0 {
            format!("k{}", next(i)) // a replay (or, for another subject, a fresh key)
        } else {
            format!("k{i}")
        };
        let mut req = SpendRequest::new(
            SpendId::generate(&OsRandom),
            u.id,
            SpendSubject::OAuth(client.clone()),
            fx::resource_server(),
            SpendPurpose::AiServices,
            next(500) + 1,
            currency.clone(),
            IdempotencyKey::parse(&key).unwrap(),
            None,
            BuzzLimit::unlimited(),
            at,
        )
        .unwrap();
        req.report = windows(at);
        let node = if i % 2 == 0 { &a } else { &b };
        let report = match node.spend(&req).await.unwrap() {
            SpendOutcome::Spent { entry, report, .. } => {
                spent.push(entry.id);
                report
            }
            SpendOutcome::Replayed { report, .. } => report,
            SpendOutcome::Rejected(e) => {
                // A key reused with another amount or currency is refused; nothing to compare.
                assert_eq!(e.code(), "conflict", "{e:?}");
                continue;
            }
        };
        let scanned = b
            .window_spend(u.id, &req.subject, &req.report)
            .await
            .unwrap();
        assert_eq!(
            report, scanned,
            "spend {i} at {at}: prefix sums vs the scan"
        );
        if next(8) == 0 && !spent.is_empty() {
            let id = spent[next(spent.len() as u64) as usize];
            a.refund(id, &fx::resource_server(), at).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_spends_on_two_pools_spend_exactly_the_cap() {
    let Some((a, b, schema)) = two_nodes().await else {
        return;
    };
    let (u, c) = fx::user_and_client(a.as_ref(), a.as_ref()).await;
    a.credit(u.id, &Currency::yellow(), 1000, now())
        .await
        .unwrap();
    a.credit(u.id, &Currency::parse("blue").unwrap(), 1000, now())
        .await
        .unwrap();
    // One all-currency budget of N; the spends alternate between two currencies, so the
    // balance rows alone could not serialise them.
    let cap = 29;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            let currency = if i % 4 < 2 { "yellow" } else { "blue" };
            let req = spend_in(u.id, &c.id, currency, &format!("k{i}"), cap);
            tokio::spawn(async move { node.spend(&req).await })
        })
        .collect();
    let mut spent = 0u64;
    for t in tasks {
        match t.await.unwrap().expect("a race is never an error") {
            SpendOutcome::Spent { .. } => spent += 1,
            SpendOutcome::Rejected(e) => {
                assert_eq!(e, buzzgate_domain::Error::InsufficientFunds)
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(spent, cap);
    let total: i64 = a
        .balances(u.id)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, b)| b)
        .sum();
    assert_eq!(
        total,
        2000 - cap as i64,
        "the balances went down by exactly N"
    );
    assert_eq!(count(&schema, "TRUE", "buzz_ledger").await, cap as i64);
    assert_eq!(
        b.window_spend(
            u.id,
            &SpendSubject::OAuth(c.id.clone()),
            &spend_in(u.id, &c.id, "yellow", "x", cap).windows()
        )
        .await
        .unwrap(),
        vec![cap]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_spends_on_two_pools_never_overdraw() {
    let Some((a, b, _)) = two_nodes().await else {
        return;
    };
    let (u, c) = fx::user_and_client(a.as_ref(), a.as_ref()).await;
    let n = 21;
    a.credit(u.id, &Currency::yellow(), n, now()).await.unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            let req = spend_in(u.id, &c.id, "yellow", &format!("o{i}"), 1_000_000);
            tokio::spawn(async move { node.spend(&req).await.unwrap() })
        })
        .collect();
    let mut spent = 0;
    for t in tasks {
        spent += u64::from(matches!(t.await.unwrap(), SpendOutcome::Spent { .. }));
    }
    assert_eq!(spent, n);
    assert_eq!(
        a.balances(u.id).await.unwrap(),
        vec![(Currency::yellow(), 0)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_redemptions_on_two_pools_have_one_winner() {
    let Some((a, b, schema)) = two_nodes().await else {
        return;
    };
    let (u, c) = fx::user_and_client(a.as_ref(), a.as_ref()).await;
    let code = fx::code(u.id, &c.id);
    CodeStore::insert(a.as_ref(), &code).await.unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            let fam = fx::family();
            let hash = code.hash;
            tokio::spawn(async move { (fam, node.redeem(&hash, fam).await.unwrap()) })
        })
        .collect();
    let (winners, told) = fx::redemption_race(tasks).await;
    assert_eq!(winners.len(), 1);
    assert_eq!(told, HashSet::from([Some(winners[0])]));
    assert_eq!(
        count(
            &schema,
            &format!("redeemed_family = '{}'", winners[0]),
            "auth_codes"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_family_revoked_while_inserts_race_keeps_no_live_token() {
    let Some((a, b, schema)) = two_nodes().await else {
        return;
    };
    let (u, c) = fx::user_and_client(a.as_ref(), a.as_ref()).await;
    let fam = fx::family();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (_, t) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fam));
            tokio::spawn(async move {
                if i == 20 {
                    node.revoke_family(fam, now()).await.unwrap();
                    None
                } else {
                    Some(TokenStore::insert(node.as_ref(), &[t]).await.unwrap())
                }
            })
        })
        .collect();
    let mut refused = 0;
    for t in tasks {
        refused += usize::from(t.await.unwrap() == Some(InsertOutcome::FamilyRevoked));
    }
    // Whatever got in before the revocation is revoked; everything after was refused.
    assert_eq!(
        count(
            &schema,
            &format!("family_id = '{fam}' AND revoked_at IS NULL"),
            "tokens"
        )
        .await,
        0
    );
    let stored = count(&schema, &format!("family_id = '{fam}'"), "tokens").await;
    assert_eq!(stored as usize + refused, 63);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usernames_differing_in_case_race_to_one_account() {
    let Some((a, b, schema)) = two_nodes().await else {
        return;
    };
    let base = format!("Ada{}", buzzgate_domain::ids::new_uuid(&OsRandom).simple());
    let names = [
        base.to_uppercase(),
        base.to_lowercase(),
        base.to_lowercase(),
    ];
    let created = fx::race_usernames([a, b], names).await;
    assert_eq!(created, 1);
    assert_eq!(count(&schema, "TRUE", "users").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_client_while_its_tokens_rotate_returns_every_hash() {
    let Some((a, b, schema)) = two_nodes().await else {
        return;
    };
    let (u, c) = fx::user_and_client(a.as_ref(), a.as_ref()).await;
    let mut presented = Vec::new();
    for _ in 0..16 {
        let (_, r) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fx::family()));
        TokenStore::insert(a.as_ref(), std::slice::from_ref(&r))
            .await
            .unwrap();
        presented.push(r);
    }
    let rotations: Vec<_> = presented
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (hash, rot) = (r.hash, fx::rotation(&c.id, now(), Duration::seconds(10)));
            tokio::spawn(async move { node.rotate_refresh(&hash, &rot).await })
        })
        .collect();
    let deleter = {
        let (b, id) = (b.clone(), c.id.clone());
        tokio::spawn(async move { ClientStore::delete(b.as_ref(), &id).await })
    };
    let mut successors = Vec::new();
    for t in rotations {
        match t.await.unwrap().expect("a race is never an error") {
            RotationDecision::Rotate {
                access, refresh, ..
            } => successors.extend([access.hash, refresh.hash]),
            RotationDecision::Reject(_) => {}
            other => panic!("{other:?}"),
        }
    }
    let deleted: HashSet<TokenHash> = deleter
        .await
        .unwrap()
        .expect("no error")
        .expect("the client existed")
        .into_iter()
        .collect();
    for h in presented.iter().map(|r| r.hash).chain(successors) {
        assert!(
            deleted.contains(&h),
            "a deleted token's hash was not returned"
        );
    }
    assert_eq!(count(&schema, "TRUE", "tokens").await, 0);
}

// ----- cancellation ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_dropped_midway_leaves_the_pool_usable_and_nothing_locked() {
    let Some(schema) = common::fresh_schema().await else {
        return;
    };
    // One connection, so a connection left inside a transaction would be the next one used.
    let store = PgStore::builder(&common::url())
        .schema(&schema)
        .max_connections(1)
        .acquire_timeout(StdDuration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let other = common::store_in(&schema).await.unwrap();
    let (u, c) = fx::user_and_client(&store, &store).await;
    store
        .credit(u.id, &Currency::yellow(), 10_000, now())
        .await
        .unwrap();
    // Cancel spends (several statements in one transaction) at many different instants.
    let mut cancelled = 0;
    for i in 0..60u64 {
        let req = spend_in(u.id, &c.id, "yellow", &format!("cancel{i}"), 1_000_000);
        let fut = store.spend(&req);
        if tokio::time::timeout(StdDuration::from_micros(50 * i), fut)
            .await
            .is_err()
        {
            cancelled += 1;
        }
    }
    assert!(
        cancelled > 0,
        "no spend was cancelled; the test proves nothing"
    );
    // The pool's connection is not inside a transaction: SAVEPOINT fails outside one.
    let mut conn = store.pool().acquire().await.unwrap();
    assert!(
        conn.execute("SAVEPOINT probe").await.is_err(),
        "a connection came back to the pool inside a transaction"
    );
    drop(conn);
    // The balance row is not locked by a leftover transaction: another node spends at once.
    let req = spend_in(u.id, &c.id, "yellow", "after", 1_000_000);
    let outcome = tokio::time::timeout(StdDuration::from_secs(5), other.spend(&req))
        .await
        .expect("the balance row is still locked")
        .unwrap();
    assert!(matches!(outcome, SpendOutcome::Spent { .. }));
    // And each cancelled spend happened entirely or not at all.
    let mut raw = common::raw().await.unwrap();
    let (spent, entries): (i64, i64) = sqlx::query_as(&format!(
        "SELECT COALESCE(SUM(amount), 0)::BIGINT, count(*) FROM \"{schema}\".buzz_ledger"
    ))
    .fetch_one(&mut raw)
    .await
    .unwrap();
    assert_eq!(
        store.balances(u.id).await.unwrap(),
        vec![(Currency::yellow(), 10_000 - spent)]
    );
    assert!(entries >= 1);
    store.ping().await.unwrap();
    raw.close().await.unwrap();
}
