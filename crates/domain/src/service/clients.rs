//! App (client) management for owners, and the admin-only switches (verified, access mode,
//! resource-server role).

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditKind};
use crate::client::{AccessMode, Client, ClientRegistration, ClientSecret, ClientUpdate, Origin};
use crate::error::Error;
use crate::ids::ClientId;
use crate::ports::{ClientSummary, Conditional};
use time::OffsetDateTime;

use super::{Access, Caller, Deps, until_settled};

/// A created app: the secret is shown this once (`None` for public clients).
#[derive(Debug, Clone)]
pub struct CreatedClient {
    pub client: Client,
    pub secret: Option<ClientSecret>,
}

#[derive(Debug, Clone)]
pub struct ClientService {
    pub(crate) deps: Arc<Deps>,
}

impl ClientService {
    pub async fn create(
        &self,
        caller: &Caller,
        reg: ClientRegistration,
    ) -> Result<CreatedClient, Error> {
        let owner = caller.account(Access::Write, self.deps.catalogue())?;
        let deps = &self.deps;
        let valid = reg.validate(self.deps.catalogue())?;
        let secret = (valid.kind == crate::client::ClientKind::Confidential)
            .then(|| ClientSecret::generate(deps.random.as_ref()));
        let now = deps.now();
        let client = Client::new(
            ClientId::generate(deps.random.as_ref()),
            owner,
            valid,
            secret.as_ref(),
            now,
        );
        deps.clients.insert(&client).await?;
        let ev = AuditEvent::new(AuditKind::ClientCreated, now)
            .user(owner)
            .client(&client.id)
            .scope(client.allowed_scopes);
        deps.audit(ev).await;
        Ok(CreatedClient { client, secret })
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<ClientSummary>, Error> {
        let owner = caller.account(Access::Read, self.deps.catalogue())?;
        Ok(self.deps.clients.list_by_owner(owner).await?)
    }

    /// The caller's own app; someone else's looks exactly like a missing one.
    pub async fn get(&self, caller: &Caller, id: &ClientId) -> Result<Client, Error> {
        self.owned(caller, id, Access::Read).await
    }

    /// The app `id` if the caller may manage it: its owner (as [`Caller::account`] admits
    /// them), or an admin. Anything else looks exactly like a missing app.
    async fn owned(&self, caller: &Caller, id: &ClientId, access: Access) -> Result<Client, Error> {
        let admin = caller.admin(access).is_ok();
        let user = if admin {
            None
        } else {
            Some(caller.account(access, self.deps.catalogue())?)
        };
        match self.deps.clients.get(id).await? {
            Some(c) if admin || Some(c.owner) == user => Ok(Arc::unwrap_or_clone(c)),
            _ => Err(Error::not_found("No such OAuth client")),
        }
    }

    pub async fn update(
        &self,
        caller: &Caller,
        id: &ClientId,
        update: ClientUpdate,
    ) -> Result<Client, Error> {
        self.modify(caller, id, AuditKind::ClientUpdated, |current, now| {
            if update.is_owner_only()
                && caller.account(Access::Write, self.deps.catalogue()).ok() != Some(current.owner)
            {
                return Err(Error::access_denied(
                    "Only the app's owner may set its owner Buzz limit",
                ));
            }
            update.clone().apply(current, now, self.deps.catalogue())
        })
        .await
    }

    /// Reads the app, derives the next version with `change` and writes it on condition that
    /// nobody wrote it since the read (`ClientStore::update`); if someone did, reads again and
    /// re-applies the change, so an owner's edit never undoes an admin's and vice versa
    /// (docs/domain.md, "Concurrent edits").
    async fn modify(
        &self,
        caller: &Caller,
        id: &ClientId,
        kind: AuditKind,
        change: impl Fn(&Client, OffsetDateTime) -> Result<Client, Error>,
    ) -> Result<Client, Error> {
        let change = &change;
        let saved = until_settled("app", move || async move {
            let current = self.owned(caller, id, Access::Write).await?;
            let mut next = change(&current, self.deps.now())?;
            next.revision = current.revision;
            Ok(match self.deps.clients.update(&next).await? {
                Conditional::Written => Some(Client {
                    revision: current.revision + 1,
                    ..next
                }),
                Conditional::Stale => None,
                Conditional::Missing => return Err(Error::not_found("No such OAuth client")),
            })
        })
        .await?;
        let mut ev = AuditEvent::new(kind, self.deps.now())
            .client(&saved.id)
            .scope(saved.allowed_scopes)
            .meta("by", caller.kind());
        if let Ok(user) = caller.account(Access::Read, self.deps.catalogue()) {
            ev = ev.user(user);
        }
        self.deps.audit(ev).await;
        Ok(saved)
    }

    /// A new secret replaces the old at once; issued tokens keep working.
    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        id: &ClientId,
    ) -> Result<ClientSecret, Error> {
        let secret = ClientSecret::generate(self.deps.random.as_ref());
        let hash = crate::client::SecretHash::of(secret.expose());
        self.modify(
            caller,
            id,
            AuditKind::ClientSecretRotated,
            |current, now| {
                if !current.is_confidential() {
                    return Err(Error::invalid_request(
                        "Public clients have no secret to rotate",
                    ));
                }
                let mut next = current.clone();
                next.secret_hash = Some(hash);
                next.updated_at = now;
                Ok(next)
            },
        )
        .await?;
        Ok(secret)
    }

