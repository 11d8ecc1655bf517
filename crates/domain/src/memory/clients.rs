//! `ClientStore` and `ConsentStore` over the in-memory state: apps, and the (user, app) grants
//! whose rows a deleted app takes with it.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::buzz::BuzzLimit;
use crate::client::{Client, Origin};
use crate::consent::Consent;
use crate::error::StoreError;
use crate::ids::{ClientId, UserId};
use crate::ports::{ClientStore, ClientSummary, Conditional, ConsentStore, StoreResult};
use crate::token::TokenHash;

#[async_trait]
impl ClientStore for MemoryStore {
    async fn insert(&self, client: &Client) -> StoreResult<()> {
        let mut s = self.lock()?;
        if s.clients.contains_key(&client.id) {
            return Err(StoreError::Conflict("client id exists".into()));
        }
        s.clients.insert(client.id.clone(), client.clone());
        Ok(())
    }

    async fn get(&self, id: &ClientId) -> StoreResult<Option<Arc<Client>>> {
        Ok(self.lock()?.clients.get(id).cloned().map(Arc::new))
    }

    async fn list_by_owner(&self, owner: UserId) -> StoreResult<Vec<ClientSummary>> {
        let s = self.lock()?;
        let now = self.clock.now();
        let mut out: Vec<ClientSummary> = s
            .clients
            .values()
            .filter(|c| c.owner == owner)
            .map(|c| ClientSummary {
                client: c.clone(),
                active_tokens: s
                    .tokens
                    .values()
                    .filter(|t| t.client_id.as_ref() == Some(&c.id) && t.is_active(now))
                    .count() as u64,
                consents: s.consents.keys().filter(|(_, cid)| *cid == c.id).count() as u64,
            })
            .collect();
        out.sort_by(|a, b| {
            b.client
                .created_at
                .cmp(&a.client.created_at)
                .then_with(|| a.client.id.cmp(&b.client.id))
        });
        Ok(out)
    }

    async fn search(&self, text: &str, limit: usize) -> StoreResult<Vec<Client>> {
        let s = self.lock()?;
        let needle = text.to_lowercase();
        let mut out: Vec<Client> = s
            .clients
            .values()
            .filter(|c| c.id.as_str() == text || c.name.to_lowercase().contains(&needle))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        out.truncate(limit);
        Ok(out)
    }

    async fn update(&self, client: &Client) -> StoreResult<Conditional> {
        let mut s = self.lock()?;
        Ok(match s.clients.get_mut(&client.id) {
            Some(c) if c.revision == client.revision => {
                *c = client.clone();
                c.revision += 1;
                Conditional::Written
            }
            Some(_) => Conditional::Stale,
            None => Conditional::Missing,
        })
    }

    async fn delete(&self, id: &ClientId) -> StoreResult<Option<Vec<TokenHash>>> {
        let mut s = self.lock()?;
        if s.clients.remove(id).is_none() {
            return Ok(None);
        }
        let hashes: Vec<TokenHash> = s
            .tokens
            .values()
            .filter(|t| t.client_id.as_ref() == Some(id))
            .map(|t| t.hash)
            .collect();
        for h in &hashes {
            s.tokens.remove(h);
            s.cache.remove(h);
        }
        s.consents.retain(|(_, c), _| c != id);
        s.codes.retain(|_, c| &c.client_id != id);
        let gone: Vec<TokenHash> = s
            .devices
            .iter()
            .filter(|(_, d)| &d.client_id == id)
            .map(|(h, _)| *h)
            .collect();
        for h in gone {
            if let Some(d) = s.devices.remove(&h) {
                s.user_codes.remove(&d.user_code);
            }
        }
        Ok(Some(hashes))
    }

    async fn origin_registered(&self, origin: &Origin) -> StoreResult<bool> {
        Ok(self
            .lock()?
            .clients
            .values()
            .any(|c| !c.is_confidential() && c.allowed_origins.contains(origin)))
    }
}

#[async_trait]
impl ConsentStore for MemoryStore {
    async fn get(&self, user: UserId, client: &ClientId) -> StoreResult<Option<Consent>> {
        Ok(self.lock()?.consents.get(&(user, client.clone())).cloned())
    }

    async fn save(&self, consent: &Consent, read: Option<u64>) -> StoreResult<Conditional> {
        let mut s = self.lock()?;
        if !s.clients.contains_key(&consent.client_id) {
            // Mirrors the SQL foreign key: a consent for a deleted client is not stored.
            return Ok(Conditional::Missing);
        }
        let key = (consent.user_id, consent.client_id.clone());
        Ok(match (s.consents.get_mut(&key), read) {
            (None, None) => {
                let mut fresh = consent.clone();
                fresh.revision = 0;
                s.consents.insert(key, fresh);
                Conditional::Written
            }
            (Some(c), Some(r)) if c.revision == r => {
                c.scope = consent.scope;
                c.remembered = consent.remembered;
                c.buzz_limit = consent.buzz_limit.clone();
                c.updated_at = consent.updated_at;
                c.revision = r + 1;
                Conditional::Written
            }
            _ => Conditional::Stale,
        })
    }

    async fn set_buzz_limit(
        &self,
        user: UserId,
        client: &ClientId,
        limit: &BuzzLimit,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Consent>> {
        let mut s = self.lock()?;
        Ok(s.consents.get_mut(&(user, client.clone())).map(|c| {
            c.buzz_limit = limit.clone();
            c.updated_at = now;
            c.revision += 1;
            c.clone()
        }))
    }

    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Consent>> {
        let s = self.lock()?;
        let mut out: Vec<Consent> = s
            .consents
            .values()
            .filter(|c| c.user_id == user)
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.client_id.cmp(&b.client_id))
        });
        Ok(out)
    }

    async fn delete(&self, user: UserId, client: &ClientId) -> StoreResult<bool> {
        Ok(self
            .lock()?
            .consents
            .remove(&(user, client.clone()))
            .is_some())
    }
}
