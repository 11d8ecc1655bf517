//! The refresh_token grant: rotation with reuse detection, decided by a small pure policy.
//! The store loads the presented token under a lock, asks [`RefreshRotation::decide`], and
//! applies the decision in the same transaction, so two concurrent refreshes always get a
//! defined answer (both succeed inside the grace window; outside it the family dies).
//!
//! A family has one live head at a time: each rotation, the first or a retry inside the grace
//! window, retires (revokes) every other unrotated refresh token of the family in the same
//! transaction, so 100 concurrent retries leave exactly one usable refresh token, the last
//! one issued (`docs/security.md`, "Refresh replay").

use time::{Duration, OffsetDateTime};

use crate::audit::AuditEvent;
use crate::error::Error;
use crate::ids::{ClientId, FamilyId};
use crate::scope::Scope;
use crate::token::{TokenHash, TokenKind, TokenRecord, TokenState};

/// The default grace window during which a rotated refresh token may be presented again
/// (a client's concurrent retry) and still succeed.
pub const DEFAULT_GRACE: Duration = Duration::seconds(10);

/// One refresh request, ready to be decided against the stored token.
#[derive(Debug, Clone)]
pub struct RefreshRotation {
    pub client_id: ClientId,
    /// The client's current ceiling: the result is always intersected with it.
    pub ceiling: Scope,
    /// `scope` parameter: may narrow, never widen.
    pub requested: Option<Scope>,
    /// `resource` parameters (RFC 8707): may narrow the new access token's audience, never
    /// widen it; the refresh token keeps the grant's.
    pub requested_resources: Vec<String>,
    /// The catalogue's always-granted scope, kept on every rotation.
    pub always: Scope,
    pub now: OffsetDateTime,
    /// `Duration::ZERO` turns the grace window off (any reuse revokes the family).
    pub grace: Duration,
    /// Successor rows, pre-minted by the service (hashes of the plaintexts it will return).
    /// `decide` fills in user, client, scope and family from the presented token.
    pub new_access: TokenRecord,
    pub new_refresh: TokenRecord,
}

/// What the store must do, atomically.
// One decision per refresh, moved once: boxing the rows would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RotationDecision {
    /// Insert `access` and `refresh`. When `mark_rotated`, set the presented token's
    /// `rotated_at` to `now` (only the first rotation marks it; retries inside the grace window
    /// keep the original instant so the window cannot be stretched). Revoke (at `now`) every
    /// other refresh token of the family that is neither rotated nor revoked, the successors
    /// of earlier retries, so `refresh` is the family's only live head; the store reports
    /// their hashes in `superseded` (empty as decided) for cache invalidation.
    Rotate {
        mark_rotated: bool,
        access: TokenRecord,
        refresh: TokenRecord,
        superseded: Vec<TokenHash>,
    },
    /// Reuse outside the grace window: revoke every token of `family`. The caller answers
    /// `invalid_grant` and writes `token.reuse_detected`.
    RevokeFamily {
        family: FamilyId,
        presented: TokenRecord,
    },
    /// Refuse without side effects.
    Reject(Error),
}

impl RotationDecision {
    /// The audit event of a rotation: `refreshed` (kind, client, address, instant) completed
    /// with the user and the scope of the new access token; `None` for a decision that is
    /// not a rotation (the service records reuse itself). A store that writes the event in
    /// the rotation's own commit calls this (`TokenStore::rotate_refresh_audited`).
    pub fn audited(&self, refreshed: &AuditEvent) -> Option<AuditEvent> {
        match self {
            RotationDecision::Rotate { access, .. } => {
                Some(refreshed.clone().user(access.user_id).scope(access.scope))
            }
            RotationDecision::RevokeFamily { .. } | RotationDecision::Reject(_) => None,
        }
    }
}

fn invalid(msg: &'static str) -> RotationDecision {
    RotationDecision::Reject(Error::invalid_grant(msg))
}

