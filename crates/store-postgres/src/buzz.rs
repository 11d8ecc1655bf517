//! Buzz balances and the spend ledger. A spend is one transaction: an advisory lock on
//! (user, subject) so its budget windows cannot be raced, the balance row `FOR UPDATE`, then
//! the idempotency key, the window sums, the domain's decision, the debit and the ledger row.
//! Lock order everywhere: (user, subject), then the balance row, then ledger rows.

use async_trait::async_trait;
use buzzgate_domain::StoreError;
use buzzgate_domain::buzz::{
    BudgetWindow, Currency, IdempotencyKey, LedgerEntry, RefundDecision, SpendPurpose,
    SpendRequest, SpendSubject,
};
use buzzgate_domain::ids::{ClientId, SpendId, TokenId, UserId};
use buzzgate_domain::ports::{BuzzStore, RefundOutcome, SpendOutcome, StoreResult};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Done, Fail, PgStore, client_id_from, corrupt, i64_of, map_err, transaction};

/// The unique index of (user, subject, resource server, idempotency key); a concurrent
/// duplicate that reaches
/// it is retried (and then replayed), see `Fail::is_retryable`.
pub(crate) const IDEMPOTENCY_INDEX: &str = "buzz_ledger_idempotency_key";

const LEDGER_COLUMNS: &str = "id, user_id, subject_type, subject_id, purpose, amount, currency, \
     idempotency_key, description, created_at, refunded_at, resource_server";

