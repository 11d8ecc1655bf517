//! Rate limits (SPEC 10): authorize 10/min per user, token 20/min per client and per IP,
//! revoke 20/min per IP; each configurable or off.

use std::sync::Arc;

use crate::error::Error;

use super::Deps;

/// Requests per minute per bucket; `None` disables a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub authorize: Option<u32>,
    pub token: Option<u32>,
    pub revoke: Option<u32>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            authorize: Some(10),
            token: Some(20),
            revoke: Some(20),
        }
    }
}

/// What is being limited, and by which identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bucket<'a> {
    AuthorizeUser(&'a str),
    TokenClient(&'a str),
    TokenIp(&'a str),
    RevokeIp(&'a str),
}

impl Bucket<'_> {
    /// The counter key, e.g. `rl:token:ip:127.0.0.1`.
    pub fn key(&self) -> String {
        match self {
            Bucket::AuthorizeUser(u) => format!("rl:authorize:user:{u}"),
            Bucket::TokenClient(c) => format!("rl:token:client:{c}"),
            Bucket::TokenIp(ip) => format!("rl:token:ip:{ip}"),
            Bucket::RevokeIp(ip) => format!("rl:revoke:ip:{ip}"),
        }
    }

    fn limit(&self, limits: &RateLimits) -> Option<u32> {
        match self {
            Bucket::AuthorizeUser(_) => limits.authorize,
            Bucket::TokenClient(_) | Bucket::TokenIp(_) => limits.token,
            Bucket::RevokeIp(_) => limits.revoke,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimitService {
    pub(crate) deps: Arc<Deps>,
}

impl RateLimitService {
    /// Counts one request; `rate_limited` with `Retry-After` when over the limit. A limiter
    /// that cannot be reached is an error, never a silent pass (the composition root puts an
    /// in-process fallback in front of a remote limiter).
    pub async fn check(&self, bucket: Bucket<'_>) -> Result<(), Error> {
        let Some(limit) = bucket.limit(&self.deps.config.rate_limits) else {
            return Ok(());
        };
        let d = self
            .deps
            .rate_limiter
            .hit(&bucket.key(), limit, 60, self.deps.now())
            .await?;
        if d.allowed {
            Ok(())
        } else {
            Err(Error::RateLimited {
                retry_after: d.retry_after.max(1),
            })
        }
    }
}