impl RefreshRotation {
    /// Decides a refresh against the stored token (`None`: no row has that hash).
    /// `family_revoked`: the family was revoked, even if this row was written after.
    pub fn decide(
        &self,
        presented: Option<&TokenRecord>,
        family_revoked: bool,
    ) -> RotationDecision {
        let Some(token) = presented else {
            return invalid("Invalid grant: refresh token is invalid");
        };
        if token.kind != TokenKind::Refresh {
            return invalid("Invalid grant: refresh token is invalid");
        }
        if token.client_id.as_ref() != Some(&self.client_id) {
            return invalid("Invalid grant: refresh token was issued to another client");
        }
        match token.state(self.now) {
            TokenState::Revoked => return invalid("Invalid grant: refresh token has been revoked"),
            TokenState::Expired => return invalid("Invalid grant: refresh token has expired"),
            TokenState::Active if family_revoked => {
                return invalid("Invalid grant: refresh token has been revoked");
            }
            TokenState::Active => {}
        }
        let mark_rotated = match token.rotated_at {
            None => true,
            Some(at) if self.grace > Duration::ZERO && self.now - at < self.grace => false,
            Some(_) => {
                return match token.family_id {
                    Some(family) => RotationDecision::RevokeFamily {
                        family,
                        presented: token.clone(),
                    },
                    None => invalid("Invalid grant: refresh token has already been used"),
                };
            }
        };
        let base = token.scope;
        let scope = match self.requested {
            Some(asked) if !asked.union(self.always).is_subset_of(base) => {
                return RotationDecision::Reject(Error::invalid_scope(
                    "Invalid scope: requested scope exceeds the scope originally granted",
                ));
            }
            Some(asked) => asked,
            None => base,
        }
        .trim_to_ceiling(self.ceiling, self.always);
        let audience = match crate::resource::narrow(&token.audience, &self.requested_resources) {
            Ok(a) => a,
            Err(e) => return RotationDecision::Reject(e),
        };
        let fill = |template: &TokenRecord, audience: Vec<String>| TokenRecord {
            client_id: token.client_id.clone(),
            user_id: token.user_id,
            scope,
            family_id: token.family_id,
            auth_time: token.auth_time,
            oidc: token.oidc,
            audience,
            ..template.clone()
        };
        RotationDecision::Rotate {
            mark_rotated,
            access: fill(&self.new_access, audience),
            refresh: fill(&self.new_refresh, token.audience.clone()),
            superseded: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::fixtures::T0;
    use crate::ids::{TokenId, UserId};
    use crate::ports::SeededRandom;
    use crate::token::{NewToken, TokenMinter};

    fn family() -> FamilyId {
        FamilyId::generate(&SeededRandom::new(1))
    }

    fn stored(scope: Scope) -> TokenRecord {
        let minter = TokenMinter::default();
        let new = NewToken {
            kind: TokenKind::Refresh,
            client_id: ClientId::parse("app"),
            user_id: UserId(7),
            scope,
            family_id: Some(family()),
            auth_time: Some(T0),
            oidc: Default::default(),
            audience: Vec::new(),
        };
        minter.mint(new, T0, &SeededRandom::new(2)).1
    }

    fn rotation(now: OffsetDateTime, requested: Option<Scope>) -> RefreshRotation {
        let minter = TokenMinter::default();
        let blank = |kind| NewToken {
            kind,
            client_id: None,
            user_id: UserId(0),
            scope: Scope::NONE,
            family_id: None,
            auth_time: None,
            oidc: Default::default(),
            audience: Vec::new(),
        };
        let r = SeededRandom::new(3);
        RefreshRotation {
            client_id: ClientId::parse("app").unwrap(),
            ceiling: Scope::FULL,
            requested,
            requested_resources: Vec::new(),
            always: Scope::USER_READ,
            now,
            grace: DEFAULT_GRACE,
            new_access: minter.mint(blank(TokenKind::Access), now, &r).1,
            new_refresh: minter.mint(blank(TokenKind::Refresh), now, &r).1,
        }
    }

    #[test]
    fn first_use_rotates_and_marks_the_presented_token() {
        let t = stored(Scope::AI_SERVICES);
        match rotation(T0, None).decide(Some(&t), false) {
            RotationDecision::Rotate {
                mark_rotated,
                access,
                refresh,
                superseded,
            } => {
                assert!(mark_rotated);
                assert!(superseded.is_empty(), "the store fills it in");
                assert_eq!(access.scope, Scope::AI_SERVICES);
                assert_eq!((access.user_id, refresh.user_id), (UserId(7), UserId(7)));
                assert_eq!(refresh.family_id, t.family_id);
                assert_eq!(access.kind, TokenKind::Access);
                assert_eq!(refresh.expires_at, Some(T0 + Duration::days(30)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refresh_reuse_inside_grace_succeeds_without_moving_the_window() {
        let mut t = stored(Scope::AI_SERVICES);
        t.rotated_at = Some(T0);
        let d = rotation(T0 + Duration::seconds(9), None).decide(Some(&t), false);
        assert!(matches!(
            d,
            RotationDecision::Rotate {
                mark_rotated: false,
                ..
            }
        ));
    }

    #[test]
    fn refresh_reuse_after_grace_revokes_family() {
        let mut t = stored(Scope::AI_SERVICES);
        t.rotated_at = Some(T0);
        let d = rotation(T0 + Duration::seconds(10), None).decide(Some(&t), false);
        assert_eq!(
            d,
            RotationDecision::RevokeFamily {
                family: t.family_id.unwrap(),
                presented: t
            }
        );
    }

    #[test]
    fn zero_grace_turns_the_window_off() {
        let mut t = stored(Scope::AI_SERVICES);
        t.rotated_at = Some(T0);
        let mut r = rotation(T0, None);
        r.grace = Duration::ZERO;
        assert!(matches!(
            r.decide(Some(&t), false),
            RotationDecision::RevokeFamily { .. }
        ));
    }

    #[test]
    fn narrowing_is_allowed_and_widening_is_invalid_scope() {
        let t = stored(Scope::AI_SERVICES);
        match rotation(T0, Some(Scope::BUZZ_READ)).decide(Some(&t), false) {
            RotationDecision::Rotate { access, .. } => {
                assert_eq!(access.scope, Scope::BUZZ_READ | Scope::USER_READ)
            }
            other => panic!("{other:?}"),
        }
        match rotation(T0, Some(Scope::VAULT_READ)).decide(Some(&t), false) {
            RotationDecision::Reject(e) => assert_eq!(e.code(), "invalid_scope"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn result_is_intersected_with_the_current_ceiling() {
        let t = stored(Scope::AI_SERVICES);
        let mut r = rotation(T0, None);
        r.ceiling = Scope::BUZZ_READ;
        match r.decide(Some(&t), false) {
            RotationDecision::Rotate { refresh, .. } => {
                assert_eq!(refresh.scope, Scope::BUZZ_READ | Scope::USER_READ)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refresh_token_valid_at_30_days_minus_one_and_expired_at_30_days() {
        let t = stored(Scope::USER_READ);
        let ok =
            rotation(T0 + Duration::days(30) - Duration::seconds(1), None).decide(Some(&t), false);
        assert!(matches!(ok, RotationDecision::Rotate { .. }));
        let late = rotation(T0 + Duration::days(30), None).decide(Some(&t), false);
        assert_eq!(
            late,
            RotationDecision::Reject(Error::invalid_grant(
                "Invalid grant: refresh token has expired"
            ))
        );
    }

    #[test]
    fn unknown_revoked_foreign_and_access_tokens_are_invalid_grant() {
        let r = rotation(T0, None);
        let code = |d: RotationDecision| match d {
            RotationDecision::Reject(e) => e.code(),
            other => panic!("{other:?}"),
        };
        assert_eq!(code(r.decide(None, false)), "invalid_grant");
        let mut revoked = stored(Scope::USER_READ);
        revoked.revoked_at = Some(T0);
        assert_eq!(code(r.decide(Some(&revoked), false)), "invalid_grant");
        assert_eq!(
            code(r.decide(Some(&stored(Scope::USER_READ)), true)),
            "invalid_grant"
        );
        let mut foreign = stored(Scope::USER_READ);
        foreign.client_id = ClientId::parse("other");
        assert_eq!(code(r.decide(Some(&foreign), false)), "invalid_grant");
        let mut access = stored(Scope::USER_READ);
        access.kind = TokenKind::Access;
        assert_eq!(code(r.decide(Some(&access), false)), "invalid_grant");
    }

    #[test]
    fn successors_keep_their_own_ids_and_hashes() {
        let t = stored(Scope::USER_READ);
        let r = rotation(T0, None);
        if let RotationDecision::Rotate {
            access, refresh, ..
        } = r.decide(Some(&t), false)
        {
            assert_eq!(access.hash, r.new_access.hash);
            assert_eq!(refresh.hash, r.new_refresh.hash);
            assert_ne!(refresh.id, TokenId(uuid::Uuid::nil()));
            assert_ne!(refresh.hash, t.hash);
        } else {
            panic!("expected rotation");
        }
    }
}
