//! The audit log: append-only rows without foreign keys, so they outlive apps and users.

use std::collections::BTreeMap;

use async_trait::async_trait;
use buzzgate_domain::audit::{AuditEvent, AuditKind, AuditQuery};
use buzzgate_domain::ids::UserId;
use buzzgate_domain::ports::{AuditLog, StoreResult};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;

use crate::appends::Append;
use crate::{PgStore, client_id_from, corrupt, map_err, scope_from};

#[derive(sqlx::FromRow)]
struct AuditRow {
    kind: String,
    at: OffsetDateTime,
    user_id: Option<i64>,
    client_id: Option<String>,
    scope: Option<i64>,
    ip: Option<String>,
    metadata: Json<BTreeMap<String, String>>,
}

impl AuditRow {
    fn into_event(self) -> StoreResult<AuditEvent> {
        Ok(AuditEvent {
            kind: AuditKind::parse(&self.kind).ok_or_else(|| corrupt("audit kind"))?,
            at: self.at,
            user_id: self.user_id.map(UserId),
            client_id: self.client_id.as_deref().map(client_id_from).transpose()?,
            scope: self.scope.map(scope_from).transpose()?,
            ip: self.ip,
            metadata: self.metadata.0,
        })
    }
}

#[async_trait]
impl AuditLog for PgStore {
    async fn record(&self, e: &AuditEvent) -> StoreResult<()> {
        // Group-committed with the other appends (crate::appends).
        self.append(Append::Audit(e.clone())).await.map(|_| ())
    }

    async fn query(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        // Only the filters given become SQL, so each query can use its index.
        let mut sql = QueryBuilder::<Postgres>::new(
            "SELECT kind, at, user_id, client_id, scope, ip, metadata FROM audit_events WHERE TRUE",
        );
        if let Some(kind) = q.kind {
            sql.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(user) = q.user_id {
            sql.push(" AND user_id = ").push_bind(user.0);
        }
        if let Some(client) = &q.client_id {
            sql.push(" AND client_id = ").push_bind(client.as_str());
        }
        if let Some(since) = q.since {
            sql.push(" AND at >= ").push_bind(since);
        }
        if let Some(until) = q.until {
            sql.push(" AND at < ").push_bind(until);
        }
        sql.push(" ORDER BY at DESC, id DESC LIMIT ")
            .push_bind(i64::try_from(q.effective_limit()).unwrap_or(i64::MAX))
            .push(" OFFSET ")
            .push_bind(q.offset_i64());
        sql.build_query_as::<AuditRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .into_iter()
            .map(AuditRow::into_event)
            .collect()
    }
}
