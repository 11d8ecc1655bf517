//! Buzz: balances for bearers with BuzzRead, spends and refunds by resource servers, and an
//! app's view of its own budgets for one user.

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditKind};
use crate::buzz::{
    BudgetStatus, BuzzLimit, Currency, IdempotencyKey, LedgerEntry, SpendPurpose, SpendRequest,
    SpendSubject, budget_statuses, status_windows,
};
use crate::catalogue::Need;
use crate::consent::Budgets;
use crate::error::Error;
use crate::ids::{SpendId, UserId};
use crate::ports::{RefundOutcome, SpendOutcome};
use crate::token::TokenRecord;

use super::tokens::TokenService;
use super::{Access, Caller, Deps};

/// A spend as a resource server sends it.
#[derive(Debug, Clone)]
pub struct SpendCall {
    /// The user's access token (or API key) the spend is made with.
    pub token: String,
    pub amount: u64,
    pub currency: Option<String>,
    pub purpose: String,
    pub idempotency_key: String,
    pub description: Option<String>,
}

/// The result of a spend: the ledger entry, the new balance, the budgets after it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendReceipt {
    pub entry: LedgerEntry,
    pub balance: i64,
    pub limits: Vec<BudgetStatus>,
    /// True when this was an idempotent replay and nothing was charged.
    pub replayed: bool,
}

/// One Buzz account (currency pool) of a user, as Civitai's `buzz.getUserAccount` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuzzAccount {
    pub user_id: UserId,
    pub currency: Currency,
    pub balance: i64,
    /// Everything ever credited to the pool: the balance plus what was spent and not
    /// refunded.
    pub lifetime: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BuzzOverview {
    pub balances: Vec<(Currency, i64)>,
    pub history: Vec<LedgerEntry>,
}

#[derive(Debug, Clone)]
pub struct BuzzService {
    pub(crate) deps: Arc<Deps>,
}

fn subject_of(record: &TokenRecord) -> SpendSubject {
    match &record.client_id {
        Some(c) => SpendSubject::OAuth(c.clone()),
        None => SpendSubject::ApiKey(record.id),
    }
}

impl BuzzService {
    fn tokens(&self) -> TokenService {
        TokenService::new(self.deps.clone())
    }

    /// Admin: adds `amount` (> 0) of `currency` to `user`'s balance; returns the new balance.
    pub async fn credit(
        &self,
        caller: &Caller,
        user: UserId,
        currency: &str,
        amount: u64,
    ) -> Result<i64, Error> {
        caller.admin(Access::Write)?;
        if amount == 0 {
            return Err(Error::invalid_request("amount must be greater than 0"));
        }
        let currency = Currency::parse(currency)?;
        let deps = &self.deps;
        // A balance is an i64: a credit that would pass it is refused, never saturated (the
        // next credit would silently be lost).
        let balance = deps
            .buzz
            .balances(user)
            .await?
            .into_iter()
            .find(|(c, _)| *c == currency)
            .map_or(0, |(_, b)| b);
        let fits = i64::try_from(amount)
            .ok()
            .and_then(|a| balance.checked_add(a))
            .is_some();
        if !fits {
            return Err(Error::invalid_request(format!(
                "a credit of {amount} would take the {} balance ({balance}) past the largest \
                 possible balance, {}",
                currency.as_str(),
                i64::MAX
            )));
        }
        Ok(deps
            .buzz
            .credit(user, &currency, amount, deps.now())
            .await?)
    }

    /// `GET /api/v1/buzz`: a bearer with BuzzRead.
    pub async fn overview(&self, caller: &Caller) -> Result<BuzzOverview, Error> {
        let bearer = caller.bearer(&self.deps.catalogue().need_named("BuzzRead"))?;
        let user = bearer.user_id();
        Ok(BuzzOverview {
            balances: self.deps.buzz.balances(user).await?,
            history: self.deps.buzz.history(user, 50).await?,
        })
    }

    /// The bearer's Buzz accounts, one per currency pool, the default pool (yellow) always
    /// among them: Civitai's `buzz.getUserAccount` (BuzzRead).
    pub async fn accounts(&self, caller: &Caller) -> Result<Vec<BuzzAccount>, Error> {
        let bearer = caller.bearer(&self.deps.catalogue().need_named("BuzzRead"))?;
        let user = bearer.user_id();
        let deps = &self.deps;
        let mut balances = deps.buzz.balances(user).await?;
        if !balances.iter().any(|(c, _)| *c == Currency::default()) {
            balances.insert(0, (Currency::default(), 0));
        }
        let spent = deps.buzz.net_spent(user).await?;
        Ok(balances
            .into_iter()
            .map(|(currency, balance)| {
                let out = spent
                    .iter()
                    .find(|(c, _)| *c == currency)
                    .map_or(0, |(_, s)| *s);
                BuzzAccount {
                    user_id: user,
                    lifetime: u64::try_from(balance.max(0))
                        .unwrap_or(0)
                        .saturating_add(out),
                    currency,
                    balance,
                }
            })
            .collect())
    }

