//! Configuration: defaults, then an optional TOML file, then environment variables (env wins).
//! Every setting is declared once, in [`settings!`] below: its field, its environment
//! variable (the file key is the variable in lower case without `BUZZGATE_`), its default and
//! its parser; its doc comment is its meaning in the configuration table of docs/operations.md,
//! which `cargo xtask settings` generates from this declaration (`cargo xtask tidy` fails when
//! the table is stale, and `the_documented_defaults_are_the_defaults` below when a default it
//! shows is not the code's).

use std::path::Path;

use buzzgate_domain::catalogue::{Catalogue, PresetDef, ScopeDef};

/// The file-only keys of the scope catalogue: `scope_base` (`"civitai"`, the default, keeps
/// Civitai's scopes and adds the file's; `"empty"` replaces them), `always_granted_scope`
/// (default `UserRead`), `account_scope` (what a personal API key needs to manage its user's
/// apps; default `UserWrite`, else the always-granted scope), and the `[[scopes]]` and
/// `[[presets]]` tables (docs/scopes.md).
pub const SCOPE_FILE_KEYS: &[&str] = &[
    "scope_base",
    "always_granted_scope",
    "account_scope",
    "scopes",
    "presets",
];

/// Declares the settings: the `Config` struct, its `Default`, [`ENV_KEYS`], and the one
/// routine that applies a source (file or environment) to it.
macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $field:ident: $ty:ty = $default:expr, $env:literal, $parse:expr; )*) => {
        /// Every setting of the server and the CLI.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $( $(#[doc = $doc])* #[doc = concat!("\n\n`", $env, "`")] pub $field: $ty, )*
            /// The scope catalogue: Civitai's, extended or replaced by the file's `[[scopes]]`
            /// and `[[presets]]` ([`SCOPE_FILE_KEYS`]).
            pub scopes: Catalogue,
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $field: $default, )* scopes: Catalogue::civitai() }
            }
        }

        /// Every environment variable the server reads, in declaration order.
        pub const ENV_KEYS: &[&str] = &[$($env),*];

        impl Config {
            /// Applies the values `source` has for each setting (by environment variable
            /// name); `name` says which key a parse error is reported under.
            fn apply(
                &mut self,
                source: &dyn Fn(&str) -> Option<String>,
                name: &dyn Fn(&str) -> String,
            ) -> Result<(), String> {
                $(
                    if let Some(v) = source($env) {
                        self.$field = ($parse)(&name($env), v.trim())?;
                    }
                )*
                Ok(())
            }
        }
    };
}

