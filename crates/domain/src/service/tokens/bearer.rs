//! Bearer tokens: validation (through the cache), what they identify, and the Buzz budgets
//! behind them.

use crate::buzz::BuzzLimit;
use crate::catalogue::Need;
use crate::client::Client;
use crate::consent::Budgets;
use crate::error::Error;
use crate::ids::{ClientId, UserId};
use crate::scope::Scope;
use crate::token::{TokenHash, TokenRecord};

use super::TokenService;

/// The authenticated identity behind a bearer token.
#[derive(Debug, Clone, PartialEq)]
pub struct Bearer {
    pub record: TokenRecord,
}

impl Bearer {
    pub fn user_id(&self) -> UserId {
        self.record.user_id
    }
    pub fn scope(&self) -> Scope {
        self.record.scope
    }
    /// The insufficient-scope contract: 403 naming the missing scope as the catalogue
    /// calls it.
    pub fn require(&self, need: &Need) -> Result<(), Error> {
        need.check(self.record.scope)
    }
    /// `{"type":"oauth","id":<client>}` or `{"type":"apiKey","id":<key id>}`.
    pub fn subject(&self) -> Subject {
        match &self.record.client_id {
            Some(c) => Subject::OAuth(c.clone()),
            None => Subject::ApiKey(self.record.id.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    OAuth(ClientId),
    ApiKey(String),
}

impl TokenService {
    /// Validates a bearer token: an active access token or API key. Served from the cache
    /// when it can be; the cache never outlives the token, never takes back a token revoked
    /// after this read (its tombstone refuses the put), and cache failures fall back to the
    /// store.
    pub async fn validate_bearer(&self, token: &str) -> Result<Bearer, Error> {
        let invalid = || Error::invalid_token("Invalid or expired token");
        let hash = TokenHash::of_presented(token).ok_or_else(invalid)?;
        let now = self.deps.now();
        let record = self.lookup(&hash, now).await?.ok_or_else(invalid)?;
        if !record.kind.is_bearer() || !record.is_active(now) {
            return Err(invalid());
        }
        Ok(Bearer { record })
    }

    /// A bearer token presented to the protected resource `resource` (RFC 8707, RFC 9728;
    /// docs/mcp.md): valid; for this resource (a token whose audience names other resources
    /// is `invalid_token`, and so, when `strict`, is one with no audience at all: MCP servers
    /// must only take tokens issued for them); holding `need` (else `insufficient_scope`).
    pub async fn validate_for(
        &self,
        token: &str,
        resource: &str,
        need: &crate::catalogue::Need,
        strict: bool,
    ) -> Result<Bearer, Error> {
        let bearer = self.validate_bearer(token).await?;
        let audience = &bearer.record.audience;
        let admitted = if strict {
            audience.iter().any(|a| a == resource)
        } else {
            crate::resource::admits(audience, resource)
        };
        if !admitted {
            return Err(Error::invalid_token(
                "The token was not issued for this resource",
            ));
        }
        bearer.require(need)?;
        Ok(bearer)
    }

    /// The token with `hash`: from the cache when it holds it, else from the store, putting
    /// an active bearer token (access token or API key) in the cache on the way. Validation
    /// and introspection both read through here.
    pub(super) async fn lookup(
        &self,
        hash: &TokenHash,
        now: time::OffsetDateTime,
    ) -> Result<Option<TokenRecord>, Error> {
        let deps = &self.deps;
        if let Some(r) = deps.cache.get(hash).await.ok().flatten() {
            return Ok(Some(r));
        }
        let Some(r) = deps.tokens.find(hash).await? else {
            return Ok(None);
        };
        if r.is_active(now) && r.kind.is_bearer() {
            let until = r.expires_at.map_or(now + deps.config.cache_ttl, |e| {
                e.min(now + deps.config.cache_ttl)
            });
            let _ = deps.cache.put(&r, until).await;
        }
        Ok(Some(r))
    }

    /// The Buzz budgets behind a bearer: the API key's own, or for an app token the consent's
    /// (and the owner's cap when the user owns the app). Fail closed: an app token without a
    /// consent (and not its owner's) may spend nothing (SPEC 13).
    pub async fn budgets_of(&self, record: &TokenRecord) -> Result<Budgets, Error> {
        self.budgets_with(record, None, false).await
    }

    /// [`TokenService::budgets_of`], given an app the caller already read in this request
    /// (the introspecting client): when it is the token's app, it is not read again. With
    /// `reported` (introspection: the cap is only told, never spent against here) the
    /// consent may come from the node's recent view, its absence included
    /// ([`crate::ports::ConsentStore::peek`]): a `client_credentials` token's owner usually
    /// has no consent, and without the view every introspection of one read the store.
    pub(super) async fn budgets_with(
        &self,
        record: &TokenRecord,
        read: Option<&Client>,
        reported: bool,
    ) -> Result<Budgets, Error> {
        let Some(client_id) = &record.client_id else {
            return Ok(Budgets::Within(
                record.buzz_limit.clone().unwrap_or_default(),
            ));
        };
        let deps = &self.deps;
        let consent = if reported {
            deps.consents.peek(record.user_id, client_id).await?
        } else {
            deps.consents.get(record.user_id, client_id).await?
        };
        let fetched;
        let app = match read.filter(|c| &c.id == client_id) {
            Some(c) => Some(c),
            None => {
                fetched = deps.clients.get(client_id).await?;
                fetched.as_deref()
            }
        };
        let none = BuzzLimit::default();
        let (is_owner, owner_limit) = match app {
            Some(c) if c.owner == record.user_id => (true, &c.owner_buzz_limit),
            Some(_) => (false, &none),
            // The app is gone (deleted while this token was cached): nothing may be spent.
            None => return Ok(Budgets::NoConsent),
        };
        Ok(Budgets::for_app(consent.as_ref(), is_owner, owner_limit))
    }
}
