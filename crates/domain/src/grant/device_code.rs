//! The device authorization grant (RFC 8628): starting a device flow, the user's approval or
//! denial, and the polling state machine (pending, slow_down, denied, expired, approved).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::client::{Client, GrantType};
use crate::error::Error;
use crate::ids::{ClientId, UserId};
use crate::ports::Random;
use crate::scope::Scope;
use crate::token::{PlainToken, TokenHash, is_live};

/// The user-code alphabet: no 0/O, 1/I to keep codes readable aloud.
pub const USER_CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// The default polling interval, in seconds.
pub const DEFAULT_INTERVAL: u64 = 5;
/// RFC 8628 §3.5: each slow_down adds 5 seconds.
pub const SLOW_DOWN_STEP: u64 = 5;

/// `XXXX-XXXX` from [`USER_CODE_ALPHABET`] (40 bits).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserCode(String);

impl UserCode {
    /// Uniform over the alphabet: 32 divides 256, so masking a byte has no modulo bias.
    pub fn generate(random: &dyn Random) -> UserCode {
        let mut bytes = [0u8; 8];
        random.fill(&mut bytes);
        let chars: Vec<char> = bytes
            .iter()
            .map(|b| USER_CODE_ALPHABET[(b & 31) as usize] as char)
            .collect();
        UserCode(format!(
            "{}-{}",
            chars[..4].iter().collect::<String>(),
            chars[4..].iter().collect::<String>()
        ))
    }

    /// What a person typed: case-insensitive, separators and spaces ignored.
    pub fn normalize(input: &str) -> Option<UserCode> {
        let cleaned: String = input
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        (cleaned.len() == 8 && cleaned.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
            .then(|| UserCode(format!("{}-{}", &cleaned[..4], &cleaned[4..])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserCode({})", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum DeviceStatus {
    Pending,
    Approved {
        user_id: UserId,
        /// When the approving user signed in (OIDC `auth_time`).
        auth_time: OffsetDateTime,
        /// When the user approved; a consent created after it (the user revoked the app and
        /// granted it again) does not cover this grant. `None` only for authorizations
        /// approved before this was recorded: `auth_time` was the approval time then.
        #[serde(default)]
        approved_at: Option<OffsetDateTime>,
    },
    Denied,
    /// Tokens were issued; the device code is spent.
    Consumed,
}

/// A [`DeviceStatus`] as the columns a SQL row keeps it in: the status name, and for an
/// approval the approving user, their sign-in time and the approval time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusColumns {
    pub status: &'static str,
    pub user: Option<UserId>,
    pub auth_time: Option<OffsetDateTime>,
    pub approved_at: Option<OffsetDateTime>,
}

impl DeviceStatus {
    /// The columns that store this status.
    pub fn columns(&self) -> StatusColumns {
        let plain = |status| StatusColumns {
            status,
            user: None,
            auth_time: None,
            approved_at: None,
        };
        match self {
            DeviceStatus::Pending => plain("pending"),
            DeviceStatus::Approved {
                user_id,
                auth_time,
                approved_at,
            } => StatusColumns {
                status: "approved",
                user: Some(*user_id),
                auth_time: Some(*auth_time),
                approved_at: *approved_at,
            },
            DeviceStatus::Denied => plain("denied"),
            DeviceStatus::Consumed => plain("consumed"),
        }
    }

    /// The status stored in `status` and its columns; `None` for an unknown name or an
    /// approval without its user or sign-in time (a corrupt row).
    pub fn from_columns(
        status: &str,
        user: Option<UserId>,
        auth_time: Option<OffsetDateTime>,
        approved_at: Option<OffsetDateTime>,
    ) -> Option<DeviceStatus> {
        Some(match status {
            "pending" => DeviceStatus::Pending,
            "approved" => DeviceStatus::Approved {
                user_id: user?,
                auth_time: auth_time?,
                approved_at,
            },
            "denied" => DeviceStatus::Denied,
            "consumed" => DeviceStatus::Consumed,
            _ => return None,
        })
    }
}

/// A stored device authorization. The device code is kept as a hash only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceAuthorization {
    pub device_hash: TokenHash,
    pub user_code: UserCode,
    pub client_id: ClientId,
    pub scope: Scope,
    pub status: DeviceStatus,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub interval: u64,
    pub last_polled_at: Option<OffsetDateTime>,
}

/// What the device endpoint returns (before the HTTP layer adds the verification URIs).
#[derive(Debug, Clone)]
pub struct DeviceStart {
    pub device_code: PlainToken,
    pub record: DeviceAuthorization,
}

/// Starts a device flow for a client that registered the grant. The scope is all-or-nothing
/// (no consent page trims it before the user approves); absent means the ceiling.
pub fn start(
    client: &Client,
    requested: Option<Scope>,
    always: Scope,
    now: OffsetDateTime,
    ttl: Duration,
    random: &dyn Random,
) -> Result<DeviceStart, Error> {
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(Error::UnauthorizedClient(
            "Client not authorized for device flow".into(),
        ));
    }
    let ceiling = client.ceiling() | always;
    let scope = match requested {
        None => ceiling,
        Some(s) if s.is_subset_of(ceiling) => s | always,
        Some(_) => {
            return Err(Error::invalid_scope(
                "Requested scope exceeds client permissions",
            ));
        }
    };
    let device_code = PlainToken::generate_unprefixed(random);
    let record = DeviceAuthorization {
        device_hash: device_code.hash(),
        user_code: UserCode::generate(random),
        client_id: client.id.clone(),
        scope,
        status: DeviceStatus::Pending,
        created_at: now,
        expires_at: now + ttl,
        interval: DEFAULT_INTERVAL,
        last_polled_at: None,
    };
    Ok(DeviceStart {
        device_code,
        record,
    })
}

/// The user's answer on the verification page.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceResolution {
    pub user_id: UserId,
    /// When the user signed in (the session's start).
    pub auth_time: OffsetDateTime,
    pub approve: bool,
    pub now: OffsetDateTime,
}

