//! An in-memory implementation of every port (feature `memory`): one mutex over all tables,
//! so every method is atomic and cascades are exact. For tests, examples, and embedders'
//! fakes; not durable. The lock is never held across an `.await`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditQuery};
use crate::buzz::{
    BudgetWindow, BuzzLimit, Currency, LedgerEntry, RefundDecision, SpendPurpose, SpendRequest,
    SpendSubject,
};
use crate::client::{Client, Origin};
use crate::consent::Consent;
use crate::error::{Error, StoreError};
use crate::grant::authorization_code::{AuthorizationCodeRecord, CodeRedemption};
use crate::grant::device_code::{
    DeviceAuthorization, DevicePoll, DevicePollStep, DeviceResolution, UserCode,
};
use crate::grant::refresh_token::{RefreshRotation, RotationDecision};
use crate::ids::{ClientId, FamilyId, SpendId, TokenId, UserId};
use crate::ports::{
    AuditLog, BuzzStore, CACHE_TOMBSTONE_SECS, ClientStore, ClientSummary, Clock, CodeStore,
    Conditional, ConsentStore, DeviceStore, InsertOutcome, PasswordHasher, RateLimiter, RateWindow,
    RefundOutcome, SessionStore, SpendOutcome, StoreResult, TokenCache, TokenStore, UserStore,
};
use crate::service::{Config, Deps};
use crate::token::{TokenHash, TokenKind, TokenRecord, is_live};
use crate::user::{NewUser, Session, User, Username};

#[derive(Debug, Default)]
struct State {
    clients: HashMap<ClientId, Client>,
    consents: HashMap<(UserId, ClientId), Consent>,
    tokens: HashMap<TokenHash, TokenRecord>,
    revoked_families: HashSet<FamilyId>,
    codes: HashMap<TokenHash, AuthorizationCodeRecord>,
    devices: HashMap<TokenHash, DeviceAuthorization>,
    user_codes: HashMap<UserCode, TokenHash>,
    users: HashMap<UserId, User>,
    next_user_id: i64,
    sessions: HashMap<TokenHash, Session>,
    balances: HashMap<(UserId, Currency), i64>,
    ledger: Vec<LedgerEntry>,
    audit: Vec<AuditEvent>,
    rate: HashMap<String, (i64, u64)>,
    cache: HashMap<TokenHash, (TokenRecord, OffsetDateTime)>,
    tombstones: HashMap<TokenHash, OffsetDateTime>,
}

/// Every port over one in-memory state. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
    /// When set, every call fails with `Unavailable` (to test outage handling).
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl MemoryStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            state: Arc::default(),
            clock,
            down: Arc::default(),
        }
    }

    /// Simulates an outage of the backing store.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, State>> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("memory store is down".into()));
        }
        // A panic while holding the lock cannot leave a half-applied step: every method
        // computes first and mutates last, so the data is still consistent.
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Every audit event recorded so far (tests).
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .audit
            .clone()
    }

    /// Every stored token row (tests).
    pub fn token_rows(&self) -> Vec<TokenRecord> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tokens
            .values()
            .cloned()
            .collect()
    }

    /// A full set of dependencies over this store, with a fast (insecure) password hasher.
    /// For tests and examples only.
    pub fn deps(&self, random: Arc<dyn crate::ports::Random>, config: Config) -> Deps {
        let me = Arc::new(self.clone());
        Deps {
            clients: me.clone(),
            consents: me.clone(),
            tokens: me.clone(),
            codes: me.clone(),
            devices: me.clone(),
            users: me.clone(),
            sessions: me.clone(),
            buzz: me.clone(),
            audit: me.clone(),
            rate_limiter: me.clone(),
            cache: me,
            passwords: Arc::new(InsecureTestHasher),
            id_tokens: None,
            clock: self.clock.clone(),
            random,
            config,
            audit_failures: Default::default(),
        }
    }
}

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
impl ClientStore for MemoryStore {
    async fn insert(&self, client: &Client) -> StoreResult<()> {
        let mut s = self.lock()?;
        if s.clients.contains_key(&client.id) {
            return Err(StoreError::Conflict("client id exists".into()));
        }
        s.clients.insert(client.id.clone(), client.clone());
        Ok(())
    }

