//! Group commit of the writes that only add rows (issue 10, docs/benchmarks.md): token
//! inserts (with their family checks) and audit events from requests that arrive together
//! share one transaction, one multi-row `INSERT` per table and one commit; each request still
//! waits for that commit before it answers ([`buzzgate_local::batch`]).

use std::collections::HashSet;

use async_trait::async_trait;
use buzzgate_domain::audit::AuditEvent;
use buzzgate_domain::ports::{InsertOutcome, OutcomeEvents, StoreResult};
use buzzgate_domain::token::TokenRecord;
use buzzgate_local::batch::BatchWrite;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::tokens::{families_of, insert_rows, lock_families};
use crate::{Done, Tx, map_err, scope_to, transaction};

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

impl Appender {
    async fn begin(&self) -> StoreResult<Tx> {
        Tx::begin(&self.pool).await.map_err(map_err)
    }
}

#[async_trait]
impl BatchWrite<Append, InsertOutcome> for Appender {
    async fn write(&self, items: &[Append]) -> StoreResult<Vec<InsertOutcome>> {
        let all_tokens: Vec<TokenRecord> = items
            .iter()
            .filter_map(|a| match a {
                Append::Tokens(t, _) => Some(t.iter().cloned()),
                Append::Audit(_) => None,
            })
            .flatten()
            .collect();
        let families = families_of(&all_tokens);
        transaction!(self, |c| {
            // Shared locks on every family, in one order; a revocation holds them exclusively.
            lock_families(&mut *c, &families, false).await?;
            let revoked: HashSet<Uuid> = if families.is_empty() {
                HashSet::new()
            } else {
                sqlx::query_scalar::<_, Uuid>(
                    "SELECT family_id FROM revoked_families WHERE family_id = ANY($1::uuid[])",
                )
                .bind(&families)
                .fetch_all(&mut *c)
                .await?
                .into_iter()
                .collect()
            };
            let mut rows: Vec<TokenRecord> = Vec::new();
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
                            rows.extend(tokens.iter().cloned());
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
            if !rows.is_empty() {
                insert_rows(&mut *c, &rows).await?;
            }
            insert_events(&mut *c, &events).await?;
            Ok(Done::Commit(outcomes.clone()))
        })
    }
}

/// Writes `events` in one multi-row statement (nothing when there are none), inside the
/// caller's transaction.
pub(crate) async fn insert_events(
    c: &mut sqlx::PgConnection,
    events: &[&AuditEvent],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<Postgres>::new(
        "INSERT INTO audit_events (kind, at, user_id, client_id, scope, ip, metadata) ",
    );
    q.push_values(events, |mut b, e| {
        b.push_bind(e.kind.as_str())
            .push_bind(e.at)
            .push_bind(e.user_id.map(|u| u.0))
            .push_bind(e.client_id.as_ref().map(|c| c.as_str().to_owned()))
            .push_bind(e.scope.map(scope_to))
            .push_bind(e.ip.clone())
            .push_bind(Json(e.metadata.clone()));
    });
    q.build().execute(c).await?;
    Ok(())
}
