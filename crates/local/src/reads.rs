//! Read caches in front of the durable stores (issue 10, docs/benchmarks.md): a client, a
//! consent or a user read on every token, introspection and userinfo request is served from
//! memory for a short time instead of from the database.
//!
//! Staleness is bounded, never open-ended: an entry lives at most `ttl` (0.5 s by default,
//! `BUZZGATE_READ_CACHE_MS`), and every write through this node drops the entries it touches
//! at once (and again when the write comes back `Stale`, so a compare-and-set retry reads the
//! row afresh). A change made on another node is therefore seen here within `ttl`: a rotated
//! secret, a disabled or deleted app, a revoked consent or a changed cap (docs/security.md,
//! "Caches and other nodes"). Only hits are cached for apps and users, so unknown ids (an
//! attacker's guesses) take no memory; a consent's absence is remembered too, but served
//! only to `ConsentStore::peek` (its keys come from validated tokens and signed-in users,
//! not from what a stranger sends); each cache is bounded in entries.
//!
//! In a cluster with Redis the writes are also fanned out ([`ReadFanout`]): every node drops
//! the app or consent a write touched as soon as the message arrives (milliseconds), and `ttl`
//! remains the bound when a message is lost or a read that started before the write lands
//! after the message.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use buzzgate_domain::buzz::BuzzLimit;
use buzzgate_domain::client::{Client, Origin};
use buzzgate_domain::consent::Consent;
use buzzgate_domain::ids::{ClientId, UserId};
use buzzgate_domain::ports::{
    ClientStore, ClientSummary, Conditional, ConsentStore, StoreResult, UserStore,
};
use buzzgate_domain::token::TokenHash;
use buzzgate_domain::user::{NewUser, User, Username};
use metrics::Counter;
use moka::sync::Cache;
use time::OffsetDateTime;

/// Most entries of each cache.
const MAX_ENTRIES: u64 = 100_000;

/// Lookups by `cache` (`clients`, `consents`, `users`) and `result` (`hit`, `miss`):
/// docs/operations.md, "Metrics".
pub const CACHE_REQUESTS: &str = "buzzgate_cache_requests_total";

/// The hit and miss counters of one cache, registered with the process's recorder when the
/// cache is made instead of looked up by name and labels on every read (docs/benchmarks.md).
/// Made before a recorder is installed, they count nowhere.
#[derive(Clone)]
pub struct Lookups {
    hit: Counter,
    miss: Counter,
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookups")
    }
}

impl Lookups {
    pub fn new(cache: &'static str) -> Lookups {
        Lookups {
            hit: metrics::counter!(CACHE_REQUESTS, "cache" => cache, "result" => "hit"),
            miss: metrics::counter!(CACHE_REQUESTS, "cache" => cache, "result" => "miss"),
        }
    }

    pub fn record(&self, hit: bool) {
        if hit { &self.hit } else { &self.miss }.increment(1);
    }
}

fn cache<K, V>(ttl: Duration) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(MAX_ENTRIES)
        .time_to_live(ttl)
        .build()
}

/// A cached read that a write on one node makes every other node drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadKey {
    Client(ClientId),
    Consent(UserId, ClientId),
}

impl ReadKey {
    /// The message on the wire (a client id never holds a space: it is a token or a URL).
    pub fn encode(&self) -> String {
        match self {
            ReadKey::Client(c) => format!("c {}", c.as_str()),
            ReadKey::Consent(u, c) => format!("k {} {}", u.0, c.as_str()),
        }
    }

    /// `None` for anything [`ReadKey::encode`] does not write.
    pub fn decode(s: &str) -> Option<ReadKey> {
        let mut parts = s.split(' ');
        let key = match (parts.next()?, parts.next(), parts.next()) {
            ("c", Some(c), None) => ReadKey::Client(ClientId::parse(c)?),
            ("k", Some(u), Some(c)) => {
                ReadKey::Consent(UserId(u.parse().ok()?), ClientId::parse(c)?)
            }
            _ => return None,
        };
        parts.next().is_none().then_some(key)
    }
}

/// Tells the other nodes what a write through this one changed. Best effort and never
/// blocking: a lost message costs at most the caches' `ttl`.
pub trait ReadFanout: Send + Sync + std::fmt::Debug {
    fn publish(&self, key: ReadKey);
}

/// The read caches of one node, as the fan-out's listener applies other nodes' writes to them.
/// Holds them weakly: the listener stops once the node is gone.
#[derive(Debug, Clone)]
pub struct ReadCaches {
    clients: Weak<CachedClients>,
    consents: Weak<CachedConsents>,
}