settings! {
    /// The address to serve on.
    listen: String = "127.0.0.1:8080".into(), "BUZZGATE_LISTEN", text;
    /// The public base URL: `iss`, discovery, and cookies are `Secure` when it is https; empty
    /// means `http://<listen>` (`https://` when the node serves TLS).
    issuer: String = String::new(), "BUZZGATE_ISSUER", text;
    /// `sqlite://FILE` or `postgres://…`; the default is the SQLite file `./buzzgate.db`, created
    /// with its schema on first start.
    database_url: String = "sqlite://buzzgate.db".into(), "DATABASE_URL", text;
    /// The Postgres schema to use (created if missing).
    database_schema: Option<String> = None, "BUZZGATE_DATABASE_SCHEMA", some_text;
    /// Most Postgres connections one node holds (each in-flight transaction takes one); keep the
    /// nodes' sum under the server's `max_connections`; on a small machine more is slower
    /// (docs/benchmarks.md).
    database_max_connections: u32 = 10, "BUZZGATE_DATABASE_MAX_CONNECTIONS", between(1, 1000);
    /// Optional Redis: codes, device codes, sessions, shared rate limits, and the token cache with
    /// revocation fan-out.
    redis_url: Option<String> = None, "REDIS_URL", some_text;
    /// Redis key prefix (hash-tagged for Redis Cluster).
    redis_prefix: String = "{bg}:".into(), "BUZZGATE_REDIS_PREFIX", text;
    /// Authenticated token and device requests per minute per client; `off` disables.
    rate_limit_token: Option<u32> = Some(1200), "BUZZGATE_RATE_LIMIT_TOKEN", parse_limit;
    /// Authorize requests per minute per user, and wrong device user codes per minute per user on
    /// the verification page; `off` disables.
    rate_limit_authorize: Option<u32> = Some(10), "BUZZGATE_RATE_LIMIT_AUTHORIZE", parse_limit;
    /// Revoke requests per minute per address; `off` disables.
    rate_limit_revoke: Option<u32> = Some(20), "BUZZGATE_RATE_LIMIT_REVOKE", parse_limit;
    /// Failed client authentications per minute per address (then that address is refused,
    /// whatever credentials it presents); `off` disables.
    rate_limit_client_auth: Option<u32> = Some(20), "BUZZGATE_RATE_LIMIT_CLIENT_AUTH", parse_limit;
    /// Failed sign-ins per minute per account; `off` disables.
    rate_limit_login_account: Option<u32> = Some(10), "BUZZGATE_RATE_LIMIT_LOGIN_ACCOUNT", parse_limit;
    /// Failed sign-ins per minute per address; `off` disables.
    rate_limit_login_ip: Option<u32> = Some(30), "BUZZGATE_RATE_LIMIT_LOGIN_IP", parse_limit;
    /// Sign-up attempts per minute per address (when sign-up is open); `off` disables.
    rate_limit_signup_ip: Option<u32> = Some(5), "BUZZGATE_RATE_LIMIT_SIGNUP_IP", parse_limit;
    /// Self-service sign-up: `open` lets people create their own accounts at `/signup`; `off`: only
    /// `buzzgate user add`.
    signup: bool = false, "BUZZGATE_SIGNUP", parse_open;
    /// Dynamic client registration (RFC 7591) at `/api/auth/oauth/register`: `open` for public
    /// clients with https or loopback redirect URIs (how MCP clients get a `client_id`); `off`
    /// refuses it (403) and drops `registration_endpoint` from the metadata.
    registration: bool = true, "BUZZGATE_REGISTRATION", parse_open;
    /// Client ID metadata documents (SPEC 14, docs/mcp.md): `open` fetches a `client_id` that is an
    /// https URL with a path, with SSRF guards, as the app's metadata; `off` makes such IDs unknown
    /// and drops `client_id_metadata_document_supported` from the metadata.
    cimd: bool = true, "BUZZGATE_CIMD", parse_open;
    /// Development and tests only: also fetch `http://127.0.0.1:<port>/…` metadata documents
    /// (logged as a warning at start).
    cimd_allow_http_loopback: bool = false, "BUZZGATE_CIMD_ALLOW_HTTP_LOOPBACK", parse_bool;
    /// Dynamic client registrations (and first sightings of client ID metadata documents) per
    /// minute per address; `off` disables.
    rate_limit_register_ip: Option<u32> = Some(10), "BUZZGATE_RATE_LIMIT_REGISTER_IP", parse_limit;
    /// Refresh reuse inside this window is a retry (at most 3600; `0` turns it off).
    refresh_grace_seconds: u32 = 10, "BUZZGATE_REFRESH_GRACE_SECONDS", at_most(3600);
    /// Prefix of every opaque token.
    token_prefix: String = "civitai_".into(), "BUZZGATE_TOKEN_PREFIX", text;
    /// Emit `scope` as Civitai's `["<decimal>"]`.
    scope_as_array: bool = false, "BUZZGATE_SCOPE_AS_ARRAY", parse_bool;
    /// How many proxies of the operator's own stand in front of the server: the client address is
    /// the `X-Forwarded-For` entry the outermost one appended (`0`: the socket peer; at most 16;
    /// never set it higher than the proxies you run).
    trusted_proxies: usize = 0, "BUZZGATE_TRUSTED_PROXIES", at_most(16);
    /// The older switch: `true` means `BUZZGATE_TRUSTED_PROXIES=1` when no count is given.
    trust_forwarded: bool = false, "BUZZGATE_TRUST_FORWARDED", parse_bool;
    /// The ES256 id_token keys (PEM: the current PKCS#8 key, then the retired public keys `buzzgate
    /// key rotate` keeps publishing in the JWKS); created on first start if missing; share it
    /// between nodes.
    signing_key_file: String = "buzzgate-signing-key.pem".into(), "BUZZGATE_SIGNING_KEY_FILE", text;
    /// Serve HTTPS (rustls) with this PEM certificate chain, on the main listener and the MCP
    /// one; set with `BUZZGATE_TLS_KEY_FILE` (both or neither; unset: plain HTTP behind a
    /// TLS-terminating proxy).
    tls_cert_file: Option<String> = None, "BUZZGATE_TLS_CERT_FILE", some_text;
    /// The PEM private key (PKCS#8, SEC1 or PKCS#1) of `BUZZGATE_TLS_CERT_FILE`.
    tls_key_file: Option<String> = None, "BUZZGATE_TLS_KEY_FILE", some_text;
    /// How often, in milliseconds (100 to 3600000), the TLS certificate and key files are read
    /// to see whether they changed: a usable new pair is served to new connections without a
    /// restart, an unusable one is logged and the pair in use stays (docs/operations.md, "TLS:
    /// at the ingress, or on the node").
    tls_reload_ms: u64 = 10_000, "BUZZGATE_TLS_RELOAD_MS", between(100, 3_600_000);
    /// How often expired rows are swept (`0`: never).
    sweep_interval_seconds: u64 = 300, "BUZZGATE_SWEEP_INTERVAL_SECONDS", at_most(u64::from(u32::MAX));
    /// The in-process token cache's memory bound, in MiB (`0` turns the cache off).
    cache_max_mb: u64 = 16, "BUZZGATE_CACHE_MAX_MB", at_most(1024 * 1024);
    /// The longest a request may take (1 to 3600 seconds): one not answered by then gets `503
    /// temporarily_unavailable` with `Retry-After: 1`.
    request_timeout_seconds: u64 = 30, "BUZZGATE_REQUEST_TIMEOUT_SECONDS", between(1, 3600);
    /// The longest a request body may take to arrive (1 to 3600 seconds): then `408
    /// invalid_request`.
    body_timeout_seconds: u64 = 10, "BUZZGATE_BODY_TIMEOUT_SECONDS", between(1, 3600);
    /// How long a node serves a client, consent or user from memory (at most 1000; `0`: never); a
    /// change made on another node is seen within it, on the same node at once (docs/security.md).
    /// The same bound applies to the node's view of an address's failed client authentications
    /// when the limiter is shared (docs/security.md "Throttling").
    read_cache_ms: u64 = 500, "BUZZGATE_READ_CACHE_MS", at_most(1000);
    /// The MCP listener (`/mcp`, docs/mcp.md), e.g. `127.0.0.1:9090`; unset: no MCP under
    /// `serve` (`proxy` defaults to `127.0.0.1:9090`).
    mcp_listen: Option<String> = None, "BUZZGATE_MCP_LISTEN", some_text;
    /// `Host` values the MCP listener accepts besides loopback names, comma-separated (it
    /// refuses others: DNS-rebinding protection).
    mcp_allowed_hosts: String = String::new(), "BUZZGATE_MCP_ALLOWED_HOSTS", text;
    /// The MCP listener's URL as clients reach it (the account server's resource is this +
    /// `/mcp/account`); empty: `http://<the bound MCP address>` (`https://` when it serves TLS).
    mcp_public_url: String = String::new(), "BUZZGATE_MCP_PUBLIC_URL", text;
    /// With TLS configured (`BUZZGATE_TLS_CERT_FILE`), the MCP listener serves HTTPS with the
    /// same certificate: `on`, or `off` for plain HTTP (on loopback, or behind a proxy that
    /// terminates TLS).
    mcp_tls: bool = true, "BUZZGATE_MCP_TLS", parse_on;
    /// `buzzgate proxy`: how long to wait for the upstream to accept a connection (1 to 300
    /// seconds; then `502`).
    upstream_connect_timeout_seconds: u64 = 3, "BUZZGATE_UPSTREAM_CONNECT_TIMEOUT_SECONDS", between(1, 300);
    /// `buzzgate proxy`: how long to wait for the upstream's answer (1 to 600 seconds; then `504`).
    upstream_timeout_seconds: u64 = 10, "BUZZGATE_UPSTREAM_TIMEOUT_SECONDS", between(1, 600);
    /// Prometheus metrics at `GET /metrics` on the main listener (series and alerts:
    /// docs/operations.md, "Metrics"): `on`, or `off` (answered `404`).
    metrics: bool = true, "BUZZGATE_METRICS", parse_on;
    /// When set, `/metrics` requires `Authorization: Bearer <this>` (compared in constant time;
    /// else `401`); never printed.
    metrics_token: Secret = Secret(None), "BUZZGATE_METRICS_TOKEN", secret;
    /// The log format on standard error: `text` (for people) or `json` (one object per line with
    /// the request span's fields: `request_id`, method and path; never queries, tokens or secrets).
    log_format: LogFormat = LogFormat::Text, "BUZZGATE_LOG_FORMAT", parse_log_format;
    /// Export traces over OTLP/HTTP (protobuf) to this collector (docs/operations.md,
    /// "Traces"): an http(s) URL, the collector's base (`/v1/traces` is added) or its full
    /// traces URL; unset: no traces, and nothing of them on the request path.
    otlp_endpoint: Option<String> = None, "BUZZGATE_OTLP_ENDPOINT", parse_otlp_endpoint;
    /// The share of the traces that start here which are exported, from 0 to 1 (a request
    /// whose `traceparent` carries its caller's decision keeps that decision).
    otlp_sample_ratio: f64 = 1.0, "BUZZGATE_OTLP_SAMPLE_RATIO", parse_ratio;
    /// The `service.name` of the exported traces (OpenTelemetry's standard variable).
    otel_service_name: String = "buzzgate".into(), "OTEL_SERVICE_NAME", text;
    /// Seed 000's bound client: the MCP tools and the proxy's token endpoint use it when a
    /// call names no client.
    civitai_client_id: Option<String> = None, "CIVITAI_CLIENT_ID", some_text;
    /// The bound client's secret (never printed: `Debug` shows `<redacted>`).
    civitai_client_secret: Secret = Secret(None), "CIVITAI_CLIENT_SECRET", secret;
}

