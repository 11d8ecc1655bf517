//! `/userinfo` and `/api/v1/me`: the claims a bearer's OIDC scopes release, and who the bearer is.

use crate::buzz::BuzzLimit;
use crate::catalogue::Need;
use crate::error::Error;
use crate::ids::UserId;
use crate::scope::{OidcScopes, Scope};
use crate::service::caller::Caller;

use super::{Subject, TokenService};

/// The claims `/userinfo` returns (`sub` is `id`); `None` where the token's OIDC scopes do
/// not release a claim or the user has no value for it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    pub id: UserId,
    /// Civitai's `username` (with `profile`).
    pub username: Option<String>,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    pub picture: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
}

/// What `/api/v1/me` returns about a bearer.
#[derive(Debug, Clone, PartialEq)]
pub struct Me {
    pub id: UserId,
    pub username: String,
    pub token_scope: Scope,
    pub buzz_limit: Option<BuzzLimit>,
    pub subject: Subject,
    /// The token's audience (RFC 8707); empty: any resource.
    pub audience: Vec<String>,
}

impl TokenService {
    /// `/userinfo`: a bearer with `UserRead`. A token of an OpenID Connect grant gets the
    /// claims its OIDC scopes release (`sub` always; `profile`: name, preferred_username,
    /// picture and Civitai's `id` and `username`; `email`: email and email_verified); any
    /// other token, every claim (`UserRead` reads the whole profile).
    pub async fn userinfo(&self, caller: &Caller) -> Result<UserInfo, Error> {
        let bearer = caller.bearer(&self.deps.catalogue().need_profile())?;
        self.user_info(bearer.user_id(), bearer.record.oidc).await
    }

    /// The claims of `user` that `oidc` releases (see [`TokenService::userinfo`]).
    pub(super) async fn user_info(
        &self,
        user: UserId,
        oidc: OidcScopes,
    ) -> Result<UserInfo, Error> {
        let user = self
            .deps
            .active_user(user)
            .await?
            .ok_or_else(|| Error::invalid_token("Invalid or expired token"))?;
        let everything = oidc.is_empty();
        let profile = everything || oidc.contains(OidcScopes::PROFILE);
        let email = everything || oidc.contains(OidcScopes::EMAIL);
        let username = user.username.to_string();
        Ok(UserInfo {
            id: user.id,
            username: profile.then(|| username.clone()),
            name: profile.then(|| username.clone()),
            preferred_username: profile.then_some(username),
            picture: user.picture.filter(|_| profile),
            email_verified: user
                .email
                .as_ref()
                .filter(|_| email)
                .map(|_| user.email_verified),
            email: user.email.filter(|_| email),
        })
    }

    /// `/api/v1/me`: who the bearer is and what it may do.
    pub async fn me(&self, caller: &Caller) -> Result<Me, Error> {
        let bearer = caller.bearer(&Need::nothing())?;
        let user = self
            .deps
            .active_user(bearer.user_id())
            .await?
            .ok_or_else(|| Error::invalid_token("Invalid or expired token"))?;
        let buzz_limit = self.budgets_of(&bearer.record).await?.reported();
        Ok(Me {
            id: user.id,
            username: user.username.to_string(),
            token_scope: bearer.scope(),
            buzz_limit,
            subject: bearer.subject(),
            audience: bearer.record.audience.clone(),
        })
    }
}
