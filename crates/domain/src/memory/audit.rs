//! `AuditLog` over the in-memory state: an append-only list of events.

use async_trait::async_trait;

use super::MemoryStore;
use crate::audit::{AuditEvent, AuditQuery};
use crate::ports::{AuditLog, StoreResult};

#[async_trait]
impl AuditLog for MemoryStore {
    async fn record(&self, event: &AuditEvent) -> StoreResult<()> {
        self.lock()?.audit.push(event.clone());
        Ok(())
    }
    async fn query(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let s = self.lock()?;
        Ok(s.audit
            .iter()
            .rev()
            .filter(|e| query.matches(e))
            .skip(query.offset)
            .take(query.effective_limit())
            .cloned()
            .collect())
    }
}
