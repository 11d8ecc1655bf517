//! Personal API keys: bearer tokens of type `apiKey`, owned by a user, with a scope, an
//! optional Buzz cap and an optional expiry.

use std::sync::Arc;

use time::Duration;

use crate::buzz::BuzzLimit;
use crate::error::Error;
use crate::ids::TokenId;
use crate::ports::InsertOutcome;
use crate::scope::{OidcScopes, ScopeValue};
use crate::token::{NewToken, PlainToken, TokenKind, TokenRecord};

use super::{Access, Caller, Deps};

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    /// `None`: the catalogue's default ([`crate::catalogue::Catalogue::default_key_scope`],
    /// Civitai's `ReadOnly`).
    pub scope: Option<ScopeValue>,
    pub buzz_limit: Option<BuzzLimit>,
    /// `None`: never expires.
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct ApiKeyService {
    pub(crate) deps: Arc<Deps>,
}

impl ApiKeyService {
    /// Creates a key; the plaintext is returned once. Only a signed-in session (with the CSRF
    /// proof) may mint keys: a token must never mint a longer-lived credential for itself.
    pub async fn create(
        &self,
        caller: &Caller,
        new: NewApiKey,
    ) -> Result<(PlainToken, TokenRecord), Error> {
        let user = caller.key_minter()?;
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid_request("name must be 1-64 characters"));
        }
        if let Some(l) = &new.buzz_limit {
            l.validate()?;
        }
        let days = match new.expires_in_days {
            Some(d) if d == 0 || d > 3650 => {
                return Err(Error::invalid_request("expiresInDays must be 1-3650"));
            }
            d => d,
        };
        let deps = &self.deps;
        let catalogue = deps.catalogue();
        let scope = match &new.scope {
            None => catalogue.default_key_scope(),
            Some(v) => catalogue.resolve(v)? | catalogue.always_granted(),
        };
        let now = deps.now();
        let token = NewToken {
            kind: TokenKind::ApiKey,
            client_id: None,
            user_id: user,
            scope,
            family_id: None,
            auth_time: None,
            oidc: OidcScopes::NONE,
            audience: Vec::new(),
        };
        let (plain, mut record) = deps.config.minter.mint(token, now, deps.random.as_ref());
        record.name = Some(name.to_owned());
        record.buzz_limit = new.buzz_limit;
        record.expires_at = days.map(|d| now + Duration::days(i64::from(d)));
        if deps.tokens.insert(std::slice::from_ref(&record)).await? != InsertOutcome::Inserted {
            return Err(Error::ServerError("API key insert refused".into()));
        }
        Ok((plain, record))
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<TokenRecord>, Error> {
        let user = caller.account(Access::Read, self.deps.catalogue())?;
        Ok(self.deps.tokens.list_api_keys(user).await?)
    }

    pub async fn delete(&self, caller: &Caller, id: TokenId) -> Result<(), Error> {
        let user = caller.account(Access::Write, self.deps.catalogue())?;
        let deps = &self.deps;
        let hash = deps
            .tokens
            .revoke_api_key(user, id, deps.now())
            .await?
            .ok_or_else(|| Error::not_found("No such API key"))?;
        deps.invalidate(&[hash]).await
    }
}
