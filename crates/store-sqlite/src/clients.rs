//! `ClientStore` and `ConsentStore`.

use std::sync::Arc;

use async_trait::async_trait;
use buzzgate_domain::buzz::BuzzLimit;
use buzzgate_domain::client::{AccessMode, Client, ClientKind, Origin, SecretHash};
use buzzgate_domain::consent::Consent;
use buzzgate_domain::ids::{ClientId, UserId};
use buzzgate_domain::ports::{ClientStore, ClientSummary, Conditional, ConsentStore, StoreResult};
use buzzgate_domain::token::TokenHash;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use crate::convert::{Cols, Fetch, corrupt, enum_from, enum_str, revision_col, to_json, us};
use crate::{SqliteStore, finish, map_err};

fn client_of(row: &SqliteRow) -> StoreResult<Client> {
    let c = Cols(row);
    let secret_hash = c
        .opt_string("secret_hash")?
        .map(|s| SecretHash::from_hex(&s).ok_or_else(|| corrupt("secret_hash")))
        .transpose()?;
    Ok(Client {
        id: c.client("id")?,
        owner: c.user("owner_id")?,
        name: c.string("name")?,
        description: c.string("description")?,
        redirect_uris: c.json("redirect_uris")?,
        allowed_origins: c.json("allowed_origins")?,
        kind: enum_from::<ClientKind>(c.string("kind")?)?,
        secret_hash,
        grants: c.json("grants")?,
        allowed_scopes: c.scope("allowed_scopes")?,
        access_mode: enum_from::<AccessMode>(c.string("access_mode")?)?,
        is_verified: c.bool("is_verified")?,
        is_resource_server: c.bool("is_resource_server")?,
        owner_buzz_limit: c.json("owner_buzz_limit")?,
        registration_token: c
            .opt_string("registration_token_hash")?
            .map(|s| SecretHash::from_hex(&s).ok_or_else(|| corrupt("registration_token_hash")))
            .transpose()?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
        revision: c.revision()?,
    })
}

/// Binds every column of `clients` after `id`, in declaration order (`owner_buzz_limit` and
/// `registration_token_hash`, added by later migrations, last).
fn bind_client<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    c: &Client,
) -> StoreResult<sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>> {
    Ok(q.bind(c.owner.0)
        .bind(c.name.clone())
        .bind(c.description.clone())
        .bind(to_json(&c.redirect_uris)?)
        .bind(to_json(&c.allowed_origins)?)
        .bind(enum_str(&c.kind)?)
        .bind(c.secret_hash.map(|h| h.to_hex()))
        .bind(to_json(&c.grants)?)
        .bind(i64::from(c.allowed_scopes))
        .bind(c.access_mode.as_str())
        .bind(i64::from(c.is_verified))
        .bind(i64::from(c.is_resource_server))
        .bind(us(c.created_at))
        .bind(us(c.updated_at))
        .bind(to_json(&c.owner_buzz_limit)?)
        .bind(c.registration_token.map(|h| h.to_hex())))
}

