//! Device authorizations (RFC 8628): polls and resolutions under a row lock.

use async_trait::async_trait;
use buzzgate_domain::Error;
use buzzgate_domain::grant::device_code::{
    DeviceAuthorization, DevicePoll, DevicePollStep, DeviceResolution, DeviceStatus, UserCode,
};
use buzzgate_domain::ids::UserId;
use buzzgate_domain::ports::{DeviceStore, StoreResult};
use buzzgate_domain::token::TokenHash;
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::{
    Done, PgStore, client_id_from, corrupt, hash_from, i64_of, map_err, scope_from, scope_to,
    transaction,
};

const DEVICE_COLUMNS: &str = "device_hash, user_code, client_id, scope, status, \
     approved_user_id, approved_auth_time, created_at, expires_at, poll_interval, last_polled_at, \
     approved_at";

#[derive(sqlx::FromRow)]
struct DeviceRow {
    device_hash: Vec<u8>,
    user_code: String,
    client_id: String,
    scope: i64,
    status: String,
    approved_user_id: Option<i64>,
    approved_auth_time: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    poll_interval: i64,
    last_polled_at: Option<OffsetDateTime>,
    approved_at: Option<OffsetDateTime>,
}

impl DeviceRow {
    fn into_record(self) -> StoreResult<DeviceAuthorization> {
        let status = DeviceStatus::from_columns(
            &self.status,
            self.approved_user_id.map(UserId),
            self.approved_auth_time,
            self.approved_at,
        )
        .ok_or_else(|| corrupt("device status"))?;
        Ok(DeviceAuthorization {
            device_hash: hash_from(self.device_hash, "device code hash")?,
            user_code: UserCode::normalize(&self.user_code).ok_or_else(|| corrupt("user code"))?,
            client_id: client_id_from(&self.client_id)?,
            scope: scope_from(self.scope)?,
            status,
            created_at: self.created_at,
            expires_at: self.expires_at,
            interval: u64::try_from(self.poll_interval).map_err(|_| corrupt("poll interval"))?,
            last_polled_at: self.last_polled_at,
        })
    }
}

/// Writes the mutable part of `rec` (status, interval, last poll) to its row.
async fn store(c: &mut PgConnection, rec: &DeviceAuthorization) -> Result<(), sqlx::Error> {
    let cols = rec.status.columns();
    sqlx::query(
        "UPDATE device_authorizations SET status = $2, approved_user_id = $3, \
         approved_auth_time = $4, poll_interval = $5, last_polled_at = $6, scope = $7, \
         expires_at = $8, approved_at = $9 WHERE device_hash = $1",
    )
    .bind(&rec.device_hash.0[..])
    .bind(cols.status)
    .bind(cols.user.map(|u| u.0))
    .bind(cols.auth_time)
    .bind(i64_of(rec.interval))
    .bind(rec.last_polled_at)
    .bind(scope_to(rec.scope))
    .bind(rec.expires_at)
    .bind(cols.approved_at)
    .execute(c)
    .await?;
    Ok(())
}

#[async_trait]
impl DeviceStore for PgStore {
    async fn insert(&self, rec: &DeviceAuthorization) -> StoreResult<()> {
        let now = self.now();
        let cols = rec.status.columns();
        transaction!(self, |c| {
            // An expired authorization gives its user code up (it stays pollable by its
            // device code, so the device still hears `expired_token`).
            sqlx::query(
                "UPDATE device_authorizations SET user_code_key = NULL \
                 WHERE user_code_key = $1 AND expires_at <= $2",
            )
            .bind(rec.user_code.as_str())
            .bind(now)
            .execute(&mut *c)
            .await?;
            // A live holder of the code makes this a unique violation: Conflict.
            sqlx::query(&format!(
                "INSERT INTO device_authorizations ({DEVICE_COLUMNS}, user_code_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $2)"
            ))
            .bind(&rec.device_hash.0[..])
            .bind(rec.user_code.as_str())
            .bind(rec.client_id.as_str())
            .bind(scope_to(rec.scope))
            .bind(cols.status)
            .bind(cols.user.map(|u| u.0))
            .bind(cols.auth_time)
            .bind(rec.created_at)
            .bind(rec.expires_at)
            .bind(i64_of(rec.interval))
            .bind(rec.last_polled_at)
            .bind(cols.approved_at)
            .execute(&mut *c)
            .await?;
            Ok(Done::Commit(()))
        })
    }

    async fn find_by_user_code(&self, code: &UserCode) -> StoreResult<Option<DeviceAuthorization>> {
        sqlx::query_as::<_, DeviceRow>(&format!(
            "SELECT {DEVICE_COLUMNS} FROM device_authorizations WHERE user_code_key = $1"
        ))
        .bind(code.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(DeviceRow::into_record)
        .transpose()
    }

    async fn resolve(
        &self,
        code: &UserCode,
        resolution: &DeviceResolution,
    ) -> StoreResult<Result<DeviceAuthorization, Error>> {
        transaction!(self, |c| {
            let current = sqlx::query_as::<_, DeviceRow>(&format!(
                "SELECT {DEVICE_COLUMNS} FROM device_authorizations \
                 WHERE user_code_key = $1 FOR UPDATE"
            ))
            .bind(code.as_str())
            .fetch_optional(&mut *c)
            .await?
            .map(DeviceRow::into_record)
            .transpose()?;
            let next = resolution.apply(current.as_ref());
            match &next {
                Ok(rec) if current.is_some() => {
                    store(&mut *c, rec).await?;
                    Ok(Done::Commit(next))
                }
                _ => Ok(Done::Rollback(next)),
            }
        })
    }

    async fn poll(&self, device: &TokenHash, poll: &DevicePoll) -> StoreResult<DevicePollStep> {
        transaction!(self, |c| {
            let current = sqlx::query_as::<_, DeviceRow>(&format!(
                "SELECT {DEVICE_COLUMNS} FROM device_authorizations \
                 WHERE device_hash = $1 FOR UPDATE"
            ))
            .bind(&device.0[..])
            .fetch_optional(&mut *c)
            .await?
            .map(DeviceRow::into_record)
            .transpose()?;
            let step = poll.decide(current.as_ref());
            match &step.write {
                Some(rec) => {
                    store(&mut *c, rec).await?;
                    Ok(Done::Commit(step))
                }
                None => Ok(Done::Rollback(step)),
            }
        })
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        let done = sqlx::query(
            "DELETE FROM device_authorizations WHERE device_hash IN (SELECT device_hash \
             FROM device_authorizations WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(batch))
    }
}