impl DeviceResolution {
    /// The new state of a pending, unexpired authorization; anything else is refused.
    pub fn apply(&self, rec: Option<&DeviceAuthorization>) -> Result<DeviceAuthorization, Error> {
        let rec = rec.ok_or_else(|| Error::invalid_grant("Invalid or expired code"))?;
        if !is_live(Some(rec.expires_at), self.now) {
            return Err(Error::ExpiredToken("Code expired".into()));
        }
        if rec.status != DeviceStatus::Pending {
            return Err(Error::invalid_grant("Code already used or expired"));
        }
        let status = if self.approve {
            DeviceStatus::Approved {
                user_id: self.user_id,
                auth_time: self.auth_time,
                approved_at: Some(self.now),
            }
        } else {
            DeviceStatus::Denied
        };
        Ok(DeviceAuthorization {
            status,
            ..rec.clone()
        })
    }
}

/// A poll of the token endpoint with a device code.
#[derive(Debug, Clone, PartialEq)]
pub struct DevicePoll {
    pub client_id: ClientId,
    pub now: OffsetDateTime,
}

/// Tokens may be issued for this approved authorization.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceGrant {
    pub user_id: UserId,
    pub client_id: ClientId,
    pub scope: Scope,
    pub auth_time: OffsetDateTime,
    /// When the user approved (see [`DeviceStatus::Approved`]).
    pub approved_at: OffsetDateTime,
}

/// What the store must write back (in the same atomic step) and what the poller gets.
#[derive(Debug, Clone, PartialEq)]
pub struct DevicePollStep {
    pub write: Option<DeviceAuthorization>,
    pub result: Result<DeviceGrant, Error>,
}

