//! Registered apps and the consents users gave them.

use std::sync::Arc;

use async_trait::async_trait;
use buzzgate_domain::buzz::BuzzLimit;
use buzzgate_domain::client::{
    AccessMode, Client, ClientKind, GrantType, Origin, RedirectUri, SecretHash,
};
use buzzgate_domain::consent::Consent;
use buzzgate_domain::ids::{ClientId, UserId};
use buzzgate_domain::ports::{ClientStore, ClientSummary, Conditional, ConsentStore, StoreResult};
use buzzgate_domain::token::TokenHash;
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::{
    Done, PgStore, client_id_from, corrupt, db_code, hash_from, i64_of, map_err, revision_from,
    scope_from, scope_to, transaction,
};

const CLIENT_COLUMNS: &str = "id, owner_id, name, description, redirect_uris, allowed_origins, \
     kind, secret_hash, grants, allowed_scopes, access_mode, is_verified, is_resource_server, \
     created_at, updated_at, owner_buzz_limit, registration_token_hash, revision";

#[derive(sqlx::FromRow)]
pub(crate) struct ClientRow {
    id: String,
    owner_id: i64,
    name: String,
    description: String,
    redirect_uris: Vec<String>,
    allowed_origins: Vec<String>,
    kind: String,
    secret_hash: Option<String>,
    grants: Vec<String>,
    allowed_scopes: i64,
    access_mode: String,
    is_verified: bool,
    is_resource_server: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    owner_buzz_limit: Json<BuzzLimit>,
    registration_token_hash: Option<String>,
    revision: i64,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    #[sqlx(flatten)]
    client: ClientRow,
    active_tokens: i64,
    consents: i64,
}

fn kind_str(k: ClientKind) -> &'static str {
    match k {
        ClientKind::Confidential => "confidential",
        ClientKind::Public => "public",
    }
}

impl ClientRow {
    fn into_client(self) -> StoreResult<Client> {
        Ok(Client {
            id: client_id_from(&self.id)?,
            owner: UserId(self.owner_id),
            name: self.name,
            description: self.description,
            redirect_uris: self
                .redirect_uris
                .iter()
                .map(|u| RedirectUri::parse(u).map_err(|_| corrupt("redirect uri")))
                .collect::<StoreResult<_>>()?,
            allowed_origins: self
                .allowed_origins
                .iter()
                .map(|o| Origin::parse(o).map_err(|_| corrupt("origin")))
                .collect::<StoreResult<_>>()?,
            kind: match self.kind.as_str() {
                "confidential" => ClientKind::Confidential,
                "public" => ClientKind::Public,
                _ => return Err(corrupt("client kind")),
            },
            secret_hash: self
                .secret_hash
                .map(|h| SecretHash::from_hex(&h).ok_or_else(|| corrupt("secret hash")))
                .transpose()?,
            grants: self
                .grants
                .iter()
                .map(|g| GrantType::parse(g).ok_or_else(|| corrupt("grant type")))
                .collect::<StoreResult<_>>()?,
            allowed_scopes: scope_from(self.allowed_scopes)?,
            access_mode: AccessMode::parse(&self.access_mode)
                .ok_or_else(|| corrupt("access mode"))?,
            is_verified: self.is_verified,
            is_resource_server: self.is_resource_server,
            owner_buzz_limit: self.owner_buzz_limit.0,
            registration_token: self
                .registration_token_hash
                .map(|h| SecretHash::from_hex(&h).ok_or_else(|| corrupt("registration token hash")))
                .transpose()?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            revision: revision_from(self.revision)?,
        })
    }
}

/// One statement for a compare-and-set `write` (an INSERT or UPDATE whose condition is the
/// revision read): it returns one row when the app `$N` (`app_param`) exists, whose
/// `written` is the new revision, or NULL when the condition failed; read by [`conditional`].
fn compare_and_set(write: &str, app_param: &str) -> String {
    format!(
        "WITH done AS ({write} RETURNING revision) \
         SELECT (SELECT revision FROM done) AS written \
         WHERE EXISTS (SELECT 1 FROM done) OR EXISTS (SELECT 1 FROM clients WHERE id = {app_param})"
    )
}

/// Reads the outcome of a compare-and-set statement whose one row (if the record exists)
/// carries the new revision in `written` (NULL when the revision was stale).
fn conditional(row: Option<sqlx::postgres::PgRow>) -> StoreResult<Conditional> {
    use sqlx::Row;
    Ok(match row {
        None => Conditional::Missing,
        Some(r) => match r.try_get::<Option<i64>, _>("written").map_err(map_err)? {
            Some(_) => Conditional::Written,
            None => Conditional::Stale,
        },
    })
}

fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// Binds every column of `c` as `$1..$16` in the order of the clients table (insert and
/// update share it).
fn bind_client<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    c: &'q Client,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(c.id.as_str())
        .bind(c.owner.0)
        .bind(&c.name)
        .bind(&c.description)
        .bind(strings(&c.redirect_uris))
        .bind(strings(&c.allowed_origins))
        .bind(kind_str(c.kind))
        .bind(c.secret_hash.map(|h| h.to_hex()))
        .bind(c.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>())
        .bind(scope_to(c.allowed_scopes))
        .bind(c.access_mode.as_str())
        .bind(c.is_verified)
        .bind(c.is_resource_server)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(Json(&c.owner_buzz_limit))
        .bind(c.registration_token.map(|h| h.to_hex()))
}

#[async_trait]
impl ClientStore for PgStore {
    async fn insert(&self, c: &Client) -> StoreResult<()> {
        let q = sqlx::query(
            "INSERT INTO clients (id, owner_id, name, description, redirect_uris, allowed_origins, \
             kind, secret_hash, grants, allowed_scopes, access_mode, is_verified, \
             is_resource_server, created_at, updated_at, owner_buzz_limit, registration_token_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        );
        bind_client(q, c)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn get(&self, id: &ClientId) -> StoreResult<Option<Arc<Client>>> {
        let row = sqlx::query_as::<_, ClientRow>(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row.map(ClientRow::into_client).transpose()?.map(Arc::new))
    }

    async fn list_by_owner(&self, owner: UserId) -> StoreResult<Vec<ClientSummary>> {
        let rows = sqlx::query_as::<_, SummaryRow>(&format!(
            "SELECT {CLIENT_COLUMNS}, \
               (SELECT count(*) FROM tokens t WHERE t.client_id = c.id AND t.revoked_at IS NULL \
                  AND (t.expires_at IS NULL OR t.expires_at > $2)) AS active_tokens, \
               (SELECT count(*) FROM consents s WHERE s.client_id = c.id) AS consents \
             FROM clients c WHERE owner_id = $1 \
             ORDER BY created_at DESC, id COLLATE \"C\""
        ))
        .bind(owner.0)
        .bind(self.now())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(ClientSummary {
                    client: r.client.into_client()?,
                    active_tokens: u64::try_from(r.active_tokens).unwrap_or(0),
                    consents: u64::try_from(r.consents).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn search(&self, text: &str, limit: usize) -> StoreResult<Vec<Client>> {
        let rows = sqlx::query_as::<_, ClientRow>(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients c \
             WHERE $1 = '' OR c.id = $1 OR c.name ILIKE '%' || $2 || '%' ESCAPE '\\' \
             ORDER BY created_at DESC, id COLLATE \"C\" LIMIT $3"
        ))
        .bind(text)
        .bind(buzzgate_domain::client::like_escape(text))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(ClientRow::into_client).collect()
    }

    async fn update(&self, c: &Client) -> StoreResult<Conditional> {
        // One statement: the row is updated when its revision is still the one read, and
        // the outer select tells a stale revision from a missing row.
        let sql = compare_and_set(
            "UPDATE clients SET owner_id = $2, name = $3, description = $4, \
             redirect_uris = $5, allowed_origins = $6, kind = $7, secret_hash = $8, \
             grants = $9, allowed_scopes = $10, access_mode = $11, is_verified = $12, \
             is_resource_server = $13, created_at = $14, updated_at = $15, \
             owner_buzz_limit = $16, registration_token_hash = $17, revision = revision + 1 \
             WHERE id = $1 AND revision = $18",
            "$1",
        );
        let outcome = bind_client(sqlx::query(&sql), c)
            .bind(i64_of(c.revision))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        conditional(outcome)
    }

    async fn delete(&self, id: &ClientId) -> StoreResult<Option<Vec<TokenHash>>> {
        transaction!(self, |c| {
            // The families' locks first, as every token write takes them: a refresh rotating
            // in one of them finishes before, or starts after, this delete (never holding a
            // token row this delete waits for while it waits for the client row).
            let families: Vec<uuid::Uuid> = sqlx::query_scalar(
                "SELECT DISTINCT family_id FROM tokens \
                 WHERE client_id = $1 AND family_id IS NOT NULL",
            )
            .bind(id.as_str())
            .fetch_all(&mut *c)
            .await?;
            crate::tokens::lock_families(&mut *c, &families, true).await?;
            // The row lock conflicts with the key-share lock every insert referencing the
            // client takes, so no token can slip in between the two deletes below.
            let found = sqlx::query("SELECT 1 FROM clients WHERE id = $1 FOR UPDATE")
                .bind(id.as_str())
                .fetch_optional(&mut *c)
                .await?;
            if found.is_none() {
                return Ok(Done::Rollback(None));
            }
            let hashes: Vec<Vec<u8>> =
                sqlx::query_scalar("DELETE FROM tokens WHERE client_id = $1 RETURNING hash")
                    .bind(id.as_str())
                    .fetch_all(&mut *c)
                    .await?;
            // Codes, device authorizations and consents go by ON DELETE CASCADE.
            sqlx::query("DELETE FROM clients WHERE id = $1")
                .bind(id.as_str())
                .execute(&mut *c)
                .await?;
            let hashes = hashes
                .into_iter()
                .map(|h| hash_from(h, "token hash"))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Done::Commit(Some(hashes)))
        })
    }

    async fn origin_registered(&self, origin: &Origin) -> StoreResult<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM clients WHERE kind = 'public' \
             AND $1 = ANY (allowed_origins))",
        )
        .bind(origin.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)
    }
}

