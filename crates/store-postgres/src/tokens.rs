//! Access tokens, refresh tokens with their families (and the families' tombstones), and
//! personal API keys.
//!
//! Family locking: every write into a family (an insert, a rotation) holds a shared
//! transaction-level advisory lock on the family and checks its tombstone under it;
//! `revoke_family` takes the same lock exclusively, writes the tombstone and revokes the
//! rows. So a revocation either sees a concurrent insert's rows (and revokes them) or the
//! insert sees the tombstone (and writes nothing). Locks are always taken family first, then
//! token rows.

use async_trait::async_trait;
use buzzgate_domain::audit::AuditEvent;
use buzzgate_domain::buzz::BuzzLimit;
use buzzgate_domain::grant::refresh_token::{RefreshRotation, RotationDecision};
use buzzgate_domain::ids::{ClientId, FamilyId, TokenId, UserId};
use buzzgate_domain::ports::{InsertOutcome, OutcomeEvents, StoreResult, TokenStore};
use buzzgate_domain::token::{TokenHash, TokenKind, TokenRecord};
use sqlx::PgConnection;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::appends::Append;
use crate::rotations::Rotation;
use crate::{
    Done, PgStore, client_id_from, corrupt, hash_from, map_err, oidc_from, scope_from, transaction,
};

pub(crate) const TOKEN_COLUMNS: &str = "id, hash, kind, client_id, user_id, scope, family_id, \
     name, buzz_limit, issued_at, expires_at, revoked_at, rotated_at, auth_time, oidc, audience";

/// The advisory-lock key of a family, computed by the server.
pub(crate) const FAMILY_KEY: &str = "hashtextextended('buzzgate:family:' || f::text, 0)";

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    id: Uuid,
    hash: Vec<u8>,
    kind: String,
    client_id: Option<String>,
    user_id: i64,
    scope: i64,
    family_id: Option<Uuid>,
    name: Option<String>,
    buzz_limit: Option<Json<BuzzLimit>>,
    issued_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
    rotated_at: Option<OffsetDateTime>,
    auth_time: Option<OffsetDateTime>,
    oidc: i16,
    audience: Vec<String>,
}

impl TokenRow {
    pub(crate) fn into_record(self) -> StoreResult<TokenRecord> {
        Ok(TokenRecord {
            id: TokenId(self.id),
            hash: hash_from(self.hash, "token hash")?,
            kind: TokenKind::parse(&self.kind).ok_or_else(|| corrupt("token kind"))?,
            client_id: self.client_id.as_deref().map(client_id_from).transpose()?,
            user_id: UserId(self.user_id),
            scope: scope_from(self.scope)?,
            family_id: self.family_id.map(FamilyId),
            name: self.name,
            buzz_limit: self.buzz_limit.map(|j| j.0),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            rotated_at: self.rotated_at,
            auth_time: self.auth_time,
            oidc: oidc_from(self.oidc)?,
            audience: self.audience,
        })
    }
}

fn hashes(rows: Vec<Vec<u8>>) -> StoreResult<Vec<TokenHash>> {
    rows.into_iter()
        .map(|h| hash_from(h, "token hash"))
        .collect()
}

/// Takes the advisory locks of `families` (shared or exclusive) in one fixed order.
pub(crate) async fn lock_families(
    c: &mut PgConnection,
    families: &[Uuid],
    exclusive: bool,
) -> Result<(), sqlx::Error> {
    if families.is_empty() {
        return Ok(());
    }
    let func = if exclusive {
        "pg_advisory_xact_lock"
    } else {
        "pg_advisory_xact_lock_shared"
    };
    sqlx::query(&format!(
        "SELECT {func}(k) FROM (SELECT DISTINCT {FAMILY_KEY} AS k \
         FROM unnest($1::uuid[]) AS f ORDER BY 1) AS keys"
    ))
    .bind(families)
    .execute(c)
    .await?;
    Ok(())
}

/// Tombstones and revokes `families` (whose locks the caller holds exclusively); returns the
/// hashes revoked now.
async fn revoke_families_locked(
    c: &mut PgConnection,
    families: &[Uuid],
    now: OffsetDateTime,
) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    if families.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query(
        "INSERT INTO revoked_families (family_id, revoked_at) \
         SELECT f, $2 FROM unnest($1::uuid[]) AS f ON CONFLICT (family_id) DO NOTHING",
    )
    .bind(families)
    .bind(now)
    .execute(&mut *c)
    .await?;
    sqlx::query_scalar(
        "UPDATE tokens SET revoked_at = $2 \
         WHERE family_id = ANY($1::uuid[]) AND revoked_at IS NULL RETURNING hash",
    )
    .bind(families)
    .bind(now)
    .fetch_all(&mut *c)
    .await
}

#[async_trait]
impl TokenStore for PgStore {
    async fn insert(&self, tokens: &[TokenRecord]) -> StoreResult<InsertOutcome> {
        if tokens.is_empty() {
            return Ok(InsertOutcome::Inserted);
        }
        // Shares a transaction and a commit with the inserts and audit events that arrive
        // with it, under the same family locks and tombstone check (crate::appends).
        self.append(Append::Tokens(tokens.to_vec(), None)).await
    }

    async fn insert_audited(
        &self,
        tokens: &[TokenRecord],
        events: &OutcomeEvents,
    ) -> StoreResult<(InsertOutcome, bool)> {
        // The event rides in the same group-commit item: one commit for both.
        let outcome = self
            .append(Append::Tokens(tokens.to_vec(), Some(events.clone())))
            .await?;
        Ok((outcome, true))
    }

