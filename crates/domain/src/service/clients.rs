//! App (client) management for owners, and the admin-only switches (verified, access mode,
//! resource-server role).

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditKind};
use crate::client::{AccessMode, Client, ClientRegistration, ClientSecret, ClientUpdate, Origin};
use crate::error::Error;
use crate::ids::ClientId;
use crate::ports::ClientSummary;

use super::{Access, Caller, Deps};

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
        let owner = caller.account(Access::Write)?;
        let deps = &self.deps;
        let valid = reg.validate()?;
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
        let owner = caller.account(Access::Read)?;
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
            Some(caller.account(access)?)
        };
        match self.deps.clients.get(id).await? {
            Some(c) if admin || Some(c.owner) == user => Ok(c),
            _ => Err(Error::not_found("No such OAuth client")),
        }
    }

    pub async fn update(
        &self,
        caller: &Caller,
        id: &ClientId,
        update: ClientUpdate,
    ) -> Result<Client, Error> {
        let current = self.owned(caller, id, Access::Write).await?;
        if update.is_owner_only() && caller.account(Access::Write).ok() != Some(current.owner) {
            return Err(Error::access_denied(
                "Only the app's owner may set its owner Buzz limit",
            ));
        }
        let now = self.deps.now();
        let updated = update.apply(&current, now)?;
        self.save(caller, updated, AuditKind::ClientUpdated).await
    }

    async fn save(
        &self,
        caller: &Caller,
        client: Client,
        kind: AuditKind,
    ) -> Result<Client, Error> {
        if !self.deps.clients.update(&client).await? {
            return Err(Error::not_found("No such OAuth client"));
        }
        let mut ev = AuditEvent::new(kind, self.deps.now())
            .client(&client.id)
            .scope(client.allowed_scopes)
            .meta("by", caller.kind());
        if let Ok(user) = caller.account(Access::Read) {
            ev = ev.user(user);
        }
        self.deps.audit(ev).await;
        Ok(client)
    }

    /// A new secret replaces the old at once; issued tokens keep working.
    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        id: &ClientId,
    ) -> Result<ClientSecret, Error> {
        let mut client = self.owned(caller, id, Access::Write).await?;
        if !client.is_confidential() {
            return Err(Error::invalid_request(
                "Public clients have no secret to rotate",
            ));
        }
        let secret = ClientSecret::generate(self.deps.random.as_ref());
        client.secret_hash = Some(crate::client::SecretHash::of(secret.expose()));
        client.updated_at = self.deps.now();
        self.save(caller, client, AuditKind::ClientSecretRotated)
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
        let mut client = self.owned(caller, id, Access::Write).await?;
        client.is_verified = verified.unwrap_or(client.is_verified);
        client.access_mode = access_mode.unwrap_or(client.access_mode);
        client.is_resource_server = resource_server.unwrap_or(client.is_resource_server);
        client.updated_at = self.deps.now();
        self.save(caller, client, AuditKind::ClientUpdated).await
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
