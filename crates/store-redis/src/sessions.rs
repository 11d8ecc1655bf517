//! `SessionStore`: the session JSON by cookie hash, expiring on its own timeline, with an
//! expiry index for `sweep_expired`.

use async_trait::async_trait;
use buzzgate_domain::ports::{SessionStore, StoreResult};
use buzzgate_domain::token::TokenHash;
use buzzgate_domain::user::Session;
use redis::AsyncCommands;
use time::OffsetDateTime;

use crate::{RedisStore, from_json, micros, to_json};

#[async_trait]
impl SessionStore for RedisStore {
    async fn insert(&self, session: &Session) -> StoreResult<()> {
        let key = self.hkey("session", &session.id_hash);
        let ttl = self.record_ttl_ms(session.created_at, session.expires_at);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&key)
            .arg(to_json(session)?)
            .arg("PX")
            .arg(ttl)
            .ignore()
            .zadd(
                format!("{}sessions:exp", self.prefix),
                session.id_hash.to_hex(),
                micros(session.expires_at),
            )
            .ignore();
        let mut conn = self.conn();
        self.run(pipe.exec_async(&mut conn)).await
    }

    async fn get(&self, id_hash: &TokenHash) -> StoreResult<Option<Session>> {
        let mut conn = self.conn();
        let json: Option<String> = self.run(conn.get(self.hkey("session", id_hash))).await?;
        json.as_deref().map(from_json).transpose()
    }

    async fn delete(&self, id_hash: &TokenHash) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(self.hkey("session", id_hash))
            .ignore()
            .zrem(format!("{}sessions:exp", self.prefix), id_hash.to_hex())
            .ignore();
        let mut conn = self.conn();
        self.run(pipe.exec_async(&mut conn)).await
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        self.sweep("sessions:exp", "session", None, before, batch)
            .await
    }
}
