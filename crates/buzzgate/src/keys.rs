//! The id_token key file (`BUZZGATE_SIGNING_KEY_FILE`) and `buzzgate key rotate`.
//!
//! The file is PEM: the current key as PKCS#8 (`-----BEGIN PRIVATE KEY-----`), then each
//! retired key as SPKI (`-----BEGIN PUBLIC KEY-----`) after a line
//! `Buzzgate-Retired: kid=<kid> until=<RFC 3339>` saying until when it stays in the JWKS. A
//! file holding only the private key (what `serve` has always written) is a set with no
//! retired keys. One file, replaced whole by a rename, so every node of a cluster that reads
//! it (a Kubernetes Secret, a shared volume) sees one consistent set; a node reads it when it
//! starts and again when it changes ([`WatchedKeys`]; docs/operations.md, "Signing keys and
//! TLS").

use std::io::Write;
use std::path::Path;

use buzzgate_crypto::{Es256KeySet, Es256Signer, RetiredKey};
use buzzgate_domain::error::Error as DomainError;
use buzzgate_domain::ports::{IdTokenClaims, IdTokenSigner};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The line that introduces a retired public key.
const RETIRED: &str = "Buzzgate-Retired:";

/// How long an id_token lives: the access token's lifetime (the minter's `exp`).
pub fn id_token_lifetime() -> time::Duration {
    buzzgate_domain::token::Ttls::default().access
}

/// The default time a retired key stays published: an id_token's lifetime plus a day to roll
/// every node onto the new key (a node signs with the old key until it restarts).
pub const DEFAULT_KEEP_HOURS: u32 = 25;

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Parses a key file's text; retired keys whose window ended by `now` are dropped.
pub fn parse(text: &str, now: i64) -> Result<Es256KeySet, String> {
    let mut current: Option<Es256Signer> = None;
    let mut retired = Vec::new();
    let mut pending_until: Option<i64> = None;
    let mut block: Option<(String, String)> = None; // (label, text so far)
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let trimmed = line.trim();
        if let Some((label, body)) = block.as_mut() {
            body.push_str(trimmed);
            body.push('\n');
            if trimmed.starts_with("-----END ") {
                let (label, body) = (label.clone(), body.clone());
                block = None;
                match label.as_str() {
                    "PRIVATE KEY" => {
                        if current.is_some() {
                            return Err(format!("line {n}: a second private key"));
                        }
                        current = Some(Es256Signer::from_pem(&body)?);
                    }
                    "PUBLIC KEY" => {
                        let until = pending_until.take().ok_or_else(|| {
                            format!("line {n}: a public key without its `{RETIRED}` line")
                        })?;
                        retired.push(RetiredKey::from_pem(&body, until)?);
                    }
                    other => return Err(format!("line {n}: unexpected PEM block `{other}`")),
                }
            }
        } else if let Some(label) = trimmed
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            block = Some((label.to_owned(), format!("{trimmed}\n")));
        } else if let Some(rest) = trimmed.strip_prefix(RETIRED) {
            let until = rest
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("until="))
                .ok_or_else(|| format!("line {n}: `{RETIRED}` without `until=`"))?;
            let until = OffsetDateTime::parse(until, &Rfc3339)
                .map_err(|e| format!("line {n}: `until={until}` is not an RFC 3339 time: {e}"))?;
            pending_until = Some(until.unix_timestamp());
        } else if !trimmed.is_empty() && !trimmed.starts_with('#') {
            return Err(format!("line {n}: unexpected text outside a PEM block"));
        }
    }
    if block.is_some() {
        return Err("a PEM block is not closed".into());
    }
    let current = current.ok_or("no private key (-----BEGIN PRIVATE KEY-----)")?;
    Ok(Es256KeySet::new(current, retired, now))
}

/// The text of a key file holding `set`.
pub fn render(set: &Es256KeySet) -> Result<String, String> {
    let mut text = set.current().to_pem()?;
    for r in set.retired() {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "{RETIRED} kid={} until={}\n",
            r.kid(),
            rfc3339(r.until())
        ));
        text.push_str(&r.to_pem()?);
    }
    Ok(text)
}

/// Loads the key set from `path`, creating a file with a fresh key (mode 0600) on first start.
pub fn load_or_create(path: &str) -> Result<Es256KeySet, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, unix_now()).map_err(|e| format!("{path}: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let set = Es256KeySet::new(Es256Signer::generate()?, vec![], unix_now());
            write_new(path, &render(&set)?).map_err(|e| format!("cannot write {path}: {e}"))?;
            tracing::info!(
                path,
                kid = set.current().kid(),
                "created a new id_token signing key"
            );
            Ok(set)
        }
        Err(e) => Err(format!("cannot read {path}: {e}")),
    }
}

