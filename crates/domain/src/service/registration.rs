//! Dynamic client registration (RFC 7591) and its management (RFC 7592), docs/mcp.md
//! "Dynamic client registration": anyone may register a public app while the operator keeps
//! registration open; the answer carries a registration access token (only its hash is
//! kept) with which the registrant, and nobody else, reads, replaces and deletes that app.
//! Who may call what: docs/security.md §1 ("registrant" row).

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditKind};
use crate::client::dynamic::DynamicRegistration;
use crate::client::{Client, ClientSecret, SecretHash};
use crate::error::Error;
use crate::ids::{ClientId, UserId};
use crate::ports::Conditional;

use super::clients::ClientService;
use super::rate_limit::Bucket;
use super::until_settled;

/// A registration just made: the app and its registration access token, shown this once.
#[derive(Debug, Clone)]
pub struct Registration {
    pub client: Client,
    pub access_token: ClientSecret,
}

fn not_yours() -> Error {
    Error::InvalidToken("The registration access token is not valid for this client".into())
}

fn as_metadata_error(e: Error) -> Error {
    match e {
        Error::InvalidRequest(d) => Error::InvalidClientMetadata(d),
        other => other,
    }
}

impl ClientService {
    /// RFC 7591 §3: registers a public, unowned, unverified app; throttled per address
    /// (counted before any work).
    pub async fn register(
        &self,
        metadata: DynamicRegistration,
        ip: Option<&str>,
    ) -> Result<Registration, Error> {
        let deps = &self.deps;
        if !deps.config.registration_open {
            return Err(Error::access_denied(
                "Client registration is closed on this server",
            ));
        }
        if let Some(ip) = ip {
            deps.check_rate(Bucket::RegisterIp(ip)).await?;
        }
        let valid = metadata
            .validate(deps.catalogue())?
            .validate(deps.catalogue())
            .map_err(as_metadata_error)?;
        let now = deps.now();
        let access_token = ClientSecret::generate(deps.random.as_ref());
        let mut client = Client::new(
            ClientId::generate(deps.random.as_ref()),
            UserId::NOBODY,
            valid,
            None,
            now,
        );
        client.registration_token = Some(SecretHash::of(access_token.expose()));
        deps.clients.insert(&client).await?;
        let ev = AuditEvent::new(AuditKind::ClientCreated, now)
            .client(&client.id)
            .scope(client.allowed_scopes)
            .ip(ip)
            .meta("registration", "dynamic");
        deps.audit(ev).await;
        Ok(Registration {
            client,
            access_token,
        })
    }

    /// The app `id` if `token` is its registration access token (RFC 7592 §2). A wrong
    /// token, an unknown app and an app not registered dynamically are one answer
    /// (`invalid_token`, 401), and count as failures against the address.
    async fn registrant(
        &self,
        id: &str,
        token: Option<&str>,
        ip: Option<&str>,
    ) -> Result<Client, Error> {
        let deps = &self.deps;
        let Some(token) = token else {
            return Err(Error::NoCredentials(
                "Send the registration access token as a Bearer token".into(),
            ));
        };
        if let Some(ip) = ip {
            deps.check_failures(Bucket::ClientAuthFailures(ip)).await?;
        }
        let found = match ClientId::parse(id) {
            Some(id) => deps.clients.get(&id).await?,
            None => None,
        };
        match found {
            Some(client)
                if client
                    .registration_token
                    .as_ref()
                    .is_some_and(|h| h.verify(token)) =>
            {
                Ok(Arc::unwrap_or_clone(client))
            }
            _ => {
                if let Some(ip) = ip {
                    deps.record_failure(Bucket::ClientAuthFailures(ip)).await;
                }
                Err(not_yours())
            }
        }
    }

    /// RFC 7592 §2.1: the registration as it stands.
    pub async fn registration(
        &self,
        id: &str,
        token: Option<&str>,
        ip: Option<&str>,
    ) -> Result<Client, Error> {
        self.registrant(id, token, ip).await
    }

    /// RFC 7592 §2.2: replaces the registration with `metadata` (every field; an omitted one
    /// takes its default, as at registration). The body's `client_id` must be the app's.
    pub async fn update_registration(
        &self,
        id: &str,
        token: Option<&str>,
        metadata: DynamicRegistration,
        ip: Option<&str>,
    ) -> Result<Client, Error> {
        let deps = &self.deps;
        let client = self.registrant(id, token, ip).await?;
        if metadata.client_id.as_deref() != Some(client.id.as_str()) {
            return Err(Error::InvalidClientMetadata(
                "client_id in the body must be this app's client_id".into(),
            ));
        }
        let valid = metadata
            .validate(deps.catalogue())?
            .validate(deps.catalogue())
            .map_err(as_metadata_error)?;
        let (valid, id) = (&valid, &client.id);
        let saved = until_settled("app", move || async move {
            let Some(current) = deps.clients.get(id).await? else {
                return Err(not_yours());
            };
            let mut next = Client::clone(&current);
            next.name = valid.name.clone();
            next.redirect_uris = valid.redirect_uris.clone();
            next.grants = valid.grants.clone();
            next.allowed_scopes = valid.allowed_scopes;
            next.updated_at = deps.now();
            Ok(match deps.clients.update(&next).await? {
                Conditional::Written => Some(Client {
                    revision: current.revision + 1,
                    ..next
                }),
                Conditional::Stale => None,
                Conditional::Missing => return Err(not_yours()),
            })
        })
        .await?;
        let ev = AuditEvent::new(AuditKind::ClientUpdated, deps.now())
            .client(&saved.id)
            .scope(saved.allowed_scopes)
            .ip(ip)
            .meta("by", "registrant");
        deps.audit(ev).await;
        Ok(saved)
    }

    /// RFC 7592 §2.3: deletes the app with its tokens, codes and consents; the registration
    /// access token dies with it.
    pub async fn delete_registration(
        &self,
        id: &str,
        token: Option<&str>,
        ip: Option<&str>,
    ) -> Result<(), Error> {
        let deps = &self.deps;
        let client = self.registrant(id, token, ip).await?;
        let hashes = deps
            .clients
            .delete(&client.id)
            .await?
            .ok_or_else(not_yours)?;
        deps.invalidate(&hashes).await?;
        let ev = AuditEvent::new(AuditKind::ClientDeleted, deps.now())
            .client(&client.id)
            .ip(ip)
            .meta("by", "registrant")
            .meta("tokens", hashes.len());
        deps.audit(ev).await;
        Ok(())
    }
}
