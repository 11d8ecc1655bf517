//! Group commit of Buzz spends (issue 10, docs/benchmarks.md "W5"): spends that arrive
//! together are decided and written in one transaction with one commit, each caller still
//! waiting for that commit before it answers (`buzzgate_local::batch`).
//!
//! The batch takes the same locks as a lone spend, in one order: the advisory lock of every
//! (user, subject) it holds (sorted), then every balance row `FOR UPDATE` (sorted). Under
//! them it reads, in two round trips, the ledger entries of every idempotency key and every
//! window sum, then decides each spend **in arrival order** with the domain's
//! `SpendRequest::decide`, counting the spends it has already accepted in this batch as if
//! they were in the ledger (the same rows the sums would read: same user and subject,
//! `ai_services`, not refunded, created at or after the window's start, in its currencies),
//! and the balance they left. Accepted entries and the final balances are written in two
//! statements. A user with no balance row has a balance of 0, which refuses every spend.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use buzzgate_domain::audit::AuditEvent;
use buzzgate_domain::buzz::{BudgetWindow, LedgerEntry, SpendPurpose, SpendRequest};
use buzzgate_domain::ports::{SpendOutcome, StoreResult};
use buzzgate_local::batch::BatchWrite;
use sqlx::{PgPool, Row};

use crate::appends::bind_events;
use crate::buzz::{LEDGER_COLUMNS, LedgerRow, subject_columns};
use crate::{Done, Tx, i64_of, map_err, transaction};

/// What a spend batch writes, in one statement of fixed text: the accepted ledger entries
/// (`$1`–`$13`), the chain heads they moved (`$14`–`$19`), the balances that changed
/// (`$20`–`$22`) and the audit events of the charges (`$23`–`$29`, `bind_events`). The
/// sub-statements touch different tables, so running them together (as writable CTEs do)
/// is the same as running them one after another.
static SPEND_WRITES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH l AS (INSERT INTO buzz_ledger ({LEDGER_COLUMNS}, running) SELECT * FROM \
         unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
         $6::bigint[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], \
         $11::timestamptz[], $12::text[], $13::bigint[])), \
         h AS (INSERT INTO buzz_spend_heads \
         (user_id, subject_type, subject_id, currency, running, last_at) \
         SELECT * FROM unnest($14::bigint[], $15::text[], $16::text[], $17::text[], \
         $18::bigint[], $19::timestamptz[]) ON CONFLICT \
         (user_id, subject_type, subject_id, currency) DO UPDATE \
         SET running = EXCLUDED.running, last_at = EXCLUDED.last_at), \
         b AS (UPDATE buzz_balances b SET balance = v.balance \
         FROM unnest($20::bigint[], $21::text[], $22::bigint[]) AS v(u, c, balance) \
         WHERE b.user_id = v.u AND b.currency = v.c) \
         INSERT INTO audit_events (kind, at, user_id, client_id, scope, ip, metadata) \
         SELECT * FROM unnest($23::text[], $24::timestamptz[], $25::bigint[], $26::text[], \
         $27::bigint[], $28::text[], $29::jsonb[])"
    )
});

/// One spend, and the audit event to write with it if it is charged
/// (`BuzzStore::spend_audited`).
pub(crate) struct Charge {
    pub(crate) req: SpendRequest,
    pub(crate) event: Option<AuditEvent>,
}

/// The batch writer over the pool.
pub(crate) struct Spender {
    pub(crate) pool: PgPool,
}

impl Spender {
    async fn begin(&self) -> StoreResult<Tx> {
        Tx::begin(&self.pool).await.map_err(map_err)
    }
}

