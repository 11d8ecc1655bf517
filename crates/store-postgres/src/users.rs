//! The built-in user directory and browser sessions.

use async_trait::async_trait;
use buzzgate_domain::ids::UserId;
use buzzgate_domain::ports::{SessionStore, StoreResult, UserStore};
use buzzgate_domain::token::TokenHash;
use buzzgate_domain::user::{NewUser, Role, Session, User, Username};
use time::OffsetDateTime;

use crate::{PgStore, corrupt, hash_from, map_err};

const USER_COLUMNS: &str =
    "id, username, email, email_verified, password_hash, picture, roles, created_at, banned_at";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    email: Option<String>,
    email_verified: bool,
    password_hash: Option<String>,
    picture: Option<String>,
    roles: Vec<String>,
    created_at: OffsetDateTime,
    banned_at: Option<OffsetDateTime>,
}

fn role_from(s: &str) -> StoreResult<Role> {
    [Role::Admin, Role::Tester, Role::Moderator]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| corrupt("role"))
}

impl UserRow {
    fn into_user(self) -> StoreResult<User> {
        Ok(User {
            id: UserId(self.id),
            username: Username::parse(&self.username).map_err(|_| corrupt("username"))?,
            email: self.email,
            email_verified: self.email_verified,
            password_hash: self.password_hash,
            picture: self.picture,
            roles: self
                .roles
                .iter()
                .map(|r| role_from(r))
                .collect::<StoreResult<_>>()?,
            created_at: self.created_at,
            banned_at: self.banned_at,
        })
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn create(
        &self,
        new: &NewUser,
        password_hash: Option<String>,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        // A taken username (any case) trips the unique index on lower(username): Conflict.
        sqlx::query_as::<_, UserRow>(&format!(
            "INSERT INTO users (username, email, email_verified, password_hash, roles, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLUMNS}"
        ))
        .bind(new.username.as_str())
        .bind(new.email.as_deref())
        .bind(new.email_verified)
        .bind(password_hash)
        .bind(new.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>())
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?
        .into_user()
    }

    async fn get(&self, id: UserId) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(UserRow::into_user)
            .transpose()
    }

    async fn find_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1)"
        ))
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(UserRow::into_user)
        .transpose()
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id_hash: Vec<u8>,
    user_id: i64,
    csrf_token: String,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

#[async_trait]
impl SessionStore for PgStore {
    async fn insert(&self, s: &Session) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id_hash) DO UPDATE SET \
             user_id = EXCLUDED.user_id, csrf_token = EXCLUDED.csrf_token, \
             created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
        )
        .bind(&s.id_hash.0[..])
        .bind(s.user_id.0)
        .bind(&s.csrf_token)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn get(&self, id_hash: &TokenHash) -> StoreResult<Option<Session>> {
        let row = sqlx::query_as::<_, SessionRow>(
            "SELECT id_hash, user_id, csrf_token, created_at, expires_at FROM sessions \
             WHERE id_hash = $1",
        )
        .bind(&id_hash.0[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|r| {
            Ok(Session {
                id_hash: hash_from(r.id_hash, "session hash")?,
                user_id: UserId(r.user_id),
                csrf_token: r.csrf_token,
                created_at: r.created_at,
                expires_at: r.expires_at,
            })
        })
        .transpose()
    }

    async fn delete(&self, id_hash: &TokenHash) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(&id_hash.0[..])
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        let done = sqlx::query(
            "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions \
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
