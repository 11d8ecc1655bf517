//! `buzzgate config check` connecting to what the configuration names, as an operator runs
//! it: the real binary, a closed port, a bad URL, a good SQLite file, and (when one answers)
//! a good Postgres (docs/operations.md, "Admin CLI").

use std::net::TcpListener;
use std::process::Command;

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn check(env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!("bgconn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_buzzgate"));
    cmd.args(["config", "check"])
        .env_remove("BUZZGATE_CONFIG")
        .env_remove("REDIS_URL")
        .env("BUZZGATE_SIGNING_KEY_FILE", dir.join("key.pem"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_postgres_port_is_explained_with_status_1() {
    let url = format!("postgres://buzz:s3cret@127.0.0.1:{}/buzz", closed_port());
    let (code, out, err) = check(&[("DATABASE_URL", &url)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("configuration OK"), "{out}");
    assert!(out.contains("database: FAILED"), "{out}");
    assert!(
        err.contains("DATABASE_URL: cannot reach Postgres at 127.0.0.1:")
            && err.contains("(connection refused). Is the server running and is the port right?"),
        "{err}"
    );
    assert!(!format!("{out}{err}").contains("s3cret"), "{out}{err}");
}

#[test]
fn an_unparseable_database_url_is_status_2() {
    let (code, out, err) = check(&[("DATABASE_URL", "postgres://u@[nope/x")]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("DATABASE_URL: not a valid Postgres URL"),
        "{err}"
    );
}

#[test]
fn a_good_sqlite_file_and_a_closed_redis_port() {
    let dir = std::env::temp_dir().join(format!("bgconn-sqlite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}/bg.db", dir.display());
    // Not created yet: the directory is writable, and the check creates nothing.
    let (code, out, err) = check(&[("DATABASE_URL", &db)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(not created yet;"), "{out}");
    assert!(out.contains("redis: not configured"), "{out}");
    assert!(!dir.join("bg.db").exists());
    // Migrated: up to date.
    let out = Command::new(env!("CARGO_BIN_EXE_buzzgate"))
        .arg("migrate")
        .env_remove("BUZZGATE_CONFIG")
        .env("DATABASE_URL", &db)
        .env("BUZZGATE_SIGNING_KEY_FILE", dir.join("key.pem"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let (code, out, err) = check(&[("DATABASE_URL", &db)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(writable): schema up to date ("), "{out}");
    // Redis on a closed port: status 1, named.
    let redis = format!("redis://127.0.0.1:{}", closed_port());
    let (code, out, err) = check(&[("DATABASE_URL", &db), ("REDIS_URL", &redis)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("redis: FAILED"), "{out}");
    assert!(
        err.contains("REDIS_URL: cannot reach Redis at 127.0.0.1:")
            && err.contains("(connection refused)"),
        "{err}"
    );
    // A Redis URL that is not one: status 2.
    let (code, _, err) = check(&[("DATABASE_URL", &db), ("REDIS_URL", "http://x")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("REDIS_URL: not a valid Redis URL"), "{err}");
    // A directory that does not exist: status 1, named.
    let missing = format!("sqlite://{}/no/such/dir/bg.db", dir.display());
    let (code, _, err) = check(&[("DATABASE_URL", &missing)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not exist; create it first"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_good_postgres_and_a_missing_database() {
    let url = buzzgate_testkit::postgres_url();
    let parsed = url::Url::parse(&url).unwrap();
    let at = format!(
        "{}:{}",
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port().unwrap_or(5432)
    );
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&at)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(1)).is_ok()
        });
    if !reachable {
        buzzgate_testkit::skip::<()>("Postgres", &format!("nothing answers at {at}"));
        return;
    }
    let (code, out, err) = check(&[("DATABASE_URL", &url)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("database: postgres at {at}")),
        "{out}"
    );
    let mut missing = parsed.clone();
    missing.set_path("/bg_no_such_db");
    let (code, _, err) = check(&[("DATABASE_URL", missing.as_str())]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("database \"bg_no_such_db\" does not exist"),
        "{err}"
    );
}
