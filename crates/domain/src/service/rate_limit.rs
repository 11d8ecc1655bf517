//! Rate limits (SPEC 10, SPEC 13): which bucket each request counts in, chosen by the
//! services, never by a handler. Defaults: authorize 10/min per user; at the token and device
//! endpoints 1,200/min per authenticated client; failed client authentications 20/min per
//! address (once full, refused whatever the credentials; a stranger's failures never count
//! against the client they name); revoke 20/min per address; failed sign-ins 10/min per account and 30/min
//! per address; sign-ups 5/min per address; dynamic client registrations 10/min per address. Each is configurable or off.

use std::net::IpAddr;

use crate::error::Error;
use crate::ids::{ClientId, UserId};
use crate::rate::{self, RateWindow};

use super::Deps;

/// Requests (or failures) per minute per bucket; `None` disables a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Authorize requests per signed-in user.
    pub authorize: Option<u32>,
    /// Authenticated token and device-authorization requests per client.
    pub token: Option<u32>,
    /// Failed client authentications per address (token, device, revoke, introspection,
    /// spend).
    pub client_auth_failures: Option<u32>,
    /// Revocation requests per address.
    pub revoke: Option<u32>,
    /// Failed sign-ins per account.
    pub login_account: Option<u32>,
    /// Failed sign-ins per address.
    pub login_ip: Option<u32>,
    /// Sign-up attempts per address (when sign-up is open).
    pub signup_ip: Option<u32>,
    /// Dynamic client registrations per address (RFC 7591).
    pub register_ip: Option<u32>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            authorize: Some(10),
            token: Some(1200),
            client_auth_failures: Some(20),
            revoke: Some(20),
            login_account: Some(10),
            login_ip: Some(30),
            signup_ip: Some(5),
            register_ip: Some(10),
        }
    }
}

/// The length of every window.
pub const WINDOW_SECS: u64 = 60;

