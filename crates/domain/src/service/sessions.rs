//! Sign-in for the built-in directory: users, login, logout, and resolving a session cookie.

use std::sync::Arc;

use crate::error::Error;
use crate::token::{PlainToken, TokenHash};
use crate::user::{NewUser, Session, User, Username, validate_email, validate_password};

use super::rate_limit::Bucket;
use super::{Access, Caller, Deps};

#[derive(Debug, Clone)]
pub struct SessionService {
    pub(crate) deps: Arc<Deps>,
}

/// Verified against when the username is unknown, so both paths cost one argon2 verification.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$wQ+6Ufp5ZBJ1Vm0s3c4Ufc2L3oD9G6cnCD9qUtnDDAU";

impl SessionService {
    /// Creates a user (the CLI's `user add`).
    pub async fn create_user(&self, new: NewUser) -> Result<User, Error> {
        if let Some(email) = &new.email {
            validate_email(email)?;
        }
        let deps = &self.deps;
        let hash = match &new.password {
            Some(p) => {
                validate_password(p)?;
                let mut salt = [0u8; 16];
                deps.random.fill(&mut salt);
                Some(deps.passwords.hash(p, salt).await?)
            }
            None => None,
        };
        deps.users
            .create(&new, hash, deps.now())
            .await
            .map_err(|e| match e {
                crate::error::StoreError::Conflict(_) => {
                    Error::Conflict("username is taken".into())
                }
                other => other.into(),
            })
    }

    /// Checks a username and password and opens a session. The same error for an unknown
    /// user, a wrong password and a banned user. Throttled (SPEC 13): once the failures of the
    /// account or of the address fill their window, attempts are refused with
    /// `rate_limited` before any password is checked; only failures count.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        ip: Option<&str>,
    ) -> Result<(PlainToken, Session), Error> {
        let deps = &self.deps;
        let account = Bucket::LoginAccount(username);
        deps.check_failures(account).await?;
        if let Some(ip) = ip {
            deps.check_failures(Bucket::LoginIp(ip)).await?;
        }
        let result = self.check_password(username, password).await;
        if matches!(result, Err(Error::AccessDenied(_))) {
            deps.record_failure(account).await;
            if let Some(ip) = ip {
                deps.record_failure(Bucket::LoginIp(ip)).await;
            }
        }
        result
    }

    async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(PlainToken, Session), Error> {
        let deps = &self.deps;
        let denied = || Error::access_denied("Invalid username or password");
        let user = match Username::parse(username) {
            Ok(u) => deps.users.find_by_username(&u).await?,
            Err(_) => None,
        };
        let phc = user.as_ref().and_then(|u| u.password_hash.clone());
        let ok = deps
            .passwords
            .verify(password, phc.as_deref().unwrap_or(DUMMY_PHC))
            .await;
        let user = user
            .filter(|u| ok && phc.is_some() && !u.is_banned())
            .ok_or_else(denied)?;
        let (cookie, session) = Session::start(
            user.id,
            deps.now(),
            deps.config.minter.ttls.session,
            deps.random.as_ref(),
        );
        deps.sessions.insert(&session).await?;
        Ok((cookie, session))
    }

    /// Self-service sign-up, when the operator opened it (`Config::signup_open`; otherwise
    /// `not_found`, as if the page did not exist): creates the user with a password and
    /// opens a session. Throttled per address (SPEC 10), counted before any work.
    pub async fn sign_up(
        &self,
        username: &str,
        email: &str,
        password: &str,
        ip: Option<&str>,
    ) -> Result<(PlainToken, Session), Error> {
        let deps = &self.deps;
        if !deps.config.signup_open {
            return Err(Error::not_found("Sign-up is closed"));
        }
        if let Some(ip) = ip {
            deps.check_rate(Bucket::SignupIp(ip)).await?;
        }
        let email = email.trim();
        let user = self
            .create_user(NewUser {
                username: Username::parse(username.trim())?,
                email: (!email.is_empty()).then(|| email.to_owned()),
                email_verified: false,
                password: Some(password.to_owned()),
                roles: Vec::new(),
            })
            .await?;
        let (cookie, session) = Session::start(
            user.id,
            deps.now(),
            deps.config.minter.ttls.session,
            deps.random.as_ref(),
        );
        deps.sessions.insert(&session).await?;
        Ok((cookie, session))
    }

    /// The live session and its (not banned) user behind a cookie value.
    pub async fn resolve(&self, cookie: &str) -> Result<Option<(Session, User)>, Error> {
        let deps = &self.deps;
        let Some(hash) = TokenHash::of_presented(cookie) else {
            return Ok(None);
        };
        let Some(session) = deps
            .sessions
            .get(&hash)
            .await?
            .filter(|s| s.is_live(deps.now()))
        else {
            return Ok(None);
        };
        let user = deps.active_user(session.user_id).await?;
        Ok(user.map(|u| (session, u)))
    }

    /// Signs out: deletes the caller's session (a signed-in user with the CSRF proof).
    pub async fn logout(&self, caller: &Caller) -> Result<(), Error> {
        let session = caller.signed_in(Access::Write)?;
        self.deps.sessions.delete(&session.session).await?;
        Ok(())
    }
}
