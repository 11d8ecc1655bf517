//! An in-memory implementation of every port (feature `memory`): one mutex over all tables,
//! so every method is atomic and cascades are exact. For tests, examples, and embedders'
//! fakes; not durable. The lock is never held across an `.await`.
//!
//! `MemoryStore` and its state live here; each port's implementation has its own file, named
//! as in the other adapters (`clients`, `tokens`, `codes`, `devices`, `users`, `sessions`,
//! `buzz`, `audit`, `rate`, `cache`), and `hasher` holds the `InsecureTestHasher`.

mod audit;
mod buzz;
mod cache;
mod clients;
mod codes;
mod devices;
mod hasher;
mod rate;
mod sessions;
mod tokens;
mod users;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::buzz::{Currency, LedgerEntry};
use crate::client::Client;
use crate::consent::Consent;
use crate::error::StoreError;
use crate::grant::authorization_code::AuthorizationCodeRecord;
use crate::grant::device_code::{DeviceAuthorization, UserCode};
use crate::ids::{ClientId, FamilyId, UserId};
use crate::ports::{Clock, StoreResult};
use crate::service::{Config, Deps};
use crate::token::{TokenHash, TokenRecord};
use crate::user::{Session, User};

pub use hasher::InsecureTestHasher;

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
            documents: None,
            clock: self.clock.clone(),
            random,
            config,
            audit_failures: Default::default(),
        }
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
