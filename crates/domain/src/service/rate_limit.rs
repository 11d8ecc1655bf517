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
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.chars().take(64).collect(),
    }
}

impl Bucket<'_> {
    /// The counter key, e.g. `rl:token:client:abc`.
    pub fn key(&self) -> String {
        match self {
            Bucket::AuthorizeUser(u) => format!("rl:authorize:user:{}", u.0),
            Bucket::DeviceCodeFailures(u) => format!("rl:device-code:user:{}", u.0),
            Bucket::TokenClient(c) => format!("rl:token:client:{}", c.as_str()),
            Bucket::ClientAuthFailures(ip) => format!("rl:client-auth:ip:{}", address_key(ip)),
            Bucket::RevokeIp(ip) => format!("rl:revoke:ip:{}", address_key(ip)),
            Bucket::LoginAccount(u) => format!(
                "rl:login:user:{}",
                u.chars().take(64).collect::<String>().to_ascii_lowercase()
            ),
            Bucket::LoginIp(ip) => format!("rl:login:ip:{}", address_key(ip)),
            Bucket::SignupIp(ip) => format!("rl:signup:ip:{}", address_key(ip)),
            Bucket::RegisterIp(ip) => format!("rl:register:ip:{}", address_key(ip)),
        }
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

    #[test]
    fn usernames_share_a_bucket_whatever_their_case() {
        assert_eq!(
            Bucket::LoginAccount("Alice").key(),
            Bucket::LoginAccount("alice").key()
        );
    }
}