    async fn find(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        sqlx::query_as::<_, TokenRow>(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"
        ))
        .bind(&hash.0[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(TokenRow::into_record)
        .transpose()
    }

    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        rotation: &RefreshRotation,
    ) -> StoreResult<RotationDecision> {
        // Group-committed with the rotations of other families (crate::rotations).
        let (decision, _) = self
            .rotate(Rotation {
                presented: *presented,
                rotation: rotation.clone(),
                refreshed: None,
            })
            .await?;
        Ok(decision)
    }

    async fn rotate_refresh_audited(
        &self,
        presented: &TokenHash,
        rotation: &RefreshRotation,
        refreshed: &AuditEvent,
    ) -> StoreResult<(RotationDecision, bool)> {
        self.rotate(Rotation {
            presented: *presented,
            rotation: rotation.clone(),
            refreshed: Some(refreshed.clone()),
        })
        .await
    }

    async fn revoke(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<TokenRecord>> {
        sqlx::query_as::<_, TokenRow>(&format!(
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE hash = $1 \
             RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(&hash.0[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(TokenRow::into_record)
        .transpose()
    }

    async fn revoke_family(
        &self,
        family: FamilyId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>> {
        let families = [family.0];
        let revoked = transaction!(self, |c| {
            lock_families(&mut *c, &families, true).await?;
            let revoked = revoke_families_locked(&mut *c, &families, now).await?;
            Ok(Done::Commit(revoked))
        })?;
        hashes(revoked)
    }

    async fn revoke_for_user_client(
        &self,
        user: UserId,
        client: &ClientId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>> {
        revoke_user_tokens(self, user, Some(client), now).await
    }

    async fn revoke_for_user(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>> {
        revoke_user_tokens(self, user, None, now).await
    }

    async fn list_api_keys(&self, user: UserId) -> StoreResult<Vec<TokenRecord>> {
        sqlx::query_as::<_, TokenRow>(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens \
             WHERE user_id = $1 AND kind = 'apiKey' AND revoked_at IS NULL \
             ORDER BY issued_at DESC, id"
        ))
        .bind(user.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(TokenRow::into_record)
        .collect()
    }

    async fn revoke_api_key(
        &self,
        user: UserId,
        id: TokenId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<TokenHash>> {
        let hash: Option<Vec<u8>> = sqlx::query_scalar(
            "UPDATE tokens SET revoked_at = $3 \
             WHERE id = $1 AND user_id = $2 AND kind = 'apiKey' AND revoked_at IS NULL \
             RETURNING hash",
        )
        .bind(id.0)
        .bind(user.0)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        hash.map(|h| hash_from(h, "token hash")).transpose()
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        // Expired rows, then revoked ones, then tombstones of families with no row left; the
        // three together never exceed `batch`. Rows locked by a rotation are skipped.
        let mut left = i64::from(batch);
        for sql in [
            "DELETE FROM tokens WHERE hash IN (SELECT hash FROM tokens WHERE expires_at < $1 \
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
            "DELETE FROM tokens WHERE hash IN (SELECT hash FROM tokens WHERE revoked_at < $1 \
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
            // A tombstone outlives its family's last row by the sweep's retention, far longer
            // than any insert into the family can be in flight.
            "DELETE FROM revoked_families WHERE family_id IN (SELECT r.family_id \
             FROM revoked_families r WHERE r.revoked_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM tokens t WHERE t.family_id = r.family_id) \
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
        ] {
            if left == 0 {
                break;
            }
            let done = sqlx::query(sql)
                .bind(before)
                .bind(left)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
            left -= i64::try_from(done.rows_affected())
                .unwrap_or(left)
                .min(left);
        }
        Ok(batch - u32::try_from(left).unwrap_or(0))
    }
}

/// Revokes every live token of `user`, or only those issued to `client`: consent withdrawal
/// (`revoke_for_user_client`) and a ban (`revoke_for_user`) are the same walk.
async fn revoke_user_tokens(
    store: &PgStore,
    user: UserId,
    client: Option<&ClientId>,
    now: OffsetDateTime,
) -> StoreResult<Vec<TokenHash>> {
    let client = client.map(ClientId::as_str);
    let revoked = transaction!(store, |c| {
        // The families' locks first, exclusively, as `revoke_family` and client delete take
        // them: a rotation in one of them commits before (and its new head is revoked below,
        // read by a later statement) or starts after and finds the tombstone.
        let families: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT family_id FROM tokens \
             WHERE user_id = $1 AND ($2::text IS NULL OR client_id = $2) \
             AND family_id IS NOT NULL",
        )
        .bind(user.0)
        .bind(client)
        .fetch_all(&mut *c)
        .await?;
        lock_families(&mut *c, &families, true).await?;
        let mut revoked = revoke_families_locked(&mut *c, &families, now).await?;
        // API keys, client-credentials tokens, and the rows of a family that began after the
        // read above and committed before this statement.
        let rest: Vec<Vec<u8>> = sqlx::query_scalar(
            "UPDATE tokens SET revoked_at = $3 \
             WHERE user_id = $1 AND ($2::text IS NULL OR client_id = $2) \
             AND revoked_at IS NULL RETURNING hash",
        )
        .bind(user.0)
        .bind(client)
        .bind(now)
        .fetch_all(&mut *c)
        .await?;
        revoked.extend(rest);
        Ok(Done::Commit(revoked))
    })?;
    hashes(revoked)
}