    async fn get(&self, id: &ClientId) -> StoreResult<Option<Client>> {
        Ok(self.lock()?.clients.get(id).cloned())
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
        let decision = rotation.decide(row.as_ref(), family_revoked);
        if let RotationDecision::Rotate {
            mark_rotated,
            access,
            refresh,
        } = &decision
        {
            if *mark_rotated {
                if let Some(r) = s.tokens.get_mut(presented) {
                    r.rotated_at.get_or_insert(rotation.now);
                }
            }
            s.tokens.insert(access.hash, access.clone());
            s.tokens.insert(refresh.hash, refresh.clone());
        }
        Ok(decision)
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

#[async_trait]
impl DeviceStore for MemoryStore {
    async fn insert(&self, rec: &DeviceAuthorization) -> StoreResult<()> {
        let mut s = self.lock()?;
        let now = self.clock.now();
        let taken = s
            .user_codes
            .get(&rec.user_code)
            .and_then(|h| s.devices.get(h))
            .is_some_and(|d| is_live(Some(d.expires_at), now));
        if taken {
            return Err(StoreError::Conflict("user code in use".into()));
        }
        s.user_codes.insert(rec.user_code.clone(), rec.device_hash);
        s.devices.insert(rec.device_hash, rec.clone());
        Ok(())
    }

    async fn find_by_user_code(&self, code: &UserCode) -> StoreResult<Option<DeviceAuthorization>> {
        let s = self.lock()?;
        Ok(s.user_codes
            .get(code)
            .and_then(|h| s.devices.get(h))
            .cloned())
    }

    async fn resolve(
        &self,
        code: &UserCode,
        resolution: &DeviceResolution,
    ) -> StoreResult<Result<DeviceAuthorization, Error>> {
        let mut s = self.lock()?;
        let hash = s.user_codes.get(code).copied();
        let current = hash.and_then(|h| s.devices.get(&h)).cloned();
        let next = resolution.apply(current.as_ref());
        if let (Ok(rec), Some(h)) = (&next, hash) {
            s.devices.insert(h, rec.clone());
        }
        Ok(next)
    }

    async fn poll(&self, device: &TokenHash, poll: &DevicePoll) -> StoreResult<DevicePollStep> {
        let mut s = self.lock()?;
        let step = poll.decide(s.devices.get(device));
        if let Some(w) = &step.write {
            s.devices.insert(*device, w.clone());
        }
        Ok(step)
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        let mut s = self.lock()?;
        let dead: Vec<TokenHash> = s
            .devices
            .values()
            .filter(|d| d.expires_at < before)
            .take(batch as usize)
            .map(|d| d.device_hash)
            .collect();
        for h in &dead {
            if let Some(d) = s.devices.remove(h) {
                s.user_codes.remove(&d.user_code);
            }
        }
        Ok(dead.len() as u32)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create(
        &self,
        new: &NewUser,
        password_hash: Option<String>,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        let mut s = self.lock()?;
        let wanted = new.username.as_str().to_ascii_lowercase();
        if s.users
            .values()
            .any(|u| u.username.as_str().to_ascii_lowercase() == wanted)
        {
            return Err(StoreError::Conflict("username taken".into()));
        }
        s.next_user_id += 1;
        let user = User {
            id: UserId(s.next_user_id),
            username: new.username.clone(),
            email: new.email.clone(),
            email_verified: new.email_verified,
            password_hash,
            picture: None,
            roles: new.roles.clone(),
            created_at: now,
            banned_at: None,
        };
        s.users.insert(user.id, user.clone());
        Ok(user)
    }

    async fn get(&self, id: UserId) -> StoreResult<Option<User>> {
        Ok(self.lock()?.users.get(&id).cloned())
    }

    async fn find_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        let wanted = username.as_str().to_ascii_lowercase();
        Ok(self
            .lock()?
            .users
            .values()
            .find(|u| u.username.as_str().to_ascii_lowercase() == wanted)
            .cloned())
    }
}

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

fn window_sums(
    s: &State,
    user: UserId,
    subject: &SpendSubject,
    windows: &[BudgetWindow],
) -> Vec<u64> {
    windows
        .iter()
        .map(|w| {
            s.ledger
                .iter()
                .filter(|e| {
                    e.user_id == user
                        && &e.subject == subject
                        && e.purpose == SpendPurpose::AiServices
                })
                .filter(|e| e.refunded_at.is_none())
                .filter(|e| w.since.is_none_or(|since| e.created_at >= since))
                .filter(|e| {
                    w.currencies
                        .as_ref()
                        .is_none_or(|cs| cs.contains(&e.currency))
                })
                .fold(0u64, |acc, e| acc.saturating_add(e.amount))
        })
        .collect()
}

#[async_trait]
impl BuzzStore for MemoryStore {
    async fn credit(
        &self,
        user: UserId,
        currency: &Currency,
        amount: u64,
        _now: OffsetDateTime,
    ) -> StoreResult<i64> {
        let mut s = self.lock()?;
        let b = s.balances.entry((user, currency.clone())).or_insert(0);
        *b = b.saturating_add(i64::try_from(amount).unwrap_or(i64::MAX));
        Ok(*b)
    }

    async fn balances(&self, user: UserId) -> StoreResult<Vec<(Currency, i64)>> {
        let s = self.lock()?;
        let mut out: Vec<(Currency, i64)> = s
            .balances
            .iter()
            .filter(|((u, _), _)| *u == user)
            .map(|((_, c), b)| (c.clone(), *b))
            .collect();
        out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Ok(out)
    }

    async fn net_spent(&self, user: UserId) -> StoreResult<Vec<(Currency, u64)>> {
        let s = self.lock()?;
        let mut sums: std::collections::BTreeMap<String, (Currency, u64)> = Default::default();
        for e in s
            .ledger
            .iter()
            .filter(|e| e.user_id == user && e.refunded_at.is_none())
        {
            let slot = sums
                .entry(e.currency.as_str().to_owned())
                .or_insert_with(|| (e.currency.clone(), 0));
            slot.1 = slot.1.saturating_add(e.amount);
        }
        Ok(sums.into_values().collect())
    }

    async fn history(&self, user: UserId, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        let s = self.lock()?;
        Ok(s.ledger
            .iter()
            .rev()
            .filter(|e| e.user_id == user)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn spend(&self, req: &SpendRequest) -> StoreResult<SpendOutcome> {
        let mut s = self.lock()?;
        let balance_key = (req.user_id, req.currency.clone());
        let balance = s.balances.get(&balance_key).copied().unwrap_or(0);
        let prior = s.ledger.iter().find(|e| {
            e.user_id == req.user_id
                && e.subject == req.subject
                && e.resource_server.as_ref() == Some(&req.resource_server)
                && e.idempotency_key == req.idempotency_key
        });
        if let Some(prior) = prior {
            let prior_balance = s
                .balances
                .get(&(prior.user_id, prior.currency.clone()))
                .copied()
                .unwrap_or(0);
            return Ok(match prior.replay_of(req) {
                Ok(()) => SpendOutcome::Replayed {
                    entry: prior.clone(),
                    balance: prior_balance,
                },
                Err(e) => SpendOutcome::Rejected(e),
            });
        }
        let sums = window_sums(&s, req.user_id, &req.subject, &req.windows());
        if let Err(e) = req.decide(balance, &sums) {
            return Ok(SpendOutcome::Rejected(e));
        }
        let new_balance = balance - i64::try_from(req.amount).unwrap_or(i64::MAX);
        s.balances.insert(balance_key, new_balance);
        let entry = LedgerEntry::from_request(req);
        s.ledger.push(entry.clone());
        Ok(SpendOutcome::Spent {
            entry,
            balance: new_balance,
        })
    }

    async fn refund(
        &self,
        id: SpendId,
        by: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<RefundOutcome> {
        let mut s = self.lock()?;
        let Some(idx) = s.ledger.iter().position(|e| e.id == id) else {
            return Ok(RefundOutcome::NotFound);
        };
        let entry = s.ledger[idx].clone();
        let key = (entry.user_id, entry.currency.clone());
        match entry.refund(by, now) {
            Err(e) => Err(StoreError::Internal(e.to_string())),
            Ok(RefundDecision::NotFound) => Ok(RefundOutcome::NotFound),
            Ok(RefundDecision::AlreadyRefunded) => {
                let balance = s.balances.get(&key).copied().unwrap_or(0);
                Ok(RefundOutcome::AlreadyRefunded { entry, balance })
            }
            Ok(RefundDecision::Refund { amount, .. }) => {
                let b = s.balances.entry(key).or_insert(0);
                *b = b.saturating_add(i64::try_from(amount).unwrap_or(i64::MAX));
                let balance = *b;
                s.ledger[idx].refunded_at = Some(now);
                Ok(RefundOutcome::Refunded {
                    entry: s.ledger[idx].clone(),
                    balance,
                })
            }
        }
    }

    async fn window_spend(
        &self,
        user: UserId,
        subject: &SpendSubject,
        windows: &[BudgetWindow],
    ) -> StoreResult<Vec<u64>> {
        let s = self.lock()?;
        Ok(window_sums(&s, user, subject, windows))
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn record(&self, event: &AuditEvent) -> StoreResult<()> {
        self.lock()?.audit.push(event.clone());
        Ok(())
    }
    async fn query(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let s = self.lock()?;
        Ok(s.audit
            .iter()
            .rev()
            .filter(|e| query.matches(e))
            .take(query.effective_limit())
            .cloned()
            .collect())
    }
}

#[async_trait]
impl RateLimiter for MemoryStore {
    async fn count(&self, key: &str, window: RateWindow, add: u32) -> StoreResult<u64> {
        let mut s = self.lock()?;
        let entry = s.rate.entry(key.to_owned()).or_insert((window.start, 0));
        if entry.0 < window.start {
            *entry = (window.start, 0);
        }
        entry.1 = entry.1.saturating_add(u64::from(add));
        Ok(entry.1)
    }
}

#[async_trait]
impl TokenCache for MemoryStore {
    async fn get(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        let now = self.clock.now();
        let s = self.lock()?;
        Ok(s.cache
            .get(hash)
            .filter(|(_, until)| now < *until)
            .map(|(r, _)| r.clone()))
    }
    async fn put(&self, record: &TokenRecord, until: OffsetDateTime) -> StoreResult<()> {
        let now = self.clock.now();
        let mut s = self.lock()?;
        if s.tombstones.get(&record.hash).is_some_and(|t| now < *t) {
            return Ok(());
        }
        s.cache.insert(record.hash, (record.clone(), until));
        Ok(())
    }
    async fn invalidate(&self, hashes: &[TokenHash]) -> StoreResult<()> {
        let until = self.clock.now() + time::Duration::seconds(CACHE_TOMBSTONE_SECS as i64);
        let mut s = self.lock()?;
        for h in hashes {
            s.cache.remove(h);
            s.tombstones.insert(*h, until);
        }
        Ok(())
    }
}

/// A fast, deliberately weak password hasher (salted SHA-256) so tests do not spend seconds
/// in argon2. Never use it for real passwords: production wires `buzzgate_crypto::Argon2Hasher`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InsecureTestHasher;

#[async_trait]
impl PasswordHasher for InsecureTestHasher {
    async fn hash(&self, password: &str, salt: [u8; 16]) -> Result<String, Error> {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(password.as_bytes());
        Ok(format!(
            "test${}${}",
            hex::encode(salt),
            hex::encode(h.finalize())
        ))
    }
    async fn verify(&self, password: &str, phc: &str) -> bool {
        let mut parts = phc.split('$');
        let (Some("test"), Some(salt), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        let mut bytes = [0u8; 16];
        if hex::decode_to_slice(salt, &mut bytes).is_err() {
            return false;
        }
        self.hash(password, bytes)
            .await
            .is_ok_and(|h| subtle::ConstantTimeEq::ct_eq(h.as_bytes(), phc.as_bytes()).into())
    }
}

/// A valid registration of a confidential app with every grant and two redirect URIs
/// (`https://app.example.com/cb`, `http://127.0.0.1/cb`): the one test fixture every suite shares.
pub fn sample_registration(name: &str) -> crate::client::ClientRegistration {
    crate::client::ClientRegistration {
        name: name.into(),
        description: Some("A test app".into()),
        redirect_uris: vec![
            "https://app.example.com/cb".into(),
            "http://127.0.0.1/cb".into(),
        ],
        allowed_origins: None,
        is_confidential: Some(true),
        allowed_scopes: None,
        owner_buzz_limit: None,
        grants: Some(
            crate::client::GrantType::ALL
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
        ),
    }
}
