//! `DeviceStore`: device authorizations (RFC 8628) by device-code hash and by user code.

use async_trait::async_trait;
use buzzgate_domain::StoreError;
use buzzgate_domain::error::Error;
use buzzgate_domain::grant::device_code::{
    DeviceAuthorization, DevicePoll, DevicePollStep, DeviceResolution, DeviceStatus, UserCode,
};
use buzzgate_domain::ports::{DeviceStore, StoreResult};
use buzzgate_domain::token::{TokenHash, is_live};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use crate::codes::sweep_table;
use crate::convert::{Cols, blob, corrupt, opt_us, us};
use crate::{SqliteStore, finish, map_err};

/// The newest authorization carrying a user code (a dead one's code may be reused).
const BY_USER_CODE: &str =
    "SELECT * FROM device_authorizations WHERE user_code = ? ORDER BY rowid DESC LIMIT 1";

fn device_of(row: &SqliteRow) -> StoreResult<DeviceAuthorization> {
    let c = Cols(row);
    let name = c.string("status")?;
    let status = DeviceStatus::from_columns(
        &name,
        c.opt_user("approved_user_id")?,
        c.opt_time("approved_auth_time")?,
        c.opt_time("approved_at")?,
    )
    .ok_or_else(|| corrupt(format!("device status {name}")))?;
    let user_code = c.string("user_code")?;
    Ok(DeviceAuthorization {
        device_hash: c.hash("device_hash")?,
        user_code: UserCode::normalize(&user_code).ok_or_else(|| corrupt("user_code"))?,
        client_id: c.client("client_id")?,
        scope: c.scope("scope")?,
        status,
        created_at: c.time("created_at")?,
        expires_at: c.time("expires_at")?,
        interval: u64::try_from(c.i64("interval_secs")?).map_err(|_| corrupt("interval"))?,
        last_polled_at: c.opt_time("last_polled_at")?,
    })
}

fn interval_col(rec: &DeviceAuthorization) -> i64 {
    i64::try_from(rec.interval).unwrap_or(i64::MAX)
}

/// Writes back every mutable column of `rec` (by its device hash).
async fn write_back(conn: &mut SqliteConnection, rec: &DeviceAuthorization) -> StoreResult<()> {
    let cols = rec.status.columns();
    sqlx::query(
        "UPDATE device_authorizations SET scope = ?, status = ?, approved_user_id = ?, \
         approved_auth_time = ?, approved_at = ?, expires_at = ?, interval_secs = ?, \
         last_polled_at = ? WHERE device_hash = ?",
    )
    .bind(i64::from(rec.scope))
    .bind(cols.status)
    .bind(cols.user.map(|u| u.0))
    .bind(opt_us(cols.auth_time))
    .bind(opt_us(cols.approved_at))
    .bind(us(rec.expires_at))
    .bind(interval_col(rec))
    .bind(opt_us(rec.last_polled_at))
    .bind(blob(&rec.device_hash))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn latest_by_user_code(
    conn: &mut SqliteConnection,
    code: &UserCode,
) -> StoreResult<Option<DeviceAuthorization>> {
    sqlx::query(BY_USER_CODE)
        .bind(code.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(device_of)
        .transpose()
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn insert(&self, rec: &DeviceAuthorization) -> StoreResult<()> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let out = async {
            let current = latest_by_user_code(&mut tx, &rec.user_code).await?;
            if current.is_some_and(|d| is_live(Some(d.expires_at), now)) {
                return Err(StoreError::Conflict("user code in use".into()));
            }
            let cols = rec.status.columns();
            sqlx::query(
                "INSERT OR REPLACE INTO device_authorizations (device_hash, user_code, client_id, \
                 scope, status, approved_user_id, approved_auth_time, approved_at, created_at, \
                 expires_at, interval_secs, last_polled_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(blob(&rec.device_hash))
            .bind(rec.user_code.as_str())
            .bind(rec.client_id.as_str())
            .bind(i64::from(rec.scope))
            .bind(cols.status)
            .bind(cols.user.map(|u| u.0))
            .bind(opt_us(cols.auth_time))
            .bind(opt_us(cols.approved_at))
            .bind(us(rec.created_at))
            .bind(us(rec.expires_at))
            .bind(interval_col(rec))
            .bind(opt_us(rec.last_polled_at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            Ok(())
        }
        .await;
        finish(tx, out).await
    }

    async fn find_by_user_code(&self, code: &UserCode) -> StoreResult<Option<DeviceAuthorization>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        latest_by_user_code(&mut conn, code).await
    }

    async fn resolve(
        &self,
        code: &UserCode,
        resolution: &DeviceResolution,
    ) -> StoreResult<Result<DeviceAuthorization, Error>> {
        let mut tx = self.begin_write().await?;
        let out = async {
            let current = latest_by_user_code(&mut tx, code).await?;
            let next = resolution.apply(current.as_ref());
            if let Ok(rec) = &next {
                write_back(&mut tx, rec).await?;
            }
            Ok(next)
        }
        .await;
        finish(tx, out).await
    }

    async fn poll(&self, device: &TokenHash, poll: &DevicePoll) -> StoreResult<DevicePollStep> {
        let mut tx = self.begin_write().await?;
        let out = async {
            let current = sqlx::query("SELECT * FROM device_authorizations WHERE device_hash = ?")
                .bind(blob(device))
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?
                .as_ref()
                .map(device_of)
                .transpose()?;
            let step = poll.decide(current.as_ref());
            if let Some(write) = &step.write {
                write_back(&mut tx, write).await?;
            }
            Ok(step)
        }
        .await;
        finish(tx, out).await
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        sweep_table(self, "device_authorizations", before, batch).await
    }
}