    /// Deletes the app with all its tokens, codes and consents; audit entries survive.
    pub async fn delete(&self, caller: &Caller, id: &ClientId) -> Result<(), Error> {
        let client = self.owned(caller, id, Access::Write).await?;
        let deps = &self.deps;
        let hashes = deps
            .clients
            .delete(id)
            .await?
            .ok_or_else(|| Error::not_found("No such OAuth client"))?;
        deps.invalidate(&hashes).await?;
        let ev = AuditEvent::new(AuditKind::ClientDeleted, deps.now())
            .user(client.owner)
            .client(id)
            .meta("by", caller.kind())
            .meta("tokens", hashes.len());
        deps.audit(ev).await;
        Ok(())
    }

    /// Admin: set the verified badge, the access mode and the resource-server role.
    pub async fn administer(
        &self,
        caller: &Caller,
        id: &ClientId,
        verified: Option<bool>,
        access_mode: Option<AccessMode>,
        resource_server: Option<bool>,
    ) -> Result<Client, Error> {
        caller.admin(Access::Write)?;
        self.modify(caller, id, AuditKind::ClientUpdated, |current, now| {
            let mut next = current.clone();
            next.is_verified = verified.unwrap_or(next.is_verified);
            next.access_mode = access_mode.unwrap_or(next.access_mode);
            next.is_resource_server = resource_server.unwrap_or(next.is_resource_server);
            next.updated_at = now;
            Ok(next)
        })
        .await
    }

    /// Whether a browser at `origin` may read the answer for the client `id`: only a public
    /// client that registered the origin (SPEC 3.2). Confidential clients are servers; they
    /// get no CORS headers at all.
    pub async fn cors_allows(&self, id: &str, origin: &str) -> Result<bool, Error> {
        let Some(id) = ClientId::parse(id) else {
            return Ok(false);
        };
        let Ok(origin) = Origin::parse(origin) else {
            return Ok(false);
        };
        Ok(self
            .deps
            .clients
            .get(&id)
            .await?
            .is_some_and(|c| !c.is_confidential() && c.allowed_origins.contains(&origin)))
    }

    /// Whether a CORS preflight from `origin` may proceed (it carries no client id): some
    /// public client registered the origin.
    pub async fn cors_preflight(&self, origin: &str) -> Result<bool, Error> {
        let Ok(origin) = Origin::parse(origin) else {
            return Ok(false);
        };
        Ok(self.deps.clients.origin_registered(&origin).await?)
    }
}