fn private_options() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Creates `path` (it must not exist) with `text`, mode 0600.
fn write_new(path: &str, text: &str) -> std::io::Result<()> {
    let mut f = private_options().open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Replaces `path` with `text` atomically: a temporary file next to it (mode 0600), flushed to
/// disk, renamed over it, and the directory flushed.
pub fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "key".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut f = private_options().open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename is durable once the directory is; not every platform can open one.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// How often a serving node looks at the key file's modification time.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The key set a serving node signs with, read again when the file changes (its modification
/// time or size; checked every [`RELOAD_EVERY`]), so a rotation reaches running nodes without
/// a restart. A file that cannot be read or parsed leaves the keys as they were (and is tried
/// again at the next check).
#[derive(Debug)]
pub struct WatchedKeys {
    path: String,
    set: std::sync::RwLock<std::sync::Arc<Es256KeySet>>,
}

fn stamp(path: &str) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl WatchedKeys {
    /// Loads (or creates) the key file and, inside a Tokio runtime, watches it every `every`;
    /// the watch ends when the last handle is dropped.
    pub fn load(path: &str, every: std::time::Duration) -> Result<std::sync::Arc<Self>, String> {
        let set = load_or_create(path)?;
        let mut seen = stamp(path);
        let keys = std::sync::Arc::new(WatchedKeys {
            path: path.to_owned(),
            set: std::sync::RwLock::new(std::sync::Arc::new(set)),
        });
        let weak = std::sync::Arc::downgrade(&keys);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(keys) = weak.upgrade() else { return };
                    let path = keys.path.clone();
                    let read = tokio::task::spawn_blocking(move || {
                        let now = stamp(&path);
                        if now == seen {
                            return (now, None);
                        }
                        let parsed = std::fs::read_to_string(&path)
                            .map_err(|e| e.to_string())
                            .and_then(|t| parse(&t, unix_now()));
                        (now, Some(parsed))
                    })
                    .await;
                    match read {
                        Ok((now, Some(Ok(set)))) => {
                            tracing::info!(
                                path = keys.path,
                                kid = set.current().kid(),
                                retired = set.retired().len(),
                                "read the id_token signing keys again"
                            );
                            *keys.set.write().unwrap_or_else(|p| p.into_inner()) =
                                std::sync::Arc::new(set);
                            seen = now;
                        }
                        Ok((_, Some(Err(e)))) => tracing::warn!(
                            path = keys.path,
                            error = %e,
                            "the signing key file changed but cannot be used; keeping the keys in use"
                        ),
                        Ok((_, None)) | Err(_) => {}
                    }
                }
            });
        }
        Ok(keys)
    }

    /// The keys in use now.
    pub fn current(&self) -> std::sync::Arc<Es256KeySet> {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl IdTokenSigner for WatchedKeys {
    fn sign(&self, claims: &IdTokenClaims) -> Result<String, DomainError> {
        self.current().sign(claims)
    }

    fn jwks(&self) -> serde_json::Value {
        self.current().jwks()
    }
}

/// What `rotate` did, for the operator.
#[derive(Debug)]
pub struct Rotated {
    pub new_kid: String,
    pub retired: Vec<(String, i64)>,
}

/// `buzzgate key rotate`: a new current key; the old one (and the retired keys still in their
/// window) stay published, the old one for `keep_hours` from now.
pub fn rotate(path: &str, keep_hours: u32) -> Result<Rotated, String> {
    let min = id_token_lifetime().whole_hours() + 1;
    if i64::from(keep_hours) < min {
        return Err(format!(
            "--keep-hours {keep_hours} is too short: id_tokens live {} s, keep the old key at \
             least {min} hours",
            id_token_lifetime().whole_seconds()
        ));
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{path} does not exist: there is no key to rotate (`serve` creates the first \
                 one; check BUZZGATE_SIGNING_KEY_FILE)"
            ));
        }
        Err(e) => return Err(format!("cannot read {path}: {e}")),
    };
    let now = unix_now();
    let set = parse(&text, now).map_err(|e| format!("{path}: {e}"))?;
    let until = now + i64::from(keep_hours) * 3600;
    let set = set.rotate(Es256Signer::generate()?, until, now);
    replace(Path::new(path), &render(&set)?).map_err(|e| format!("cannot write {path}: {e}"))?;
    Ok(Rotated {
        new_kid: set.current().kid().to_owned(),
        retired: set
            .retired()
            .iter()
            .map(|r| (r.kid().to_owned(), r.until()))
            .collect(),
    })
}

