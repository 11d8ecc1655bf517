//! A rate limiter that never fails open silently (SPEC 10): when the shared (Redis) limiter
//! is unreachable, the in-process one takes over and the outage is counted for metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{RateDecision, RateLimiter, StoreResult};
use crate::error::StoreError;

pub struct FallbackRateLimiter {
    primary: Arc<dyn RateLimiter>,
    fallback: Arc<dyn RateLimiter>,
    outages: AtomicU64,
}

impl std::fmt::Debug for FallbackRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackRateLimiter")
            .field("outages", &self.outages())
            .finish_non_exhaustive()
    }
}

impl FallbackRateLimiter {
    pub fn new(primary: Arc<dyn RateLimiter>, fallback: Arc<dyn RateLimiter>) -> Self {
        FallbackRateLimiter {
            primary,
            fallback,
            outages: AtomicU64::new(0),
        }
    }

    /// Hits answered by the fallback because the primary was unavailable.
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl RateLimiter for FallbackRateLimiter {
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        window_secs: u64,
        now: OffsetDateTime,
    ) -> StoreResult<RateDecision> {
        match self.primary.hit(key, limit, window_secs, now).await {
            Err(StoreError::Unavailable(_)) => {
                self.outages.fetch_add(1, Ordering::Relaxed);
                self.fallback.hit(key, limit, window_secs, now).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::ports::{ManualClock, MockRateLimiter};

    fn fallback() -> Arc<dyn RateLimiter> {
        Arc::new(MemoryStore::new(Arc::new(ManualClock::at_epoch())))
    }

    #[tokio::test]
    async fn primary_answers_while_it_is_up() {
        let mut p = MockRateLimiter::new();
        p.expect_hit().times(1).returning(|_, _, _, _| {
            Ok(RateDecision {
                allowed: false,
                remaining: 0,
                retry_after: 9,
            })
        });
        let rl = FallbackRateLimiter::new(Arc::new(p), fallback());
        let d = rl
            .hit("k", 1, 60, ManualClock::at_epoch_now())
            .await
            .unwrap();
        assert_eq!((d.allowed, d.retry_after, rl.outages()), (false, 9, 0));
    }

    #[tokio::test]
    async fn outage_falls_back_to_the_in_process_limiter_and_is_counted() {
        let mut p = MockRateLimiter::new();
        p.expect_hit()
            .returning(|_, _, _, _| Err(StoreError::Unavailable("redis down".into())));
        let rl = FallbackRateLimiter::new(Arc::new(p), fallback());
        let now = ManualClock::at_epoch_now();
        assert!(rl.hit("k", 2, 60, now).await.unwrap().allowed);
        assert!(rl.hit("k", 2, 60, now).await.unwrap().allowed);
        assert!(
            !rl.hit("k", 2, 60, now).await.unwrap().allowed,
            "still limited, never open"
        );
        assert_eq!(rl.outages(), 3);
    }

    #[tokio::test]
    async fn other_errors_are_not_hidden() {
        let mut p = MockRateLimiter::new();
        p.expect_hit()
            .returning(|_, _, _, _| Err(StoreError::Internal("bad script".into())));
        let rl = FallbackRateLimiter::new(Arc::new(p), fallback());
        assert!(matches!(
            rl.hit("k", 2, 60, ManualClock::at_epoch_now()).await,
            Err(StoreError::Internal(_))
        ));
    }
}
