//! Connected Apps: a user's grants, their Buzz caps, and revoking an app.

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditKind};
use crate::buzz::{BudgetStatus, BuzzLimit, SpendSubject, budget_statuses, status_windows};
use crate::client::Client;
use crate::consent::Consent;
use crate::error::Error;
use crate::ids::ClientId;
use crate::scope::Scope;

use super::{Caller, Deps, Via};

/// One row of Connected Apps.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectedApp {
    pub consent: Consent,
    pub client: Client,
    pub budgets: Vec<BudgetStatus>,
}

#[derive(Debug, Clone)]
pub struct ConsentService {
    pub(crate) deps: Arc<Deps>,
}

impl ConsentService {
    pub async fn list(&self, caller: &Caller) -> Result<Vec<ConnectedApp>, Error> {
        caller.require(Scope::USER_READ)?;
        let deps = &self.deps;
        let now = deps.now();
        let mut out = Vec::new();
        for consent in deps.consents.list_for_user(caller.user_id).await? {
            let Some(client) = deps.clients.get(&consent.client_id).await? else {
                continue;
            };
            let subject = SpendSubject::OAuth(client.id.clone());
            let windows = status_windows(&consent.buzz_limit, now);
            let spent = deps
                .buzz
                .window_spend(caller.user_id, &subject, &windows)
                .await?;
            let budgets = budget_statuses(&consent.buzz_limit, &spent);
            out.push(ConnectedApp {
                consent,
                client,
                budgets,
            });
        }
        Ok(out)
    }

    /// Sets the cap of one app. A token of that same app may not change its own cap.
    pub async fn set_buzz_limit(
        &self,
        caller: &Caller,
        client: &ClientId,
        limit: BuzzLimit,
    ) -> Result<Consent, Error> {
        caller.require(Scope::USER_WRITE)?;
        if let Via::Token {
            client: Some(own), ..
        } = &caller.via
        {
            if own == client {
                return Err(Error::access_denied(
                    "An OAuth token cannot modify its own consent spend limit. Use a different key or session auth.",
                ));
            }
        }
        limit.validate()?;
        let deps = &self.deps;
        let mut consent = deps
            .consents
            .get(caller.user_id, client)
            .await?
            .ok_or_else(|| Error::not_found("No consent for this app"))?;
        consent.buzz_limit = limit;
        consent.updated_at = deps.now();
        deps.consents.upsert(&consent).await?;
        let ev = AuditEvent::new(AuditKind::BuzzLimitSet, consent.updated_at)
            .user(caller.user_id)
            .client(client)
            .meta(
                "buzzLimit",
                serde_json::to_string(&consent.buzz_limit).unwrap_or_default(),
            );
        deps.audit(ev).await;
        Ok(consent)
    }

    /// Revokes every token of the user for the app, then the consent.
    pub async fn revoke(&self, caller: &Caller, client: &ClientId) -> Result<(), Error> {
        caller.require(Scope::USER_WRITE)?;
        let deps = &self.deps;
        let tokens = super::tokens::TokenService::new(deps.clone());
        let revoked = tokens.revoke_user_client(caller.user_id, client).await?;
        let had_consent = deps.consents.delete(caller.user_id, client).await?;
        if !had_consent && revoked == 0 {
            return Err(Error::not_found("No consent for this app"));
        }
        let ev = AuditEvent::new(AuditKind::AuthorizationDenied, deps.now())
            .user(caller.user_id)
            .client(client)
            .meta("action", "revoked_by_user")
            .meta("tokens", revoked);
        deps.audit(ev).await;
        Ok(())
    }
}
