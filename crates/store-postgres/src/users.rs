//! `UserStore`: the built-in user directory.

use async_trait::async_trait;
use buzzgate_domain::ids::UserId;
use buzzgate_domain::ports::{StoreResult, UserStore};
use buzzgate_domain::user::{NewUser, Role, User, Username};
use time::OffsetDateTime;

use crate::{PgStore, corrupt, map_err};

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

    async fn list(&self, after: i64, limit: u32) -> StoreResult<Vec<User>> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(UserRow::into_user)
        .collect()
    }

    async fn set_banned(
        &self,
        id: UserId,
        at: Option<OffsetDateTime>,
    ) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(&format!(
            "UPDATE users SET banned_at = $1 WHERE id = $2 RETURNING {USER_COLUMNS}"
        ))
        .bind(at)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(UserRow::into_user)
        .transpose()
    }
}
