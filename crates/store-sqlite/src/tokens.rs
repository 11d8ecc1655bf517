//! `TokenStore`: access and refresh tokens, family tombstones, rotation and API keys.

use std::collections::BTreeSet;

use async_trait::async_trait;
use buzzgate_domain::audit::AuditEvent;
use buzzgate_domain::grant::refresh_token::{RefreshRotation, RotationDecision};
use buzzgate_domain::ids::{ClientId, FamilyId, TokenId, UserId};
use buzzgate_domain::ports::{InsertOutcome, OutcomeEvents, StoreResult, TokenStore};
use buzzgate_domain::token::{TokenHash, TokenKind, TokenRecord};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use time::OffsetDateTime;

use crate::appends::Append;
use crate::convert::{Cols, Fetch, blob, corrupt, opt_us, to_json, u32_of, us};
use crate::{SqliteStore, finish, map_err};

pub(crate) fn token_of(row: &SqliteRow) -> StoreResult<TokenRecord> {
    let c = Cols(row);
    let kind = c.string("kind")?;
    Ok(TokenRecord {
        id: c.token_id("id")?,
        hash: c.hash("hash")?,
        kind: TokenKind::parse(&kind).ok_or_else(|| corrupt(format!("token kind {kind}")))?,
        client_id: c.opt_client("client_id")?,
        user_id: c.user("user_id")?,
        scope: c.scope("scope")?,
        family_id: c.family("family_id")?,
        name: c.opt_string("name")?,
        buzz_limit: c.opt_json("buzz_limit")?,
        issued_at: c.time("issued_at")?,
        expires_at: c.opt_time("expires_at")?,
        revoked_at: c.opt_time("revoked_at")?,
        rotated_at: c.opt_time("rotated_at")?,
        auth_time: c.opt_time("auth_time")?,
        oidc: c.oidc("oidc")?,
        audience: c.opt_json("audience")?.unwrap_or_default(),
    })
}

fn hashes_of(rows: &[SqliteRow]) -> StoreResult<Vec<TokenHash>> {
    rows.iter().map(|r| Cols(r).hash("hash")).collect()
}

pub(crate) async fn insert_row(conn: &mut SqliteConnection, t: &TokenRecord) -> StoreResult<()> {
    insert_rows(conn, &[t]).await
}

/// Most rows in one multi-row INSERT: 16 variables each, far under SQLite's limit of 32,766.
const ROWS_PER_INSERT: usize = 500;

