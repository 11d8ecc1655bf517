//! `UserStore` over the in-memory state: the user directory.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::error::StoreError;
use crate::ids::UserId;
use crate::ports::{StoreResult, UserStore};
use crate::user::{NewUser, User, Username};

#[async_trait]
impl UserStore for MemoryStore {
    async fn create(
        &self,
        new: &NewUser,
        password_hash: Option<String>,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        let mut s = self.lock()?;
        let wanted = new.username.as_str().to_ascii_lowercase();
        if s.users
            .values()
            .any(|u| u.username.as_str().to_ascii_lowercase() == wanted)
        {
            return Err(StoreError::Conflict("username taken".into()));
        }
        s.next_user_id += 1;
        let user = User {
            id: UserId(s.next_user_id),
            username: new.username.clone(),
            email: new.email.clone(),
            email_verified: new.email_verified,
            password_hash,
            picture: None,
            roles: new.roles.clone(),
            created_at: now,
            banned_at: None,
        };
        s.users.insert(user.id, user.clone());
        Ok(user)
    }

    async fn get(&self, id: UserId) -> StoreResult<Option<User>> {
        Ok(self.lock()?.users.get(&id).cloned())
    }

    async fn find_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        let wanted = username.as_str().to_ascii_lowercase();
        Ok(self
            .lock()?
            .users
            .values()
            .find(|u| u.username.as_str().to_ascii_lowercase() == wanted)
            .cloned())
    }

    async fn list(&self, after: i64, limit: u32) -> StoreResult<Vec<User>> {
        let s = self.lock()?;
        let mut users: Vec<User> = s
            .users
            .values()
            .filter(|u| u.id.0 > after)
            .cloned()
            .collect();
        users.sort_by_key(|u| u.id.0);
        users.truncate(limit as usize);
        Ok(users)
    }

    async fn set_banned(
        &self,
        id: UserId,
        at: Option<OffsetDateTime>,
    ) -> StoreResult<Option<User>> {
        let mut s = self.lock()?;
        Ok(s.users.get_mut(&id).map(|u| {
            u.banned_at = at;
            u.clone()
        }))
    }
}
