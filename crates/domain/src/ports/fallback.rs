//! A rate limiter that never fails open silently (SPEC 10): when the shared (Redis) limiter
//! is unreachable, the in-process one takes over and the outage is counted for metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::{RateLimiter, RateWindow, StoreResult};
use crate::error::StoreError;

/// Called with the error and the outage count on the first outage and every 1,000th after
/// (the composition root logs it; the domain does no I/O).
pub type OutageReport = Arc<dyn Fn(&str, u64) + Send + Sync>;

/// A count of failures that are absorbed rather than returned (a limiter outage answered by
/// the fallback, an audit write lost after its fact committed): never silent, the first and
/// every 1,000th go to the [`OutageReport`], and the count is there for metrics.
#[derive(Default)]
pub struct Failures {
    count: AtomicU64,
    report: Option<OutageReport>,
}

impl std::fmt::Debug for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failures")
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

impl Failures {
    pub fn reporting(report: OutageReport) -> Failures {
        Failures {
            count: AtomicU64::new(0),
            report: Some(report),
        }
    }

    /// Counts one failure, reporting it when it is the first or a 1,000th.
    pub fn record(&self, error: &str) {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if n % 1000 == 1
            && let Some(report) = &self.report
        {
            report(error, n);
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

pub struct FallbackRateLimiter {
    primary: Arc<dyn RateLimiter>,
    fallback: Arc<dyn RateLimiter>,
    outages: Failures,
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
            outages: Failures::default(),
        }
    }

    /// Reports outages through `report` (see [`OutageReport`]).
    pub fn on_outage(mut self, report: OutageReport) -> Self {
        self.outages = Failures::reporting(report);
        self
    }

    /// Hits answered by the fallback because the primary was unavailable.
    pub fn outages(&self) -> u64 {
        self.outages.count()
    }
}

#[async_trait]
impl RateLimiter for FallbackRateLimiter {
    async fn count(&self, key: &str, window: RateWindow, add: u32) -> StoreResult<u64> {
        match self.primary.count(key, window, add).await {
            Err(StoreError::Unavailable(e)) => {
                // Counted and reported, never silent (SPEC 10); the first of every 1,000 is
                // enough for an operator to notice without flooding the log.
                self.outages.record(&e);
                self.fallback.count(key, window, add).await
            }
            other => other,
        }
    }

    async fn count_each(
        &self,
        hits: &[(String, u32)],
        window: RateWindow,
    ) -> StoreResult<Vec<u64>> {
        match self.primary.count_each(hits, window).await {
            Err(StoreError::Unavailable(e)) => {
                self.outages.record(&e);
                self.fallback.count_each(hits, window).await
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

    fn window() -> RateWindow {
        RateWindow::containing(ManualClock::at_epoch_now(), 60)
    }

    fn fallback() -> Arc<dyn RateLimiter> {
        Arc::new(MemoryStore::new(Arc::new(ManualClock::at_epoch())))
    }

    #[test]
    fn absorbed_failures_report_the_first_and_every_thousandth() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let f = Failures::reporting(Arc::new(move |e: &str, n: u64| {
            sink.lock().unwrap().push((e.to_owned(), n));
        }));
        for _ in 0..2001 {
            f.record("db down");
        }
        assert_eq!(f.count(), 2001);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                ("db down".to_owned(), 1),
                ("db down".to_owned(), 1001),
                ("db down".to_owned(), 2001)
            ]
        );
    }

    #[tokio::test]
    async fn primary_answers_while_it_is_up() {
        let mut p = MockRateLimiter::new();
        p.expect_count().times(1).returning(|_, _, _| Ok(9));
        let rl = FallbackRateLimiter::new(Arc::new(p), fallback());
        let n = rl.count("k", window(), 1).await.unwrap();
        assert_eq!((n, rl.outages()), (9, 0));
    }

    #[tokio::test]
    async fn outage_falls_back_to_the_in_process_limiter_and_is_counted() {
        let mut p = MockRateLimiter::new();
        p.expect_count()
            .returning(|_, _, _| Err(StoreError::Unavailable("redis down".into())));
        let rl = FallbackRateLimiter::new(Arc::new(p), fallback());
        assert_eq!(rl.count("k", window(), 1).await.unwrap(), 1);
        assert_eq!(rl.count("k", window(), 1).await.unwrap(), 2);
        assert_eq!(
            rl.count("k", window(), 1).await.unwrap(),
            3,
            "still counted, never open"
        );
        assert_eq!(rl.outages(), 3);
    }

    #[tokio::test]
    async fn other_errors_are_not_hidden() {
        let mut p = MockRateLimiter::new();
        p.expect_count()
            .returning(|_, _, _| Err(StoreError::Internal("bad script".into())));
        let rl = FallbackRateLimiter::new(Arc::new(p), fallback());
        assert!(matches!(
            rl.count("k", window(), 1).await,
            Err(StoreError::Internal(_))
        ));
    }
}
