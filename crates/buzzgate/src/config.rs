//! Configuration: defaults, then an optional TOML file, then environment variables (env wins).
//! One table documents every key (README and docs/operations.md).

use std::path::Path;

use serde::Deserialize;

/// Every setting of the server and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `BUZZGATE_LISTEN`: the address to serve on.
    pub listen: String,
    /// `BUZZGATE_ISSUER`: the public base URL (`iss`), default `http://<listen>`.
    pub issuer: String,
    /// `DATABASE_URL`: `sqlite://buzzgate.db` (default) or `postgres://…`.
    pub database_url: String,
    /// `BUZZGATE_DATABASE_SCHEMA`: Postgres schema to use (created if missing).
    pub database_schema: Option<String>,
    /// `REDIS_URL`: optional; codes, device codes, sessions, rate limits and the token cache.
    pub redis_url: Option<String>,
    /// `BUZZGATE_REDIS_PREFIX`: key prefix (hash-tagged for Redis Cluster).
    pub redis_prefix: String,
    /// `BUZZGATE_RATE_LIMIT_*`, per minute, `None` = off: authenticated token and device
    /// requests per client (`TOKEN`), authorize requests per user, revoke requests per
    /// address, failed client authentications per address (`CLIENT_AUTH`), failed sign-ins
    /// per account (`LOGIN_ACCOUNT`) and per address (`LOGIN_IP`).
    pub rate_limit_token: Option<u32>,
    pub rate_limit_authorize: Option<u32>,
    pub rate_limit_revoke: Option<u32>,
    pub rate_limit_client_auth: Option<u32>,
    pub rate_limit_login_account: Option<u32>,
    pub rate_limit_login_ip: Option<u32>,
    /// `BUZZGATE_REFRESH_GRACE_SECONDS`: refresh reuse inside this window is a retry.
    pub refresh_grace_seconds: u32,
    /// `BUZZGATE_TOKEN_PREFIX`: prefix of every opaque token.
    pub token_prefix: String,
    /// `BUZZGATE_SCOPE_AS_ARRAY`: emit `scope` as Civitai's `["<decimal>"]`.
    pub scope_as_array: bool,
    /// `BUZZGATE_TRUSTED_PROXIES`: how many proxies of the operator's own stand in front of
    /// the server; the client address is the `X-Forwarded-For` entry the outermost one
    /// appended. 0 (default): the socket peer. `BUZZGATE_TRUST_FORWARDED=true` means 1.
    pub trusted_proxies: usize,
    /// `BUZZGATE_SIGNING_KEY_FILE`: PKCS#8 PEM of the ES256 id_token key; created if missing.
    pub signing_key_file: String,
    /// `BUZZGATE_SWEEP_INTERVAL_SECONDS`: how often expired rows are swept (0 = never).
    pub sweep_interval_seconds: u64,
    /// `BUZZGATE_CACHE_MAX_MB`: the in-process token cache's bound, in MiB (0: no cache).
    pub cache_max_mb: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            issuer: String::new(),
            database_url: "sqlite://buzzgate.db".into(),
            database_schema: None,
            redis_url: None,
            redis_prefix: "{bg}:".into(),
            rate_limit_token: Some(1200),
            rate_limit_authorize: Some(10),
            rate_limit_revoke: Some(20),
            rate_limit_client_auth: Some(20),
            rate_limit_login_account: Some(10),
            rate_limit_login_ip: Some(30),
            refresh_grace_seconds: 10,
            token_prefix: "civitai_".into(),
            scope_as_array: false,
            trusted_proxies: 0,
            signing_key_file: "buzzgate-signing-key.pem".into(),
            sweep_interval_seconds: 300,
            cache_max_mb: 16,
        }
    }
}

/// The TOML file: the same keys in snake_case, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    issuer: Option<String>,
    database_url: Option<String>,
    database_schema: Option<String>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    rate_limit_token: Option<toml::Value>,
    rate_limit_authorize: Option<toml::Value>,
    rate_limit_revoke: Option<toml::Value>,
    rate_limit_client_auth: Option<toml::Value>,
    rate_limit_login_account: Option<toml::Value>,
    rate_limit_login_ip: Option<toml::Value>,
    refresh_grace_seconds: Option<u32>,
    token_prefix: Option<String>,
    scope_as_array: Option<bool>,
    trust_forwarded: Option<bool>,
    trusted_proxies: Option<usize>,
    signing_key_file: Option<String>,
    sweep_interval_seconds: Option<u64>,
    cache_max_mb: Option<u64>,
}

/// `off` (or `0`) disables a limit; otherwise a positive number of requests per minute.
pub fn parse_limit(name: &str, v: &str) -> Result<Option<u32>, String> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("off") || v == "0" {
        return Ok(None);
    }
    v.parse::<u32>()
        .map(Some)
        .map_err(|_| format!("{name}: expected requests per minute or `off`, got `{v}`"))
}

fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!("{name}: expected true or false, got `{other}`")),
    }
}

fn toml_limit(name: &str, v: &toml::Value) -> Result<Option<u32>, String> {
    match v {
        toml::Value::Integer(i) => parse_limit(name, &i.to_string()),
        toml::Value::String(s) => parse_limit(name, s),
        _ => Err(format!("{name}: expected a number or \"off\"")),
    }
}

impl Config {
    /// Defaults, then `file` (if given), then the environment read through `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, String> {
        let mut c = Config::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let f: FileConfig =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            c.apply_file(f)?;
        }
        c.apply_env(&env)?;
        c.finish()
    }

    fn apply_file(&mut self, f: FileConfig) -> Result<(), String> {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = f.$field { self.$field = v; } )* };
        }
        set!(
            listen,
            issuer,
            database_url,
            redis_prefix,
            refresh_grace_seconds,
            token_prefix,
            scope_as_array,
            trusted_proxies,
            signing_key_file,
            sweep_interval_seconds,
            cache_max_mb
        );
        if f.trust_forwarded == Some(true) && f.trusted_proxies.is_none() {
            self.trusted_proxies = 1;
        }
        if f.database_schema.is_some() {
            self.database_schema = f.database_schema;
        }
        if f.redis_url.is_some() {
            self.redis_url = f.redis_url;
        }
        if let Some(v) = &f.rate_limit_token {
            self.rate_limit_token = toml_limit("rate_limit_token", v)?;
        }
        if let Some(v) = &f.rate_limit_authorize {
            self.rate_limit_authorize = toml_limit("rate_limit_authorize", v)?;
        }
        if let Some(v) = &f.rate_limit_revoke {
            self.rate_limit_revoke = toml_limit("rate_limit_revoke", v)?;
        }
        if let Some(v) = &f.rate_limit_client_auth {
            self.rate_limit_client_auth = toml_limit("rate_limit_client_auth", v)?;
        }
        if let Some(v) = &f.rate_limit_login_account {
            self.rate_limit_login_account = toml_limit("rate_limit_login_account", v)?;
        }
        if let Some(v) = &f.rate_limit_login_ip {
            self.rate_limit_login_ip = toml_limit("rate_limit_login_ip", v)?;
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("BUZZGATE_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("BUZZGATE_ISSUER") {
            self.issuer = v;
        }
        if let Some(v) = get("DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = get("BUZZGATE_DATABASE_SCHEMA") {
            self.database_schema = Some(v);
        }
        if let Some(v) = get("REDIS_URL") {
            self.redis_url = Some(v);
        }
        if let Some(v) = get("BUZZGATE_REDIS_PREFIX") {
            self.redis_prefix = v;
        }
        for (key, slot) in [
            ("BUZZGATE_RATE_LIMIT_TOKEN", &mut self.rate_limit_token),
            (
                "BUZZGATE_RATE_LIMIT_AUTHORIZE",
                &mut self.rate_limit_authorize,
            ),
            ("BUZZGATE_RATE_LIMIT_REVOKE", &mut self.rate_limit_revoke),
            (
                "BUZZGATE_RATE_LIMIT_CLIENT_AUTH",
                &mut self.rate_limit_client_auth,
            ),
            (
                "BUZZGATE_RATE_LIMIT_LOGIN_ACCOUNT",
                &mut self.rate_limit_login_account,
            ),
            (
                "BUZZGATE_RATE_LIMIT_LOGIN_IP",
                &mut self.rate_limit_login_ip,
            ),
        ] {
            if let Some(v) = get(key) {
                *slot = parse_limit(key, &v)?;
            }
        }
        if let Some(v) = get("BUZZGATE_REFRESH_GRACE_SECONDS") {
            self.refresh_grace_seconds = v.trim().parse().map_err(|_| {
                format!("BUZZGATE_REFRESH_GRACE_SECONDS: expected seconds, got `{v}`")
            })?;
        }
        if let Some(v) = get("BUZZGATE_TOKEN_PREFIX") {
            self.token_prefix = v;
        }
        if let Some(v) = get("BUZZGATE_SCOPE_AS_ARRAY") {
            self.scope_as_array = parse_bool("BUZZGATE_SCOPE_AS_ARRAY", &v)?;
        }
        if let Some(v) = get("BUZZGATE_TRUST_FORWARDED")
            && parse_bool("BUZZGATE_TRUST_FORWARDED", &v)?
            && get("BUZZGATE_TRUSTED_PROXIES").is_none()
        {
            self.trusted_proxies = 1;
        }
        if let Some(v) = get("BUZZGATE_TRUSTED_PROXIES") {
            self.trusted_proxies = v.trim().parse().ok().filter(|n| *n <= 16).ok_or_else(|| {
                format!("BUZZGATE_TRUSTED_PROXIES: expected a count from 0 to 16, got `{v}`")
            })?;
        }
        if let Some(v) = get("BUZZGATE_SIGNING_KEY_FILE") {
            self.signing_key_file = v;
        }
        if let Some(v) = get("BUZZGATE_CACHE_MAX_MB") {
            self.cache_max_mb = v
                .trim()
                .parse()
                .ok()
                .filter(|mb| *mb <= 1024 * 1024)
                .ok_or_else(|| format!("BUZZGATE_CACHE_MAX_MB: expected MiB, got `{v}`"))?;
        }
        if let Some(v) = get("BUZZGATE_SWEEP_INTERVAL_SECONDS") {
            self.sweep_interval_seconds = v.trim().parse().map_err(|_| {
                format!("BUZZGATE_SWEEP_INTERVAL_SECONDS: expected seconds, got `{v}`")
            })?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Config, String> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "BUZZGATE_LISTEN: expected host:port such as 127.0.0.1:8080, got `{}`",
                self.listen
            ));
        }
        if self.issuer.is_empty() {
            self.issuer = format!("http://{}", self.listen);
        }
        while self.issuer.ends_with('/') {
            self.issuer.pop();
        }
        if !(self.issuer.starts_with("http://") || self.issuer.starts_with("https://")) {
            return Err(format!(
                "BUZZGATE_ISSUER: expected an http(s) URL, got `{}`",
                self.issuer
            ));
        }
        if self.refresh_grace_seconds > 3600 {
            return Err("BUZZGATE_REFRESH_GRACE_SECONDS: at most 3600".into());
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(format!(
                "DATABASE_URL: expected sqlite://… or postgres://…, got a `{}` URL",
                self.database_url.split(':').next().unwrap_or("")
            ));
        }
        Ok(self)
    }

    /// The token cache's bound in bytes.
    pub fn cache_max_bytes(&self) -> u64 {
        self.cache_max_mb.saturating_mul(1024 * 1024)
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_are_the_contract() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://buzzgate.db");
        assert_eq!(c.rate_limit_token, Some(1200));
        assert_eq!(c.rate_limit_authorize, Some(10));
        assert_eq!(c.rate_limit_client_auth, Some(20));
        assert_eq!(
            (c.rate_limit_login_account, c.rate_limit_login_ip),
            (Some(10), Some(30))
        );
        assert_eq!(c.trusted_proxies, 0);
        assert_eq!(c.refresh_grace_seconds, 10);
        assert!(!c.is_postgres());
    }

    #[test]
    fn env_overrides_and_off_disables() {
        let c = Config::load(
            None,
            env(&[
                ("BUZZGATE_LISTEN", "0.0.0.0:9000"),
                ("BUZZGATE_RATE_LIMIT_TOKEN", "off"),
                ("BUZZGATE_RATE_LIMIT_REVOKE", "5"),
                ("DATABASE_URL", "postgres://x@h/db"),
                ("BUZZGATE_ISSUER", "https://auth.example/"),
            ]),
        )
        .unwrap();
        assert_eq!(c.rate_limit_token, None);
        assert_eq!(c.rate_limit_revoke, Some(5));
        assert_eq!(c.issuer, "https://auth.example");
        assert!(c.is_postgres());
    }

    #[test]
    fn trusted_proxies_count_and_the_old_switch() {
        let c = Config::load(None, env(&[("BUZZGATE_TRUST_FORWARDED", "true")])).unwrap();
        assert_eq!(c.trusted_proxies, 1);
        let c = Config::load(
            None,
            env(&[
                ("BUZZGATE_TRUST_FORWARDED", "true"),
                ("BUZZGATE_TRUSTED_PROXIES", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(c.trusted_proxies, 2);
        let e = Config::load(None, env(&[("BUZZGATE_TRUSTED_PROXIES", "many")])).unwrap_err();
        assert!(e.contains("BUZZGATE_TRUSTED_PROXIES"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::load(None, env(&[("BUZZGATE_RATE_LIMIT_TOKEN", "lots")])).unwrap_err();
        assert!(e.contains("BUZZGATE_RATE_LIMIT_TOKEN"), "{e}");
        let e = Config::load(None, env(&[("BUZZGATE_LISTEN", "nowhere")])).unwrap_err();
        assert!(e.contains("BUZZGATE_LISTEN"), "{e}");
        let e = Config::load(None, env(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(e.contains("mysql"), "{e}");
    }

    #[test]
    fn file_then_env() {
        let dir = std::env::temp_dir().join(format!("bgcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("buzzgate.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7000\"\nrate_limit_authorize = \"off\"\nrefresh_grace_seconds = 0\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), env(&[("BUZZGATE_LISTEN", "127.0.0.1:7001")])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7001");
        assert_eq!(c.rate_limit_authorize, None);
        assert_eq!(c.refresh_grace_seconds, 0);
        std::fs::write(&path, "unknown_key = 1\n").unwrap();
        assert!(Config::load(Some(&path), env(&[])).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
