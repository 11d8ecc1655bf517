//! `UserStore`: the built-in user directory (usernames unique regardless of case).

use async_trait::async_trait;
use buzzgate_domain::ids::UserId;
use buzzgate_domain::ports::{StoreResult, UserStore};
use buzzgate_domain::user::{NewUser, User, Username};
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use crate::convert::{Cols, Fetch, corrupt, to_json, us};
use crate::{SqliteStore, map_err};

fn user_of(row: &SqliteRow) -> StoreResult<User> {
    let c = Cols(row);
    Ok(User {
        id: c.user("id")?,
        username: Username::parse(&c.string("username")?).map_err(|_| corrupt("username"))?,
        email: c.opt_string("email")?,
        email_verified: c.bool("email_verified")?,
        password_hash: c.opt_string("password_hash")?,
        picture: c.opt_string("picture")?,
        roles: c.json("roles")?,
        created_at: c.time("created_at")?,
        banned_at: c.opt_time("banned_at")?,
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create(
        &self,
        new: &NewUser,
        password_hash: Option<String>,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        let _turn = self.write_turn().await?;
        // The username column is `COLLATE NOCASE UNIQUE`: a name differing only in case is
        // a unique violation, that is `Conflict`.
        let row = sqlx::query(
            "INSERT INTO users (username, email, email_verified, password_hash, picture, roles, \
             created_at) VALUES (?, ?, ?, ?, NULL, ?, ?) RETURNING *",
        )
        .bind(new.username.as_str())
        .bind(new.email.as_deref())
        .bind(i64::from(new.email_verified))
        .bind(password_hash)
        .bind(to_json(&new.roles)?)
        .bind(us(now))
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        user_of(&row)
    }

    async fn get(&self, id: UserId) -> StoreResult<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id.0)
            .optional(&self.pool, user_of)
            .await
    }

    async fn find_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username.as_str())
            .optional(&self.pool, user_of)
            .await
    }

    async fn list(&self, after: i64, limit: u32) -> StoreResult<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(user_of).collect()
    }

    async fn set_banned(
        &self,
        id: UserId,
        at: Option<OffsetDateTime>,
    ) -> StoreResult<Option<User>> {
        let _turn = self.write_turn().await?;
        sqlx::query("UPDATE users SET banned_at = ? WHERE id = ? RETURNING *")
            .bind(at.map(us))
            .bind(id.0)
            .optional(&self.pool, user_of)
            .await
    }
}