    /// `POST /api/v1/buzz/spend`, by a resource server on behalf of the token's user. Fail
    /// closed: an app's token without a live consent (and not its owner's) spends nothing;
    /// a banned user spends nothing.
    pub async fn spend(&self, caller: &Caller, call: SpendCall) -> Result<SpendReceipt, Error> {
        let rs = caller.resource_server()?;
        let deps = &self.deps;
        let bearer = self.tokens().validate_bearer(&call.token).await?;
        let purpose = SpendPurpose::parse(&call.purpose)?;
        bearer.require(&deps.catalogue().need_spend(purpose.is_capped()))?;
        let currency = match call.currency.as_deref() {
            Some(c) => Currency::parse(c)?,
            None => Currency::default(),
        };
        let key = IdempotencyKey::parse(&call.idempotency_key)?;
        let budgets = match self.tokens().budgets_of(&bearer.record).await? {
            Budgets::Within(b) => b,
            Budgets::NoConsent => return Err(Error::InsufficientFunds),
        };
        if deps.active_user(bearer.user_id()).await?.is_none() {
            return Err(Error::invalid_token("Invalid or expired token"));
        }
        let now = deps.now();
        let mut req = SpendRequest::new(
            SpendId::generate(deps.random.as_ref()),
            bearer.user_id(),
            subject_of(&bearer.record),
            rs.id.clone(),
            purpose,
            call.amount,
            currency,
            key,
            call.description,
            budgets.clone(),
            now,
        )?;
        // The receipt's limits, summed by the store with the spend when it can.
        req.report = status_windows(&budgets, now);
        // The event of a charge, known before it is made (written only if it is made).
        let mut ev = AuditEvent::new(AuditKind::BuzzSpent, now)
            .user(req.user_id)
            .meta("amount", req.amount)
            .meta("currency", req.currency.as_str())
            .meta("purpose", call.purpose.as_str())
            .meta("resourceServer", &rs.id)
            .meta("spend", req.id);
        if let SpendSubject::OAuth(c) = &req.subject {
            ev = ev.client(c);
        }
        let (outcome, recorded) = if deps.config.audit_with_tokens {
            deps.buzz.spend_audited(&req, &ev).await?
        } else {
            (deps.buzz.spend(&req).await?, false)
        };
        let (entry, balance, replayed, report) = match outcome {
            SpendOutcome::Spent {
                entry,
                balance,
                report,
            } => (entry, balance, false, report),
            SpendOutcome::Replayed {
                entry,
                balance,
                report,
            } => (entry, balance, true, report),
            SpendOutcome::Rejected(e) => return Err(e),
        };
        if !replayed && !recorded {
            deps.audit(ev).await;
        }
        let limits = if report.len() == req.report.len() {
            budget_statuses(&budgets, &report)
        } else {
            self.statuses(&bearer.record, &budgets).await?
        };
        Ok(SpendReceipt {
            entry,
            balance,
            limits,
            replayed,
        })
    }

    async fn statuses(
        &self,
        record: &TokenRecord,
        budgets: &BuzzLimit,
    ) -> Result<Vec<BudgetStatus>, Error> {
        let windows = status_windows(budgets, self.deps.now());
        let spent = self
            .deps
            .buzz
            .window_spend(record.user_id, &subject_of(record), &windows)
            .await?;
        Ok(budget_statuses(budgets, &spent))
    }

    /// `POST /api/v1/buzz/spend/{id}/refund`, by the resource server that made the spend
    /// (another's looks exactly like a missing one). Refunding twice credits once.
    pub async fn refund(&self, caller: &Caller, id: SpendId) -> Result<(LedgerEntry, i64), Error> {
        let rs = caller.resource_server()?;
        let deps = &self.deps;
        let now = deps.now();
        match deps.buzz.refund(id, &rs.id, now).await? {
            RefundOutcome::NotFound => Err(Error::not_found("No such spend")),
            RefundOutcome::AlreadyRefunded { entry, balance } => Ok((entry, balance)),
            RefundOutcome::Refunded { entry, balance } => {
                let ev = AuditEvent::new(AuditKind::BuzzRefunded, now)
                    .user(entry.user_id)
                    .meta("amount", entry.amount)
                    .meta("spend", entry.id)
                    .meta("resourceServer", &rs.id);
                deps.audit(ev).await;
                Ok((entry, balance))
            }
        }
    }

    /// `GET /api/v1/buzz/limits`: the bearer's app's budgets for its user (none may be spent
    /// without a consent: then there is nothing to report).
    pub async fn limits(&self, caller: &Caller) -> Result<Vec<BudgetStatus>, Error> {
        let bearer = caller.bearer(&Need::nothing())?;
        let budgets = match self.tokens().budgets_of(&bearer.record).await? {
            Budgets::Within(b) => b,
            Budgets::NoConsent => return Err(Error::invalid_token("Invalid or expired token")),
        };
        self.statuses(&bearer.record, &budgets).await
    }
}
