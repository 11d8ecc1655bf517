//! `AuditLog` (rows without foreign keys, newest first) and `RateLimiter` (fixed windows).

use async_trait::async_trait;
use buzzgate_domain::audit::{AuditEvent, AuditKind, AuditQuery};
use buzzgate_domain::ports::{AuditLog, RateLimiter, RateWindow, StoreResult};
use sqlx::QueryBuilder;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use crate::convert::{Cols, corrupt, to_json, u32_of, us};
use crate::{SqliteStore, finish, map_err};

fn event_of(row: &SqliteRow) -> StoreResult<AuditEvent> {
    let c = Cols(row);
    let kind = c.string("kind")?;
    Ok(AuditEvent {
        kind: AuditKind::parse(&kind).ok_or_else(|| corrupt(format!("audit kind {kind}")))?,
        at: c.time("at")?,
        user_id: c.opt_user("user_id")?,
        client_id: c.opt_client("client_id")?,
        scope: c.opt_scope("scope")?,
        ip: c.opt_string("ip")?,
        metadata: c.json("metadata")?,
    })
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, event: &AuditEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (kind, at, user_id, client_id, scope, ip, metadata) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(event.kind.as_str())
        .bind(us(event.at))
        .bind(event.user_id.map(|u| u.0))
        .bind(event.client_id.as_ref().map(|c| c.as_str()))
        .bind(event.scope.map(|s| i64::from(s.bits())))
        .bind(event.ip.as_deref())
        .bind(to_json(&event.metadata)?)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn query(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let mut q = QueryBuilder::<sqlx::Sqlite>::new("SELECT * FROM audit_log WHERE 1 = 1");
        if let Some(kind) = query.kind {
            q.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(user) = query.user_id {
            q.push(" AND user_id = ").push_bind(user.0);
        }
        if let Some(client) = &query.client_id {
            q.push(" AND client_id = ")
                .push_bind(client.as_str().to_owned());
        }
        if let Some(since) = query.since {
            q.push(" AND at >= ").push_bind(us(since));
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::try_from(query.effective_limit()).unwrap_or(i64::MAX));
        q.build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(event_of)
            .collect()
    }
}

#[async_trait]
impl RateLimiter for SqliteStore {
    async fn count(&self, key: &str, window: RateWindow, add: u32) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        // One statement: a newer window starts over, the current (or a newer stored) one
        // counts on.
        let out = sqlx::query(
            "INSERT INTO rate_limits (key, window_start, count) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN window_start < excluded.window_start \
                            THEN excluded.count ELSE MIN(count + excluded.count, 4294967295) END, \
               window_start = MAX(window_start, excluded.window_start) \
             RETURNING count",
        )
        .bind(key)
        .bind(window.start)
        .bind(i64::from(add))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)
        .and_then(|row| Cols(&row).i64("count"));
        Ok(u64::try_from(finish(tx, out).await?).unwrap_or(0))
    }
}

impl SqliteStore {
    /// Deletes at most `batch` rate-limit counters whose window started before `before`
    /// (each key keeps one row for its current window; keys that stop being hit leave their
    /// last row behind). Returns how many were deleted; call again while it returns `batch`.
    pub async fn sweep_rate_limits(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        if batch == 0 {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let out = sqlx::query(
            "DELETE FROM rate_limits WHERE key IN \
             (SELECT key FROM rate_limits WHERE window_start < ? LIMIT ?)",
        )
        .bind(before.unix_timestamp())
        .bind(i64::from(batch))
        .execute(&mut *tx)
        .await
        .map(|done| u32_of(done.rows_affected()))
        .map_err(map_err);
        finish(tx, out).await
    }
}
