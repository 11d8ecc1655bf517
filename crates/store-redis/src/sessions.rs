//! `SessionStore`: the session JSON by cookie hash, expiring on its own timeline, with an
//! expiry index for `sweep_expired`.

use std::sync::LazyLock;

use async_trait::async_trait;
use buzzgate_domain::ports::{SessionStore, StoreResult};
use buzzgate_domain::token::TokenHash;
use buzzgate_domain::user::Session;
use redis::AsyncCommands;
use time::OffsetDateTime;

use crate::{RedisStore, from_json, micros, to_json};

/// KEYS = session key, expiry index; ARGV = JSON, TTL ms, expiry score, member.
const INSERT_LUA: &str = r#"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
-- The index lives as long as its longest-lived member, so every key has a TTL.
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1
"#;

static INSERT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(INSERT_LUA));

#[async_trait]
impl SessionStore for RedisStore {
    async fn insert(&self, session: &Session) -> StoreResult<()> {
        let mut inv = INSERT.prepare_invoke();
        inv.key(self.hkey("session", &session.id_hash))
            .key(format!("{}sessions:exp", self.prefix))
            .arg(to_json(session)?)
            .arg(self.record_ttl_ms(session.created_at, session.expires_at))
            .arg(micros(session.expires_at))
            .arg(session.id_hash.to_hex());
        let mut conn = self.conn();
        let _: i64 = self.run(inv.invoke_async(&mut conn)).await?;
        Ok(())
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