/// What is being limited, and by which identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket<'a> {
    AuthorizeUser(UserId),
    /// Failed device user-code lookups per signed-in user (RFC 8628 5.1: user codes are
    /// short, so guesses are throttled); limited by the authorize setting.
    DeviceCodeFailures(UserId),
    TokenClient(&'a ClientId),
    ClientAuthFailures(&'a str),
    RevokeIp(&'a str),
    /// A username, compared case-insensitively.
    LoginAccount(&'a str),
    LoginIp(&'a str),
    SignupIp(&'a str),
    RegisterIp(&'a str),
}

/// The address as a limiter key: IPv4 as it is, IPv6 by its /64 (one customer's whole
/// network, which a single attacker can rotate through freely).
pub fn address_key(ip: &str) -> String {
    let mut key = String::with_capacity(ip.len().min(64));
    push_address(&mut key, ip);
    key
}

/// Appends [`address_key`]`(ip)` to `key`.
fn push_address(key: &mut String, ip: &str) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = match ip.parse::<IpAddr>() {
        // Rust's parser takes only the dotted-quad form, with no leading zeros: `ip` is
        // already what formatting the address would write.
        Ok(IpAddr::V4(_)) => {
            key.push_str(ip);
            Ok(())
        }
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => write!(key, "{v4}"),
            None => {
                let s = v6.segments();
                write!(key, "{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => {
            key.extend(ip.chars().take(64));
            Ok(())
        }
    };
}

impl Bucket<'_> {
    /// The counter key, e.g. `rl:token:client:abc`, built in one allocation (one is made
    /// per limited request: docs/benchmarks.md).
    pub fn key(&self) -> String {
        use std::fmt::Write;
        let mut key = String::with_capacity(64);
        let address = |key: &mut String, prefix: &str, ip: &str| {
            key.push_str(prefix);
            push_address(key, ip);
        };
        match self {
            Bucket::AuthorizeUser(u) => {
                let _ = write!(key, "rl:authorize:user:{}", u.0);
            }
            Bucket::DeviceCodeFailures(u) => {
                let _ = write!(key, "rl:device-code:user:{}", u.0);
            }
            Bucket::TokenClient(c) => {
                key.push_str("rl:token:client:");
                key.push_str(c.as_str());
            }
            Bucket::ClientAuthFailures(ip) => address(&mut key, "rl:client-auth:ip:", ip),
            Bucket::RevokeIp(ip) => address(&mut key, "rl:revoke:ip:", ip),
            Bucket::LoginAccount(u) => {
                key.push_str("rl:login:user:");
                key.extend(u.chars().take(64).map(|c| c.to_ascii_lowercase()));
            }
            Bucket::LoginIp(ip) => address(&mut key, "rl:login:ip:", ip),
            Bucket::SignupIp(ip) => address(&mut key, "rl:signup:ip:", ip),
            Bucket::RegisterIp(ip) => address(&mut key, "rl:register:ip:", ip),
        }
        key
    }

    /// Whether this bucket's failures may be read from a node's recent view of them
    /// ([`crate::ports::RateLimiter::peek`]) before a request that has already authenticated:
    /// only a client's authentication from an address. Its secrets are 256-bit, so the
    /// address limit stops noise, not guessing (SPEC 10); every failure is still counted and
    /// judged on the shared count at once, on every node, so what may lag is only the refusal
    /// of a caller that has just proved it holds a client's secret. Sign-ins (passwords),
    /// device user codes and the rest are always read from the shared count.
    pub fn read_may_lag(&self) -> bool {
        matches!(self, Bucket::ClientAuthFailures(_))
    }

    fn limit(&self, limits: &RateLimits) -> Option<u32> {
        match self {
            Bucket::AuthorizeUser(_) | Bucket::DeviceCodeFailures(_) => limits.authorize,
            Bucket::TokenClient(_) => limits.token,
            Bucket::ClientAuthFailures(_) => limits.client_auth_failures,
            Bucket::RevokeIp(_) => limits.revoke,
            Bucket::LoginAccount(_) => limits.login_account,
            Bucket::LoginIp(_) => limits.login_ip,
            Bucket::SignupIp(_) => limits.signup_ip,
            Bucket::RegisterIp(_) => limits.register_ip,
        }
    }
}

impl Deps {
    fn window(&self) -> RateWindow {
        RateWindow::containing(self.now(), WINDOW_SECS)
    }

    /// Counts one request; `rate_limited` with `Retry-After` when over the limit. A limiter
    /// that cannot be reached is an error, never a silent pass (the composition root puts an
    /// in-process fallback in front of a remote limiter).
    pub(crate) async fn check_rate(&self, bucket: Bucket<'_>) -> Result<(), Error> {
        let Some(limit) = bucket.limit(&self.config.rate_limits) else {
            return Ok(());
        };
        let count = self
            .rate_limiter
            .count(&bucket.key(), self.window(), 1)
            .await?;
        self.over(count, limit)
    }

    /// Refuses up front when the bucket's failures already fill the window (nothing is
    /// counted: only failures count, through [`Deps::record_failure`]).
    pub(crate) async fn check_failures(&self, bucket: Bucket<'_>) -> Result<(), Error> {
        let Some(limit) = bucket.limit(&self.config.rate_limits) else {
            return Ok(());
        };
        let count = self
            .rate_limiter
            .count(&bucket.key(), self.window(), 0)
            .await?;
        self.full(count, limit)
    }

    /// Counts `hits` (`(bucket, n)`: `n` 0 only reads) in one limiter call, and returns each
    /// bucket's limit and count; buckets whose limit is off are neither sent nor returned. A
    /// lone read of a bucket whose reads may lag ([`Bucket::read_may_lag`]) is a peek.
    pub(crate) async fn count_buckets<'b>(
        &self,
        hits: &[(Bucket<'b>, u32)],
    ) -> Result<Vec<(Bucket<'b>, u32, u64)>, Error> {
        let limited: Vec<(Bucket<'b>, u32, u32)> = hits
            .iter()
            .filter_map(|&(b, n)| b.limit(&self.config.rate_limits).map(|l| (b, l, n)))
            .collect();
        if limited.is_empty() {
            return Ok(Vec::new());
        }
        let window = self.window();
        let counts = if let [(bucket, _, 0)] = limited[..]
            && bucket.read_may_lag()
        {
            // One read that may lag: the node's recent view, usually no round trip.
            vec![self.rate_limiter.peek(&bucket.key(), window).await?]
        } else if let [(bucket, _, n)] = limited[..] {
            // One hit: the limiter's plain count (on Redis, the smaller script).
            vec![self.rate_limiter.count(&bucket.key(), window, n).await?]
        } else {
            let keys: Vec<(String, u32)> = limited.iter().map(|(b, _, n)| (b.key(), *n)).collect();
            self.rate_limiter.count_each(&keys, window).await?
        };
        Ok(limited
            .into_iter()
            .zip(counts)
            .map(|((b, l, _), c)| (b, l, c))
            .collect())
    }

    /// `rate_limited` with `Retry-After` when `count`, after this request's hit, is over
    /// `limit` (a request only counted when it fails is judged by [`Deps::full`]).
    pub(crate) fn over(&self, count: u64, limit: u32) -> Result<(), Error> {
        refuse_unless(rate::decide(count, limit, self.window(), self.now()))
    }

    /// Refuses when the `failures` counted so far already fill the window, as the next
    /// failure would (`rate::decide_before`): failures are only counted once they happen.
    pub(crate) fn full(&self, failures: u64, limit: u32) -> Result<(), Error> {
        refuse_unless(rate::decide_before(
            failures,
            limit,
            self.window(),
            self.now(),
        ))
    }

    /// Counts one failure. The request already failed; an unreachable limiter must not
    /// change its answer, so errors here are dropped (the fallback limiter reports outages).
    pub(crate) async fn record_failure(&self, bucket: Bucket<'_>) {
        if bucket.limit(&self.config.rate_limits).is_some() {
            let _ = self
                .rate_limiter
                .count(&bucket.key(), self.window(), 1)
                .await;
        }
    }
}

/// A refusal as the error the caller answers (`429` with `Retry-After`), or `Ok`.
fn refuse_unless(d: rate::RateDecision) -> Result<(), Error> {
    if d.allowed {
        Ok(())
    } else {
        Err(Error::RateLimited {
            retry_after: d.retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64() {
        assert_eq!(address_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(
            address_key("2001:db8:1:2:ffff::1"),
            address_key("2001:db8:1:2::9")
        );
        assert_eq!(address_key("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(address_key("10.0.0.1"), "10.0.0.1");
    }

    /// The keys are shared by every node through Redis, across versions in a rolling
    /// upgrade: their form must not change.
    #[test]
    fn every_bucket_has_its_documented_key() {
        let app = ClientId::parse("app1").unwrap();
        let cases = [
            (Bucket::AuthorizeUser(UserId(7)), "rl:authorize:user:7"),
            (
                Bucket::DeviceCodeFailures(UserId(8)),
                "rl:device-code:user:8",
            ),
            (Bucket::TokenClient(&app), "rl:token:client:app1"),
            (
                Bucket::ClientAuthFailures("10.0.0.1"),
                "rl:client-auth:ip:10.0.0.1",
            ),
            (Bucket::RevokeIp("::ffff:10.0.0.2"), "rl:revoke:ip:10.0.0.2"),
            (Bucket::LoginAccount("ÄLice"), "rl:login:user:Älice"),
            (
                Bucket::LoginIp("2001:db8:1:2:3:4:5:6"),
                "rl:login:ip:2001:db8:1:2::/64",
            ),
            (
                Bucket::SignupIp("not an address"),
                "rl:signup:ip:not an address",
            ),
            (
                Bucket::RegisterIp("192.168.1.10"),
                "rl:register:ip:192.168.1.10",
            ),
        ];
        for (bucket, key) in cases {
            assert_eq!(bucket.key(), key);
        }
        let long = "x".repeat(100);
        assert_eq!(
            Bucket::LoginAccount(&long).key().len(),
            "rl:login:user:".len() + 64
        );
        assert_eq!(address_key(&long).len(), 64);
    }

    #[test]
    fn usernames_share_a_bucket_whatever_their_case() {
        assert_eq!(
            Bucket::LoginAccount("Alice").key(),
            Bucket::LoginAccount("alice").key()
        );
    }
}
