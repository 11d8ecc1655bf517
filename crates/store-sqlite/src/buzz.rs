//! `BuzzStore`: balances per (user, currency) and the spend ledger, with the atomic spend
//! and refund.

use async_trait::async_trait;
use buzzgate_domain::StoreError;
use buzzgate_domain::audit::AuditEvent;
use buzzgate_domain::buzz::{
    BudgetWindow, Currency, IdempotencyKey, LedgerEntry, RefundDecision, SpendPurpose,
    SpendRequest, SpendSubject,
};
use buzzgate_domain::ids::{ClientId, SpendId, TokenId, UserId};
use buzzgate_domain::ports::{BuzzStore, RefundOutcome, SpendOutcome, StoreResult};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use crate::convert::{Cols, Fetch, corrupt, opt_us, to_json, us};
use crate::{SqliteStore, finish, map_err};

/// The stored form of a subject: (`oauth` | `apiKey`, id).
fn subject_cols(s: &SpendSubject) -> (&'static str, String) {
    match s {
        SpendSubject::OAuth(c) => ("oauth", c.as_str().to_owned()),
        SpendSubject::ApiKey(t) => ("apiKey", t.to_string()),
    }
}

fn entry_of(row: &SqliteRow) -> StoreResult<LedgerEntry> {
    let c = Cols(row);
    let id = c.string("subject_id")?;
    let subject = match c.string("subject_type")?.as_str() {
        "oauth" => SpendSubject::OAuth(ClientId::parse(&id).ok_or_else(|| corrupt("subject"))?),
        "apiKey" => SpendSubject::ApiKey(TokenId::parse(&id).ok_or_else(|| corrupt("subject"))?),
        other => return Err(corrupt(format!("subject type {other}"))),
    };
    let resource_server = c
        .opt_string("resource_server")?
        .map(|id| ClientId::parse(&id).ok_or_else(|| corrupt("resource_server")))
        .transpose()?;
    Ok(LedgerEntry {
        id: c.spend_id("id")?,
        user_id: c.user("user_id")?,
        subject,
        resource_server,
        purpose: SpendPurpose::parse(&c.string("purpose")?).map_err(|_| corrupt("purpose"))?,
        amount: u64::try_from(c.i64("amount")?).map_err(|_| corrupt("amount"))?,
        currency: Currency::parse(&c.string("currency")?).map_err(|_| corrupt("currency"))?,
        idempotency_key: IdempotencyKey::parse(&c.string("idempotency_key")?)
            .map_err(|_| corrupt("idempotency_key"))?,
        description: c.opt_string("description")?,
        created_at: c.time("created_at")?,
        refunded_at: c.opt_time("refunded_at")?,
    })
}

fn amount_i64(amount: u64) -> i64 {
    i64::try_from(amount).unwrap_or(i64::MAX)
}