/// (user, subject type, subject id, resource server, idempotency key): what makes a spend
/// the same spend.
type KeyOf = (i64, &'static str, String, String, String);

fn key_of(r: &SpendRequest) -> KeyOf {
    let (st, sid) = subject_columns(&r.subject);
    (
        r.user_id.0,
        st,
        sid,
        r.resource_server.as_str().to_owned(),
        r.idempotency_key.as_str().to_owned(),
    )
}

fn lock_of(r: &SpendRequest) -> String {
    let (st, sid) = subject_columns(&r.subject);
    format!("buzzgate:spend:{}:{st}:{sid}", r.user_id.0)
}

/// (user, subject type, subject id, currency): one chain of prefix sums (migration 0010).
type ChainOf = (i64, String, String, String);

/// Whether `e`, accepted earlier in this batch, is one of the rows window `w` of `r` sums.
fn counts_in(e: &LedgerEntry, r: &SpendRequest, w: &BudgetWindow) -> bool {
    e.user_id == r.user_id
        && e.subject == r.subject
        && e.purpose == SpendPurpose::AiServices
        && e.refunded_at.is_none()
        && w.since.is_none_or(|s| e.created_at >= s)
        && w.currencies
            .as_ref()
            .is_none_or(|cs| cs.contains(&e.currency))
}

#[async_trait]
impl BatchWrite<Charge, SpendOutcome> for Spender {
    async fn write(&self, charges: &[Charge]) -> StoreResult<Vec<SpendOutcome>> {
        let reqs: Vec<&SpendRequest> = charges.iter().map(|c| &c.req).collect();
        let mut locks: Vec<String> = reqs.iter().map(|r| lock_of(r)).collect();
        locks.sort();
        locks.dedup();
        let mut rows: Vec<(i64, String)> = reqs
            .iter()
            .map(|r| (r.user_id.0, r.currency.as_str().to_owned()))
            .collect();
        rows.sort();
        rows.dedup();
        // Per spend: the windows its decision needs, then those it reports back (`report`).
        let decided: Vec<usize> = reqs.iter().map(|r| r.windows().len()).collect();
        let windows: Vec<Vec<BudgetWindow>> = reqs
            .iter()
            .map(|r| {
                let mut ws = r.windows();
                ws.extend(r.report.iter().cloned());
                ws
            })
            .collect();
        transaction!(self, |c| {
            // (2a) One advisory lock per (user, subject), in one order.
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) \
                 FROM unnest($1::text[]) WITH ORDINALITY AS t(k, i) ORDER BY i",
            )
            .bind(&locks)
            .execute(&mut *c)
            .await?;
            // (2b) The balance rows, locked in one order.
            let (users, currencies): (Vec<i64>, Vec<String>) = rows.iter().cloned().unzip();
            let mut balances: HashMap<(i64, String), i64> = HashMap::new();
            for row in sqlx::query(
                "SELECT user_id, currency, balance FROM buzz_balances \
                 WHERE (user_id, currency) IN (SELECT * FROM unnest($1::bigint[], $2::text[])) \
                 ORDER BY user_id, currency FOR UPDATE",
            )
            .bind(&users)
            .bind(&currencies)
            .fetch_all(&mut *c)
            .await?
            {
                balances.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
            }
            let found = balances.clone();
            // (1) Every idempotency key already used (read under the locks).
            let keys: Vec<KeyOf> = reqs.iter().map(|r| key_of(r)).collect();
            let mut prior: HashMap<KeyOf, LedgerEntry> = HashMap::new();
            {
                let mut cols: (Vec<i64>, Vec<&str>, Vec<String>, Vec<String>, Vec<String>) =
                    Default::default();
                for k in &keys {
                    cols.0.push(k.0);
                    cols.1.push(k.1);
                    cols.2.push(k.2.clone());
                    cols.3.push(k.3.clone());
                    cols.4.push(k.4.clone());
                }
                // One statement text whatever the batch's size: its plan is cached.
                let found = sqlx::query_as::<_, LedgerRow>(&format!(
                    "SELECT l.* FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], \
                     $5::text[]) AS k(u, st, sid, rs, key) CROSS JOIN LATERAL (SELECT \
                     {LEDGER_COLUMNS} FROM buzz_ledger WHERE user_id = k.u \
                     AND subject_type = k.st AND subject_id = k.sid AND resource_server = k.rs \
                     AND idempotency_key = k.key) l"
                ))
                .bind(&cols.0)
                .bind(&cols.1)
                .bind(&cols.2)
                .bind(&cols.3)
                .bind(&cols.4)
                .fetch_all(&mut *c)
                .await?;
                for row in found {
                    let entry = row.into_entry()?;
                    let (st, sid) = subject_columns(&entry.subject);
                    let k = (
                        entry.user_id.0,
                        st,
                        sid,
                        entry
                            .resource_server
                            .as_ref()
                            .map(|r| r.as_str().to_owned())
                            .unwrap_or_default(),
                        entry.idempotency_key.as_str().to_owned(),
                    );
                    prior.insert(k, entry);
                }
            }
            // (3) Every window sum of every spend, in one statement.
            let mut sums: Vec<Vec<u64>> = windows.iter().map(|w| vec![0; w.len()]).collect();
            if windows.iter().any(|w| !w.is_empty()) {
                // One row per (spend, window); currencies joined by commas (a currency is
                // letters, digits, `-` and `_`), NULL for any.
                let mut t: (Vec<i64>, Vec<i64>, Vec<i64>, Vec<&str>, Vec<String>) =
                    Default::default();
                let mut since: Vec<Option<time::OffsetDateTime>> = Vec::new();
                let mut cs: Vec<Option<String>> = Vec::new();
                for (i, (r, ws)) in reqs.iter().zip(&windows).enumerate() {
                    let (st, sid) = subject_columns(&r.subject);
                    for (j, w) in ws.iter().enumerate() {
                        t.0.push(i64_of(i as u64));
                        t.1.push(i64_of(j as u64));
                        t.2.push(r.user_id.0);
                        t.3.push(st);
                        t.4.push(sid.clone());
                        since.push(w.since);
                        cs.push(
                            w.currencies.as_ref().map(|cs| {
                                cs.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
                            }),
                        );
                    }
                }
                // Prefix sums (migration 0010): per currency of the window, the chain's head
                // total minus the total of its last row before the window, then minus the
                // refunded rows inside the window.
                let found = sqlx::query(
                    "SELECT t.i, t.j, GREATEST(0, LEAST(9223372036854775807, \
                       (SELECT COALESCE(SUM(h.running - COALESCE((SELECT b.running \
                          FROM buzz_ledger b WHERE b.user_id = h.user_id \
                          AND b.subject_type = h.subject_type AND b.subject_id = h.subject_id \
                          AND b.currency = h.currency AND b.purpose = 'ai_services' \
                          AND t.since IS NOT NULL AND b.created_at < t.since \
                          ORDER BY b.created_at DESC, b.running DESC LIMIT 1), 0)), 0) \
                        FROM buzz_spend_heads h WHERE h.user_id = t.u \
                          AND h.subject_type = t.st AND h.subject_id = t.sid \
                          AND (t.cs IS NULL OR h.currency = ANY(string_to_array(t.cs, ',')))) \
                     - (SELECT COALESCE(SUM(r.amount), 0) FROM buzz_ledger r \
                        WHERE r.user_id = t.u AND r.subject_type = t.st AND r.subject_id = t.sid \
                          AND r.purpose = 'ai_services' AND r.refunded_at IS NOT NULL \
                          AND (t.since IS NULL OR r.created_at >= t.since) \
                          AND (t.cs IS NULL OR r.currency = ANY(string_to_array(t.cs, ','))))\
                     ))::BIGINT \
                     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], \
                       $5::text[], $6::timestamptz[], $7::text[]) AS t(i, j, u, st, sid, since, cs)",
                )
                .bind(&t.0)
                .bind(&t.1)
                .bind(&t.2)
                .bind(&t.3)
                .bind(&t.4)
                .bind(&since)
                .bind(&cs)
                .fetch_all(&mut *c)
                .await?;
                for row in found {
                    let i: i64 = row.try_get(0)?;
                    let j: i64 = row.try_get(1)?;
                    let sum: i64 = row.try_get(2)?;
                    if let Some(slot) = usize::try_from(i)
                        .ok()
                        .and_then(|i| sums.get_mut(i))
                        .and_then(|s| usize::try_from(j).ok().and_then(|j| s.get_mut(j)))
                    {
                        *slot = u64::try_from(sum).unwrap_or(0);
                    }
                }
            }
            // (3b) The chain heads (migration 0010) of every (user, subject) in the batch.
            let mut heads: HashMap<ChainOf, (i64, time::OffsetDateTime)> = HashMap::new();
            {
                let mut subjects: Vec<(i64, &'static str, String)> = reqs
                    .iter()
                    .map(|r| {
                        let (st, sid) = subject_columns(&r.subject);
                        (r.user_id.0, st, sid)
                    })
                    .collect();
                subjects.sort();
                subjects.dedup();
                let mut cols: (Vec<i64>, Vec<&str>, Vec<String>) = Default::default();
                for (u, st, sid) in subjects {
                    cols.0.push(u);
                    cols.1.push(st);
                    cols.2.push(sid);
                }
                for row in sqlx::query(
                    "SELECT h.subject_type, h.subject_id, h.user_id, h.currency, h.running, \
                     h.last_at FROM buzz_spend_heads h JOIN unnest($1::bigint[], $2::text[], \
                     $3::text[]) AS s(u, st, sid) ON h.user_id = s.u AND h.subject_type = s.st \
                     AND h.subject_id = s.sid",
                )
                .bind(&cols.0)
                .bind(&cols.1)
                .bind(&cols.2)
                .fetch_all(&mut *c)
                .await?
                {
                    let st: String = row.try_get(0)?;
                    let chain = (row.try_get(2)?, st, row.try_get(1)?, row.try_get(3)?);
                    heads.insert(chain, (row.try_get(4)?, row.try_get(5)?));
                }
            }
            let mut moved: Vec<ChainOf> = Vec::new();
            // (4) Each spend in arrival order, seeing the ones accepted before it.
            let mut accepted: Vec<LedgerEntry> = Vec::new();
            let mut running: Vec<Option<i64>> = Vec::new();
            let mut events: Vec<&AuditEvent> = Vec::new();
            let mut outcomes = Vec::with_capacity(reqs.len());
            for (((charge, ws), n), (k, base)) in charges
                .iter()
                .zip(&windows)
                .zip(&decided)
                .zip(keys.iter().zip(&sums))
            {
                let r = &charge.req;
                // Each window's sum with the spends this batch accepted so far.
                let sum_of = |accepted: &[LedgerEntry]| -> Vec<u64> {
                    ws.iter()
                        .zip(base)
                        .map(|(w, s)| {
                            accepted
                                .iter()
                                .filter(|e| counts_in(e, r, w))
                                .fold(*s, |t, e| t.saturating_add(e.amount))
                        })
                        .collect()
                };
                let bal_key = (r.user_id.0, r.currency.as_str().to_owned());
                let balance = balances.get(&bal_key).copied().unwrap_or(0);
                if let Some(entry) = prior.get(k) {
                    outcomes.push(match entry.replay_of(r) {
                        Ok(()) => SpendOutcome::Replayed {
                            entry: entry.clone(),
                            balance,
                            report: sum_of(&accepted).split_off(*n),
                        },
                        Err(e) => SpendOutcome::Rejected(e),
                    });
                    continue;
                }
                let spent = sum_of(&accepted);
                if let Err(e) = r.decide(balance, &spent[..*n]) {
                    outcomes.push(SpendOutcome::Rejected(e));
                    continue;
                }
                let mut entry = LedgerEntry::from_request(r);
                // A capped entry extends its chain's prefix sum; its instant never goes
                // back along the chain (nodes' clocks differ by a little), so the rows
                // before any instant stay a prefix of the chain.
                let total = (entry.purpose == SpendPurpose::AiServices).then(|| {
                    let (st, sid) = subject_columns(&entry.subject);
                    let chain = (
                        r.user_id.0,
                        st.to_owned(),
                        sid,
                        r.currency.as_str().to_owned(),
                    );
                    let head = heads
                        .entry(chain.clone())
                        .or_insert((0, time::OffsetDateTime::UNIX_EPOCH));
                    entry.created_at = entry.created_at.max(head.1);
                    *head = (
                        head.0.saturating_add(i64_of(entry.amount)),
                        entry.created_at,
                    );
                    moved.push(chain);
                    head.0
                });
                running.push(total);
                let after = balance - i64_of(r.amount);
                balances.insert(bal_key, after);
                prior.insert(k.clone(), entry.clone());
                accepted.push(entry.clone());
                events.extend(charge.event.as_ref());
                outcomes.push(SpendOutcome::Spent {
                    entry,
                    balance: after,
                    report: sum_of(&accepted).split_off(*n),
                });
            }
            if accepted.is_empty() {
                return Ok(Done::Rollback(outcomes));
            }
            // The accepted entries, as columns.
            let mut l: (
                Vec<uuid::Uuid>,
                Vec<i64>,
                Vec<&str>,
                Vec<String>,
                Vec<&str>,
                Vec<i64>,
                Vec<&str>,
                Vec<&str>,
            ) = Default::default();
            let mut rest: (
                Vec<Option<&str>>,
                Vec<time::OffsetDateTime>,
                Vec<Option<time::OffsetDateTime>>,
                Vec<Option<&str>>,
            ) = Default::default();
            for e in &accepted {
                let (st, sid) = subject_columns(&e.subject);
                l.0.push(e.id.0);
                l.1.push(e.user_id.0);
                l.2.push(st);
                l.3.push(sid);
                l.4.push(e.purpose.as_str());
                l.5.push(i64_of(e.amount));
                l.6.push(e.currency.as_str());
                l.7.push(e.idempotency_key.as_str());
                rest.0.push(e.description.as_deref());
                rest.1.push(e.created_at);
                rest.2.push(e.refunded_at);
                rest.3.push(e.resource_server.as_ref().map(|r| r.as_str()));
            }
            // The heads the accepted entries moved, as they left them, and the balances
            // that changed.
            moved.sort();
            moved.dedup();
            let mut h: (Vec<i64>, Vec<String>, Vec<String>, Vec<String>) = Default::default();
            let mut at: (Vec<i64>, Vec<time::OffsetDateTime>) = Default::default();
            for chain in moved {
                let (total, last) = heads[&chain];
                h.0.push(chain.0);
                h.1.push(chain.1);
                h.2.push(chain.2);
                h.3.push(chain.3);
                at.0.push(total);
                at.1.push(last);
            }
            let mut changed: (Vec<i64>, Vec<&str>, Vec<i64>) = Default::default();
            for (k, b) in &balances {
                if found.get(k) != Some(b) {
                    changed.0.push(k.0);
                    changed.1.push(&k.1);
                    changed.2.push(*b);
                }
            }
            // (5) The ledger entries, the heads, the balances and the audit events in one
            // statement: one round trip (docs/benchmarks.md, "W5").
            let q = sqlx::query(&SPEND_WRITES)
                .bind(&l.0)
                .bind(&l.1)
                .bind(&l.2)
                .bind(&l.3)
                .bind(&l.4)
                .bind(&l.5)
                .bind(&l.6)
                .bind(&l.7)
                .bind(&rest.0)
                .bind(&rest.1)
                .bind(&rest.2)
                .bind(&rest.3)
                .bind(&running)
                .bind(&h.0)
                .bind(&h.1)
                .bind(&h.2)
                .bind(&h.3)
                .bind(&at.0)
                .bind(&at.1)
                .bind(&changed.0)
                .bind(&changed.1)
                .bind(&changed.2);
            bind_events(q, &events).execute(&mut *c).await?;
            Ok(Done::Commit(outcomes.clone()))
        })
    }
}
