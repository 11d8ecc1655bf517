//! Connected Apps: a user's grants, their Buzz caps, and revoking an app.

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditKind};
use crate::buzz::{BudgetStatus, BuzzLimit, SpendSubject, budget_statuses, status_windows};
use crate::client::Client;
use crate::consent::Consent;
use crate::error::Error;
use crate::ids::ClientId;

use super::{Access, Caller, Deps};

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
        let user = caller.account(Access::Read, self.deps.catalogue())?;
        let deps = &self.deps;
        let now = deps.now();
        let mut out = Vec::new();
        for consent in deps.consents.list_for_user(user).await? {
            let Some(client) = deps.clients.get(&consent.client_id).await? else {
                continue;
            };
            let subject = SpendSubject::OAuth(client.id.clone());
            let windows = status_windows(&consent.buzz_limit, now);
            let spent = deps.buzz.window_spend(user, &subject, &windows).await?;
            let budgets = budget_statuses(&consent.buzz_limit, &spent);
            out.push(ConnectedApp {
                consent,
                client: Arc::unwrap_or_clone(client),
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
        if caller.token_client() == Some(client) {
            return Err(Error::access_denied(
                "An OAuth token cannot modify its own consent spend limit. Use a different key or session auth.",
            ));
        }
        let user = caller.account(Access::Write, self.deps.catalogue())?;
        limit.validate()?;
        let deps = &self.deps;
        // One conditional write: a cap edit racing a revocation never brings the consent back.
        let consent = deps
            .consents
            .set_buzz_limit(user, client, &limit, deps.now())
            .await?
            .ok_or_else(|| Error::not_found("No consent for this app"))?;
        let ev = AuditEvent::new(AuditKind::BuzzLimitSet, consent.updated_at)
            .user(user)
            .client(client)
            .meta(
                "buzzLimit",
                serde_json::to_string(&consent.buzz_limit).unwrap_or_default(),
            );
        deps.audit(ev).await;
        Ok(consent)
    }

    /// Revokes the app's access: the consent first, then every token of the user for the
    /// app. In that order, a grant racing the revocation either sees the consent gone (and
    /// refuses, revoking what it wrote) or wrote its tokens before they were revoked here.
    /// Unused authorization codes and device grants die with the consent: they are honoured
    /// only while a consent that predates them stands (SPEC 13).
    pub async fn revoke(&self, caller: &Caller, client: &ClientId) -> Result<(), Error> {
        let user = caller.account(Access::Write, self.deps.catalogue())?;
        let deps = &self.deps;
        let had_consent = deps.consents.delete(user, client).await?;
        let tokens = super::tokens::TokenService::new(deps.clone());
        let revoked = tokens.revoke_user_client(user, client).await?;
        if !had_consent && revoked == 0 {
            return Err(Error::not_found("No consent for this app"));
        }
        let ev = AuditEvent::new(AuditKind::AuthorizationDenied, deps.now())
            .user(user)
            .client(client)
            .meta("action", "revoked_by_user")
            .meta("tokens", revoked);
        deps.audit(ev).await;
        Ok(())
    }
}