/// A setting that must never be printed or logged: `Debug` shows `<redacted>`.
#[derive(Clone, Default, PartialEq)]
pub struct Secret(pub Option<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Secret(<redacted>)"),
            None => f.write_str("Secret(None)"),
        }
    }
}

fn secret(_: &str, v: &str) -> Result<Secret, String> {
    Ok(Secret((!v.is_empty()).then(|| v.to_owned())))
}

impl Config {
    /// Whether the main listener serves HTTPS (`BUZZGATE_TLS_CERT_FILE` and `_KEY_FILE`).
    pub fn tls(&self) -> bool {
        self.tls_cert_file.is_some() && self.tls_key_file.is_some()
    }

    /// `https` when the main listener serves TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls() { "https" } else { "http" }
    }

    /// Whether the MCP listener serves HTTPS: TLS is configured and `BUZZGATE_MCP_TLS` is on.
    pub fn mcp_https(&self) -> bool {
        self.tls() && self.mcp_tls
    }

    /// `https` when the MCP listener serves TLS, else `http`.
    pub fn mcp_scheme(&self) -> &'static str {
        if self.mcp_https() { "https" } else { "http" }
    }

    /// How often the TLS files are looked at (`BUZZGATE_TLS_RELOAD_MS`).
    pub fn tls_reload_every(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.tls_reload_ms)
    }

    /// Seed 000's bound client credentials.
    pub fn bound_client(&self) -> buzzgate_mcp::BoundClient {
        buzzgate_mcp::BoundClient {
            client_id: self.civitai_client_id.clone(),
            client_secret: self.civitai_client_secret.0.clone(),
        }
    }
}

