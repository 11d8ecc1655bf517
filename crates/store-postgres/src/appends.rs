//! Group commit of the writes that only add rows (issue 10, docs/benchmarks.md): token
//! inserts (with their family checks) and audit events from requests that arrive together
//! share one transaction, one multi-row `INSERT` per table and one commit; each request still
//! waits for that commit before it answers ([`buzzgate_local::batch`]).

use std::collections::HashSet;
use std::sync::LazyLock;

use async_trait::async_trait;
use buzzgate_domain::audit::AuditEvent;
use buzzgate_domain::ports::{InsertOutcome, OutcomeEvents, StoreResult};
use buzzgate_domain::token::TokenRecord;
use buzzgate_local::batch::BatchWrite;
use sqlx::types::Json;
use sqlx::{Column, PgPool, Postgres, Row};
use uuid::Uuid;

use crate::tokens::FAMILY_KEY;
use buzzgate_domain::ids::ClientId;

use crate::{Done, Fail, Tx, map_err, scope_to, transaction};

/// One write that only adds rows.
pub(crate) enum Append {
    /// `TokenStore::insert` (and `insert_audited`, with the event of each outcome): written
    /// unless one of their families is revoked.
    Tokens(Vec<TokenRecord>, Option<OutcomeEvents>),
    /// `AuditLog::record`.
    Audit(AuditEvent),
}

/// The batch writer over the pool (it holds no store handle, so the batching task ends with
/// the last store).
pub(crate) struct Appender {
    pub(crate) pool: PgPool,
}

/// Opens a transaction whose first statements (`opening`, sent with `BEGIN` in one message)
/// name families in a first column called `family_id`: the transaction, and those families.
/// For a batch of token inserts (`open_families`) they are the revoked ones; for a round of
/// rotations (crate::rotations) the locked ones.
pub(crate) async fn open_naming(pool: &PgPool, opening: &str) -> Result<(Tx, HashSet<Uuid>), Fail> {
    let (tx, rows) = Tx::begin_with(pool, opening).await?;
    let mut named = HashSet::new();
    for row in rows {
        // Rows of other statements (an insert batch's locks: `void`s) name nothing.
        if row.columns().first().map(|c| c.name()) == Some("family_id") {
            named.insert(row.try_get::<Uuid, _>(0)?);
        }
    }
    Ok((tx, named))
}

#[async_trait]
impl BatchWrite<Append, InsertOutcome> for Appender {
    async fn write(&self, items: &[Append]) -> StoreResult<Vec<InsertOutcome>> {
        let mut families: Vec<Uuid> = items
            .iter()
            .filter_map(|a| match a {
                Append::Tokens(t, _) => Some(t.iter().filter_map(|t| t.family_id.map(|f| f.0))),
                Append::Audit(_) => None,
            })
            .flatten()
            .collect();
        families.sort_unstable();
        families.dedup();
        if families.is_empty() {
            // Nothing to check under a lock (access tokens and API keys of no family, audit
            // events): the whole batch is one statement, committed on its own, so one round
            // trip instead of BEGIN, two INSERTs and COMMIT (docs/benchmarks.md).
            let (rows, events, outcomes) = sort(items, &HashSet::new());
            let mut c = self.pool.acquire().await.map_err(map_err)?;
            insert_all(&mut c, &rows, &events).await.map_err(map_err)?;
            return Ok(outcomes);
        }
        // BEGIN, the shared locks of every family (in one order; a revocation holds them
        // exclusively) and the read of the revoked ones, in one round trip; then the insert and
        // the commit (docs/benchmarks.md, "W3").
        let opening = open_families(&families);
        transaction!(
            @begin open_naming(&self.pool, &opening),
            |c, revoked| {
                let (rows, events, outcomes) = sort(items, &revoked);
                insert_all(&mut *c, &rows, &events).await?;
                Ok(Done::Commit(outcomes))
            }
        )
    }
}

/// The statements that open a batch with families, after `BEGIN`: the shared advisory lock of
/// each family (the key of `tokens::lock_families`), then the read of which are revoked. The
/// families are inlined as UUID literals, text this process formatted (hex digits and dashes),
/// because a simple-query message takes no parameters.
fn open_families(families: &[Uuid]) -> String {
    let list = families
        .iter()
        .map(|f| f.hyphenated().to_string())
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "SELECT pg_advisory_xact_lock_shared(k) FROM (SELECT DISTINCT {FAMILY_KEY} AS k \
         FROM unnest('{{{list}}}'::uuid[]) AS f ORDER BY 1) AS keys; \
         SELECT family_id FROM revoked_families WHERE family_id = ANY('{{{list}}}'::uuid[])"
    )
}

