//! `buzzgate config check`'s connectivity half: connect to `DATABASE_URL` (and `REDIS_URL`
//! when set) the way a node would, each within [`TIMEOUT`], and say what is wrong in words an
//! operator can act on. Nothing is created or migrated here.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::config::Config;

/// The longest each service is waited for.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Exit status when a service cannot be reached or refuses the node (`buzzgate config
/// check`); 2 stays "the configuration cannot be loaded or a URL cannot be parsed".
pub const UNREACHABLE: u8 = 1;
/// Exit status for a configuration that cannot be loaded, or a URL that cannot be parsed.
pub const BAD_CONFIGURATION: u8 = 2;

/// What one service's check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Reachable; the text describes what was found.
    Ok(String),
    /// The URL itself is wrong (status 2).
    BadUrl(String),
    /// Unreachable, refused, or not usable (status 1).
    Failed(String),
}

/// Runs the checks and prints the report: the configuration's summary and one line per
/// service on stdout, each problem on stderr. Returns the exit status.
pub async fn run(cfg: &Config) -> u8 {
    let mut report = crate::cli::config_report(cfg);
    let mut problems = Vec::new();
    let mut status = 0;
    let mut checks = vec![("DATABASE_URL", "database", database(cfg).await)];
    checks.push(match &cfg.redis_url {
        Some(url) => ("REDIS_URL", "redis", redis(url).await),
        None => (
            "REDIS_URL",
            "redis",
            Finding::Ok("not configured (single node)".into()),
        ),
    });
    for (setting, label, finding) in checks {
        match finding {
            Finding::Ok(text) => report.push_str(&format!("{label}: {text}\n")),
            Finding::BadUrl(text) => {
                report.push_str(&format!("{label}: FAILED\n"));
                problems.push(format!("{setting}: {text}"));
                status = status.max(BAD_CONFIGURATION);
            }
            Finding::Failed(text) => {
                report.push_str(&format!("{label}: FAILED\n"));
                problems.push(format!("{setting}: {text}"));
                status = status.max(UNREACHABLE);
            }
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().write_all(report.as_bytes());
    let mut err = std::io::stderr();
    for p in &problems {
        let _ = writeln!(err, "buzzgate: {p}");
    }
    status
}

/// The database check for the configured kind.
pub async fn database(cfg: &Config) -> Finding {
    if cfg.is_postgres() {
        postgres(&cfg.database_url, cfg.database_schema.as_deref()).await
    } else {
        sqlite(&cfg.database_url).await
    }
}

/// "N of M migrations applied" from the versions in the database and those of this build.
fn migrations_state(applied: &[(i64, bool)], known: &[i64], fix: &str) -> Result<String, String> {
    if let Some((v, _)) = applied.iter().find(|(_, ok)| !ok) {
        return Err(format!(
            "migration {v} failed part-way in this database; restore it from a backup or \
             repair it by hand before starting a node"
        ));
    }
    if let Some((v, _)) = applied.iter().find(|(v, _)| !known.contains(v)) {
        return Err(format!(
            "the database has migration {v}, which this build does not know: it was \
             migrated by a newer Buzzgate. Run that version (or newer) instead"
        ));
    }
    let n = applied.len();
    let m = known.len();
    Ok(if n == m {
        format!("schema up to date ({m} migrations)")
    } else if n == 0 {
        format!("no schema yet ({fix} creates it: {m} migrations)")
    } else {
        format!(
            "{n} of {m} migrations applied ({fix} applies the other {})",
            m - n
        )
    })
}

async fn postgres(url: &str, schema: Option<&str>) -> Finding {
    let opts = match PgConnectOptions::from_str(url) {
        Ok(o) => o,
        Err(e) => {
            return Finding::BadUrl(format!(
                "not a valid Postgres URL ({}); the form is postgres://user:password@host:5432/database",
                redact(&e.to_string(), url)
            ));
        }
    };
    let at = format!("{}:{}", opts.get_host(), opts.get_port());
    let user = opts.get_username().to_owned();
    let db = opts
        .get_database()
        .unwrap_or(opts.get_username())
        .to_owned();
    let conn = match tokio::time::timeout(TIMEOUT, opts.connect()).await {
        Err(_) => {
            return Finding::Failed(format!(
                "Postgres at {at} did not answer within {} s. Is the host right, and does a \
                 firewall let this machine through?",
                TIMEOUT.as_secs()
            ));
        }
        Ok(Err(e)) => return Finding::Failed(postgres_error(&e, &at, &user, &db, url)),
        Ok(Ok(c)) => c,
    };
    let mut conn = conn;
    if let Some(s) = schema {
        let set = format!("SET search_path TO \"{}\"", s.replace('"', ""));
        if let Err(e) = sqlx::query(&set).execute(&mut conn).await {
            return Finding::Failed(format!("cannot use schema {s}: {e}"));
        }
    }
    let rows: Result<Vec<(i64, bool)>, sqlx::Error> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await;
    let _ = conn.close().await;
    let applied = match rows {
        Ok(r) => r,
        Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("42P01") => Vec::new(),
        Err(e) => {
            return Finding::Failed(format!(
                "connected to Postgres at {at}, but cannot read the migrations table: {e}"
            ));
        }
    };
    let known = buzzgate_store_postgres::migration_versions();
    match migrations_state(&applied, &known, "`buzzgate migrate` or the first start") {
        Ok(state) => Finding::Ok(format!(
            "postgres at {at}, database {db} as {user}: {state}"
        )),
        Err(e) => Finding::Failed(e),
    }
}

/// A Postgres connection error in words.
fn postgres_error(e: &sqlx::Error, at: &str, user: &str, db: &str, url: &str) -> String {
    match e {
        sqlx::Error::Io(io) => {
            let why = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                std::io::ErrorKind::TimedOut => "timed out".to_owned(),
                _ => io.to_string(),
            };
            format!(
                "cannot reach Postgres at {at} ({why}). Is the server running and is the port right?"
            )
        }
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some("28P01") => format!(
                "password authentication failed for user {user} at {at}. Check the user and \
                 password in the URL"
            ),
            Some("28000") => format!(
                "Postgres at {at} does not let user {user} in: {}. Check the user, and \
                 pg_hba.conf on the server",
                d.message()
            ),
            Some("3D000") => format!(
                "database \"{db}\" does not exist on the Postgres server at {at}. Create it \
                 (createdb {db}) or fix the name in the URL"
            ),
            Some("53300") => format!(
                "Postgres at {at} has no connection slots left (too many clients); lower \
                 BUZZGATE_DATABASE_MAX_CONNECTIONS across the nodes or raise max_connections"
            ),
            _ => format!("Postgres at {at} refused the connection: {}", d.message()),
        },
        sqlx::Error::Tls(t) => format!("TLS with Postgres at {at} failed: {t}"),
        other => format!(
            "cannot connect to Postgres at {at}: {}",
            redact(&other.to_string(), url)
        ),
    }
}

