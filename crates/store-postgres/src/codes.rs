//! Authorization codes: single-use by a conditional UPDATE.

use async_trait::async_trait;
use buzzgate_domain::grant::authorization_code::{AuthorizationCodeRecord, CodeRedemption};
use buzzgate_domain::ids::{FamilyId, UserId};
use buzzgate_domain::pkce::CodeChallenge;
use buzzgate_domain::ports::{CodeStore, StoreResult};
use buzzgate_domain::token::TokenHash;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    PgStore, client_id_from, corrupt, hash_from, map_err, oidc_from, scope_from, scope_to,
};

const CODE_COLUMNS: &str = "hash, client_id, user_id, redirect_uri, scope, code_challenge, \
     nonce, auth_time, issued_at, expires_at, redeemed_family, oidc, resources";

#[derive(sqlx::FromRow)]
struct CodeRow {
    hash: Vec<u8>,
    client_id: String,
    user_id: i64,
    redirect_uri: String,
    scope: i64,
    code_challenge: String,
    nonce: Option<String>,
    auth_time: OffsetDateTime,
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    redeemed_family: Option<Uuid>,
    oidc: i16,
    resources: Vec<String>,
}

impl CodeRow {
    fn into_record(self) -> StoreResult<AuthorizationCodeRecord> {
        Ok(AuthorizationCodeRecord {
            hash: hash_from(self.hash, "code hash")?,
            client_id: client_id_from(&self.client_id)?,
            user_id: UserId(self.user_id),
            redirect_uri: self.redirect_uri,
            scope: scope_from(self.scope)?,
            code_challenge: CodeChallenge::parse(&self.code_challenge)
                .map_err(|_| corrupt("code challenge"))?,
            nonce: self.nonce,
            oidc: oidc_from(self.oidc)?,
            resources: self.resources,
            auth_time: self.auth_time,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            redeemed: self.redeemed_family.map(FamilyId),
        })
    }
}

#[async_trait]
impl CodeStore for PgStore {
    async fn insert(&self, code: &AuthorizationCodeRecord) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO auth_codes ({CODE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&code.hash.0[..])
        .bind(code.client_id.as_str())
        .bind(code.user_id.0)
        .bind(&code.redirect_uri)
        .bind(scope_to(code.scope))
        .bind(code.code_challenge.as_str())
        .bind(code.nonce.as_deref())
        .bind(code.auth_time)
        .bind(code.issued_at)
        .bind(code.expires_at)
        .bind(code.redeemed.map(|f| f.0))
        .bind(i16::from(code.oidc.bits()))
        .bind(&code.resources)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn redeem(&self, hash: &TokenHash, family: FamilyId) -> StoreResult<CodeRedemption> {
        // Concurrent redeemers queue on the row lock; at READ COMMITTED each loser re-checks
        // the WHERE clause against the winner's committed row and updates nothing.
        let won = sqlx::query_as::<_, CodeRow>(&format!(
            "UPDATE auth_codes SET redeemed_family = $2 \
             WHERE hash = $1 AND redeemed_family IS NULL RETURNING {CODE_COLUMNS}"
        ))
        .bind(&hash.0[..])
        .bind(family.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        if let Some(row) = won {
            return Ok(CodeRedemption::Redeemed(row.into_record()?));
        }
        let prior: Option<Option<Uuid>> =
            sqlx::query_scalar("SELECT redeemed_family FROM auth_codes WHERE hash = $1")
                .bind(&hash.0[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(match prior {
            None => CodeRedemption::NotFound,
            Some(family) => CodeRedemption::AlreadyRedeemed {
                family: family.map(FamilyId),
            },
        })
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        let done = sqlx::query(
            "DELETE FROM auth_codes WHERE hash IN (SELECT hash FROM auth_codes \
             WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(batch))
    }
}
