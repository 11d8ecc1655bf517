//! The use cases, written against the ports. A driving adapter (HTTP, MCP, CLI) parses its
//! input into the types here, calls one service method, and maps the result.

pub mod admin;
pub mod api_keys;
pub mod authorize;
pub mod buzz;
pub mod caller;
pub mod clients;
pub mod consents;
pub mod device;
pub mod documents;
pub mod maintenance;
pub mod rate_limit;
pub mod registration;
pub mod sessions;
pub mod tokens;

#[cfg(test)]
mod port_failures;
#[cfg(test)]
mod races;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::audit::AuditEvent;
use crate::catalogue::Catalogue;
use crate::client::{Client, ClientAuth};
use crate::consent::{self, Approval, Consent};
use crate::error::Error;
use crate::ids::{ClientId, UserId};
use crate::ports::{
    AuditLog, BuzzStore, ClientMetadataDocuments, ClientStore, Clock, CodeStore, Conditional,
    ConsentStore, DeviceStore, Failures, IdTokenSigner, PasswordHasher, Random, RateLimiter,
    SessionStore, TokenCache, TokenStore, UserStore,
};
use crate::scope::Scope;
use crate::token::{TokenHash, TokenMinter};
use crate::user::User;

pub use caller::{Access, Caller, Credentials, SignedIn};

/// How often a conditional write (`Conditional::Stale`) is re-read and retried before the
/// request fails with `conflict`: only a record rewritten this many times during one request
/// gets there.
pub(crate) const CONDITIONAL_ATTEMPTS: usize = 8;

/// Runs `attempt` (read, derive, conditional write; `None` when the write was `Stale`) until
/// it settles, at most [`CONDITIONAL_ATTEMPTS`] times, then answers `conflict` naming `what`
/// (docs/domain.md, "Concurrent edits").
pub(crate) async fn until_settled<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, Error>>,
{
    for _ in 0..CONDITIONAL_ATTEMPTS {
        if let Some(done) = attempt().await? {
            return Ok(done);
        }
    }
    Err(Error::Conflict(
        format!("The {what} was being changed by someone else at the same time; try again").into(),
    ))
}
pub use rate_limit::RateLimits;

/// Settings the rules depend on. Defaults are the contract's.
#[derive(Debug, Clone)]
pub struct Config {
    /// The issuer URL (`iss`), no trailing slash.
    pub issuer: String,
    pub minter: TokenMinter,
    /// Refresh reuse inside this window is a retry; `Duration::ZERO` disables it.
    pub refresh_grace: Duration,
    /// How long a validated token may be served from the cache.
    pub cache_ttl: Duration,
    pub rate_limits: RateLimits,
    /// The token and Buzz stores are also the audit log: a token insert or a spend and its
    /// audit event share one commit (`TokenStore::insert_audited`,
    /// `BuzzStore::spend_audited`). Set by the composition root only when the ports are the
    /// same store.
    pub audit_with_tokens: bool,
    /// The scope vocabulary (docs/scopes.md); Civitai's by default.
    pub catalogue: Arc<Catalogue>,
    /// Whether people may create their own accounts (`BUZZGATE_SIGNUP=open`); off by default,
    /// when only the operator adds users.
    pub signup_open: bool,
    /// Whether MCP clients may register themselves (RFC 7591; `BUZZGATE_REGISTRATION`);
    /// open by default, for public clients only.
    pub registration_open: bool,
    /// Admit `http://127.0.0.1:<port>/…` client ID metadata documents (development only;
    /// `BUZZGATE_CIMD_ALLOW_HTTP_LOOPBACK`).
    pub cimd_allow_http_loopback: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: "http://127.0.0.1:8080".into(),
            minter: TokenMinter::default(),
            refresh_grace: crate::grant::refresh_token::DEFAULT_GRACE,
            cache_ttl: Duration::seconds(60),
            rate_limits: RateLimits::default(),
            audit_with_tokens: false,
            catalogue: Arc::new(Catalogue::civitai()),
            signup_open: false,
            registration_open: true,
            cimd_allow_http_loopback: false,
        }
    }
}

impl Config {
    /// Where a person approves a device (`verification_uri`).
    pub fn verification_uri(&self) -> String {
        format!("{}/login/oauth/device", self.issuer)
    }
}