/// `text` without the password of `url`, if it appears in it.
fn redact(text: &str, url: &str) -> String {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    {
        Some(p) if !p.is_empty() => text.replace(&p, "***"),
        _ => text.to_owned(),
    }
}

async fn sqlite(url: &str) -> Finding {
    let opts = match SqliteConnectOptions::from_str(url) {
        Ok(o) => o,
        Err(e) => {
            return Finding::BadUrl(format!(
                "not a valid SQLite URL ({e}); the form is sqlite://path/to/buzzgate.db"
            ));
        }
    };
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    if rest.starts_with(":memory:") || rest.contains("mode=memory") {
        return Finding::Ok("sqlite in memory (nothing is kept when the node stops)".into());
    }
    let path = opts.get_filename().to_path_buf();
    let shown = path.display().to_string();
    if path.is_dir() {
        return Finding::Failed(format!(
            "{shown} is a directory; name the database file inside it, e.g. sqlite://{shown}/buzzgate.db"
        ));
    }
    if !path.exists() {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        };
        if !dir.is_dir() {
            return Finding::Failed(format!(
                "the directory {} of the SQLite file {shown} does not exist; create it first",
                dir.display()
            ));
        }
        let probe = dir.join(format!(".buzzgate-check-{}", std::process::id()));
        return match std::fs::File::create(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
                let m = buzzgate_store_sqlite::migration_versions().len();
                Finding::Ok(format!(
                    "sqlite file {shown} (not created yet; the first start or `buzzgate \
                     migrate` creates it with {m} migrations)"
                ))
            }
            Err(e) => Finding::Failed(format!(
                "cannot create the SQLite file {shown}: the directory {} is not writable ({e})",
                dir.display()
            )),
        };
    }
    if let Err(e) = std::fs::OpenOptions::new().append(true).open(&path) {
        return Finding::Failed(format!(
            "the SQLite file {shown} is not writable by this user ({e})"
        ));
    }
    let ro = opts.read_only(true).create_if_missing(false);
    let mut conn = match tokio::time::timeout(TIMEOUT, ro.connect()).await {
        Err(_) => {
            return Finding::Failed(format!(
                "the SQLite file {shown} did not open within {} s (is it on a stalled network disk?)",
                TIMEOUT.as_secs()
            ));
        }
        Ok(Err(e)) => return Finding::Failed(format!("cannot open the SQLite file {shown}: {e}")),
        Ok(Ok(c)) => c,
    };
    let rows: Result<Vec<(i64, bool)>, sqlx::Error> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await;
    let _ = conn.close().await;
    let applied = match rows {
        Ok(r) => r,
        Err(sqlx::Error::Database(d)) if d.message().contains("no such table") => Vec::new(),
        Err(e) => {
            return Finding::Failed(format!(
                "{shown} is not a Buzzgate SQLite database, or is damaged: {e}"
            ));
        }
    };
    let known = buzzgate_store_sqlite::migration_versions();
    match migrations_state(&applied, &known, "`buzzgate migrate` or the first start") {
        Ok(state) => Finding::Ok(format!("sqlite file {shown} (writable): {state}")),
        Err(e) => Finding::Failed(e),
    }
}

