//! `TokenStore` over the in-memory state: access and refresh tokens, families, API keys.

use std::collections::HashSet;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{MemoryStore, State};
use crate::audit::AuditEvent;
use crate::error::StoreError;
use crate::grant::refresh_token::{RefreshRotation, RotationDecision};
use crate::ids::{ClientId, FamilyId, TokenId, UserId};
use crate::ports::{InsertOutcome, StoreResult, TokenStore};
use crate::token::{TokenHash, TokenKind, TokenRecord};

fn revoke_family_locked(s: &mut State, family: FamilyId, now: OffsetDateTime) -> Vec<TokenHash> {
    s.revoked_families.insert(family);
    let mut out = Vec::new();
    for t in s
        .tokens
        .values_mut()
        .filter(|t| t.family_id == Some(family) && t.revoked_at.is_none())
    {
        t.revoked_at = Some(now);
        out.push(t.hash);
    }
    s.cache.retain(|h, _| !out.contains(h));
    out
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn insert(&self, tokens: &[TokenRecord]) -> StoreResult<InsertOutcome> {
        let mut s = self.lock()?;
        if tokens
            .iter()
            .any(|t| t.family_id.is_some_and(|f| s.revoked_families.contains(&f)))
        {
            return Ok(InsertOutcome::FamilyRevoked);
        }
        if tokens.iter().any(|t| s.tokens.contains_key(&t.hash)) {
            return Err(StoreError::Conflict("token hash exists".into()));
        }
        for t in tokens {
            s.tokens.insert(t.hash, t.clone());
        }
        Ok(InsertOutcome::Inserted)
    }

    async fn find(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        Ok(self.lock()?.tokens.get(hash).cloned())
    }

    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        rotation: &RefreshRotation,
    ) -> StoreResult<RotationDecision> {
        let mut s = self.lock()?;
        let row = s.tokens.get(presented).cloned();
        let family_revoked = row
            .as_ref()
            .and_then(|r| r.family_id)
            .is_some_and(|f| s.revoked_families.contains(&f));
        let mut decision = rotation.decide(row.as_ref(), family_revoked);
        if let RotationDecision::Rotate {
            mark_rotated,
            access,
            refresh,
            superseded,
        } = &mut decision
        {
            if *mark_rotated {
                if let Some(r) = s.tokens.get_mut(presented) {
                    r.rotated_at.get_or_insert(rotation.now);
                }
            }
            if let Some(family) = refresh.family_id {
                for t in s.tokens.values_mut() {
                    if t.family_id == Some(family)
                        && t.kind == TokenKind::Refresh
                        && t.hash != *presented
                        && t.rotated_at.is_none()
                        && t.revoked_at.is_none()
                    {
                        t.revoked_at = Some(rotation.now);
                        superseded.push(t.hash);
                    }
                }
            }
            for h in superseded.iter() {
                s.cache.remove(h);
            }
            s.tokens.insert(access.hash, access.clone());
            s.tokens.insert(refresh.hash, refresh.clone());
        }
        Ok(decision)
    }

    async fn rotate_refresh_audited(
        &self,
        presented: &TokenHash,
        rotation: &RefreshRotation,
        refreshed: &AuditEvent,
    ) -> StoreResult<(RotationDecision, bool)> {
        // This store is also the node's audit log (`AuditLog for MemoryStore`), so it records
        // the rotation's event itself, as the SQL stores do in the rotation's commit.
        let decision = self.rotate_refresh(presented, rotation).await?;
        let event = decision.audited(refreshed);
        if let Some(e) = &event {
            self.lock()?.audit.push(e.clone());
        }
        Ok((decision, event.is_some()))
    }

    async fn revoke(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<TokenRecord>> {
        let mut s = self.lock()?;
        s.cache.remove(hash);
        Ok(s.tokens.get_mut(hash).map(|t| {
            t.revoked_at.get_or_insert(now);
            t.clone()
        }))
    }

    async fn revoke_family(
        &self,
        family: FamilyId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>> {
        let mut s = self.lock()?;
        Ok(revoke_family_locked(&mut s, family, now))
    }

    async fn revoke_for_user_client(
        &self,
        user: UserId,
        client: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>> {
        let mut s = self.lock()?;
        let families: HashSet<FamilyId> = s
            .tokens
            .values()
            .filter(|t| t.user_id == user && t.client_id.as_ref() == Some(client))
            .filter_map(|t| t.family_id)
            .collect();
        let mut out = Vec::new();
        for f in families {
            out.extend(revoke_family_locked(&mut s, f, now));
        }
        for t in s.tokens.values_mut().filter(|t| {
            t.user_id == user && t.client_id.as_ref() == Some(client) && t.revoked_at.is_none()
        }) {
            t.revoked_at = Some(now);
            out.push(t.hash);
        }
        s.cache.retain(|h, _| !out.contains(h));
        Ok(out)
    }

    async fn revoke_for_user(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>> {
        let mut s = self.lock()?;
        let families: HashSet<FamilyId> = s
            .tokens
            .values()
            .filter(|t| t.user_id == user)
            .filter_map(|t| t.family_id)
            .collect();
        let mut out = Vec::new();
        for f in families {
            out.extend(revoke_family_locked(&mut s, f, now));
        }
        for t in s
            .tokens
            .values_mut()
            .filter(|t| t.user_id == user && t.revoked_at.is_none())
        {
            t.revoked_at = Some(now);
            out.push(t.hash);
        }
        s.cache.retain(|h, _| !out.contains(h));
        Ok(out)
    }

    async fn list_api_keys(&self, user: UserId) -> StoreResult<Vec<TokenRecord>> {
        let s = self.lock()?;
        let mut out: Vec<TokenRecord> = s
            .tokens
            .values()
            .filter(|t| t.kind == TokenKind::ApiKey && t.user_id == user && t.revoked_at.is_none())
            .cloned()
            .collect();
        out.sort_by(|a, b| b.issued_at.cmp(&a.issued_at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn revoke_api_key(
        &self,
        user: UserId,
        id: TokenId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<TokenHash>> {
        let mut s = self.lock()?;
        let hit = s.tokens.values_mut().find(|t| {
            t.id == id && t.user_id == user && t.kind == TokenKind::ApiKey && t.revoked_at.is_none()
        });
        let hash = hit.map(|t| {
            t.revoked_at = Some(now);
            t.hash
        });
        if let Some(h) = &hash {
            s.cache.remove(h);
        }
        Ok(hash)
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        let mut s = self.lock()?;
        let dead: Vec<TokenHash> = s
            .tokens
            .values()
            .filter(|t| {
                t.revoked_at.is_some_and(|r| r < before) || t.expires_at.is_some_and(|e| e < before)
            })
            .take(batch as usize)
            .map(|t| t.hash)
            .collect();
        for h in &dead {
            s.tokens.remove(h);
        }
        Ok(dead.len() as u32)
    }
}