// ----- consents -------------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct ConsentRow {
    user_id: i64,
    client_id: String,
    scope: i64,
    remembered: bool,
    buzz_limit: Json<BuzzLimit>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    revision: i64,
    resources: Vec<String>,
}

impl ConsentRow {
    fn into_consent(self) -> StoreResult<Consent> {
        Ok(Consent {
            user_id: UserId(self.user_id),
            client_id: client_id_from(&self.client_id)?,
            scope: scope_from(self.scope)?,
            remembered: self.remembered,
            buzz_limit: self.buzz_limit.0,
            resources: self.resources,
            created_at: self.created_at,
            updated_at: self.updated_at,
            revision: revision_from(self.revision)?,
        })
    }
}

const CONSENT_COLUMNS: &str = "user_id, client_id, scope, remembered, buzz_limit, created_at, updated_at, revision, \
     resources";

#[async_trait]
impl ConsentStore for PgStore {
    async fn get(&self, user: UserId, client: &ClientId) -> StoreResult<Option<Consent>> {
        sqlx::query_as::<_, ConsentRow>(&format!(
            "SELECT {CONSENT_COLUMNS} FROM consents WHERE user_id = $1 AND client_id = $2"
        ))
        .bind(user.0)
        .bind(client.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(ConsentRow::into_consent)
        .transpose()
    }

    async fn save(&self, c: &Consent, read: Option<u64>) -> StoreResult<Conditional> {
        // One statement each way; the outer select tells a stale read (the consent changed,
        // appeared or went) from a missing app, whose consent is not stored.
        let write = match read {
            None => {
                "INSERT INTO consents (user_id, client_id, scope, remembered, buzz_limit, \
                 created_at, updated_at, revision, resources) \
                 SELECT $1, $2, $3, $4, $5, $7, $6, 0, $8 \
                 WHERE EXISTS (SELECT 1 FROM clients WHERE id = $2) \
                 ON CONFLICT (user_id, client_id) DO NOTHING"
            }
            Some(_) => {
                "UPDATE consents SET scope = $3, remembered = $4, buzz_limit = $5, \
                 updated_at = $6, revision = revision + 1, resources = $8 \
                 WHERE user_id = $1 AND client_id = $2 AND revision = $7"
            }
        };
        let sql = compare_and_set(write, "$2");
        let q = sqlx::query(&sql)
            .bind(c.user_id.0)
            .bind(c.client_id.as_str())
            .bind(scope_to(c.scope))
            .bind(c.remembered)
            .bind(Json(&c.buzz_limit))
            .bind(c.updated_at);
        let q = match read {
            None => q.bind(c.created_at),
            Some(r) => q.bind(i64_of(r)),
        }
        .bind(&c.resources);
        let row = q.fetch_optional(&self.pool).await;
        match row {
            Ok(row) => conditional(row),
            // The app was deleted between the check and the insert: not stored.
            Err(e) if db_code(&e).as_deref() == Some("23503") => Ok(Conditional::Missing),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn set_buzz_limit(
        &self,
        user: UserId,
        client: &ClientId,
        limit: &BuzzLimit,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Consent>> {
        sqlx::query_as::<_, ConsentRow>(&format!(
            "UPDATE consents SET buzz_limit = $3, updated_at = $4, revision = revision + 1 \
             WHERE user_id = $1 AND client_id = $2 RETURNING {CONSENT_COLUMNS}"
        ))
        .bind(user.0)
        .bind(client.as_str())
        .bind(Json(limit))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(ConsentRow::into_consent)
        .transpose()
    }

    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Consent>> {
        sqlx::query_as::<_, ConsentRow>(&format!(
            "SELECT {CONSENT_COLUMNS} FROM consents WHERE user_id = $1 \
             ORDER BY created_at DESC, client_id COLLATE \"C\""
        ))
        .bind(user.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(ConsentRow::into_consent)
        .collect()
    }

    async fn delete(&self, user: UserId, client: &ClientId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user.0)
            .bind(client.as_str())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }
}