/// Everything the services run on. Build it once in the composition root.
pub struct Deps {
    pub clients: Arc<dyn ClientStore>,
    pub consents: Arc<dyn ConsentStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub codes: Arc<dyn CodeStore>,
    pub devices: Arc<dyn DeviceStore>,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub buzz: Arc<dyn BuzzStore>,
    pub audit: Arc<dyn AuditLog>,
    pub rate_limiter: Arc<dyn RateLimiter>,
    pub cache: Arc<dyn TokenCache>,
    pub passwords: Arc<dyn PasswordHasher>,
    pub id_tokens: Option<Arc<dyn IdTokenSigner>>,
    /// Client ID metadata documents (SPEC 14); `None`: such client IDs are unknown.
    pub documents: Option<Arc<dyn ClientMetadataDocuments>>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub config: Config,
    /// Audit writes that failed (they never fail the request that caused them): counted and
    /// reported (the composition root logs them).
    pub audit_failures: Failures,
}

impl fmt::Debug for Deps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deps")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Deps {
    /// The scope vocabulary every rule about scope names reads.
    pub fn catalogue(&self) -> &Catalogue {
        &self.config.catalogue
    }

    /// The current instant, to the microsecond: the precision every store keeps, so what a
    /// response reports (a refund's `refundedAt`, an issue time) is what a later read returns.
    pub fn now(&self) -> OffsetDateTime {
        let now = self.clock.now();
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }

    /// The user `id` unless unknown or banned: whom tokens may act for.
    pub async fn active_user(&self, id: UserId) -> Result<Option<User>, Error> {
        Ok(self.users.get(id).await?.filter(|u| !u.is_banned()))
    }

    /// Records an audit event after the fact it describes has committed. A failure is counted,
    /// not returned: the caller's state change already happened and must be reported.
    pub async fn audit(&self, event: AuditEvent) {
        if let Err(e) = self.audit.record(&event).await {
            self.audit_failures.record(&e.to_string());
        }
    }

    /// Loads and authenticates the client of a token, device, revoke, introspection or spend
    /// request. Failures count against the caller's address and, once they fill the window,
    /// the address is refused whatever it presents (SPEC 10); a stranger's failures never count
    /// against the client they name.
    pub async fn authenticate_client(
        &self,
        auth: &ClientAuth,
        ip: Option<&str>,
    ) -> Result<Arc<Client>, Error> {
        self.authenticate_and_count(auth, ip, false).await
    }

    /// [`Deps::authenticate_client`], and with `count_client` the request also counts in the
    /// authenticated client's own bucket (token and device requests). The address's failures
    /// and the client's bucket are read and counted in one limiter round trip, after the
    /// secret is checked (a hash comparison): a stored client costs one call to the limiter
    /// whatever happens. A client named by a metadata-document URL is the exception: its
    /// address is checked first, since finding it may mean fetching the document.
    pub async fn authenticate_and_count(
        &self,
        auth: &ClientAuth,
        ip: Option<&str>,
        count_client: bool,
    ) -> Result<Arc<Client>, Error> {
        let document = self.is_document_client(&auth.client_id);
        if document && let Some(ip) = ip {
            self.check_failures(rate_limit::Bucket::ClientAuthFailures(ip))
                .await?;
        }
        let basic = auth.method == crate::client::AuthMethod::Basic;
        let found = self
            .find_client(&auth.client_id, ip, documents::Freshness::Stored)
            .await;
        let found = match found {
            Ok(found) => found,
            // A document that cannot be had is an unknown client here (and counted so).
            Err(Error::InvalidClient { .. }) => None,
            Err(e) => return Err(e),
        };
        let result = match found {
            Some(client) => client.authenticate(auth).map(|()| client),
            None => Err(Error::invalid_client(basic)),
        };
        let failures = ip.map(rate_limit::Bucket::ClientAuthFailures);
        match (result, failures) {
            (Ok(client), failures) => {
                let mut hits = Vec::with_capacity(2);
                if let Some(f) = failures.filter(|_| !document) {
                    hits.push((f, 0));
                }
                if count_client {
                    hits.push((rate_limit::Bucket::TokenClient(&client.id), 1));
                }
                for (bucket, limit, count) in self.count_buckets(&hits).await? {
                    // The address's failures are only read: refused once they fill the
                    // window, as the next failure would be.
                    if matches!(bucket, rate_limit::Bucket::ClientAuthFailures(_)) {
                        self.full(count, limit)?;
                    } else {
                        self.over(count, limit)?;
                    }
                }
                Ok(client)
            }
            (Err(e), Some(f)) if document => {
                self.record_failure(f).await;
                Err(e)
            }
            (Err(e), Some(f)) => {
                // Counted, then refused as over the limit if the window was already full.
                if let Some((_, limit, count)) = self.count_buckets(&[(f, 1)]).await?.pop() {
                    self.over(count, limit)?;
                }
                Err(e)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Records the user's approval of `scope` for `client` (`consent::record_approval` over the
    /// stored consent), on condition that nobody changed or revoked the consent since it was
    /// read (`ConsentStore::save`); if someone did, reads again and re-derives. Returns the
    /// consent before (for the audit trail) and the one stored. An app deleted meanwhile
    /// stores nothing and is not an error here: the code or device grant fails on the app.
    pub async fn record_consent(
        &self,
        user: UserId,
        client: &ClientId,
        scope: Scope,
        approval: impl Fn(Option<&Consent>) -> Approval,
        now: OffsetDateTime,
    ) -> Result<(Option<Consent>, Consent), Error> {
        let approval = &approval;
        until_settled("consent", move || async move {
            let existing = self.consents.get(user, client).await?;
            let answer = approval(existing.as_ref());
            let mut record = consent::record_approval(
                self.catalogue(),
                existing.as_ref(),
                user,
                client,
                scope,
                &answer,
                now,
            );
            let read = existing.as_ref().map(|c| c.revision);
            Ok(match self.consents.save(&record, read).await? {
                Conditional::Stale => None,
                Conditional::Written => {
                    record.revision = read.map_or(0, |r| r + 1);
                    Some((existing, record))
                }
                Conditional::Missing => Some((existing, record)),
            })
        })
        .await
    }

    /// Drops revoked tokens from every node's cache. Failing here fails the request: the
    /// revocation is durable and the caller may retry, but "revoked" must never be reported
    /// while a cache can still accept the token.
    pub async fn invalidate(&self, hashes: &[TokenHash]) -> Result<(), Error> {
        if hashes.is_empty() {
            return Ok(());
        }
        self.cache.invalidate(hashes).await.map_err(Error::from)
    }
}

/// Every service over one set of dependencies.
#[derive(Debug, Clone)]
pub struct Buzzgate {
    pub deps: Arc<Deps>,
}

impl Buzzgate {
    pub fn new(deps: Deps) -> Self {
        Buzzgate {
            deps: Arc::new(deps),
        }
    }
    /// The scope vocabulary (docs/scopes.md), for adapters that name scopes.
    pub fn catalogue(&self) -> &Catalogue {
        self.deps.catalogue()
    }
    pub fn authorize(&self) -> authorize::AuthorizeService {
        authorize::AuthorizeService {
            deps: self.deps.clone(),
        }
    }
    pub fn tokens(&self) -> tokens::TokenService {
        tokens::TokenService {
            deps: self.deps.clone(),
        }
    }
    pub fn clients(&self) -> clients::ClientService {
        clients::ClientService {
            deps: self.deps.clone(),
        }
    }
    pub fn consents(&self) -> consents::ConsentService {
        consents::ConsentService {
            deps: self.deps.clone(),
        }
    }
    pub fn buzz(&self) -> buzz::BuzzService {
        buzz::BuzzService {
            deps: self.deps.clone(),
        }
    }
    pub fn admin(&self) -> admin::AdminService {
        admin::AdminService {
            deps: self.deps.clone(),
        }
    }
    pub fn api_keys(&self) -> api_keys::ApiKeyService {
        api_keys::ApiKeyService {
            deps: self.deps.clone(),
        }
    }
    pub fn device(&self) -> device::DeviceService {
        device::DeviceService {
            deps: self.deps.clone(),
        }
    }
    pub fn sessions(&self) -> sessions::SessionService {
        sessions::SessionService {
            deps: self.deps.clone(),
        }
    }
    pub fn maintenance(&self) -> maintenance::MaintenanceService {
        maintenance::MaintenanceService {
            deps: self.deps.clone(),
        }
    }
    pub fn callers(&self) -> caller::CallerService {
        caller::CallerService {
            deps: self.deps.clone(),
        }
    }
}
