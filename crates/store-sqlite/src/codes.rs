//! `CodeStore`: authorization codes with the single-use take.

use async_trait::async_trait;
use buzzgate_domain::grant::authorization_code::{AuthorizationCodeRecord, CodeRedemption};
use buzzgate_domain::ids::FamilyId;
use buzzgate_domain::pkce::CodeChallenge;
use buzzgate_domain::ports::{CodeStore, StoreResult};
use buzzgate_domain::token::TokenHash;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use crate::convert::{Cols, blob, corrupt, u32_of, us};
use crate::{SqliteStore, finish, map_err};

fn code_of(row: &SqliteRow) -> StoreResult<AuthorizationCodeRecord> {
    let c = Cols(row);
    Ok(AuthorizationCodeRecord {
        hash: c.hash("hash")?,
        client_id: c.client("client_id")?,
        user_id: c.user("user_id")?,
        redirect_uri: c.string("redirect_uri")?,
        scope: c.scope("scope")?,
        code_challenge: CodeChallenge::parse(&c.string("code_challenge")?)
            .map_err(|_| corrupt("code_challenge"))?,
        nonce: c.opt_string("nonce")?,
        oidc: c.oidc("oidc")?,
        resources: c.opt_json("resources")?.unwrap_or_default(),
        auth_time: c.time("auth_time")?,
        issued_at: c.time("issued_at")?,
        expires_at: c.time("expires_at")?,
        redeemed: c.family("redeemed_family")?,
    })
}

/// Deletes at most `batch` rows of `table` whose `expires_at` is before `before`.
pub(crate) async fn sweep_table(
    store: &SqliteStore,
    table: &str,
    before: OffsetDateTime,
    batch: u32,
) -> StoreResult<u32> {
    if batch == 0 {
        return Ok(0);
    }
    let sql = format!(
        "DELETE FROM {table} WHERE rowid IN \
         (SELECT rowid FROM {table} WHERE expires_at < ? LIMIT ?)"
    );
    let mut tx = store.begin_write().await?;
    let out = sqlx::query(&sql)
        .bind(us(before))
        .bind(i64::from(batch))
        .execute(&mut *tx)
        .await
        .map(|done| u32_of(done.rows_affected()))
        .map_err(map_err);
    finish(tx, out).await
}

#[async_trait]
impl CodeStore for SqliteStore {
    async fn insert(&self, code: &AuthorizationCodeRecord) -> StoreResult<()> {
        let _turn = self.write_turn().await?;
        sqlx::query(
            "INSERT OR REPLACE INTO authorization_codes (hash, client_id, user_id, redirect_uri, \
             scope, code_challenge, nonce, auth_time, issued_at, expires_at, redeemed_family, \
             oidc, resources) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(blob(&code.hash))
        .bind(code.client_id.as_str())
        .bind(code.user_id.0)
        .bind(code.redirect_uri.as_str())
        .bind(i64::from(code.scope))
        .bind(code.code_challenge.as_str())
        .bind(code.nonce.as_deref())
        .bind(us(code.auth_time))
        .bind(us(code.issued_at))
        .bind(us(code.expires_at))
        .bind(code.redeemed.map(|f| f.to_string()))
        .bind(i64::from(code.oidc.bits()))
        .bind(crate::convert::to_json(&code.resources)?)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn redeem(&self, hash: &TokenHash, family: FamilyId) -> StoreResult<CodeRedemption> {
        let mut tx = self.begin_write().await?;
        let out = async {
            let Some(row) = sqlx::query("SELECT * FROM authorization_codes WHERE hash = ?")
                .bind(blob(hash))
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?
            else {
                return Ok(CodeRedemption::NotFound);
            };
            let mut rec = code_of(&row)?;
            if let Some(winner) = rec.redeemed {
                return Ok(CodeRedemption::AlreadyRedeemed {
                    family: Some(winner),
                });
            }
            sqlx::query("UPDATE authorization_codes SET redeemed_family = ? WHERE hash = ?")
                .bind(family.to_string())
                .bind(blob(hash))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            rec.redeemed = Some(family);
            Ok(CodeRedemption::Redeemed(rec))
        }
        .await;
        finish(tx, out).await
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        sweep_table(self, "authorization_codes", before, batch).await
    }
}