/// `PING` on `url`.
pub async fn redis(url: &str) -> Finding {
    let client = match redis::Client::open(url) {
        Ok(c) => c,
        Err(e) => {
            return Finding::BadUrl(format!(
                "not a valid Redis URL ({}); the form is redis://[:password@]host:6379[/db] \
                 (rediss:// for TLS)",
                redact(&e.to_string(), url)
            ));
        }
    };
    let at = url::Url::parse(url)
        .ok()
        .map(|u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or("127.0.0.1"),
                u.port().unwrap_or(6379)
            )
        })
        .unwrap_or_else(|| "the configured address".into());
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(TIMEOUT, ping).await {
        Err(_) => Finding::Failed(format!(
            "Redis at {at} did not answer within {} s. Is the host right, and does a firewall \
             let this machine through?",
            TIMEOUT.as_secs()
        )),
        Ok(Ok(_)) => Finding::Ok(format!("redis at {at} answers PING")),
        Ok(Err(e)) if e.is_connection_refusal() => Finding::Failed(format!(
            "cannot reach Redis at {at} (connection refused). Is the server running and is the \
             port right?"
        )),
        Ok(Err(e)) if e.is_timeout() => {
            Finding::Failed(format!("Redis at {at} did not answer in time ({e})"))
        }
        Ok(Err(e)) => {
            let text = redact(&e.to_string(), url);
            if text.contains("WRONGPASS") || text.contains("NOAUTH") || text.contains("AUTH") {
                Finding::Failed(format!(
                    "Redis at {at} refused the credentials ({text}). Check the password (and \
                     user) in the URL"
                ))
            } else {
                Finding::Failed(format!("cannot use Redis at {at}: {text}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_states_are_named() {
        let known = [1, 2, 3];
        assert_eq!(
            migrations_state(&[(1, true), (2, true), (3, true)], &known, "x").unwrap(),
            "schema up to date (3 migrations)"
        );
        assert!(
            migrations_state(&[(1, true)], &known, "x")
                .unwrap()
                .starts_with("1 of 3 migrations applied")
        );
        assert!(
            migrations_state(&[], &known, "x")
                .unwrap()
                .starts_with("no schema yet")
        );
        assert!(
            migrations_state(&[(1, true), (9, true)], &known, "x")
                .unwrap_err()
                .contains("newer Buzzgate")
        );
        assert!(
            migrations_state(&[(1, false)], &known, "x")
                .unwrap_err()
                .contains("failed part-way")
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("bad postgres://u:s3cret@h/x", "postgres://u:s3cret@h/x"),
            "bad postgres://u:***@h/x"
        );
    }
}
