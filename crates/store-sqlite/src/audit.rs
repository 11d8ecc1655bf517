//! `AuditLog`: rows without foreign keys, newest first.

use async_trait::async_trait;
use buzzgate_domain::audit::{AuditEvent, AuditKind, AuditQuery};
use buzzgate_domain::ports::{AuditLog, StoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::appends::Append;
use crate::convert::{Cols, Fetch, corrupt, to_json, us};
use crate::{SqliteStore, map_err};

fn event_of(row: &SqliteRow) -> StoreResult<AuditEvent> {
    let c = Cols(row);
    let kind = c.string("kind")?;
    Ok(AuditEvent {
        kind: AuditKind::parse(&kind).ok_or_else(|| corrupt(format!("audit kind {kind}")))?,
        at: c.time("at")?,
        user_id: c.opt_user("user_id")?,
        client_id: c.opt_client("client_id")?,
        scope: c.opt_scope("scope")?,
        ip: c.opt_string("ip")?,
        metadata: c.json("metadata")?,
    })
}

/// Writes one audit event on `conn` (inside the caller's transaction).
pub(crate) async fn insert_event(
    conn: &mut SqliteConnection,
    event: &AuditEvent,
) -> StoreResult<()> {
    insert_events(conn, &[event]).await
}

/// Most events in one multi-row INSERT: 7 variables each, far under SQLite's limit.
const EVENTS_PER_INSERT: usize = 1000;

/// Records `events` with one multi-row INSERT per [`EVENTS_PER_INSERT`] (as
/// `tokens::insert_rows` does for tokens).
pub(crate) async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[&AuditEvent],
) -> StoreResult<()> {
    for chunk in events.chunks(EVENTS_PER_INSERT) {
        let mut metadata = Vec::with_capacity(chunk.len());
        for e in chunk {
            metadata.push(to_json(&e.metadata)?);
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_log (kind, at, user_id, client_id, scope, ip, metadata) ",
        );
        q.push_values(chunk.iter().zip(metadata), |mut b, (e, metadata)| {
            b.push_bind(e.kind.as_str())
                .push_bind(us(e.at))
                .push_bind(e.user_id.map(|u| u.0))
                .push_bind(e.client_id.as_ref().map(|c| c.as_str().to_owned()))
                .push_bind(e.scope.map(i64::from))
                .push_bind(e.ip.clone())
                .push_bind(metadata);
        });
        q.build()
            .persistent(chunk.len() == 1)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, event: &AuditEvent) -> StoreResult<()> {
        // Group-committed with the other appends (crate::appends).
        self.append(Append::Audit(event.clone())).await.map(|_| ())
    }

    async fn query(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let mut q = QueryBuilder::<sqlx::Sqlite>::new("SELECT * FROM audit_log WHERE 1 = 1");
        if let Some(kind) = query.kind {
            q.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(user) = query.user_id {
            q.push(" AND user_id = ").push_bind(user.0);
        }
        if let Some(client) = &query.client_id {
            q.push(" AND client_id = ")
                .push_bind(client.as_str().to_owned());
        }
        if let Some(since) = query.since {
            q.push(" AND at >= ").push_bind(us(since));
        }
        if let Some(until) = query.until {
            q.push(" AND at < ").push_bind(us(until));
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::try_from(query.effective_limit()).unwrap_or(i64::MAX))
            .push(" OFFSET ")
            .push_bind(query.offset_i64());
        q.build().all(&self.pool, event_of).await
    }
}