/// The report `buzzgate key rotate` prints.
pub fn report(path: &str, r: &Rotated) -> String {
    let mut s = format!("new signing key: kid={} in {path}\n", r.new_kid);
    for (kid, until) in &r.retired {
        s.push_str(&format!(
            "retired key: kid={kid}, published in the JWKS until {}\n",
            rfc3339(*until)
        ));
    }
    s.push_str(
        "Running nodes read the file again within 10 s of it changing (a Kubernetes Secret \
         reaches the pods within a minute or two); a node that reads another copy of it signs \
         with the old key until that copy is replaced or the node restarts.",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("bg-keys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_key_set_survives_a_round_trip() {
        let now = unix_now();
        let a = Es256Signer::generate().unwrap();
        let b = Es256Signer::generate().unwrap();
        let set = Es256KeySet::new(a, vec![], now)
            .rotate(b, now + 7200, now)
            .rotate(Es256Signer::generate().unwrap(), now + 3600, now);
        let text = render(&set).unwrap();
        assert_eq!(text.matches(RETIRED).count(), 2, "{text}");
        let again = parse(&text, now).unwrap();
        assert_eq!(again.current().kid(), set.current().kid());
        assert_eq!(again.retired(), set.retired());
        assert_eq!(render(&again).unwrap(), text);
    }

    #[test]
    fn a_single_pem_file_is_a_set_without_retired_keys() {
        let s = Es256Signer::generate().unwrap();
        let set = parse(&s.to_pem().unwrap(), unix_now()).unwrap();
        assert_eq!(set.current().kid(), s.kid());
        assert!(set.retired().is_empty());
    }

    #[test]
    fn expired_retired_keys_are_dropped_on_load_and_rotate() {
        let now = unix_now();
        let set = Es256KeySet::new(Es256Signer::generate().unwrap(), vec![], now).rotate(
            Es256Signer::generate().unwrap(),
            now + 60,
            now,
        );
        let text = render(&set).unwrap();
        assert_eq!(parse(&text, now).unwrap().retired().len(), 1);
        assert!(parse(&text, now + 60).unwrap().retired().is_empty());

        let dir = tmp("rotate");
        let path = dir.join("key.pem");
        let expired = Es256KeySet::new(Es256Signer::generate().unwrap(), vec![], now - 7200)
            .rotate(Es256Signer::generate().unwrap(), now - 1, now - 7200);
        std::fs::write(&path, render(&expired).unwrap()).unwrap();
        let current = expired.current().kid().to_owned();
        let r = rotate(path.to_str().unwrap(), DEFAULT_KEEP_HOURS).unwrap();
        assert_eq!(r.retired.len(), 1, "the expired key is gone: {r:?}");
        assert_eq!(r.retired[0].0, current);
        assert!(r.retired[0].1 >= now + i64::from(DEFAULT_KEEP_HOURS) * 3600);
        let set = load_or_create(path.to_str().unwrap()).unwrap();
        assert_eq!(set.current().kid(), r.new_kid);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temp file left"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_serving_node_picks_up_a_rotation_and_ignores_a_broken_file() {
        let dir = tmp("watch");
        let path = dir.join("key.pem");
        let path = path.to_str().unwrap();
        let keys = WatchedKeys::load(path, std::time::Duration::from_millis(20)).unwrap();
        let first = keys.current().current().kid().to_owned();
        let kids = |keys: &WatchedKeys| -> Vec<String> {
            keys.jwks()["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(kids(&keys), vec![first.clone()]);
        let r = rotate(path, DEFAULT_KEEP_HOURS).unwrap();
        let started = std::time::Instant::now();
        while keys.current().current().kid() != r.new_kid {
            assert!(
                started.elapsed().as_secs() < 10,
                "the rotation was not picked up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(kids(&keys), vec![r.new_kid.clone(), first]);
        // A file that cannot be parsed keeps the keys in use.
        replace(Path::new(path), "garbage\n").unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(keys.current().current().kid(), r.new_kid);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_and_short_windows_are_refused_in_words() {
        let pubkey = Es256Signer::generate().unwrap().public_pem().unwrap();
        let s = Es256Signer::generate().unwrap().to_pem().unwrap();
        assert!(parse("", 0).unwrap_err().contains("no private key"));
        assert!(
            parse(&format!("{s}{pubkey}"), 0)
                .unwrap_err()
                .contains("without its")
        );
        assert!(parse(&format!("{s}hello\n"), 0).is_err());
        assert!(parse(&format!("{s}{s}"), 0).unwrap_err().contains("second"));
        let dir = tmp("short");
        let path = dir.join("key.pem");
        assert!(
            rotate(path.to_str().unwrap(), 25)
                .unwrap_err()
                .contains("does not exist")
        );
        std::fs::write(&path, &s).unwrap();
        assert!(
            rotate(path.to_str().unwrap(), 1)
                .unwrap_err()
                .contains("too short")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