impl SqliteStore {
    /// The outcome of a compare-and-set write that touched `rows`: `Written`, or, when it
    /// touched none, `Stale` while the app `id` exists and `Missing` once it is gone.
    async fn conditional(&self, rows: u64, id: &ClientId) -> StoreResult<Conditional> {
        if rows > 0 {
            return Ok(Conditional::Written);
        }
        let app = sqlx::query("SELECT 1 FROM clients WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(if app.is_some() {
            Conditional::Stale
        } else {
            Conditional::Missing
        })
    }
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert(&self, client: &Client) -> StoreResult<()> {
        let _turn = self.write_turn().await?;
        let q = sqlx::query(
            "INSERT INTO clients (id, owner_id, name, description, redirect_uris, \
             allowed_origins, kind, secret_hash, grants, allowed_scopes, access_mode, \
             is_verified, is_resource_server, created_at, updated_at, owner_buzz_limit, \
             registration_token_hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(client.id.as_str().to_owned());
        bind_client(q, client)?
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn get(&self, id: &ClientId) -> StoreResult<Option<Arc<Client>>> {
        let found = sqlx::query("SELECT * FROM clients WHERE id = ?")
            .bind(id.as_str())
            .optional(&self.pool, client_of)
            .await?;
        Ok(found.map(Arc::new))
    }

    async fn list_by_owner(&self, owner: UserId) -> StoreResult<Vec<ClientSummary>> {
        let now = us(self.now());
        let rows = sqlx::query(
            "SELECT c.*, \
               (SELECT COUNT(*) FROM tokens t WHERE t.client_id = c.id AND t.revoked_at IS NULL \
                  AND (t.expires_at IS NULL OR t.expires_at > ?1)) AS active_tokens, \
               (SELECT COUNT(*) FROM consents s WHERE s.client_id = c.id) AS consent_count \
             FROM clients c WHERE c.owner_id = ?2 ORDER BY c.created_at DESC, c.id ASC",
        )
        .bind(now)
        .bind(owner.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let c = Cols(row);
                Ok(ClientSummary {
                    client: client_of(row)?,
                    active_tokens: u64::try_from(c.i64("active_tokens")?).unwrap_or(0),
                    consents: u64::try_from(c.i64("consent_count")?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn search(&self, text: &str, limit: usize) -> StoreResult<Vec<Client>> {
        let rows = sqlx::query(
            "SELECT c.* FROM clients c \
             WHERE ?1 = '' OR c.id = ?1 OR c.name LIKE '%' || ?2 || '%' ESCAPE '\\' \
             ORDER BY c.created_at DESC, c.id ASC LIMIT ?3",
        )
        .bind(text)
        .bind(buzzgate_domain::client::like_escape(text))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(client_of).collect()
    }

    async fn update(&self, client: &Client) -> StoreResult<Conditional> {
        let _turn = self.write_turn().await?;
        let q = sqlx::query(
            "UPDATE clients SET owner_id = ?2, name = ?3, description = ?4, \
             redirect_uris = ?5, allowed_origins = ?6, kind = ?7, secret_hash = ?8, \
             grants = ?9, allowed_scopes = ?10, access_mode = ?11, is_verified = ?12, \
             is_resource_server = ?13, created_at = ?14, updated_at = ?15, \
             owner_buzz_limit = ?16, registration_token_hash = ?17, revision = revision + 1 \
             WHERE id = ?1 AND revision = ?18",
        )
        .bind(client.id.as_str().to_owned());
        let done = bind_client(q, client)?
            .bind(revision_col(client.revision))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        self.conditional(done.rows_affected(), &client.id).await
    }

    async fn delete(&self, id: &ClientId) -> StoreResult<Option<Vec<TokenHash>>> {
        let mut tx = self.begin_write().await?;
        let out = async {
            let rows = sqlx::query("SELECT hash FROM tokens WHERE client_id = ?")
                .bind(id.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
            // Tokens, consents, codes and device authorizations go with it (ON DELETE CASCADE).
            let done = sqlx::query("DELETE FROM clients WHERE id = ?")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if done.rows_affected() == 0 {
                return Ok(None);
            }
            rows.iter()
                .map(|r| Cols(r).hash("hash"))
                .collect::<StoreResult<Vec<_>>>()
                .map(Some)
        }
        .await;
        finish(tx, out).await
    }

    async fn origin_registered(&self, origin: &Origin) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM clients, json_each(clients.allowed_origins) o \
             WHERE clients.kind = 'public' AND o.value = ?) AS found",
        )
        .bind(origin.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Cols(&row).bool("found")
    }
}

fn consent_of(row: &SqliteRow) -> StoreResult<Consent> {
    let c = Cols(row);
    Ok(Consent {
        user_id: c.user("user_id")?,
        client_id: c.client("client_id")?,
        scope: c.scope("scope")?,
        remembered: c.bool("remembered")?,
        buzz_limit: c.json("buzz_limit")?,
        resources: c.opt_json("resources")?.unwrap_or_default(),
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
        revision: c.revision()?,
    })
}

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn get(&self, user: UserId, client: &ClientId) -> StoreResult<Option<Consent>> {
        sqlx::query("SELECT * FROM consents WHERE user_id = ? AND client_id = ?")
            .bind(user.0)
            .bind(client.as_str())
            .optional(&self.pool, consent_of)
            .await
    }

    async fn save(&self, consent: &Consent, read: Option<u64>) -> StoreResult<Conditional> {
        let _turn = self.write_turn().await?;
        let q = match read {
            // As the in-memory reference does: a consent for an app that no longer exists is
            // not stored (`Missing`, told apart below).
            None => sqlx::query(
                "INSERT INTO consents (user_id, client_id, scope, remembered, buzz_limit, \
                 created_at, updated_at, revision, resources) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 \
                 WHERE EXISTS (SELECT 1 FROM clients WHERE id = ?2) \
                 ON CONFLICT (user_id, client_id) DO NOTHING",
            ),
            Some(_) => sqlx::query(
                "UPDATE consents SET scope = ?3, remembered = ?4, buzz_limit = ?5, \
                 updated_at = ?7, revision = revision + 1, resources = ?9 \
                 WHERE user_id = ?1 AND client_id = ?2 AND revision = ?8",
            ),
        };
        let done = q
            .bind(consent.user_id.0)
            .bind(consent.client_id.as_str())
            .bind(i64::from(consent.scope))
            .bind(i64::from(consent.remembered))
            .bind(to_json(&consent.buzz_limit)?)
            .bind(us(consent.created_at))
            .bind(us(consent.updated_at))
            .bind(revision_col(read.unwrap_or(0)))
            .bind(to_json(&consent.resources)?)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        self.conditional(done.rows_affected(), &consent.client_id)
            .await
    }

    async fn set_buzz_limit(
        &self,
        user: UserId,
        client: &ClientId,
        limit: &BuzzLimit,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Consent>> {
        let _turn = self.write_turn().await?;
        sqlx::query(
            "UPDATE consents SET buzz_limit = ?, updated_at = ?, revision = revision + 1 \
             WHERE user_id = ? AND client_id = ? RETURNING *",
        )
        .bind(to_json(limit)?)
        .bind(us(now))
        .bind(user.0)
        .bind(client.as_str())
        .optional(&self.pool, consent_of)
        .await
    }

    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Consent>> {
        sqlx::query(
            "SELECT * FROM consents WHERE user_id = ? ORDER BY created_at DESC, client_id ASC",
        )
        .bind(user.0)
        .all(&self.pool, consent_of)
        .await
    }

    async fn delete(&self, user: UserId, client: &ClientId) -> StoreResult<bool> {
        let _turn = self.write_turn().await?;
        let done = sqlx::query("DELETE FROM consents WHERE user_id = ? AND client_id = ?")
            .bind(user.0)
            .bind(client.as_str())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }
}