/// What each write of a batch becomes: the token rows to insert (those of no revoked
/// family), the audit events to record, and each write's outcome, in order.
fn sort<'a>(
    items: &'a [Append],
    revoked: &HashSet<Uuid>,
) -> (
    Vec<&'a TokenRecord>,
    Vec<&'a AuditEvent>,
    Vec<InsertOutcome>,
) {
    let mut rows: Vec<&TokenRecord> = Vec::new();
    let mut events: Vec<&AuditEvent> = Vec::new();
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Append::Tokens(tokens, recorded) => {
                let outcome = if tokens
                    .iter()
                    .any(|t| t.family_id.is_some_and(|f| revoked.contains(&f.0)))
                {
                    InsertOutcome::FamilyRevoked
                } else {
                    rows.extend(tokens.iter());
                    InsertOutcome::Inserted
                };
                if let Some(recorded) = recorded {
                    events.push(recorded.of(outcome));
                }
                outcomes.push(outcome);
            }
            Append::Audit(e) => {
                events.push(e);
                outcomes.push(InsertOutcome::Inserted);
            }
        }
    }
    (rows, events, outcomes)
}

/// The token half of a batch statement: `tokens` rows from sixteen arrays, `$1`–`$16`
/// ([`bind_rows`]), so it is prepared once per connection whatever the batch's size.
pub(crate) const INSERT_TOKENS: &str = "INSERT INTO tokens (id, hash, kind, client_id, \
     user_id, scope, family_id, name, buzz_limit, issued_at, expires_at, revoked_at, \
     rotated_at, auth_time, oidc, audience) \
     SELECT id, hash, kind, client_id, user_id, scope, family_id, name, buzz_limit, issued_at, \
     expires_at, revoked_at, rotated_at, auth_time, oidc, \
     ARRAY(SELECT jsonb_array_elements_text(aud)) \
     FROM unnest($1::uuid[], $2::bytea[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], \
     $7::uuid[], $8::text[], $9::jsonb[], $10::timestamptz[], $11::timestamptz[], \
     $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], $15::int2[], $16::jsonb[]) \
     AS v(id, hash, kind, client_id, user_id, scope, family_id, name, buzz_limit, issued_at, \
     expires_at, revoked_at, rotated_at, auth_time, oidc, aud)";

/// The audit half: events from the seven arrays `$17`–`$23` ([`bind_events`]).
pub(crate) const INSERT_EVENTS: &str = "INSERT INTO audit_events (kind, at, user_id, \
     client_id, scope, ip, metadata) \
     SELECT * FROM unnest($17::text[], $18::timestamptz[], $19::bigint[], $20::text[], \
     $21::bigint[], $22::text[], $23::jsonb[])";

/// Token rows and audit events in one statement of fixed text.
static INSERT_ALL: LazyLock<String> =
    LazyLock::new(|| format!("WITH t AS ({INSERT_TOKENS}) {INSERT_EVENTS}"));

/// Inserts `rows` and records `events` in one statement (nothing when both are empty).
async fn insert_all<'a>(
    c: &mut sqlx::PgConnection,
    rows: &[&'a TokenRecord],
    events: &[&'a AuditEvent],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() && events.is_empty() {
        return Ok(());
    }
    let q = bind_rows(sqlx::query(&INSERT_ALL), rows);
    bind_events(q, events).execute(c).await?;
    Ok(())
}

/// Binds token rows as the sixteen arrays [`INSERT_TOKENS`] unnests, in its order.
pub(crate) fn bind_rows<'q>(q: PgQuery<'q>, t: &[&'q TokenRecord]) -> PgQuery<'q> {
    q.bind(t.iter().map(|t| t.id.0).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.hash.0.to_vec()).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>())
        .bind(
            t.iter()
                .map(|t| t.client_id.as_ref().map(ClientId::as_str))
                .collect::<Vec<_>>(),
        )
        .bind(t.iter().map(|t| t.user_id.0).collect::<Vec<_>>())
        .bind(t.iter().map(|t| scope_to(t.scope)).collect::<Vec<_>>())
        .bind(
            t.iter()
                .map(|t| t.family_id.map(|f| f.0))
                .collect::<Vec<_>>(),
        )
        .bind(t.iter().map(|t| t.name.as_deref()).collect::<Vec<_>>())
        .bind(
            t.iter()
                .map(|t| t.buzz_limit.as_ref().map(Json))
                .collect::<Vec<_>>(),
        )
        .bind(t.iter().map(|t| t.issued_at).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.expires_at).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.revoked_at).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.rotated_at).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.auth_time).collect::<Vec<_>>())
        .bind(
            t.iter()
                .map(|t| i16::from(t.oidc.bits()))
                .collect::<Vec<_>>(),
        )
        .bind(t.iter().map(|t| Json(&t.audience)).collect::<Vec<_>>())
}

/// A statement being bound.
pub(crate) type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Binds `events` as the seven arrays the audit part of a batch statement unnests, in
/// order: `kind text[], at timestamptz[], user_id bigint[], client_id text[], scope
/// bigint[], ip text[], metadata jsonb[]`.
pub(crate) fn bind_events<'q>(q: PgQuery<'q>, events: &[&'q AuditEvent]) -> PgQuery<'q> {
    q.bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.at).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.user_id.map(|u| u.0))
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.client_id.as_ref().map(ClientId::as_str))
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.scope.map(scope_to))
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.ip.as_deref()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| Json(&e.metadata)).collect::<Vec<_>>())
}
