//! Buzz balances and the spend ledger. Spends are group-committed (`crate::spends`): a batch
//! takes an advisory lock on each (user, subject) so budget windows cannot be raced, the
//! balance rows `FOR UPDATE`, then reads the idempotency keys and window sums, applies the
//! domain's decision to each spend in order, and writes the debits and ledger rows.
//! Lock order everywhere: (user, subject), then balance rows, then ledger rows.

use async_trait::async_trait;
use buzzgate_domain::StoreError;
use buzzgate_domain::buzz::{
    BudgetWindow, Currency, IdempotencyKey, LedgerEntry, RefundDecision, SpendPurpose,
    SpendRequest, SpendSubject,
};
use buzzgate_domain::ids::{ClientId, SpendId, TokenId, UserId};
use buzzgate_domain::ports::{BuzzStore, RefundOutcome, SpendOutcome, StoreResult};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use buzzgate_local::batch::GroupCommit;

use crate::spends::{Charge, Spender};
use crate::{Done, Fail, PgStore, client_id_from, corrupt, i64_of, map_err, transaction};
use buzzgate_domain::audit::AuditEvent;

/// The unique index of (user, subject, resource server, idempotency key); a concurrent
/// duplicate that reaches
/// it is retried (and then replayed), see `Fail::is_retryable`.
pub(crate) const IDEMPOTENCY_INDEX: &str = "buzz_ledger_idempotency_key";

pub(crate) const LEDGER_COLUMNS: &str = "id, user_id, subject_type, subject_id, purpose, amount, currency, \
     idempotency_key, description, created_at, refunded_at, resource_server";

#[derive(sqlx::FromRow)]
pub(crate) struct LedgerRow {
    id: Uuid,
    user_id: i64,
    subject_type: String,
    subject_id: String,
    purpose: String,
    amount: i64,
    currency: String,
    idempotency_key: String,
    description: Option<String>,
    created_at: OffsetDateTime,
    refunded_at: Option<OffsetDateTime>,
    resource_server: Option<String>,
}

impl LedgerRow {
    pub(crate) fn into_entry(self) -> StoreResult<LedgerEntry> {
        let subject = match self.subject_type.as_str() {
            "oauth" => SpendSubject::OAuth(client_id_from(&self.subject_id)?),
            "apiKey" => SpendSubject::ApiKey(TokenId(
                Uuid::try_parse(&self.subject_id).map_err(|_| corrupt("spend subject"))?,
            )),
            _ => return Err(corrupt("spend subject")),
        };
        let resource_server = self
            .resource_server
            .as_deref()
            .map(client_id_from)
            .transpose()?;
        Ok(LedgerEntry {
            id: SpendId(self.id),
            user_id: UserId(self.user_id),
            subject,
            resource_server,
            purpose: SpendPurpose::parse(&self.purpose).map_err(|_| corrupt("spend purpose"))?,
            amount: u64::try_from(self.amount).map_err(|_| corrupt("spend amount"))?,
            currency: Currency::parse(&self.currency).map_err(|_| corrupt("currency"))?,
            idempotency_key: IdempotencyKey::parse(&self.idempotency_key)
                .map_err(|_| corrupt("idempotency key"))?,
            description: self.description,
            created_at: self.created_at,
            refunded_at: self.refunded_at,
        })
    }
}

/// `(subject_type, subject_id)` columns of a subject.
pub(crate) fn subject_columns(s: &SpendSubject) -> (&'static str, String) {
    match s {
        SpendSubject::OAuth(c) => ("oauth", c.as_str().to_owned()),
        SpendSubject::ApiKey(k) => ("apiKey", k.0.to_string()),
    }
}

/// Step (3) of a spend: per window, the not-refunded capped spends of (user, subject) since
/// the window's start, in its currencies.
async fn window_sums(
    c: &mut PgConnection,
    user: UserId,
    subject: &SpendSubject,
    windows: &[BudgetWindow],
) -> Result<Vec<u64>, sqlx::Error> {
    let (stype, sid) = subject_columns(subject);
    let mut out = Vec::with_capacity(windows.len());
    for w in windows {
        let currencies: Option<Vec<&str>> = w
            .currencies
            .as_ref()
            .map(|cs| cs.iter().map(Currency::as_str).collect());
        let sum: i64 = sqlx::query_scalar(
            "SELECT LEAST(COALESCE(SUM(amount), 0), 9223372036854775807)::BIGINT \
             FROM buzz_ledger \
             WHERE user_id = $1 AND subject_type = $2 AND subject_id = $3 \
               AND purpose = 'ai_services' AND refunded_at IS NULL \
               AND ($4::timestamptz IS NULL OR created_at >= $4) \
               AND ($5::text[] IS NULL OR currency = ANY($5::text[]))",
        )
        .bind(user.0)
        .bind(stype)
        .bind(&sid)
        .bind(w.since)
        .bind(currencies)
        .fetch_one(&mut *c)
        .await?;
        out.push(u64::try_from(sum).unwrap_or(0));
    }
    Ok(out)
}