/// How log lines are written (`BUZZGATE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn parse_log_format(name: &str, v: &str) -> Result<LogFormat, String> {
    match v.to_ascii_lowercase().as_str() {
        "text" | "" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("{name}: expected text or json, got `{other}`")),
    }
}

/// `on` or `off` (also true/false; empty: on).
fn parse_on(name: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "" => Ok(true),
        "off" => Ok(false),
        other => buzzgate_http::params::yes_no(other)
            .ok_or_else(|| format!("{name}: expected on or off, got `{other}`")),
    }
}

/// An http(s) URL of an OTLP/HTTP collector, without credentials (they belong in
/// `OTEL_EXPORTER_OTLP_HEADERS`, which is never logged); `/v1/traces` is added unless the
/// path already ends with it.
fn parse_otlp_endpoint(name: &str, v: &str) -> Result<Option<String>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let mut url = url::Url::parse(v)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            format!("{name}: expected the http(s) URL of an OTLP/HTTP collector, such as http://otel-collector:4318")
        })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{name}: put the collector's credentials in OTEL_EXPORTER_OTLP_HEADERS, not in the URL"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{name}: expected a URL without a query or fragment"
        ));
    }
    if !url.path().ends_with("/v1/traces") {
        let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(Some(url.into()))
}

/// A number from 0 to 1.
fn parse_ratio(name: &str, v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("{name}: expected a number from 0 to 1, got `{v}`"))
}

