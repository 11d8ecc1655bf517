//! Introspection (RFC 7662): for a resource server, or for the client a token was issued to.

use crate::buzz::BuzzLimit;
use crate::error::Error;
use crate::service::caller::Caller;
use crate::token::{TokenHash, TokenKind, TokenRecord};

use super::TokenService;

/// RFC 7662 response. Inactive tokens report only `active: false`.
#[derive(Debug, Clone, PartialEq)]
pub struct Introspection {
    pub active: bool,
    pub record: Option<TokenRecord>,
    pub username: Option<String>,
    pub buzz_limit: Option<BuzzLimit>,
}

impl TokenService {
    /// RFC 7662. A resource server may introspect any token; any other confidential client
    /// only the tokens issued to itself; everything else is `{"active": false}`, as is a
    /// refresh token rotated out past the grace window.
    pub async fn introspect(
        &self,
        caller: &Caller,
        token: Option<&str>,
    ) -> Result<Introspection, Error> {
        let deps = &self.deps;
        let client = caller.client()?;
        client.require_confidential()?;
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::invalid_request("Missing token parameter"))?;
        let inactive = Introspection {
            active: false,
            record: None,
            username: None,
            buzz_limit: None,
        };
        let Some(hash) = TokenHash::of_presented(token) else {
            return Ok(inactive);
        };
        let now = deps.now();
        let Some(record) = self.lookup(&hash, now).await? else {
            return Ok(inactive);
        };
        let visible = client.is_resource_server || record.client_id.as_ref() == Some(&client.id);
        let rotated_out = record.kind == TokenKind::Refresh
            && record
                .rotated_at
                .is_some_and(|at| now - at >= deps.config.refresh_grace);
        if !visible || !record.is_active(now) || rotated_out {
            return Ok(inactive);
        }
        let Some(user) = deps.active_user(record.user_id).await? else {
            return Ok(inactive);
        };
        let buzz_limit = self
            .budgets_with(&record, Some(client), true)
            .await?
            .reported();
        Ok(Introspection {
            active: true,
            record: Some(record),
            username: Some(user.username.to_string()),
            buzz_limit,
        })
    }
}
