//! `SessionStore` over the in-memory state: browser sessions.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::ports::{SessionStore, StoreResult};
use crate::token::TokenHash;
use crate::user::Session;

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert(&self, session: &Session) -> StoreResult<()> {
        self.lock()?
            .sessions
            .insert(session.id_hash, session.clone());
        Ok(())
    }
    async fn get(&self, id_hash: &TokenHash) -> StoreResult<Option<Session>> {
        Ok(self.lock()?.sessions.get(id_hash).cloned())
    }
    async fn delete(&self, id_hash: &TokenHash) -> StoreResult<()> {
        self.lock()?.sessions.remove(id_hash);
        Ok(())
    }
    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        let mut s = self.lock()?;
        let dead: Vec<TokenHash> = s
            .sessions
            .values()
            .filter(|x| x.expires_at < before)
            .take(batch as usize)
            .map(|x| x.id_hash)
            .collect();
        for h in &dead {
            s.sessions.remove(h);
        }
        Ok(dead.len() as u32)
    }
}
