//! App (client) management for owners, and the admin-only switches (verified, access mode,
//! resource-server role).

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditKind};
use crate::client::{AccessMode, Client, ClientRegistration, ClientSecret, ClientUpdate};
use crate::error::Error;
use crate::ids::ClientId;
use crate::ports::ClientSummary;
use crate::scope::Scope;

use super::{Caller, Deps};

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
        caller.require(Scope::USER_WRITE)?;
        let deps = &self.deps;
        let valid = reg.validate()?;
        let secret = (valid.kind == crate::client::ClientKind::Confidential)
            .then(|| ClientSecret::generate(deps.random.as_ref()));
        let now = deps.now();
        let client = Client::new(
            ClientId::generate(deps.random.as_ref()),
            caller.user_id,
            valid,
            secret.as_ref(),
            now,
        );
        deps.clients.insert(&client).await?;
        let ev = AuditEvent::new(AuditKind::ClientCreated, now)
            .user(caller.user_id)
            .client(&client.id)
            .scope(client.allowed_scopes);
        deps.audit(ev).await;
        Ok(CreatedClient { client, secret })
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<ClientSummary>, Error> {
        caller.require(Scope::USER_READ)?;
        Ok(self.deps.clients.list_by_owner(caller.user_id).await?)
    }

    /// The caller's own app; someone else's looks exactly like a missing one.
    pub async fn get(&self, caller: &Caller, id: &ClientId) -> Result<Client, Error> {
        caller.require(Scope::USER_READ)?;
        self.owned(caller, id).await
    }

    async fn owned(&self, caller: &Caller, id: &ClientId) -> Result<Client, Error> {
        match self.deps.clients.get(id).await? {
            Some(c) if c.owner == caller.user_id || caller.is_admin => Ok(c),
            _ => Err(Error::not_found("No such OAuth client")),
        }
    }

    pub async fn update(
        &self,
        caller: &Caller,
        id: &ClientId,
        update: ClientUpdate,
    ) -> Result<Client, Error> {
        caller.require(Scope::USER_WRITE)?;
        let current = self.owned(caller, id).await?;
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
        let ev = AuditEvent::new(kind, self.deps.now())
            .user(caller.user_id)
            .client(&client.id)
            .scope(client.allowed_scopes);
        self.deps.audit(ev).await;
        Ok(client)
    }

    /// A new secret replaces the old at once; issued tokens keep working.
    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        id: &ClientId,
    ) -> Result<ClientSecret, Error> {
        caller.require(Scope::USER_WRITE)?;
        let mut client = self.owned(caller, id).await?;
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
        caller.require(Scope::USER_WRITE)?;
        self.owned(caller, id).await?;
        let deps = &self.deps;
        let hashes = deps
            .clients
            .delete(id)
            .await?
            .ok_or_else(|| Error::not_found("No such OAuth client"))?;
        deps.invalidate(&hashes).await?;
        let ev = AuditEvent::new(AuditKind::ClientDeleted, deps.now())
            .user(caller.user_id)
            .client(id)
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
        caller.require_admin()?;
        let mut client = self.owned(caller, id).await?;
        client.is_verified = verified.unwrap_or(client.is_verified);
        client.access_mode = access_mode.unwrap_or(client.access_mode);
        client.is_resource_server = resource_server.unwrap_or(client.is_resource_server);
        client.updated_at = self.deps.now();
        self.save(caller, client, AuditKind::ClientUpdated).await
    }
}
