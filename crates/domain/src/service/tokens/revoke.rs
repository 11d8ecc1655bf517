//! Revocation: RFC 7009 for a client or the signed-in user, and every token of a (user, app).

use crate::audit::{AuditEvent, AuditKind};
use crate::error::Error;
use crate::ids::{ClientId, UserId};
use crate::service::caller::{Access, Caller, CallerService, Credentials};
use crate::service::rate_limit::Bucket;
use crate::token::{TokenHash, TokenKind, TokenRecord};

use super::{TokenService, check_origin};

/// What [`TokenService::revoke_as_admin`] revoked.
#[derive(Debug, Clone, PartialEq)]
pub struct Revoked {
    pub kind: TokenKind,
    pub user_id: UserId,
    pub client_id: Option<ClientId>,
    /// Tokens revoked now (the family's live ones for a refresh token; 0 when the token was
    /// revoked already).
    pub count: usize,
}

impl TokenService {
    /// RFC 7009, for the client the token was issued to, or the signed-in user it belongs to
    /// (with the CSRF proof). Always `Ok(())` for unknown or foreign tokens; revoking a
    /// refresh token revokes its whole family. Counted per address before anything else.
    pub async fn revoke(&self, creds: &Credentials, token: Option<&str>) -> Result<(), Error> {
        let deps = &self.deps;
        let ip = creds.ip.as_deref();
        if let Some(ip) = ip {
            deps.check_rate(Bucket::RevokeIp(ip)).await?;
        }
        let caller = CallerService { deps: deps.clone() }.identify(creds).await?;
        let may_revoke: Box<dyn Fn(&TokenRecord) -> bool + Send + Sync> = match &caller {
            Caller::Client(c) => {
                check_origin(deps, c, creds.origin.as_deref(), ip).await?;
                let id = c.id.clone();
                Box::new(move |r| r.client_id.as_ref() == Some(&id))
            }
            Caller::Session(_) => {
                let user = caller.signed_in(Access::Write)?.user;
                Box::new(move |r| r.user_id == user)
            }
            Caller::Anonymous => return Err(Error::invalid_request("Missing client_id")),
            _ => return Err(Error::invalid_client(false)),
        };
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::invalid_request("Missing token parameter"))?;
        let Some(hash) = TokenHash::of_presented(token) else {
            return Ok(());
        };
        let Some(record) = deps.tokens.find(&hash).await? else {
            return Ok(());
        };
        if !may_revoke(&record) {
            return Ok(());
        }
        self.revoke_record(hash, &record, &caller, ip).await?;
        Ok(())
    }

    /// An operator revokes any token by its plaintext (`buzzgate token revoke`), as RFC 7009
    /// does for the token's own client: a refresh token with its whole family, any other
    /// token alone. Says what it revoked; an unknown token is `not_found` (the operator is
    /// told, unlike a client).
    pub async fn revoke_as_admin(&self, caller: &Caller, token: &str) -> Result<Revoked, Error> {
        caller.admin(Access::Write)?;
        let missing = || Error::not_found("No such token");
        let hash = TokenHash::of_presented(token.trim()).ok_or_else(missing)?;
        let record = self.deps.tokens.find(&hash).await?.ok_or_else(missing)?;
        let count = self.revoke_record(hash, &record, caller, None).await?;
        Ok(Revoked {
            kind: record.kind,
            user_id: record.user_id,
            client_id: record.client_id,
            count,
        })
    }

    /// Revokes `record` (its family for a refresh token), drops what it revoked from the
    /// caches and audits it. Returns how many tokens were revoked now.
    async fn revoke_record(
        &self,
        hash: TokenHash,
        record: &TokenRecord,
        caller: &Caller,
        ip: Option<&str>,
    ) -> Result<usize, Error> {
        let deps = &self.deps;
        let now = deps.now();
        let revoked = match (record.kind, record.family_id) {
            (TokenKind::Refresh, Some(family)) => deps.tokens.revoke_family(family, now).await?,
            _ => {
                deps.tokens.revoke(&hash, now).await?;
                vec![hash]
            }
        };
        let count = match record.kind {
            TokenKind::Refresh if record.family_id.is_some() => revoked.len(),
            _ => usize::from(record.revoked_at.is_none()),
        };
        deps.invalidate(&revoked).await?;
        let mut ev = AuditEvent::new(AuditKind::TokenRevoked, now)
            .user(record.user_id)
            .ip(ip)
            .meta("kind", record.kind.as_str())
            .meta("by", caller.kind());
        if let Some(c) = &record.client_id {
            ev = ev.client(c);
        }
        deps.audit(ev).await;
        Ok(count)
    }

    /// Revokes every token of (user, client) and drops them from caches.
    pub(crate) async fn revoke_user_client(
        &self,
        user: UserId,
        client: &ClientId,
    ) -> Result<usize, Error> {
        let revoked = self
            .deps
            .tokens
            .revoke_for_user_client(user, client, self.deps.now())
            .await?;
        self.deps.invalidate(&revoked).await?;
        Ok(revoked.len())
    }
}
