//! Housekeeping the server runs periodically: sweeping expired rows in bounded batches, so a
//! token table never grows without limit (anchor research 4.2) and no sweep holds a long lock.

use std::sync::Arc;

use time::Duration;

use crate::error::Error;
use crate::ports::StoreResult;

use super::Deps;

/// How much one sweep may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPolicy {
    /// Rows deleted per statement.
    pub batch: u32,
    /// Batches per store per sweep; the next sweep carries on.
    pub max_batches: u32,
    /// Rows are kept this long past their expiry (or revocation), so a replayed code or a
    /// reused refresh token is still recognised as such for a while.
    pub retention: Duration,
}

impl Default for SweepPolicy {
    fn default() -> Self {
        SweepPolicy {
            batch: 500,
            max_batches: 20,
            retention: Duration::hours(1),
        }
    }
}

/// Rows removed by one sweep, per store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub tokens: u64,
    pub codes: u64,
    pub devices: u64,
    pub sessions: u64,
}

#[derive(Debug, Clone)]
pub struct MaintenanceService {
    pub(crate) deps: Arc<Deps>,
}

/// Calls `sweep` until a batch comes back short or `max_batches` is reached.
async fn drain<F, Fut>(policy: &SweepPolicy, mut sweep: F) -> StoreResult<u64>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = StoreResult<u32>>,
{
    let mut total = 0u64;
    for _ in 0..policy.max_batches {
        let n = sweep(policy.batch).await?;
        total += u64::from(n);
        if n < policy.batch {
            break;
        }
    }
    Ok(total)
}

impl MaintenanceService {
    /// One sweep of every store with expiring rows: whatever expired (or was revoked) more than
    /// `retention` ago goes.
    pub async fn sweep(&self, policy: &SweepPolicy) -> Result<SweepReport, Error> {
        let d = &self.deps;
        let before = d.now() - policy.retention;
        Ok(SweepReport {
            tokens: drain(policy, |n| d.tokens.sweep_expired(before, n)).await?,
            codes: drain(policy, |n| d.codes.sweep_expired(before, n)).await?,
            devices: drain(policy, |n| d.devices.sweep_expired(before, n)).await?,
            sessions: drain(policy, |n| d.sessions.sweep_expired(before, n)).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::memory::MemoryStore;
    use crate::ports::{Clock, ManualClock, MockTokenStore, SeededRandom};
    use crate::service::{Buzzgate, Config};

    fn gate(adjust: impl FnOnce(&mut Deps)) -> (Buzzgate, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::at_epoch());
        let store = MemoryStore::new(clock.clone());
        let mut deps = store.deps(Arc::new(SeededRandom::new(1)), Config::default());
        adjust(&mut deps);
        (Buzzgate::new(deps), clock)
    }

    #[tokio::test]
    async fn sweep_stops_at_a_short_batch() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let mut tokens = MockTokenStore::new();
        // 500, 500, 120: three batches, then done.
        tokens
            .expect_sweep_expired()
            .times(3)
            .returning(move |_, batch| {
                assert_eq!(batch, 500);
                Ok(if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                    500
                } else {
                    120
                })
            });
        let (g, _) = gate(|d| d.tokens = Arc::new(tokens));
        let report = g
            .maintenance()
            .sweep(&SweepPolicy::default())
            .await
            .unwrap();
        assert_eq!(report.tokens, 1120);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn sweep_is_bounded_per_run() {
        let mut tokens = MockTokenStore::new();
        tokens
            .expect_sweep_expired()
            .times(4)
            .returning(|_, batch| Ok(batch));
        let (g, _) = gate(|d| d.tokens = Arc::new(tokens));
        let policy = SweepPolicy {
            batch: 10,
            max_batches: 4,
            ..SweepPolicy::default()
        };
        assert_eq!(g.maintenance().sweep(&policy).await.unwrap().tokens, 40);
    }

    #[tokio::test]
    async fn sweep_keeps_rows_for_the_retention_period() {
        let mut tokens = MockTokenStore::new();
        let expected = ManualClock::at_epoch().now() - Duration::hours(1);
        tokens
            .expect_sweep_expired()
            .withf(move |before, _| *before == expected)
            .times(1)
            .returning(|_, _| Ok(0));
        let (g, _) = gate(|d| d.tokens = Arc::new(tokens));
        g.maintenance()
            .sweep(&SweepPolicy::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_store_outage_stops_the_sweep_with_temporarily_unavailable() {
        let mut tokens = MockTokenStore::new();
        tokens
            .expect_sweep_expired()
            .returning(|_, _| Err(crate::StoreError::Unavailable("down".into())));
        let (g, _) = gate(|d| d.tokens = Arc::new(tokens));
        assert_eq!(
            g.maintenance()
                .sweep(&SweepPolicy::default())
                .await
                .unwrap_err()
                .code(),
            "temporarily_unavailable"
        );
    }
}
