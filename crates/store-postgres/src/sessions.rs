//! `SessionStore`: browser sessions by the hash of their cookie.

use async_trait::async_trait;
use buzzgate_domain::ids::UserId;
use buzzgate_domain::ports::{SessionStore, StoreResult};
use buzzgate_domain::token::TokenHash;
use buzzgate_domain::user::Session;
use time::OffsetDateTime;

use crate::{PgStore, hash_from, map_err};

#[derive(sqlx::FromRow)]
struct SessionRow {
    id_hash: Vec<u8>,
    user_id: i64,
    csrf_token: String,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

#[async_trait]
impl SessionStore for PgStore {
    async fn insert(&self, s: &Session) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id_hash) DO UPDATE SET \
             user_id = EXCLUDED.user_id, csrf_token = EXCLUDED.csrf_token, \
             created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
        )
        .bind(&s.id_hash.0[..])
        .bind(s.user_id.0)
        .bind(&s.csrf_token)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn get(&self, id_hash: &TokenHash) -> StoreResult<Option<Session>> {
        let row = sqlx::query_as::<_, SessionRow>(
            "SELECT id_hash, user_id, csrf_token, created_at, expires_at FROM sessions \
             WHERE id_hash = $1",
        )
        .bind(&id_hash.0[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|r| {
            Ok(Session {
                id_hash: hash_from(r.id_hash, "session hash")?,
                user_id: UserId(r.user_id),
                csrf_token: r.csrf_token,
                created_at: r.created_at,
                expires_at: r.expires_at,
            })
        })
        .transpose()
    }

    async fn delete(&self, id_hash: &TokenHash) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(&id_hash.0[..])
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        let done = sqlx::query(
            "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions \
             WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(batch))
    }
}
