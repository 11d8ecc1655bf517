//! Shared test setup: database files in a per-process temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use buzzgate_domain::ports::OsRandom;
use buzzgate_store_sqlite::SqliteStore;
use buzzgate_testkit::Ports;

/// `<tmp>/buzzgate-sqlite-tests/<pid>/`: created once per test process; directories of
/// processes that no longer run are removed then (the contract fixture cannot delete its files
/// when a case ends, since the suite owns the stores).
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = std::env::temp_dir().join("buzzgate-sqlite-tests");
        remove_stale(&root);
        let dir = root.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("create the test directory");
        dir
    })
}

fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let gone = if Path::new("/proc/self").exists() {
            !Path::new("/proc").join(pid.to_string()).exists()
        } else {
            // Without /proc, only what is clearly old.
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 24 * 3600)
        };
        if gone && pid != std::process::id() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A database file path nobody has used.
pub fn fresh_path() -> PathBuf {
    dir().join(format!(
        "{}.db",
        buzzgate_domain::ids::new_uuid(&OsRandom).simple()
    ))
}

pub fn url_of(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A database file that is deleted (with its `-wal` and `-shm`) when dropped.
#[derive(Debug)]
pub struct TempDb {
    pub path: PathBuf,
}

impl TempDb {
    pub fn new() -> TempDb {
        TempDb { path: fresh_path() }
    }

    pub fn url(&self) -> String {
        url_of(&self.path)
    }

    pub async fn open(&self) -> SqliteStore {
        SqliteStore::connect(&self.url())
            .await
            .expect("open the database")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Every port of `store`.
pub fn ports_of(store: SqliteStore) -> Ports {
    Ports::durable(Arc::new(store))
}
