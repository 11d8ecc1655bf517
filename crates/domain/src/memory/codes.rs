//! `CodeStore` over the in-memory state: authorization codes, redeemed at most once.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::grant::authorization_code::{AuthorizationCodeRecord, CodeRedemption};
use crate::ids::FamilyId;
use crate::ports::{CodeStore, StoreResult};
use crate::token::TokenHash;

#[async_trait]
impl CodeStore for MemoryStore {
    async fn insert(&self, code: &AuthorizationCodeRecord) -> StoreResult<()> {
        self.lock()?.codes.insert(code.hash, code.clone());
        Ok(())
    }

    async fn redeem(&self, hash: &TokenHash, family: FamilyId) -> StoreResult<CodeRedemption> {
        let mut s = self.lock()?;
        Ok(match s.codes.get_mut(hash) {
            None => CodeRedemption::NotFound,
            Some(c) => match c.redeemed {
                Some(f) => CodeRedemption::AlreadyRedeemed { family: Some(f) },
                None => {
                    c.redeemed = Some(family);
                    CodeRedemption::Redeemed(c.clone())
                }
            },
        })
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        let mut s = self.lock()?;
        let dead: Vec<TokenHash> = s
            .codes
            .values()
            .filter(|c| c.expires_at < before)
            .take(batch as usize)
            .map(|c| c.hash)
            .collect();
        for h in &dead {
            s.codes.remove(h);
        }
        Ok(dead.len() as u32)
    }
}