fn text(_: &str, v: &str) -> Result<String, String> {
    Ok(v.to_owned())
}

fn some_text(_: &str, v: &str) -> Result<Option<String>, String> {
    Ok((!v.is_empty()).then(|| v.to_owned()))
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
    if v.trim().is_empty() {
        return Ok(false);
    }
    buzzgate_http::params::yes_no(v)
        .ok_or_else(|| format!("{name}: expected true or false, got `{}`", v.trim()))
}

/// `open` or `off` (empty: off).
fn parse_open(name: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "open" => Ok(true),
        "off" | "" => Ok(false),
        other => Err(format!("{name}: expected open or off, got `{other}`")),
    }
}

/// A whole number from `min` to `max`.
fn between<T>(min: T, max: T) -> impl Fn(&str, &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    move |name, v| {
        v.parse::<T>()
            .ok()
            .filter(|n| *n >= min && *n <= max)
            .ok_or_else(|| {
                format!("{name}: expected a whole number from {min} to {max}, got `{v}`")
            })
    }
}

fn at_most<T>(max: T) -> impl Fn(&str, &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Default,
{
    between(T::default(), max)
}

/// The catalogue a configuration file declares (see [`SCOPE_FILE_KEYS`]).
fn catalogue(table: &toml::Table) -> Result<Catalogue, String> {
    fn list<T: serde::de::DeserializeOwned>(
        table: &toml::Table,
        key: &str,
    ) -> Result<Vec<T>, String> {
        match table.get(key) {
            None => Ok(Vec::new()),
            Some(v) => v.clone().try_into().map_err(|e| format!("[[{key}]]: {e}")),
        }
    }
    let scopes: Vec<ScopeDef> = list(table, "scopes")?;
    let presets: Vec<PresetDef> = list(table, "presets")?;
    let text = |key: &str| match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key}: expected a string")),
    };
    let always = text("always_granted_scope")?;
    let built = match text("scope_base")?.as_deref() {
        None | Some("civitai") => Catalogue::civitai().extended(scopes, presets, always.as_deref()),
        Some("empty") => Catalogue::new(scopes, presets, always.as_deref().unwrap_or("UserRead")),
        Some(other) => {
            return Err(format!(
                "scope_base: expected \"civitai\" or \"empty\", got `{other}`"
            ));
        }
    };
    let built = match text("account_scope")? {
        Some(name) => built.and_then(|c| c.with_account_scope(&name)),
        None => built,
    };
    built.map_err(|e| format!("scopes: {e}"))
}