#[derive(sqlx::FromRow)]
struct LedgerRow {
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
    fn into_entry(self) -> StoreResult<LedgerEntry> {
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
fn subject_columns(s: &SpendSubject) -> (&'static str, String) {
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

/// The spend's view under its locks, in one round trip: the balance (its row locked `FOR
/// UPDATE`), whether the idempotency key is used, and the sum of each window; `None` when
/// the user has no balance row in this currency yet.
async fn spend_state(
    c: &mut PgConnection,
    req: &SpendRequest,
    stype: &str,
    sid: &str,
    windows: &[BudgetWindow],
) -> Result<Option<(i64, bool, Vec<u64>)>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT b.balance, EXISTS (SELECT 1 FROM buzz_ledger k WHERE k.user_id = ",
    );
    q.push_bind(req.user_id.0)
        .push(" AND k.subject_type = ")
        .push_bind(stype)
        .push(" AND k.subject_id = ")
        .push_bind(sid)
        .push(" AND k.resource_server = ")
        .push_bind(req.resource_server.as_str())
        .push(" AND k.idempotency_key = ")
        .push_bind(req.idempotency_key.as_str())
        .push(")");
    for w in windows {
        let currencies: Option<Vec<String>> = w
            .currencies
            .as_ref()
            .map(|cs| cs.iter().map(|c| c.as_str().to_owned()).collect());
        q.push(
            ", (SELECT LEAST(COALESCE(SUM(l.amount), 0), 9223372036854775807)::BIGINT \
             FROM buzz_ledger l WHERE l.user_id = ",
        )
        .push_bind(req.user_id.0)
        .push(" AND l.subject_type = ")
        .push_bind(stype)
        .push(" AND l.subject_id = ")
        .push_bind(sid)
        .push(" AND l.purpose = 'ai_services' AND l.refunded_at IS NULL AND (")
        .push_bind(w.since)
        .push("::timestamptz IS NULL OR l.created_at >= ")
        .push_bind(w.since)
        .push(") AND (")
        .push_bind(currencies.clone())
        .push("::text[] IS NULL OR l.currency = ANY(")
        .push_bind(currencies)
        .push("::text[])))");
    }
    q.push(" FROM buzz_balances b WHERE b.user_id = ")
        .push_bind(req.user_id.0)
        .push(" AND b.currency = ")
        .push_bind(req.currency.as_str())
        .push(" FOR UPDATE OF b");
    let Some(row) = q.build().fetch_optional(c).await? else {
        return Ok(None);
    };
    let balance: i64 = row.try_get(0)?;
    let key_used: bool = row.try_get(1)?;
    let mut sums = Vec::with_capacity(windows.len());
    for i in 0..windows.len() {
        let sum: i64 = row.try_get(i + 2)?;
        sums.push(u64::try_from(sum).unwrap_or(0));
    }
    Ok(Some((balance, key_used, sums)))
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
        let (stype, sid) = subject_columns(&req.subject);
        let subject_lock = format!("buzzgate:spend:{}:{stype}:{sid}", req.user_id.0);
        let windows = req.windows();
        transaction!(self, |c| {
            // (2a) Budgets are per (user, subject) and may span currencies: one lock for them.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(&subject_lock)
                .execute(&mut *c)
                .await?;
            // (2b) The balance row, locked, with (1) whether the idempotency key was used
            // and (3) the window sums, in one round trip. The sums and the key need no row
            // lock: every spend of this (user, subject) holds the advisory lock above.
            let mut state = spend_state(&mut *c, req, stype, &sid, &windows).await?;
            if state.is_none() {
                // Created (as 0) so there is a row to lock; a refusal rolls it back.
                sqlx::query(
                    "INSERT INTO buzz_balances (user_id, currency, balance) VALUES ($1, $2, 0) \
                     ON CONFLICT (user_id, currency) DO NOTHING",
                )
                .bind(req.user_id.0)
                .bind(req.currency.as_str())
                .execute(&mut *c)
                .await?;
                state = spend_state(&mut *c, req, stype, &sid, &windows).await?;
            }
            let Some((balance, key_used, sums)) = state else {
                return Err(Fail::Store(StoreError::Internal(
                    "the balance row vanished under its lock".into(),
                )));
            };
            // (1) A retried key: the prior entry (read after the locks, so a duplicate that
            // committed while this one waited is seen).
            if key_used {
                let prior = sqlx::query_as::<_, LedgerRow>(&format!(
                    "SELECT {LEDGER_COLUMNS} FROM buzz_ledger \
                     WHERE user_id = $1 AND subject_type = $2 AND subject_id = $3 \
                       AND resource_server = $4 AND idempotency_key = $5"
                ))
                .bind(req.user_id.0)
                .bind(stype)
                .bind(&sid)
                .bind(req.resource_server.as_str())
                .bind(req.idempotency_key.as_str())
                .fetch_one(&mut *c)
                .await?;
                let entry = prior.into_entry()?;
                return Ok(Done::Rollback(match entry.replay_of(req) {
                    // Same parameters, so the same currency: the balance read above.
                    Ok(()) => SpendOutcome::Replayed { entry, balance },
                    Err(e) => SpendOutcome::Rejected(e),
                }));
            }
            // (4)
            if let Err(e) = req.decide(balance, &sums) {
                return Ok(Done::Rollback(SpendOutcome::Rejected(e)));
            }
            // (5) The balance and the ledger in one statement.
            let entry = LedgerEntry::from_request(req);
            let balance: i64 = sqlx::query_scalar(&format!(
                "WITH debit AS (UPDATE buzz_balances SET balance = balance - $6 \
                   WHERE user_id = $2 AND currency = $7 RETURNING balance), \
                 entry AS (INSERT INTO buzz_ledger ({LEDGER_COLUMNS}) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)) \
                 SELECT balance FROM debit"
            ))
            .bind(entry.id.0)
            .bind(entry.user_id.0)
            .bind(stype)
            .bind(&sid)
            .bind(entry.purpose.as_str())
            .bind(i64_of(entry.amount))
            .bind(entry.currency.as_str())
            .bind(entry.idempotency_key.as_str())
            .bind(entry.description.as_deref())
            .bind(entry.created_at)
            .bind(entry.refunded_at)
            .bind(req.resource_server.as_str())
            .fetch_one(&mut *c)
            .await?;
            Ok(Done::Commit(SpendOutcome::Spent { entry, balance }))
        })
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