async fn balance_in(
    conn: &mut SqliteConnection,
    user: UserId,
    currency: &Currency,
) -> StoreResult<i64> {
    let row = sqlx::query("SELECT balance FROM buzz_balances WHERE user_id = ? AND currency = ?")
        .bind(user.0)
        .bind(currency.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    row.map_or(Ok(0), |r| Cols(&r).i64("balance"))
}

/// Adds `delta` (saturating at the i64 bounds) and returns the new balance.
async fn add_in(
    conn: &mut SqliteConnection,
    user: UserId,
    currency: &Currency,
    delta: i64,
    now: OffsetDateTime,
) -> StoreResult<i64> {
    let current = balance_in(conn, user, currency).await?;
    let next = current.saturating_add(delta);
    sqlx::query(
        "INSERT INTO buzz_balances (user_id, currency, balance, updated_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (user_id, currency) DO UPDATE SET balance = excluded.balance, \
         updated_at = excluded.updated_at",
    )
    .bind(user.0)
    .bind(currency.as_str())
    .bind(next)
    .bind(us(now))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(next)
}

/// The spend of each window: not-refunded `ai_services` entries of (user, subject) created at
/// or after `since`, in the window's currencies.
async fn window_sums_in(
    conn: &mut SqliteConnection,
    user: UserId,
    subject: &SpendSubject,
    windows: &[BudgetWindow],
) -> StoreResult<Vec<u64>> {
    let (kind, id) = subject_cols(subject);
    let mut out = Vec::with_capacity(windows.len());
    for w in windows {
        let currencies = w
            .currencies
            .as_ref()
            .map(|cs| to_json(&cs.iter().map(Currency::as_str).collect::<Vec<_>>()))
            .transpose()?;
        let row = sqlx::query(
            "SELECT COALESCE(SUM(amount), 0) AS spent FROM buzz_ledger \
             WHERE user_id = ?1 AND subject_type = ?2 AND subject_id = ?3 \
               AND purpose = 'ai_services' AND refunded_at IS NULL \
               AND (?4 IS NULL OR created_at >= ?4) \
               AND (?5 IS NULL OR currency IN (SELECT value FROM json_each(?5)))",
        )
        .bind(user.0)
        .bind(kind)
        .bind(id.as_str())
        .bind(opt_us(w.since))
        .bind(currencies)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
        out.push(u64::try_from(Cols(&row).i64("spent")?).unwrap_or(0));
    }
    Ok(out)
}

async fn spend_in(conn: &mut SqliteConnection, req: &SpendRequest) -> StoreResult<SpendOutcome> {
    let (kind, id) = subject_cols(&req.subject);
    let prior = sqlx::query(
        "SELECT * FROM buzz_ledger WHERE user_id = ? AND subject_type = ? AND subject_id = ? \
         AND resource_server = ? AND idempotency_key = ?",
    )
    .bind(req.user_id.0)
    .bind(kind)
    .bind(id.as_str())
    .bind(req.resource_server.as_str())
    .bind(req.idempotency_key.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    if let Some(row) = prior {
        let prior = entry_of(&row)?;
        return Ok(match prior.replay_of(req) {
            Ok(()) => {
                let balance = balance_in(conn, prior.user_id, &prior.currency).await?;
                // The receipt's windows are left to the caller (`report` empty).
                SpendOutcome::Replayed {
                    entry: prior,
                    balance,
                    report: Vec::new(),
                }
            }
            Err(e) => SpendOutcome::Rejected(e),
        });
    }
    let balance = balance_in(conn, req.user_id, &req.currency).await?;
    let sums = window_sums_in(conn, req.user_id, &req.subject, &req.windows()).await?;
    if let Err(e) = req.decide(balance, &sums) {
        return Ok(SpendOutcome::Rejected(e));
    }
    let new_balance = add_in(
        conn,
        req.user_id,
        &req.currency,
        -amount_i64(req.amount),
        req.now,
    )
    .await?;
    let entry = LedgerEntry::from_request(req);
    sqlx::query(
        "INSERT INTO buzz_ledger (id, user_id, subject_type, subject_id, resource_server, \
         purpose, amount, currency, idempotency_key, description, created_at, refunded_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entry.id.to_string())
    .bind(entry.user_id.0)
    .bind(kind)
    .bind(id.as_str())
    .bind(req.resource_server.as_str())
    .bind(entry.purpose.as_str())
    .bind(amount_i64(entry.amount))
    .bind(entry.currency.as_str())
    .bind(entry.idempotency_key.as_str())
    .bind(entry.description.as_deref())
    .bind(us(entry.created_at))
    .bind(opt_us(entry.refunded_at))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(SpendOutcome::Spent {
        entry,
        balance: new_balance,
        report: Vec::new(),
    })
}

async fn refund_in(
    conn: &mut SqliteConnection,
    id: SpendId,
    by: &ClientId,
    now: OffsetDateTime,
) -> StoreResult<RefundOutcome> {
    let Some(row) = sqlx::query("SELECT * FROM buzz_ledger WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
    else {
        return Ok(RefundOutcome::NotFound);
    };
    let mut entry = entry_of(&row)?;
    match entry
        .refund(by, now)
        .map_err(|e| StoreError::Internal(e.to_string()))?
    {
        RefundDecision::NotFound => Ok(RefundOutcome::NotFound),
        RefundDecision::AlreadyRefunded => {
            let balance = balance_in(conn, entry.user_id, &entry.currency).await?;
            Ok(RefundOutcome::AlreadyRefunded { entry, balance })
        }
        RefundDecision::Refund { amount, currency } => {
            let balance = add_in(conn, entry.user_id, &currency, amount_i64(amount), now).await?;
            sqlx::query("UPDATE buzz_ledger SET refunded_at = ? WHERE id = ?")
                .bind(us(now))
                .bind(id.to_string())
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            entry.refunded_at = Some(now);
            Ok(RefundOutcome::Refunded { entry, balance })
        }
    }
}

#[async_trait]
impl BuzzStore for SqliteStore {
    async fn credit(
        &self,
        user: UserId,
        currency: &Currency,
        amount: u64,
        now: OffsetDateTime,
    ) -> StoreResult<i64> {
        let mut tx = self.begin_write().await?;
        let out = add_in(&mut tx, user, currency, amount_i64(amount), now).await;
        finish(tx, out).await
    }

    async fn balances(&self, user: UserId) -> StoreResult<Vec<(Currency, i64)>> {
        sqlx::query(
            "SELECT currency, balance FROM buzz_balances WHERE user_id = ? ORDER BY currency",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|row| {
            let c = Cols(row);
            let currency =
                Currency::parse(&c.string("currency")?).map_err(|_| corrupt("currency"))?;
            Ok((currency, c.i64("balance")?))
        })
        .collect()
    }

    async fn net_spent(&self, user: UserId) -> StoreResult<Vec<(Currency, u64)>> {
        sqlx::query(
            "SELECT currency, MIN(SUM(amount), 9223372036854775807) AS spent FROM buzz_ledger \
             WHERE user_id = ? AND refunded_at IS NULL GROUP BY currency ORDER BY currency",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|row| {
            let c = Cols(row);
            let currency =
                Currency::parse(&c.string("currency")?).map_err(|_| corrupt("currency"))?;
            Ok((currency, u64::try_from(c.i64("spent")?).unwrap_or(0)))
        })
        .collect()
    }

    async fn history(&self, user: UserId, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        sqlx::query("SELECT * FROM buzz_ledger WHERE user_id = ? ORDER BY seq DESC LIMIT ?")
            .bind(user.0)
            .bind(i64::from(limit))
            .all(&self.pool, entry_of)
            .await
    }

    async fn spend(&self, req: &SpendRequest) -> StoreResult<SpendOutcome> {
        let mut tx = self.begin_write().await?;
        let out = spend_in(&mut tx, req).await;
        finish(tx, out).await
    }

    async fn spend_audited(
        &self,
        req: &SpendRequest,
        event: &AuditEvent,
    ) -> StoreResult<(SpendOutcome, bool)> {
        let mut tx = self.begin_write().await?;
        let out = async {
            let outcome = spend_in(&mut tx, req).await?;
            if matches!(outcome, SpendOutcome::Spent { .. }) {
                crate::audit::insert_event(&mut tx, event).await?;
            }
            Ok((outcome, true))
        }
        .await;
        finish(tx, out).await
    }

    async fn refund(
        &self,
        id: SpendId,
        by: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<RefundOutcome> {
        let mut tx = self.begin_write().await?;
        let out = refund_in(&mut tx, id, by, now).await;
        finish(tx, out).await
    }

    async fn window_spend(
        &self,
        user: UserId,
        subject: &SpendSubject,
        windows: &[BudgetWindow],
    ) -> StoreResult<Vec<u64>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        window_sums_in(&mut conn, user, subject, windows).await
    }
}