/// The TOML key of an environment variable: lower case, without `BUZZGATE_`.
pub fn file_key(env: &str) -> String {
    env.strip_prefix("BUZZGATE_")
        .unwrap_or(env)
        .to_ascii_lowercase()
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
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(unknown) = table.keys().find(|k| {
                !ENV_KEYS.iter().any(|e| file_key(e) == **k)
                    && !SCOPE_FILE_KEYS.contains(&k.as_str())
            }) {
                return Err(format!("{}: unknown key `{unknown}`", path.display()));
            }
            c.scopes = catalogue(&table).map_err(|e| format!("{}: {e}", path.display()))?;
            let value = |env: &str| {
                table.get(&file_key(env)).map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            };
            c.apply(&value, &|env| file_key(env))?;
        }
        let from_env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        c.apply(&from_env, &|env| env.to_owned())?;
        c.finish()
    }

    fn finish(mut self) -> Result<Config, String> {
        if self.trust_forwarded && self.trusted_proxies == 0 {
            self.trusted_proxies = 1;
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "BUZZGATE_LISTEN: expected host:port such as 127.0.0.1:8080, got `{}`",
                self.listen
            ));
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => {
                return Err(
                    "BUZZGATE_TLS_CERT_FILE is set but BUZZGATE_TLS_KEY_FILE is not: \
                            HTTPS needs both the certificate and its private key (or neither, \
                            for plain HTTP behind a proxy)"
                        .into(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "BUZZGATE_TLS_KEY_FILE is set but BUZZGATE_TLS_CERT_FILE is not: \
                            HTTPS needs both the certificate and its private key (or neither, \
                            for plain HTTP behind a proxy)"
                        .into(),
                );
            }
            _ => {}
        }
        if self.issuer.is_empty() {
            self.issuer = format!("{}://{}", self.scheme(), self.listen);
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

    /// The edge's time limits.
    pub fn edge_limits(&self) -> buzzgate_http::edge::Limits {
        buzzgate_http::edge::Limits {
            request: std::time::Duration::from_secs(self.request_timeout_seconds),
            body: std::time::Duration::from_secs(self.body_timeout_seconds),
        }
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
        let e = Config::load(None, env(&[("BUZZGATE_REFRESH_GRACE_SECONDS", "3601")])).unwrap_err();
        assert!(e.contains("BUZZGATE_REFRESH_GRACE_SECONDS"), "{e}");
        let e = Config::load(None, env(&[("BUZZGATE_REQUEST_TIMEOUT_SECONDS", "0")])).unwrap_err();
        assert!(e.contains("from 1 to 3600"), "{e}");
    }

    #[test]
    fn every_setting_has_one_variable_and_one_file_key() {
        let keys: std::collections::HashSet<_> = ENV_KEYS.iter().map(|k| file_key(k)).collect();
        assert_eq!(keys.len(), ENV_KEYS.len(), "no two settings share a key");
        assert!(keys.contains("rate_limit_token") && keys.contains("database_url"));
        let c = Config::load(None, env(&[("BUZZGATE_CACHE_MAX_MB", "4")])).unwrap();
        assert_eq!(c.cache_max_bytes(), 4 << 20);
        assert_eq!(c.edge_limits().request, std::time::Duration::from_secs(30));
    }

    #[test]
    fn a_file_extends_or_replaces_the_scope_catalogue_and_bad_ones_are_named() {
        let dir = std::env::temp_dir().join(format!("bgscopes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("buzzgate.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(Some(&path), env(&[]))
        };
        assert_eq!(
            Config::load(None, env(&[])).unwrap().scopes,
            Catalogue::civitai()
        );
        let c = load(
            "[[scopes]]\nname = \"generations\"\nbit = 40\nlabel = \"Generate\"\nbuzz = \"capped\"\n",
        )
        .unwrap();
        assert_eq!(
            c.scopes.lookup("generations").map(|s| s.bits()),
            Some(1 << 40)
        );
        assert_eq!(
            c.scopes.lookup("AIServices").map(|s| s.bits()),
            Some(114_689),
            "Civitai's stay"
        );
        let c = load(
            "scope_base = \"empty\"\nalways_granted_scope = \"profile\"\n\
             [[scopes]]\nname = \"profile\"\nbit = 0\nlabel = \"Profile\"\n",
        )
        .unwrap();
        assert_eq!(c.scopes.lookup("UserRead"), None, "replaced");
        let e = load("[[scopes]]\nname = \"dup\"\nbit = 0\nlabel = \"x\"\n").unwrap_err();
        assert!(
            e.contains("scopes `UserRead` and `dup` both use bit 0"),
            "{e}"
        );
        let e =
            load("[[presets]]\nname = \"p\"\nlabel = \"P\"\nscopes = [\"nope\"]\n").unwrap_err();
        assert!(e.contains("preset `p` names unknown scope `nope`"), "{e}");
        let e = load("[[scopes]]\nname = \"x\"\nbit = 40\nlable = \"typo\"\n").unwrap_err();
        assert!(e.contains("[[scopes]]") && e.contains("lable"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The configuration table of docs/operations.md (generated by `cargo xtask settings` from
    /// `settings!`) shows each setting's default as an operator would write it: read back by
    /// the setting's own parser, it must be `Config::default()`'s value (`unset` and `empty`
    /// are the empty value).
    #[test]
    fn the_documented_defaults_are_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let table = doc
            .split_once("<!-- settings:begin")
            .and_then(|(_, rest)| rest.split_once("<!-- settings:end -->"))
            .map(|(table, _)| table)
            .expect("docs/operations.md has the settings table's markers");
        let rows: HashMap<&str, (&str, &str)> = table
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let env = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((env, (*cells.get(2)?, *cells.get(3)?)))
            })
            .collect();
        assert_eq!(rows.len(), ENV_KEYS.len(), "one row per setting");
        for env in ENV_KEYS {
            let stale = "run `cargo xtask settings`";
            let (key, cell) = rows
                .get(env)
                .unwrap_or_else(|| panic!("{env} has no row in docs/operations.md: {stale}"));
            assert_eq!(
                *key,
                format!("`{}`", file_key(env)),
                "{env}'s file key: {stale}"
            );
            let value = match *cell {
                "unset" | "empty" => "",
                c => c
                    .strip_prefix('`')
                    .and_then(|c| c.strip_suffix('`'))
                    .unwrap_or_else(|| panic!("{env}: a default cell reads `x`, unset or empty")),
            };
            let only_this = |k: &str| (k == *env).then(|| value.to_owned());
            let mut c = Config::default();
            if let Err(e) = c.apply(&only_this, &|k| k.to_owned()) {
                panic!("{env}: the documented default {cell} does not parse: {e}");
            }
            assert!(
                c == Config::default(),
                "{env}: the documented default {cell} is not the code's (xtask's default_cell)"
            );
        }
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
        let e = Config::load(Some(&path), env(&[])).unwrap_err();
        assert!(e.contains("unknown key `unknown_key`"), "{e}");
        std::fs::write(&path, "trusted_proxies = 99\n").unwrap();
        let e = Config::load(Some(&path), env(&[])).unwrap_err();
        assert!(
            e.starts_with("trusted_proxies:"),
            "the file key is named: {e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn traces_settings() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(
            (
                c.otlp_endpoint,
                c.otlp_sample_ratio,
                c.otel_service_name.as_str()
            ),
            (None, 1.0, "buzzgate")
        );
        let endpoint = |v: &str| {
            Config::load(None, env(&[("BUZZGATE_OTLP_ENDPOINT", v)])).map(|c| c.otlp_endpoint)
        };
        assert_eq!(
            endpoint("http://otel:4318").unwrap().as_deref(),
            Some("http://otel:4318/v1/traces")
        );
        assert_eq!(
            endpoint("https://otel.example/base/").unwrap().as_deref(),
            Some("https://otel.example/base/v1/traces")
        );
        assert_eq!(
            endpoint("http://127.0.0.1:4318/v1/traces")
                .unwrap()
                .as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        for bad in [
            "otel:4318",
            "grpc://otel:4317",
            "http://",
            "http://otel:4318/?x=1",
        ] {
            let e = endpoint(bad).unwrap_err();
            assert!(e.starts_with("BUZZGATE_OTLP_ENDPOINT:"), "{bad}: {e}");
        }
        let e = endpoint("http://user:pw@otel:4318").unwrap_err();
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_HEADERS") && !e.contains("pw"),
            "{e}"
        );
        let ratio = |v: &str| {
            Config::load(None, env(&[("BUZZGATE_OTLP_SAMPLE_RATIO", v)]))
                .map(|c| c.otlp_sample_ratio)
        };
        assert_eq!(ratio("0.25"), Ok(0.25));
        assert_eq!(ratio("0"), Ok(0.0));
        for bad in ["1.5", "-0.1", "NaN", "half"] {
            assert!(ratio(bad).unwrap_err().contains("from 0 to 1"), "{bad}");
        }
        let c = Config::load(None, env(&[("OTEL_SERVICE_NAME", "auth-eu")])).unwrap();
        assert_eq!(c.otel_service_name, "auth-eu");
    }
}
