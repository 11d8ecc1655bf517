//! Shared test setup: a fresh schema per test (so tests run in parallel on one database), or a
//! skip when Postgres is down. Schemas older than an hour are dropped on the way.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use buzzgate_domain::ports::OsRandom;
use buzzgate_store_postgres::PgStore;
use buzzgate_testkit::Ports;
use sqlx::{Connection, Executor, PgConnection};

/// What the comment of every test schema starts with; the creation time (unix seconds)
/// follows.
const MARK: &str = "buzzgate test schema, created at ";
/// Test schemas older than this are dropped by the next test run.
const MAX_AGE_SECS: i64 = 3600;

static SWEPT: AtomicBool = AtomicBool::new(false);

pub fn url() -> String {
    buzzgate_testkit::postgres_url()
}

/// A plain connection for setup and for looking behind the store's back.
pub async fn raw() -> Result<PgConnection, String> {
    match tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(&url())).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out".into()),
    }
}

/// Creates `bg_<uuid>` (stamped with its creation time) and returns its name, or `None` after
/// printing `SKIP postgres: <why>` (a panic when `BUZZGATE_REQUIRE_SERVICES=1`).
pub async fn fresh_schema() -> Option<String> {
    let mut conn = match raw().await {
        Ok(c) => c,
        Err(e) => return buzzgate_testkit::skip("postgres", &e),
    };
    if !SWEPT.swap(true, Ordering::SeqCst) {
        drop_old_schemas(&mut conn).await;
    }
    let name = format!("bg_{}", buzzgate_domain::ids::new_uuid(&OsRandom).simple());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    conn.execute(format!("CREATE SCHEMA \"{name}\"").as_str())
        .await
        .expect("create schema");
    conn.execute(format!("COMMENT ON SCHEMA \"{name}\" IS '{MARK}{now}'").as_str())
        .await
        .expect("comment schema");
    Some(name)
}

/// Drops the test schemas created more than an hour ago (best effort).
async fn drop_old_schemas(conn: &mut PgConnection) {
    let Ok(rows) = sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT nspname::text, obj_description(oid, 'pg_namespace') FROM pg_namespace \
         WHERE nspname LIKE 'bg\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    else {
        return;
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (name, comment) in rows {
        let created = comment
            .as_deref()
            .and_then(|c| c.strip_prefix(MARK))
            .and_then(|t| t.parse::<i64>().ok());
        if created.is_some_and(|t| now - t > MAX_AGE_SECS) {
            let _ = conn
                .execute(format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE").as_str())
                .await;
        }
    }
}

/// A store (its own pool: another "node") in `schema`.
pub async fn store_in(schema: &str) -> Option<PgStore> {
    match PgStore::builder(&url())
        .schema(schema)
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect()
        .await
    {
        Ok(s) => Some(s),
        Err(e) => buzzgate_testkit::skip("postgres", &e.to_string()),
    }
}

/// A store in a fresh schema, with the schema's name.
pub async fn store() -> Option<(PgStore, String)> {
    let schema = fresh_schema().await?;
    let store = store_in(&schema).await?;
    Some((store, schema))
}

/// Every port this adapter provides over `store`.
pub fn ports(store: PgStore, node2: Option<Ports>) -> Ports {
    let store = Arc::new(store);
    Ports {
        node2: node2.map(Box::new),
        rate_limiter: Some(store.clone()),
        ..Ports::durable(store)
    }
}
