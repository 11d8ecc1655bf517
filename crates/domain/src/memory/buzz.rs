//! `BuzzStore` over the in-memory state: balances, the spend ledger, budgets and refunds.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{MemoryStore, State};
use crate::buzz::{
    BudgetWindow, Currency, LedgerEntry, RefundDecision, SpendPurpose, SpendRequest, SpendSubject,
};
use crate::error::StoreError;
use crate::ids::{ClientId, SpendId, UserId};
use crate::ports::{BuzzStore, RefundOutcome, SpendOutcome, StoreResult};

fn window_sums(
    s: &State,
    user: UserId,
    subject: &SpendSubject,
    windows: &[BudgetWindow],
) -> Vec<u64> {
    windows
        .iter()
        .map(|w| {
            s.ledger
                .iter()
                .filter(|e| {
                    e.user_id == user
                        && &e.subject == subject
                        && e.purpose == SpendPurpose::AiServices
                })
                .filter(|e| e.refunded_at.is_none())
                .filter(|e| w.since.is_none_or(|since| e.created_at >= since))
                .filter(|e| {
                    w.currencies
                        .as_ref()
                        .is_none_or(|cs| cs.contains(&e.currency))
                })
                .fold(0u64, |acc, e| acc.saturating_add(e.amount))
        })
        .collect()
}

#[async_trait]
impl BuzzStore for MemoryStore {
    async fn credit(
        &self,
        user: UserId,
        currency: &Currency,
        amount: u64,
        _now: OffsetDateTime,
    ) -> StoreResult<i64> {
        let mut s = self.lock()?;
        let b = s.balances.entry((user, currency.clone())).or_insert(0);
        *b = b.saturating_add(i64::try_from(amount).unwrap_or(i64::MAX));
        Ok(*b)
    }

    async fn balances(&self, user: UserId) -> StoreResult<Vec<(Currency, i64)>> {
        let s = self.lock()?;
        let mut out: Vec<(Currency, i64)> = s
            .balances
            .iter()
            .filter(|((u, _), _)| *u == user)
            .map(|((_, c), b)| (c.clone(), *b))
            .collect();
        out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Ok(out)
    }

    async fn net_spent(&self, user: UserId) -> StoreResult<Vec<(Currency, u64)>> {
        let s = self.lock()?;
        let mut sums: std::collections::BTreeMap<String, (Currency, u64)> = Default::default();
        for e in s
            .ledger
            .iter()
            .filter(|e| e.user_id == user && e.refunded_at.is_none())
        {
            let slot = sums
                .entry(e.currency.as_str().to_owned())
                .or_insert_with(|| (e.currency.clone(), 0));
            slot.1 = slot.1.saturating_add(e.amount);
        }
        Ok(sums.into_values().collect())
    }

    async fn history(&self, user: UserId, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        let s = self.lock()?;
        Ok(s.ledger
            .iter()
            .rev()
            .filter(|e| e.user_id == user)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn spend(&self, req: &SpendRequest) -> StoreResult<SpendOutcome> {
        let mut s = self.lock()?;
        let balance_key = (req.user_id, req.currency.clone());
        let balance = s.balances.get(&balance_key).copied().unwrap_or(0);
        let prior = s.ledger.iter().find(|e| {
            e.user_id == req.user_id
                && e.subject == req.subject
                && e.resource_server.as_ref() == Some(&req.resource_server)
                && e.idempotency_key == req.idempotency_key
        });
        if let Some(prior) = prior {
            let prior_balance = s
                .balances
                .get(&(prior.user_id, prior.currency.clone()))
                .copied()
                .unwrap_or(0);
            return Ok(match prior.replay_of(req) {
                Ok(()) => SpendOutcome::Replayed {
                    entry: prior.clone(),
                    balance: prior_balance,
                    report: window_sums(&s, req.user_id, &req.subject, &req.report),
                },
                Err(e) => SpendOutcome::Rejected(e),
            });
        }
        let sums = window_sums(&s, req.user_id, &req.subject, &req.windows());
        if let Err(e) = req.decide(balance, &sums) {
            return Ok(SpendOutcome::Rejected(e));
        }
        let new_balance = balance - i64::try_from(req.amount).unwrap_or(i64::MAX);
        s.balances.insert(balance_key, new_balance);
        let entry = LedgerEntry::from_request(req);
        s.ledger.push(entry.clone());
        Ok(SpendOutcome::Spent {
            entry,
            balance: new_balance,
            report: window_sums(&s, req.user_id, &req.subject, &req.report),
        })
    }

    async fn refund(
        &self,
        id: SpendId,
        by: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<RefundOutcome> {
        let mut s = self.lock()?;
        let Some(idx) = s.ledger.iter().position(|e| e.id == id) else {
            return Ok(RefundOutcome::NotFound);
        };
        let entry = s.ledger[idx].clone();
        let key = (entry.user_id, entry.currency.clone());
        match entry.refund(by, now) {
            Err(e) => Err(StoreError::Internal(e.to_string())),
            Ok(RefundDecision::NotFound) => Ok(RefundOutcome::NotFound),
            Ok(RefundDecision::AlreadyRefunded) => {
                let balance = s.balances.get(&key).copied().unwrap_or(0);
                Ok(RefundOutcome::AlreadyRefunded { entry, balance })
            }
            Ok(RefundDecision::Refund { amount, .. }) => {
                let b = s.balances.entry(key).or_insert(0);
                *b = b.saturating_add(i64::try_from(amount).unwrap_or(i64::MAX));
                let balance = *b;
                s.ledger[idx].refunded_at = Some(now);
                Ok(RefundOutcome::Refunded {
                    entry: s.ledger[idx].clone(),
                    balance,
                })
            }
        }
    }

    async fn window_spend(
        &self,
        user: UserId,
        subject: &SpendSubject,
        windows: &[BudgetWindow],
    ) -> StoreResult<Vec<u64>> {
        let s = self.lock()?;
        Ok(window_sums(&s, user, subject, windows))
    }
}
