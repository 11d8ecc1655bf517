//! Fixed-window rate limiting: one atomic upsert per hit.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use buzzgate_domain::ports::{RateLimiter, RateWindow, StoreResult};
use time::OffsetDateTime;

use crate::{PgStore, map_err};

/// Every this many hits (per store), expired windows are swept in a small batch.
const SWEEP_EVERY: u64 = 1024;
const SWEEP_BATCH: u32 = 100;

impl PgStore {
    /// Deletes at most `batch` rate-limit windows that ended before `before`; returns how
    /// many. The limiter also does this by itself every so often.
    pub async fn sweep_rate_limits(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        let done = sqlx::query(
            "DELETE FROM rate_limits WHERE key IN (SELECT key FROM rate_limits \
             WHERE window_end < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before.unix_timestamp())
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(batch))
    }
}

#[async_trait]
impl RateLimiter for PgStore {
    async fn count(&self, key: &str, window: RateWindow, add: u32) -> StoreResult<u64> {
        // A later window starts over; a hit that arrives late (a node's clock behind) counts
        // in the current window rather than resetting it.
        let hits: i64 = sqlx::query_scalar(
            "INSERT INTO rate_limits AS r (key, window_start, window_end, hits) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET \
               hits = CASE WHEN EXCLUDED.window_start > r.window_start THEN EXCLUDED.hits \
                           ELSE r.hits + EXCLUDED.hits END, \
               window_end = CASE WHEN EXCLUDED.window_start > r.window_start \
                                 THEN EXCLUDED.window_end ELSE r.window_end END, \
               window_start = GREATEST(r.window_start, EXCLUDED.window_start) \
             RETURNING hits",
        )
        .bind(key)
        .bind(window.start)
        .bind(window.end())
        .bind(i64::from(add))
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        if self.hits.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Best effort: a failed sweep does not fail the hit.
            let before = OffsetDateTime::from_unix_timestamp(window.start)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let _ = self.sweep_rate_limits(before, SWEEP_BATCH).await;
        }
        Ok(u64::try_from(hits).unwrap_or(0))
    }
}
