//! The built-in user directory's rules (for the standalone binary), password hashing with
//! argon2id, and browser sessions with their CSRF token. Embedders replace the directory and
//! the session resolver through the ports.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::error::Error;
use crate::ids::UserId;
use crate::ports::Random;
use crate::token::{PlainToken, TokenHash, TokenPrefix, is_live};

/// A role held by a user. `tester` admits them to apps in `testers` access mode; `admin` may
/// verify apps, set access modes and read the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Tester,
    Moderator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Tester => "tester",
            Role::Moderator => "moderator",
        }
    }
}

/// A user of the directory. `password_hash` is a PHC string (argon2id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub email: Option<String>,
    pub email_verified: bool,
    #[serde(skip_serializing)]
    pub password_hash: Option<String>,
    pub picture: Option<String>,
    pub roles: Vec<Role>,
    pub created_at: OffsetDateTime,
    pub banned_at: Option<OffsetDateTime>,
}

impl User {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
    pub fn is_banned(&self) -> bool {
        self.banned_at.is_some()
    }
}

/// 1..=64 chars of `[A-Za-z0-9_.-]`; compared case-insensitively by stores.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Username, Error> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Username(s.to_owned()))
        } else {
            Err(Error::invalid_request(
                "username must be 1-64 characters of letters, digits, '_', '.', '-'",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.0)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user to create (`buzzgate user add`). The password arrives in plaintext and leaves as a
/// hash; `Debug` redacts it.
#[derive(Clone)]
pub struct NewUser {
    pub username: Username,
    pub email: Option<String>,
    pub email_verified: bool,
    pub password: Option<String>,
    pub roles: Vec<Role>,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A plausible email: one `@`, non-empty local part and domain with a dot, ≤254 bytes, no
/// spaces or control characters. Deliverability is not this server's business.
pub fn validate_email(s: &str) -> Result<(), Error> {
    let bad = || Error::invalid_request("email is not a valid address");
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = s.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(bad());
    }
    Ok(())
}

/// 8..=1024 characters: long enough to matter, short enough that hashing cannot be abused.
/// The shortest password accepted (characters).
pub const MIN_PASSWORD_CHARS: usize = 8;

pub fn validate_password(p: &str) -> Result<(), Error> {
    let n = p.chars().count();
    if (MIN_PASSWORD_CHARS..=1024).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid_request(
            "password must be 8 to 1024 characters",
        ))
    }
}

/// A browser session. The cookie holds the plaintext id; the store holds only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id_hash: TokenHash,
    pub user_id: UserId,
    /// Per-session anti-CSRF token echoed by every form. Not a credential on its own.
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl Session {
    /// A new session: the plaintext cookie value and the record to store.
    pub fn start(
        user_id: UserId,
        now: OffsetDateTime,
        ttl: time::Duration,
        random: &dyn Random,
    ) -> (PlainToken, Session) {
        let cookie = PlainToken::generate(&TokenPrefix::parse("bgs_").unwrap_or_default(), random);
        let csrf = PlainToken::generate_unprefixed(random);
        let session = Session {
            id_hash: cookie.hash(),
            user_id,
            csrf_token: csrf.expose().to_owned(),
            created_at: now,
            expires_at: now + ttl,
        };
        (cookie, session)
    }

    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        is_live(Some(self.expires_at), now)
    }

    /// Constant-time check of a form's `csrf_token`.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), Error> {
        let ok =
            presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.csrf_token.as_bytes())));
        if ok {
            Ok(())
        } else {
            Err(Error::access_denied("Invalid or missing CSRF token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SeededRandom;
    use time::Duration;
    use time::macros::datetime;

    #[test]
    fn usernames_are_bounded_and_plain() {
        assert!(Username::parse("ada_lovelace.1-x").is_ok());
        for bad in ["", "a b", "ädа", "x/y", &"a".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(validate_email("ada@example.com").is_ok());
        for bad in [
            "ada",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
            "ada@.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_8_to_1024_chars() {
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password("1234567").is_err());
        assert!(validate_password(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn sessions_store_only_the_cookie_hash_and_expire_at_ttl() {
        let t0 = datetime!(2026-01-01 00:00:00 UTC);
        let (cookie, s) = Session::start(UserId(1), t0, Duration::days(14), &SeededRandom::new(4));
        assert_eq!(s.id_hash, TokenHash::of(cookie.expose()));
        assert!(s.is_live(t0 + Duration::days(14) - Duration::seconds(1)));
        assert!(!s.is_live(t0 + Duration::days(14)));
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let (_, s) = Session::start(
            UserId(1),
            datetime!(2026-01-01 00:00:00 UTC),
            Duration::hours(1),
            &SeededRandom::new(4),
        );
        let good = s.csrf_token.clone();
        assert!(s.check_csrf(Some(&good)).is_ok());
        assert_eq!(s.check_csrf(None).unwrap_err().code(), "access_denied");
        assert!(s.check_csrf(Some(&good[1..])).is_err());
        assert!(s.check_csrf(Some("")).is_err());
    }

    #[test]
    fn new_user_debug_hides_the_password() {
        let u = NewUser {
            username: Username::parse("ada").unwrap(),
            email: None,
            email_verified: false,
            password: Some("correct horse".into()),
            roles: vec![],
        };
        assert!(!format!("{u:?}").contains("horse"));
    }
}
