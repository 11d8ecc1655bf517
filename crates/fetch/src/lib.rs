//! `buzzgate-fetch`: the outbound port for client ID metadata documents (SPEC 14,
//! docs/mcp.md), with the guards an authorization server needs against being used to reach
//! what it should not (SSRF, draft-ietf-oauth-client-id-metadata-document §6):
//!
//! - only `https://` URLs with a path, no user info, no fragment (and, for development only,
//!   `http://127.0.0.1:<port>/…` when `allow_http_loopback` is set);
//! - every address the host resolves to must be public: private, loopback, link-local,
//!   shared (CGNAT), documentation, multicast and unspecified ranges are refused, in IPv4 and
//!   IPv6 (IPv4-mapped included); the connection is then pinned to the vetted address, so a
//!   second DNS answer cannot swap it (rebinding);
//! - no redirect is followed; a document over 5 KiB, or slower than 5 s, is refused;
//! - documents are cached by their `Cache-Control: max-age`, kept between 30 s and 24 h, in a
//!   bounded cache; concurrent fetches of one URL share one request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use buzzgate_domain::ports::{ClientMetadataDocuments, FetchError};

/// Largest document accepted.
pub const MAX_BYTES: usize = 5 * 1024;
/// Cache bounds for one document.
pub const MIN_TTL: Duration = Duration::from_secs(30);
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Settings of the fetcher.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Admit `http://127.0.0.1:<port>/…` and `http://[::1]:<port>/…` (development only:
    /// `BUZZGATE_CIMD_ALLOW_HTTP_LOOPBACK`).
    pub allow_http_loopback: bool,
    pub timeout: Duration,
    /// Most documents kept.
    pub capacity: u64,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            allow_http_loopback: false,
            timeout: Duration::from_secs(5),
            capacity: 10_000,
        }
    }
}

#[derive(Clone)]
struct Cached {
    body: Arc<Vec<u8>>,
    ttl: Duration,
}

struct PerDocument;

impl moka::Expiry<String, Cached> for PerDocument {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Cached,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The fetcher (cheap to clone; the cache is shared).
#[derive(Clone)]
pub struct Fetcher {
    settings: FetchSettings,
    cache: moka::future::Cache<String, Cached>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn refused(why: impl Into<String>) -> FetchError {
    FetchError::Refused(why.into())
}

/// Whether `ip` is on the public internet (not private, loopback, link-local, …).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space (CGNAT)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
                || o[0] >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: could reach private IPv4
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)) // IPv4-compatible
        }
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// The URL's form: https (or loopback http when allowed), a path, no user info or fragment.
pub fn check_url(raw: &str, allow_http_loopback: bool) -> Result<url::Url, FetchError> {
    let url = url::Url::parse(raw).map_err(|_| refused("not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http_loopback && is_loopback_host(&url) => {}
        _ => return Err(refused("only https URLs are fetched")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("a URL with user info is refused"));
    }
    if url.fragment().is_some() {
        return Err(refused("a URL with a fragment is refused"));
    }
    if url.path().len() <= 1 {
        return Err(refused("a client ID URL must have a path"));
    }
    if url.host().is_none() {
        return Err(refused("a URL without a host is refused"));
    }
    Ok(url)
}

/// The address to connect to: the host's, each of which must be public (a loopback one only
/// for an allowed loopback http URL).
async fn vet(url: &url::Url, allow_http_loopback: bool) -> Result<SocketAddr, FetchError> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| refused("no port"))?;
    let loopback_ok = allow_http_loopback && url.scheme() == "http";
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(url::Host::Domain(d)) => tokio::net::lookup_host((d, port))
            .await
            .map_err(|e| FetchError::Unreachable(format!("the host does not resolve: {e}")))?
            .collect(),
        None => return Err(refused("a URL without a host is refused")),
    };
    if addrs.is_empty() {
        return Err(FetchError::Unreachable("the host has no address".into()));
    }
    // Every answer must pass: a host that resolves to one public and one private address
    // could be steered to the private one.
    for a in &addrs {
        let ok = is_public(a.ip()) || (loopback_ok && a.ip().is_loopback());
        if !ok {
            return Err(refused(format!(
                "the host resolves to a non-public address ({})",
                a.ip()
            )));
        }
    }
    Ok(addrs[0])
}

/// `Cache-Control: max-age=N` within the bounds (absent, `no-store` or `no-cache`: the
/// minimum).
fn ttl_of(headers: &reqwest::header::HeaderMap) -> Duration {
    let Some(cc) = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return MIN_TTL;
    };
    let mut ttl = MIN_TTL;
    for part in cc.split(',').map(str::trim) {
        let lower = part.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_TTL;
        }
        if let Some(n) = lower.strip_prefix("max-age=")
            && let Ok(secs) = n.trim().parse::<u64>()
        {
            ttl = Duration::from_secs(secs);
        }
    }
    ttl.clamp(MIN_TTL, MAX_TTL)
}

impl Fetcher {
    pub fn new(settings: FetchSettings) -> Fetcher {
        let cache = moka::future::Cache::builder()
            .max_capacity(settings.capacity)
            .expire_after(PerDocument)
            .build();
        Fetcher { settings, cache }
    }

    async fn fetch_uncached(&self, raw: &str) -> Result<Cached, FetchError> {
        let url = check_url(raw, self.settings.allow_http_loopback)?;
        let addr = vet(&url, self.settings.allow_http_loopback).await?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.settings.timeout)
            .connect_timeout(self.settings.timeout)
            .resolve(&host, addr)
            .user_agent(concat!("buzzgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Unreachable(format!("client: {e}")))?;
        let slow = || FetchError::Unreachable("the document took too long".into());
        let mut res = client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    slow()
                } else {
                    FetchError::Unreachable(format!("could not fetch it: {e}"))
                }
            })?;
        let status = res.status();
        if status.is_redirection() {
            return Err(refused("redirects are refused"));
        }
        if !status.is_success() {
            return Err(FetchError::Unreachable(format!("it answered {status}")));
        }
        if res.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
            return Err(refused("the document is larger than 5 KiB"));
        }
        let ttl = ttl_of(res.headers());
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| {
            if e.is_timeout() {
                slow()
            } else {
                FetchError::Unreachable(format!("the body broke off: {e}"))
            }
        })? {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(refused("the document is larger than 5 KiB"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Cached {
            body: Arc::new(body),
            ttl,
        })
    }
}

#[async_trait]
impl ClientMetadataDocuments for Fetcher {
    async fn fetch(&self, url: &str) -> Result<Arc<Vec<u8>>, FetchError> {
        // Concurrent callers of one URL share the first one's fetch; failures are not cached.
        self.cache
            .try_get_with(url.to_owned(), self.fetch_uncached(url))
            .await
            .map(|c| c.body)
            .map_err(|e: Arc<FetchError>| e.as_ref().clone())
    }
}