impl ReadCaches {
    pub fn new(clients: &Arc<CachedClients>, consents: &Arc<CachedConsents>) -> ReadCaches {
        ReadCaches {
            clients: Arc::downgrade(clients),
            consents: Arc::downgrade(consents),
        }
    }

    /// Whether the node still has its caches.
    pub fn alive(&self) -> bool {
        self.clients.strong_count() + self.consents.strong_count() > 0
    }

    /// Drops what another node's write changed.
    pub fn forget(&self, key: &ReadKey) {
        match key {
            ReadKey::Client(c) => {
                if let Some(clients) = self.clients.upgrade() {
                    clients.hits.invalidate(c);
                }
            }
            ReadKey::Consent(u, c) => {
                if let Some(consents) = self.consents.upgrade() {
                    consents.hits.invalidate(&(*u, c.clone()));
                }
            }
        }
    }

    /// Drops everything (the fan-out was deaf for a while: anything may have changed).
    pub fn forget_all(&self) {
        if let Some(clients) = self.clients.upgrade() {
            clients.hits.invalidate_all();
        }
        if let Some(consents) = self.consents.upgrade() {
            consents.hits.invalidate_all();
        }
    }
}

/// [`ClientStore`] with `get` served from memory for up to `ttl`.
pub struct CachedClients {
    inner: Arc<dyn ClientStore>,
    hits: Cache<ClientId, Arc<Client>>,
    fanout: Option<Arc<dyn ReadFanout>>,
    lookups: Lookups,
}

impl std::fmt::Debug for CachedClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedClients")
            .field("entries", &self.hits.entry_count())
            .finish_non_exhaustive()
    }
}

impl CachedClients {
    pub fn new(inner: Arc<dyn ClientStore>, ttl: Duration) -> Self {
        CachedClients {
            inner,
            hits: cache(ttl),
            fanout: None,
            lookups: Lookups::new("clients"),
        }
    }

    /// Tells other nodes about each write through this one.
    pub fn with_fanout(mut self, fanout: Arc<dyn ReadFanout>) -> Self {
        self.fanout = Some(fanout);
        self
    }

    fn written(&self, id: &ClientId) {
        self.hits.invalidate(id);
        if let Some(f) = &self.fanout {
            f.publish(ReadKey::Client(id.clone()));
        }
    }
}

#[async_trait]
impl ClientStore for CachedClients {
    async fn insert(&self, client: &Client) -> StoreResult<()> {
        self.inner.insert(client).await
    }

    async fn get(&self, id: &ClientId) -> StoreResult<Option<Arc<Client>>> {
        if let Some(c) = self.hits.get(id) {
            self.lookups.record(true);
            return Ok(Some(c));
        }
        self.lookups.record(false);
        let found = self.inner.get(id).await?;
        if let Some(c) = &found {
            self.hits.insert(id.clone(), c.clone());
        }
        Ok(found)
    }

    async fn list_by_owner(&self, owner: UserId) -> StoreResult<Vec<ClientSummary>> {
        self.inner.list_by_owner(owner).await
    }

    async fn search(&self, text: &str, limit: usize) -> StoreResult<Vec<Client>> {
        self.inner.search(text, limit).await
    }

    async fn update(&self, client: &Client) -> StoreResult<Conditional> {
        self.hits.invalidate(&client.id);
        let out = self.inner.update(client).await;
        self.written(&client.id);
        out
    }

    async fn delete(&self, id: &ClientId) -> StoreResult<Option<Vec<TokenHash>>> {
        self.hits.invalidate(id);
        let out = self.inner.delete(id).await;
        self.written(id);
        out
    }

    async fn origin_registered(&self, origin: &Origin) -> StoreResult<bool> {
        self.inner.origin_registered(origin).await
    }
}

/// [`ConsentStore`] with `get` served from memory for up to `ttl`.
pub struct CachedConsents {
    inner: Arc<dyn ConsentStore>,
    /// What the store answered, absence included: `get` serves only the consents, `peek`
    /// both (`ConsentStore::peek`).
    hits: Cache<(UserId, ClientId), Option<Consent>>,
    fanout: Option<Arc<dyn ReadFanout>>,
    lookups: Lookups,
}

impl std::fmt::Debug for CachedConsents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedConsents")
            .field("entries", &self.hits.entry_count())
            .finish_non_exhaustive()
    }
}

impl CachedConsents {
    pub fn new(inner: Arc<dyn ConsentStore>, ttl: Duration) -> Self {
        CachedConsents {
            inner,
            hits: cache(ttl),
            fanout: None,
            lookups: Lookups::new("consents"),
        }
    }

    /// Tells other nodes about each write through this one.
    pub fn with_fanout(mut self, fanout: Arc<dyn ReadFanout>) -> Self {
        self.fanout = Some(fanout);
        self
    }

