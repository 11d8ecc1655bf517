//! Group commit of the writes that only add rows (issue 10, docs/benchmarks.md): token
//! inserts (with their family checks) and audit events from requests that arrive together
//! share one `BEGIN IMMEDIATE` transaction and one commit, so one fsync instead of one each;
//! each request still waits for that commit before it answers ([`buzzgate_local::batch`]).
//! SQLite has one writer at a time: batching also ends the queue of transactions waiting on
//! its lock.

use std::collections::BTreeSet;

use async_trait::async_trait;
use buzzgate_domain::audit::AuditEvent;
use buzzgate_domain::ids::FamilyId;
use buzzgate_domain::ports::{InsertOutcome, OutcomeEvents, StoreResult};
use buzzgate_domain::token::TokenRecord;
use buzzgate_local::batch::BatchWrite;

use crate::audit::insert_events;
use crate::tokens::{insert_rows, revoked_among};
use crate::{SqliteStore, finish};

/// One write that only adds rows.
pub(crate) enum Append {
    /// `TokenStore::insert` (and `insert_audited`, with the event of each outcome): written
    /// unless one of their families is revoked.
    Tokens(Vec<TokenRecord>, Option<OutcomeEvents>),
    /// `AuditLog::record`.
    Audit(AuditEvent),
}

/// The batch writer: a handle on the same database whose own group-commit slot stays empty
/// (so the batching task ends with the last store).
pub(crate) struct Appender {
    pub(crate) store: SqliteStore,
}

#[async_trait]
impl BatchWrite<Append, InsertOutcome> for Appender {
    async fn write(&self, items: &[Append]) -> StoreResult<Vec<InsertOutcome>> {
        let mut tx = self.store.begin_write().await?;
        let out = async {
            let families: BTreeSet<FamilyId> = items
                .iter()
                .filter_map(|a| match a {
                    Append::Tokens(t, _) => Some(t.iter().filter_map(|t| t.family_id)),
                    Append::Audit(_) => None,
                })
                .flatten()
                .collect();
            let revoked = revoked_among(&mut tx, &families).await?;
            // Every row and event of the batch in one statement each (in item order).
            let mut rows: Vec<&TokenRecord> = Vec::new();
            let mut events: Vec<&AuditEvent> = Vec::new();
            let mut outcomes = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Append::Tokens(tokens, recorded) => {
                        let outcome = if tokens
                            .iter()
                            .any(|t| t.family_id.is_some_and(|f| revoked.contains(&f)))
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
            insert_rows(&mut tx, &rows).await?;
            insert_events(&mut tx, &events).await?;
            Ok(outcomes)
        }
        .await;
        finish(tx, out).await
    }
}