/// Inserts `tokens` with one multi-row INSERT per [`ROWS_PER_INSERT`]: a group-committed
/// batch is one statement (one call into the connection's worker thread) instead of one per
/// row (docs/benchmarks.md, "What each change bought").
pub(crate) async fn insert_rows(
    conn: &mut SqliteConnection,
    tokens: &[&TokenRecord],
) -> StoreResult<()> {
    for chunk in tokens.chunks(ROWS_PER_INSERT) {
        let mut json = Vec::with_capacity(chunk.len());
        for t in chunk {
            json.push((
                t.buzz_limit.as_ref().map(to_json).transpose()?,
                to_json(&t.audience)?,
            ));
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO tokens (hash, id, kind, client_id, user_id, scope, family_id, name, \
             buzz_limit, issued_at, expires_at, revoked_at, rotated_at, auth_time, oidc, \
             audience) ",
        );
        q.push_values(chunk.iter().zip(json), |mut b, (t, (limit, audience))| {
            b.push_bind(blob(&t.hash))
                .push_bind(t.id.to_string())
                .push_bind(t.kind.as_str())
                .push_bind(t.client_id.as_ref().map(|c| c.as_str().to_owned()))
                .push_bind(t.user_id.0)
                .push_bind(i64::from(t.scope))
                .push_bind(t.family_id.map(|f| f.to_string()))
                .push_bind(t.name.clone())
                .push_bind(limit)
                .push_bind(us(t.issued_at))
                .push_bind(opt_us(t.expires_at))
                .push_bind(opt_us(t.revoked_at))
                .push_bind(opt_us(t.rotated_at))
                .push_bind(opt_us(t.auth_time))
                .push_bind(i64::from(t.oidc.bits()))
                .push_bind(audience);
        });
        // A batch's text differs with its size: only the one-row form is kept prepared.
        q.build()
            .persistent(chunk.len() == 1)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

pub(crate) async fn family_revoked(
    conn: &mut SqliteConnection,
    family: FamilyId,
) -> StoreResult<bool> {
    let row = sqlx::query("SELECT 1 FROM revoked_families WHERE family_id = ?")
        .bind(family.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(row.is_some())
}

/// Which of `families` are revoked, in one statement (a group-committed batch may carry many).
pub(crate) async fn revoked_among(
    conn: &mut SqliteConnection,
    families: &BTreeSet<FamilyId>,
) -> StoreResult<BTreeSet<FamilyId>> {
    let mut revoked = BTreeSet::new();
    let ids: Vec<String> = families.iter().map(|f| f.to_string()).collect();
    // 1,000 ids per statement, far under SQLite's limit on variables.
    for chunk in ids.chunks(1000) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT family_id FROM revoked_families WHERE family_id IN (",
        );
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(id.as_str());
        }
        q.push(")");
        for row in q
            .build()
            .persistent(chunk.len() == 1)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
        {
            if let Some(f) = Cols(&row).family("family_id")? {
                revoked.insert(f);
            }
        }
    }
    Ok(revoked)
}

/// Leaves the tombstone and revokes the family's live rows; returns their hashes.
async fn revoke_family_in(
    conn: &mut SqliteConnection,
    family: FamilyId,
    now: OffsetDateTime,
) -> StoreResult<Vec<TokenHash>> {
    sqlx::query("INSERT OR IGNORE INTO revoked_families (family_id, revoked_at) VALUES (?, ?)")
        .bind(family.to_string())
        .bind(us(now))
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let rows = sqlx::query(
        "UPDATE tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL \
         RETURNING hash",
    )
    .bind(us(now))
    .bind(family.to_string())
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    hashes_of(&rows)
}

/// Revokes every live token of `user`, or only those issued to `client`: consent withdrawal
/// (`revoke_for_user_client`) and a ban (`revoke_for_user`) are the same walk. Under the write
/// lock (BEGIN IMMEDIATE), so no rotation or insert interleaves: the families get their
/// tombstones, then every matching live row is revoked (a family's rows all belong to its
/// first token's user and app, rotations included).
async fn revoke_user_tokens(
    store: &SqliteStore,
    user: UserId,
    client: Option<&ClientId>,
    now: OffsetDateTime,
) -> StoreResult<Vec<TokenHash>> {
    let client = client.map(ClientId::as_str);
    let mut tx = store.begin_write().await?;
    let out = async {
        sqlx::query(
            "INSERT OR IGNORE INTO revoked_families (family_id, revoked_at) \
             SELECT DISTINCT family_id, ? FROM tokens \
             WHERE user_id = ? AND (?3 IS NULL OR client_id = ?3) AND family_id IS NOT NULL",
        )
        .bind(us(now))
        .bind(user.0)
        .bind(client)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let rows = sqlx::query(
            "UPDATE tokens SET revoked_at = ? \
             WHERE user_id = ? AND (?3 IS NULL OR client_id = ?3) AND revoked_at IS NULL \
             RETURNING hash",
        )
        .bind(us(now))
        .bind(user.0)
        .bind(client)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        hashes_of(&rows)
    }
    .await;
    finish(tx, out).await
}

async fn rotate_in(
    conn: &mut SqliteConnection,
    presented: &TokenHash,
    rotation: &RefreshRotation,
) -> StoreResult<RotationDecision> {
    let row = sqlx::query("SELECT * FROM tokens WHERE hash = ?")
        .bind(blob(presented))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(token_of)
        .transpose()?;
    let revoked = match row.as_ref().and_then(|r| r.family_id) {
        Some(f) => family_revoked(conn, f).await?,
        None => false,
    };
    let mut decision = rotation.decide(row.as_ref(), revoked);
    if let RotationDecision::Rotate {
        mark_rotated,
        access,
        refresh,
        superseded,
    } = &mut decision
    {
        if *mark_rotated {
            sqlx::query("UPDATE tokens SET rotated_at = ? WHERE hash = ? AND rotated_at IS NULL")
                .bind(us(rotation.now))
                .bind(blob(presented))
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
        if let Some(family) = refresh.family_id {
            // One live head per family: earlier retries' successors are retired.
            let rows = sqlx::query(
                "UPDATE tokens SET revoked_at = ? WHERE family_id = ? AND kind = 'refresh' \
                 AND hash <> ? AND rotated_at IS NULL AND revoked_at IS NULL RETURNING hash",
            )
            .bind(us(rotation.now))
            .bind(family.to_string())
            .bind(blob(presented))
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
            *superseded = hashes_of(&rows)?;
        }
        insert_row(conn, access).await?;
        insert_row(conn, refresh).await?;
    }
    Ok(decision)
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert(&self, tokens: &[TokenRecord]) -> StoreResult<InsertOutcome> {
        if tokens.is_empty() {
            return Ok(InsertOutcome::Inserted);
        }
        // Shares a transaction and a commit with the inserts and audit events that arrive
        // with it, under the same tombstone check (crate::appends).
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
        sqlx::query("SELECT * FROM tokens WHERE hash = ?")
            .bind(blob(hash))
            .optional(&self.pool, token_of)
            .await
    }

    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        rotation: &RefreshRotation,
    ) -> StoreResult<RotationDecision> {
        let mut tx = self.begin_write().await?;
        let out = rotate_in(&mut tx, presented, rotation).await;
        finish(tx, out).await
    }

    async fn rotate_refresh_audited(
        &self,
        presented: &TokenHash,
        rotation: &RefreshRotation,
        refreshed: &AuditEvent,
    ) -> StoreResult<(RotationDecision, bool)> {
        // The rotation's event in its own transaction: one commit for both.
        let mut tx = self.begin_write().await?;
        let out = async {
            let decision = rotate_in(&mut tx, presented, rotation).await?;
            let event = decision.audited(refreshed);
            if let Some(e) = &event {
                crate::audit::insert_event(&mut tx, e).await?;
            }
            Ok((decision, event.is_some()))
        }
        .await;
        finish(tx, out).await
    }

    async fn revoke(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<TokenRecord>> {
        let _turn = self.write_turn().await?;
        sqlx::query(
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE hash = ? RETURNING *",
        )
        .bind(us(now))
        .bind(blob(hash))
        .optional(&self.pool, token_of)
        .await
    }

    async fn revoke_family(
        &self,
        family: FamilyId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TokenHash>> {
        let mut tx = self.begin_write().await?;
        let out = revoke_family_in(&mut tx, family, now).await;
        finish(tx, out).await
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
        sqlx::query(
            "SELECT * FROM tokens WHERE kind = 'apiKey' AND user_id = ? AND revoked_at IS NULL \
             ORDER BY issued_at DESC, id ASC",
        )
        .bind(user.0)
        .all(&self.pool, token_of)
        .await
    }

    async fn revoke_api_key(
        &self,
        user: UserId,
        id: TokenId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<TokenHash>> {
        let _turn = self.write_turn().await?;
        let row = sqlx::query(
            "UPDATE tokens SET revoked_at = ? WHERE rowid = (SELECT rowid FROM tokens \
             WHERE id = ? AND user_id = ? AND kind = 'apiKey' AND revoked_at IS NULL LIMIT 1) \
             RETURNING hash",
        )
        .bind(us(now))
        .bind(id.to_string())
        .bind(user.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|r| Cols(&r).hash("hash")).transpose()
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        if batch == 0 {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let out = async {
            let tokens = sqlx::query(
                "DELETE FROM tokens WHERE rowid IN (SELECT rowid FROM tokens \
                 WHERE expires_at < ?1 OR revoked_at < ?1 LIMIT ?2)",
            )
            .bind(us(before))
            .bind(i64::from(batch))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
            let left = u64::from(batch).saturating_sub(tokens);
            // Tombstones only matter while a concurrent insert into their family can still
            // arrive; they go with the revoked rows, in the same bounded batch.
            let tombstones = if left > 0 {
                sqlx::query(
                    "DELETE FROM revoked_families WHERE rowid IN (SELECT rowid \
                     FROM revoked_families WHERE revoked_at < ? LIMIT ?)",
                )
                .bind(us(before))
                .bind(i64::try_from(left).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected()
            } else {
                0
            };
            Ok(u32_of(tokens + tombstones))
        }
        .await;
        finish(tx, out).await
    }
}
