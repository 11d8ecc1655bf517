//! Finding a client by its ID, client ID metadata documents included (SPEC 14, docs/mcp.md
//! "Client ID metadata documents"): a `client_id` that is an https URL with a path names a
//! JSON document, fetched through the `ClientMetadataDocuments` port (its guards are the
//! adapter's, `crates/fetch`), checked by `client::document::client_of`, and kept in the
//! client store as an unowned, unverified public app so consents, codes and tokens refer to
//! it like any other. At authorization the document is read again (the fetcher's cache
//! bounds how often), so an edited document — new redirect URIs, a new name — takes effect,
//! and one that can no longer be had stops new authorizations.

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditKind};
use crate::client::{Client, document};
use crate::error::Error;
use crate::ids::ClientId;
use crate::ports::Conditional;

use super::Deps;
use super::rate_limit::Bucket;

/// How much a lookup trusts what is stored for a document client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Read the document again (through the cache) and bring the stored app up to date:
    /// the authorization endpoint, where the redirect URI is checked.
    Current,
    /// The stored app as it is; the document is fetched only for an app never seen: the
    /// token and device endpoints, whose codes and grants were issued to the stored app.
    Stored,
}

/// Whether two views of a document client say the same about what matters to a flow.
fn same_metadata(a: &Client, b: &Client) -> bool {
    a.name == b.name
        && a.redirect_uris == b.redirect_uris
        && a.grants == b.grants
        && a.allowed_scopes == b.allowed_scopes
}

fn unusable(why: impl std::fmt::Display) -> Error {
    Error::InvalidClient {
        description: format!("The client metadata document cannot be used: {why}").into(),
        basic: false,
    }
}

impl Deps {
    /// Whether `id` names a metadata document this server would fetch.
    pub fn is_document_client(&self, id: &ClientId) -> bool {
        self.documents.is_some()
            && document::is_document_url(id.as_str(), self.config.cimd_allow_http_loopback)
    }

    /// The client `id` names: the stored one, or for a metadata-document URL the document's
    /// (stored on first sight, updated when it changed; see [`Freshness`]). `Ok(None)` for an
    /// unknown ID; `invalid_client` saying why when a document cannot be had or is wrong.
    /// A first-seen document counts as a registration against `ip`'s limit
    /// (`BUZZGATE_RATE_LIMIT_REGISTER_IP`): fetching is work a stranger makes us do.
    pub async fn find_client(
        &self,
        id: &ClientId,
        ip: Option<&str>,
        freshness: Freshness,
    ) -> Result<Option<Arc<Client>>, Error> {
        let stored = self.clients.get(id).await?;
        let Some(documents) = self
            .documents
            .as_ref()
            .filter(|_| self.is_document_client(id))
        else {
            return Ok(stored);
        };
        if stored.is_some() && freshness == Freshness::Stored {
            return Ok(stored);
        }
        if stored.is_none()
            && let Some(ip) = ip
        {
            self.check_rate(Bucket::RegisterIp(ip)).await?;
        }
        let body = documents.fetch(id.as_str()).await.map_err(unusable)?;
        let now = self.now();
        let fresh = document::client_of(id.as_str(), &body, self.catalogue(), now)?;
        match stored {
            None => match self.clients.insert(&fresh).await {
                Ok(()) => {
                    let ev = AuditEvent::new(AuditKind::ClientCreated, now)
                        .client(&fresh.id)
                        .scope(fresh.allowed_scopes)
                        .ip(ip)
                        .meta("registration", "metadata-document");
                    self.audit(ev).await;
                    Ok(Some(Arc::new(fresh)))
                }
                // Another request stored it first: theirs is as good as ours.
                Err(crate::error::StoreError::Conflict(_)) => Ok(self.clients.get(id).await?),
                Err(e) => Err(e.into()),
            },
            Some(current) if same_metadata(&current, &fresh) => Ok(Some(current)),
            Some(current) => {
                let mut updated = Arc::unwrap_or_clone(current);
                updated.name = fresh.name;
                updated.redirect_uris = fresh.redirect_uris;
                updated.grants = fresh.grants;
                updated.allowed_scopes = fresh.allowed_scopes;
                updated.updated_at = now;
                match self.clients.update(&updated).await? {
                    Conditional::Written => {
                        updated.revision += 1;
                        let ev = AuditEvent::new(AuditKind::ClientUpdated, now)
                            .client(&updated.id)
                            .scope(updated.allowed_scopes)
                            .ip(ip)
                            .meta("registration", "metadata-document");
                        self.audit(ev).await;
                        Ok(Some(Arc::new(updated)))
                    }
                    // Someone else wrote it meanwhile (most likely the same update); or it
                    // was deleted, and this request fails like one for an unknown app.
                    Conditional::Stale => Ok(self.clients.get(id).await?),
                    Conditional::Missing => Ok(None),
                }
            }
        }
    }
}
