//! The shared contract suite over the SQLite adapter: once on a fresh database file with a
//! second connection pool on the same file as `node2` (concurrency cases split their tasks
//! between the two pools), once on a private in-memory database.

mod common;

use buzzgate_store_sqlite::SqliteStore;
use buzzgate_testkit::Ports;

/// A fresh file; `node2` is a second, independent pool over it (another "node").
async fn file_fixture() -> Option<Ports> {
    let url = common::url_of(&common::fresh_path());
    let first = SqliteStore::connect(&url).await.expect("open the database");
    let second = SqliteStore::connect(&url).await.expect("open it again");
    let mut ports = common::ports_of(first);
    ports.node2 = Some(Box::new(common::ports_of(second)));
    Some(ports)
}

async fn memory_fixture() -> Option<Ports> {
    let store = SqliteStore::in_memory().await.expect("in-memory database");
    Some(common::ports_of(store))
}

buzzgate_testkit::contract_suite!(sqlite_file, async { file_fixture().await });
buzzgate_testkit::contract_suite!(sqlite_memory, async { memory_fixture().await });