async fn balance_of(
    c: &mut PgConnection,
    user: UserId,
    currency: &Currency,
    lock: bool,
) -> Result<Option<i64>, sqlx::Error> {
    let sql = if lock {
        "SELECT balance FROM buzz_balances WHERE user_id = $1 AND currency = $2 FOR UPDATE"
    } else {
        "SELECT balance FROM buzz_balances WHERE user_id = $1 AND currency = $2"
    };
    sqlx::query_scalar(sql)
        .bind(user.0)
        .bind(currency.as_str())
        .fetch_optional(c)
        .await
}

/// Adds `amount` (saturating) and returns the new balance.
async fn add(
    c: &mut PgConnection,
    user: UserId,
    currency: &Currency,
    amount: u64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO buzz_balances AS b (user_id, currency, balance) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, currency) DO UPDATE SET balance = \
           CASE WHEN b.balance > 9223372036854775807 - EXCLUDED.balance \
                THEN 9223372036854775807 ELSE b.balance + EXCLUDED.balance END \
         RETURNING balance",
    )
    .bind(user.0)
    .bind(currency.as_str())
    .bind(i64_of(amount))
    .fetch_one(c)
    .await
}

impl PgStore {
    /// Submits a spend (and its event) to the group commit of spends (crate::spends) and
    /// waits for its batch's commit.
    async fn charge(
        &self,
        req: &SpendRequest,
        event: Option<AuditEvent>,
    ) -> StoreResult<SpendOutcome> {
        self.spends
            .get_or_init(|| {
                GroupCommit::start_with(
                    Spender {
                        pool: self.pool.clone(),
                    },
                    1,
                )
            })
            .submit(Charge {
                req: req.clone(),
                event,
            })
            .await
    }
}

#[async_trait]
impl BuzzStore for PgStore {
    async fn credit(
        &self,
        user: UserId,
        currency: &Currency,
        amount: u64,
        _now: OffsetDateTime,
    ) -> StoreResult<i64> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        add(&mut conn, user, currency, amount)
            .await
            .map_err(map_err)
    }

    async fn balances(&self, user: UserId) -> StoreResult<Vec<(Currency, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT currency, balance FROM buzz_balances WHERE user_id = $1 \
             ORDER BY currency COLLATE \"C\"",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|(c, b)| Ok((Currency::parse(&c).map_err(|_| corrupt("currency"))?, b)))
            .collect()
    }

    async fn net_spent(&self, user: UserId) -> StoreResult<Vec<(Currency, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT currency, LEAST(SUM(amount), 9223372036854775807)::BIGINT FROM buzz_ledger \
             WHERE user_id = $1 AND refunded_at IS NULL GROUP BY currency \
             ORDER BY currency COLLATE \"C\"",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|(c, s)| {
                let currency = Currency::parse(&c).map_err(|_| corrupt("currency"))?;
                Ok((currency, u64::try_from(s).unwrap_or(0)))
            })
            .collect()
    }

    async fn history(&self, user: UserId, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        sqlx::query_as::<_, LedgerRow>(&format!(
            "SELECT {LEDGER_COLUMNS} FROM buzz_ledger WHERE user_id = $1 \
             ORDER BY seq DESC LIMIT $2"
        ))
        .bind(user.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(LedgerRow::into_entry)
        .collect()
    }

    async fn spend(&self, req: &SpendRequest) -> StoreResult<SpendOutcome> {
        self.charge(req, None).await
    }

    async fn spend_audited(
        &self,
        req: &SpendRequest,
        event: &AuditEvent,
    ) -> StoreResult<(SpendOutcome, bool)> {
        Ok((self.charge(req, Some(event.clone())).await?, true))
    }

    async fn refund(
        &self,
        id: SpendId,
        by: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<RefundOutcome> {
        transaction!(self, |c| {
            let row = sqlx::query_as::<_, LedgerRow>(&format!(
                "SELECT {LEDGER_COLUMNS} FROM buzz_ledger WHERE id = $1 FOR UPDATE"
            ))
            .bind(id.0)
            .fetch_optional(&mut *c)
            .await?;
            let Some(row) = row else {
                return Ok(Done::Rollback(RefundOutcome::NotFound));
            };
            let mut entry = row.into_entry()?;
            match entry.refund(by, now) {
                Err(e) => Err(Fail::Store(StoreError::Internal(e.to_string()))),
                Ok(RefundDecision::NotFound) => Ok(Done::Rollback(RefundOutcome::NotFound)),
                Ok(RefundDecision::AlreadyRefunded) => {
                    let balance = balance_of(&mut *c, entry.user_id, &entry.currency, false)
                        .await?
                        .unwrap_or(0);
                    Ok(Done::Rollback(RefundOutcome::AlreadyRefunded {
                        entry,
                        balance,
                    }))
                }
                Ok(RefundDecision::Refund { amount, currency }) => {
                    let balance = add(&mut *c, entry.user_id, &currency, amount).await?;
                    sqlx::query("UPDATE buzz_ledger SET refunded_at = $2 WHERE id = $1")
                        .bind(id.0)
                        .bind(now)
                        .execute(&mut *c)
                        .await?;
                    entry.refunded_at = Some(now);
                    Ok(Done::Commit(RefundOutcome::Refunded { entry, balance }))
                }
            }
        })
    }

    async fn window_spend(
        &self,
        user: UserId,
        subject: &SpendSubject,
        windows: &[BudgetWindow],
    ) -> StoreResult<Vec<u64>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        window_sums(&mut conn, user, subject, windows)
            .await
            .map_err(map_err)
    }
}
