//! `SessionStore`: browser sessions by the hash of their cookie.

use async_trait::async_trait;
use buzzgate_domain::ports::{SessionStore, StoreResult};
use buzzgate_domain::token::TokenHash;
use buzzgate_domain::user::Session;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use crate::codes::sweep_table;
use crate::convert::{Cols, Fetch, blob, us};
use crate::{SqliteStore, map_err};

fn session_of(row: &SqliteRow) -> StoreResult<Session> {
    let c = Cols(row);
    Ok(Session {
        id_hash: c.hash("id_hash")?,
        user_id: c.user("user_id")?,
        csrf_token: c.string("csrf_token")?,
        created_at: c.time("created_at")?,
        expires_at: c.time("expires_at")?,
    })
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert(&self, session: &Session) -> StoreResult<()> {
        let _turn = self.write_turn().await?;
        sqlx::query(
            "INSERT OR REPLACE INTO sessions (id_hash, user_id, csrf_token, created_at, \
             expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(blob(&session.id_hash))
        .bind(session.user_id.0)
        .bind(session.csrf_token.as_str())
        .bind(us(session.created_at))
        .bind(us(session.expires_at))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn get(&self, id_hash: &TokenHash) -> StoreResult<Option<Session>> {
        sqlx::query("SELECT * FROM sessions WHERE id_hash = ?")
            .bind(blob(id_hash))
            .optional(&self.pool, session_of)
            .await
    }

    async fn delete(&self, id_hash: &TokenHash) -> StoreResult<()> {
        let _turn = self.write_turn().await?;
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(blob(id_hash))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        sweep_table(self, "sessions", before, batch).await
    }
}