    fn forget(&self, user: UserId, client: &ClientId) {
        self.hits.invalidate(&(user, client.clone()));
    }

    fn written(&self, user: UserId, client: &ClientId) {
        self.forget(user, client);
        if let Some(f) = &self.fanout {
            f.publish(ReadKey::Consent(user, client.clone()));
        }
    }

    /// The consent from memory when held, else from the store, remembering the answer.
    /// A remembered absence is an answer only `with_absence` (`peek`): `get` reads the
    /// store again, so a consent just granted on another node is never missed by a grant.
    async fn read(
        &self,
        user: UserId,
        client: &ClientId,
        with_absence: bool,
    ) -> StoreResult<Option<Consent>> {
        let key = (user, client.clone());
        match self.hits.get(&key) {
            Some(Some(c)) => {
                self.lookups.record(true);
                return Ok(Some(c));
            }
            Some(None) if with_absence => {
                self.lookups.record(true);
                return Ok(None);
            }
            _ => {}
        }
        self.lookups.record(false);
        let found = self.inner.get(user, client).await?;
        self.hits.insert(key, found.clone());
        Ok(found)
    }
}

#[async_trait]
impl ConsentStore for CachedConsents {
    async fn get(&self, user: UserId, client: &ClientId) -> StoreResult<Option<Consent>> {
        self.read(user, client, false).await
    }

    async fn peek(&self, user: UserId, client: &ClientId) -> StoreResult<Option<Consent>> {
        self.read(user, client, true).await
    }

    async fn save(&self, consent: &Consent, read: Option<u64>) -> StoreResult<Conditional> {
        self.forget(consent.user_id, &consent.client_id);
        let out = self.inner.save(consent, read).await;
        self.written(consent.user_id, &consent.client_id);
        out
    }

    async fn set_buzz_limit(
        &self,
        user: UserId,
        client: &ClientId,
        limit: &BuzzLimit,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Consent>> {
        self.forget(user, client);
        let out = self.inner.set_buzz_limit(user, client, limit, now).await;
        self.written(user, client);
        out
    }

    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Consent>> {
        self.inner.list_for_user(user).await
    }

    async fn delete(&self, user: UserId, client: &ClientId) -> StoreResult<bool> {
        self.forget(user, client);
        let out = self.inner.delete(user, client).await;
        self.written(user, client);
        out
    }
}

/// [`UserStore`] with `get` served from memory for up to `ttl`.
pub struct CachedUsers {
    inner: Arc<dyn UserStore>,
    hits: Cache<UserId, User>,
    lookups: Lookups,
}

impl std::fmt::Debug for CachedUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedUsers")
            .field("entries", &self.hits.entry_count())
            .finish_non_exhaustive()
    }
}

impl CachedUsers {
    pub fn new(inner: Arc<dyn UserStore>, ttl: Duration) -> Self {
        CachedUsers {
            inner,
            hits: cache(ttl),
            lookups: Lookups::new("users"),
        }
    }
}

#[async_trait]
impl UserStore for CachedUsers {
    async fn create(
        &self,
        user: &NewUser,
        password_hash: Option<String>,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        self.inner.create(user, password_hash, now).await
    }

    async fn get(&self, id: UserId) -> StoreResult<Option<User>> {
        if let Some(u) = self.hits.get(&id) {
            self.lookups.record(true);
            return Ok(Some(u));
        }
        self.lookups.record(false);
        let found = self.inner.get(id).await?;
        if let Some(u) = &found {
            self.hits.insert(id, u.clone());
        }
        Ok(found)
    }

    async fn find_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        self.inner.find_by_username(username).await
    }

    async fn list(&self, after: i64, limit: u32) -> StoreResult<Vec<User>> {
        self.inner.list(after, limit).await
    }

    /// Drops this node's copy; other nodes see the change within the cache's TTL.
    async fn set_banned(
        &self,
        id: UserId,
        at: Option<OffsetDateTime>,
    ) -> StoreResult<Option<User>> {
        self.hits.invalidate(&id);
        let out = self.inner.set_banned(id, at).await;
        self.hits.invalidate(&id);
        out
    }
}

#[cfg(test)]
mod fanout_tests {
    use super::*;

    #[test]
    fn read_keys_survive_the_wire_and_nothing_else_decodes() {
        let c = ClientId::parse("https://app.example.com/client.json").unwrap();
        for key in [ReadKey::Client(c.clone()), ReadKey::Consent(UserId(42), c)] {
            assert_eq!(ReadKey::decode(&key.encode()), Some(key));
        }
        for junk in ["", "c", "k 1", "k x abc", "c a b", "z abc", "k 1 abc extra"] {
            assert_eq!(ReadKey::decode(junk), None, "{junk:?}");
        }
    }
}
