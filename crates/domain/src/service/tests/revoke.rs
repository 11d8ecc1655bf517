//! Revocation: families, who may revoke what, and caches never serving a revoked token.

use std::sync::Arc;

use crate::audit::AuditKind;
use crate::error::Error;
use crate::ids::{ClientId, UserId};
use crate::memory::MemoryStore;
use crate::ports::SeededRandom;
use crate::service::{Buzzgate, Config};

use super::{client_creds, harness, rt};

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family_and_unknown_tokens_are_ok() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let caller = client_creds(h.auth());
    h.revoke(&caller, Some(&rt(&t))).await.unwrap();
    assert!(!h.active(t.access_token.expose()).await);
    assert!(h.revoke(&caller, Some("civitai_nope")).await.is_ok());
    assert_eq!(
        h.revoke(&caller, None).await.unwrap_err(),
        Error::invalid_request("Missing token parameter")
    );
    assert!(h.audit_kinds().contains(&AuditKind::TokenRevoked));
}

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_token_but_the_user_can() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let other = client_creds(h.spa_auth());
    h.revoke(&other, Some(t.access_token.expose()))
        .await
        .unwrap();
    assert!(h.active(t.access_token.expose()).await);
    h.revoke(&h.session_creds().await, Some(t.access_token.expose()))
        .await
        .unwrap();
    assert!(!h.active(t.access_token.expose()).await);
}

#[tokio::test]
async fn revocation_reaches_a_cached_token() {
    let h = harness().await;
    let t = h.tokens("1").await;
    h.validate(t.access_token.expose()).await.unwrap(); // now cached
    h.revoke(&h.session_creds().await, Some(t.access_token.expose()))
        .await
        .unwrap();
    assert!(!h.active(t.access_token.expose()).await);
}

/// A token store whose `find` lets a revocation land after it read the row: exactly the
/// interleaving where a validation would otherwise cache a revoked token back.
struct RevokedMeanwhile {
    inner: MemoryStore,
    gate: std::sync::OnceLock<Buzzgate>,
}

#[async_trait::async_trait]
impl crate::ports::TokenStore for RevokedMeanwhile {
    async fn insert(
        &self,
        t: &[crate::token::TokenRecord],
    ) -> crate::ports::StoreResult<crate::ports::InsertOutcome> {
        self.inner.insert(t).await
    }
    async fn find(
        &self,
        hash: &crate::token::TokenHash,
    ) -> crate::ports::StoreResult<Option<crate::token::TokenRecord>> {
        let row = self.inner.find(hash).await?;
        if let (Some(r), Some(gate)) = (&row, self.gate.get())
            && r.revoked_at.is_none()
        {
            self.inner.revoke(hash, gate.deps.now()).await?;
            gate.deps.invalidate(&[*hash]).await.unwrap();
        }
        Ok(row)
    }
    async fn rotate_refresh(
        &self,
        p: &crate::token::TokenHash,
        r: &crate::grant::refresh_token::RefreshRotation,
    ) -> crate::ports::StoreResult<crate::grant::refresh_token::RotationDecision> {
        self.inner.rotate_refresh(p, r).await
    }
    async fn revoke(
        &self,
        h: &crate::token::TokenHash,
        now: time::OffsetDateTime,
    ) -> crate::ports::StoreResult<Option<crate::token::TokenRecord>> {
        self.inner.revoke(h, now).await
    }
    async fn revoke_family(
        &self,
        f: crate::ids::FamilyId,
        now: time::OffsetDateTime,
    ) -> crate::ports::StoreResult<Vec<crate::token::TokenHash>> {
        self.inner.revoke_family(f, now).await
    }
    async fn revoke_for_user_client(
        &self,
        u: UserId,
        c: &ClientId,
        now: time::OffsetDateTime,
    ) -> crate::ports::StoreResult<Vec<crate::token::TokenHash>> {
        self.inner.revoke_for_user_client(u, c, now).await
    }
    async fn revoke_for_user(
        &self,
        u: UserId,
        now: time::OffsetDateTime,
    ) -> crate::ports::StoreResult<Vec<crate::token::TokenHash>> {
        self.inner.revoke_for_user(u, now).await
    }
    async fn list_api_keys(
        &self,
        u: UserId,
    ) -> crate::ports::StoreResult<Vec<crate::token::TokenRecord>> {
        self.inner.list_api_keys(u).await
    }
    async fn revoke_api_key(
        &self,
        u: UserId,
        id: crate::ids::TokenId,
        now: time::OffsetDateTime,
    ) -> crate::ports::StoreResult<Option<crate::token::TokenHash>> {
        self.inner.revoke_api_key(u, id, now).await
    }
    async fn sweep_expired(
        &self,
        before: time::OffsetDateTime,
        batch: u32,
    ) -> crate::ports::StoreResult<u32> {
        self.inner.sweep_expired(before, batch).await
    }
}

#[tokio::test]
async fn a_revoke_between_a_validations_read_and_its_cache_put_is_never_cached_back() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let racing = Arc::new(RevokedMeanwhile {
        inner: h.store.clone(),
        gate: std::sync::OnceLock::new(),
    });
    let gate = Buzzgate::new({
        let mut d = h
            .store
            .deps(Arc::new(SeededRandom::new(12)), Config::default());
        d.tokens = racing.clone();
        d
    });
    racing.gate.set(gate.clone()).ok();
    // This validation read the row while it was live; the revocation landed right after.
    let _ = gate.tokens().validate_bearer(t.access_token.expose()).await;
    assert!(
        !h.active(t.access_token.expose()).await,
        "the late cache put was refused: the revoked token is not served from the cache"
    );
}

#[tokio::test]
async fn an_operator_revokes_any_token_with_its_family_and_is_told_about_unknown_ones() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let op = crate::service::Caller::operator();
    let done = h.gate.tokens().revoke_as_admin(&op, &rt(&t)).await.unwrap();
    assert_eq!(done.kind, crate::token::TokenKind::Refresh);
    assert_eq!(done.user_id, h.user);
    assert_eq!(done.client_id.as_ref(), Some(&h.app));
    assert!(done.count >= 2, "{done:?}");
    assert!(!h.active(t.access_token.expose()).await);
    // Again: known, nothing left to revoke.
    let again = h.gate.tokens().revoke_as_admin(&op, &rt(&t)).await.unwrap();
    assert_eq!(again.count, 0);
    let unknown = h.gate.tokens().revoke_as_admin(&op, "civitai_nope").await;
    assert_eq!(unknown.unwrap_err().code(), "not_found");
    // Only operators and admins.
    let err = h
        .gate
        .tokens()
        .revoke_as_admin(&crate::service::Caller::Anonymous, &rt(&t))
        .await;
    assert!(err.is_err());
}