impl DevicePoll {
    pub fn decide(&self, rec: Option<&DeviceAuthorization>) -> DevicePollStep {
        let refuse = |e: Error| DevicePollStep {
            write: None,
            result: Err(e),
        };
        let Some(rec) = rec else {
            return refuse(Error::invalid_grant("Invalid grant: unknown device_code"));
        };
        if rec.client_id != self.client_id {
            return refuse(Error::invalid_grant(
                "Invalid grant: device_code was issued to another client",
            ));
        }
        if !is_live(Some(rec.expires_at), self.now) {
            return refuse(Error::ExpiredToken("Device code expired".into()));
        }
        if let DeviceStatus::Consumed = rec.status {
            return refuse(Error::invalid_grant(
                "Invalid grant: device code already used",
            ));
        }
        let too_fast = rec
            .last_polled_at
            .is_some_and(|t| self.now - t < Duration::seconds(rec.interval as i64));
        if too_fast {
            let interval = rec.interval + SLOW_DOWN_STEP;
            let write = DeviceAuthorization {
                interval,
                last_polled_at: Some(self.now),
                ..rec.clone()
            };
            return DevicePollStep {
                write: Some(write),
                result: Err(Error::SlowDown { interval }),
            };
        }
        let polled = DeviceAuthorization {
            last_polled_at: Some(self.now),
            ..rec.clone()
        };
        match &rec.status {
            DeviceStatus::Pending => DevicePollStep {
                write: Some(polled),
                result: Err(Error::AuthorizationPending),
            },
            DeviceStatus::Denied => DevicePollStep {
                write: Some(polled),
                result: Err(Error::access_denied(
                    "The user denied the authorization request",
                )),
            },
            DeviceStatus::Approved {
                user_id,
                auth_time,
                approved_at,
            } => DevicePollStep {
                write: Some(DeviceAuthorization {
                    status: DeviceStatus::Consumed,
                    ..polled
                }),
                result: Ok(DeviceGrant {
                    user_id: *user_id,
                    client_id: rec.client_id.clone(),
                    scope: rec.scope,
                    auth_time: *auth_time,
                    approved_at: approved_at.unwrap_or(*auth_time),
                }),
            },
            DeviceStatus::Consumed => refuse(Error::invalid_grant(
                "Invalid grant: device code already used",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::fixtures::{T0, confidential};
    use crate::ports::SeededRandom;

    #[test]
    fn every_status_round_trips_through_its_columns_and_corrupt_rows_are_refused() {
        let approved = DeviceStatus::Approved {
            user_id: UserId(7),
            auth_time: T0,
            approved_at: Some(T0 + Duration::seconds(5)),
        };
        for s in [
            DeviceStatus::Pending,
            approved,
            DeviceStatus::Denied,
            DeviceStatus::Consumed,
        ] {
            let c = s.columns();
            assert_eq!(
                DeviceStatus::from_columns(c.status, c.user, c.auth_time, c.approved_at),
                Some(s)
            );
        }
        assert_eq!(
            DeviceStatus::from_columns("approved", None, Some(T0), None),
            None
        );
        assert_eq!(
            DeviceStatus::from_columns("granted", None, None, None),
            None
        );
    }

    fn started() -> DeviceAuthorization {
        start(
            &confidential("app"),
            None,
            Scope::USER_READ,
            T0,
            Duration::seconds(900),
            &SeededRandom::new(1),
        )
        .unwrap()
        .record
    }

    fn poll(at: i64) -> DevicePoll {
        DevicePoll {
            client_id: ClientId::parse("app").unwrap(),
            now: T0 + Duration::seconds(at),
        }
    }

    #[test]
    fn user_codes_use_the_alphabet_and_shape() {
        for seed in 0..50 {
            let c = UserCode::generate(&SeededRandom::new(seed));
            let s = c.as_str();
            assert_eq!(s.len(), 9);
            assert_eq!(&s[4..5], "-");
            assert!(
                s.bytes()
                    .filter(|b| *b != b'-')
                    .all(|b| USER_CODE_ALPHABET.contains(&b))
            );
        }
    }

    #[test]
    fn user_codes_normalize_what_people_type() {
        assert_eq!(
            UserCode::normalize("abcd efgh").unwrap().as_str(),
            "ABCD-EFGH"
        );
        assert_eq!(
            UserCode::normalize("ABCD-EFGH").unwrap().as_str(),
            "ABCD-EFGH"
        );
        assert!(UserCode::normalize("ABCD-EFG").is_none());
        assert!(
            UserCode::normalize("ABCD-EFG0").is_none(),
            "0 is not in the alphabet"
        );
    }

    #[test]
    fn start_needs_the_registered_grant_and_keeps_scope_within_ceiling() {
        let mut c = confidential("app");
        c.allowed_scopes = Scope::BUZZ_READ;
        let r = SeededRandom::new(1);
        let s = start(
            &c,
            Some(Scope::BUZZ_READ),
            Scope::USER_READ,
            T0,
            Duration::seconds(900),
            &r,
        )
        .unwrap();
        assert_eq!(s.record.scope, Scope::BUZZ_READ | Scope::USER_READ);
        assert_eq!(s.record.expires_at, T0 + Duration::seconds(900));
        assert_eq!(s.record.interval, 5);
        assert_eq!(
            start(
                &c,
                Some(Scope::FULL),
                Scope::USER_READ,
                T0,
                Duration::seconds(900),
                &r
            )
            .unwrap_err()
            .code(),
            "invalid_scope"
        );
        c.grants.retain(|g| *g != GrantType::DeviceCode);
        assert_eq!(
            start(&c, None, Scope::USER_READ, T0, Duration::seconds(900), &r)
                .unwrap_err()
                .code(),
            "unauthorized_client"
        );
    }

    #[test]
    fn pending_poll_is_authorization_pending_and_records_the_poll() {
        let step = poll(0).decide(Some(&started()));
        assert_eq!(step.result, Err(Error::AuthorizationPending));
        assert_eq!(step.write.unwrap().last_polled_at, Some(T0));
    }

    #[test]
    fn polling_faster_than_the_interval_is_slow_down_and_widens_it() {
        let mut rec = started();
        rec.last_polled_at = Some(T0);
        let step = poll(4).decide(Some(&rec));
        assert_eq!(step.result, Err(Error::SlowDown { interval: 10 }));
        assert_eq!(step.write.unwrap().interval, 10);
        let ok = poll(5).decide(Some(&rec));
        assert_eq!(ok.result, Err(Error::AuthorizationPending));
    }

    #[test]
    fn device_code_valid_at_899_and_expired_at_900() {
        let rec = started();
        assert_eq!(
            poll(899).decide(Some(&rec)).result,
            Err(Error::AuthorizationPending)
        );
        assert_eq!(
            poll(900).decide(Some(&rec)).result.unwrap_err().code(),
            "expired_token"
        );
    }

    #[test]
    fn denied_poll_is_access_denied() {
        let rec = DeviceResolution {
            user_id: UserId(1),
            auth_time: T0,
            approve: false,
            now: T0,
        }
        .apply(Some(&started()))
        .unwrap();
        assert_eq!(
            poll(1).decide(Some(&rec)).result.unwrap_err().code(),
            "access_denied"
        );
    }

    #[test]
    fn approved_poll_issues_once_then_the_code_is_spent() {
        let signed_in = T0 - Duration::hours(2);
        let rec = DeviceResolution {
            user_id: UserId(9),
            auth_time: signed_in,
            approve: true,
            now: T0,
        }
        .apply(Some(&started()))
        .unwrap();
        let step = poll(1).decide(Some(&rec));
        let grant = step.result.unwrap();
        assert_eq!(grant.user_id, UserId(9));
        assert_eq!(
            (grant.auth_time, grant.approved_at),
            (signed_in, T0),
            "auth_time is the sign-in, approved_at the approval"
        );
        let spent = step.write.unwrap();
        assert_eq!(spent.status, DeviceStatus::Consumed);
        assert_eq!(
            poll(20).decide(Some(&spent)).result.unwrap_err().code(),
            "invalid_grant"
        );
    }

    #[test]
    fn unknown_or_foreign_device_codes_are_invalid_grant() {
        assert_eq!(
            poll(0).decide(None).result.unwrap_err().code(),
            "invalid_grant"
        );
        let foreign = DevicePoll {
            client_id: ClientId::parse("other").unwrap(),
            now: T0,
        };
        assert_eq!(
            foreign.decide(Some(&started())).result.unwrap_err().code(),
            "invalid_grant"
        );
    }

    #[test]
    fn only_pending_unexpired_codes_can_be_approved() {
        let approve = |at| DeviceResolution {
            user_id: UserId(1),
            auth_time: T0,
            approve: true,
            now: T0 + Duration::seconds(at),
        };
        let rec = started();
        assert_eq!(
            approve(900).apply(Some(&rec)).unwrap_err().code(),
            "expired_token"
        );
        let done = approve(1).apply(Some(&rec)).unwrap();
        assert_eq!(
            approve(2).apply(Some(&done)).unwrap_err().code(),
            "invalid_grant"
        );
        assert_eq!(approve(2).apply(None).unwrap_err().code(), "invalid_grant");
    }
}
