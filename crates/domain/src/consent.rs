//! Consent: the grant record per (user, app) with its scope, the "remember" flag and the Buzz
//! budgets. Approving always records a grant so caps and revocation always apply; `remember`
//! only decides whether the next covered request skips the consent page.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::buzz::{Budget, BuzzLimit};
use crate::catalogue::Catalogue;
use crate::ids::{ClientId, UserId};
use crate::scope::Scope;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consent {
    pub user_id: UserId,
    pub client_id: ClientId,
    /// The consented mask; always includes `UserRead`.
    pub scope: Scope,
    pub remembered: bool,
    /// Empty = no cap.
    pub buzz_limit: BuzzLimit,
    /// The resources (RFC 8707) the user approved tokens for; empty: none named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// How many times the stored consent has been written: the condition of
    /// `ConsentStore::save`. Internal, never shown.
    #[serde(skip)]
    pub revision: u64,
}

/// Whether the consent page is needed for a request of `requested` (already trimmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentDecision {
    /// A remembered consent covers the request: issue a code without asking.
    Skip,
    /// Ask the user.
    Prompt,
}

/// Skip only when a remembered consent exists and the request is a subset of it, scopes and
/// resources (RFC 8707) alike; a wider request, or one for a resource the user has not
/// approved, re-prompts.
pub fn decide(
    existing: Option<&Consent>,
    requested: Scope,
    resources: &[String],
) -> ConsentDecision {
    match existing {
        Some(c)
            if c.remembered
                && requested.is_subset_of(c.scope)
                && resources.iter().all(|r| c.resources.contains(r)) =>
        {
            ConsentDecision::Skip
        }
        _ => ConsentDecision::Prompt,
    }
}

/// Whether the consent still stands behind a grant made at `granted_at` (an authorization
/// code's issue, a device approval), or behind a refresh when `granted_at` is `None`.
/// Fail closed (SPEC 13): no consent means no tokens; a consent created after the grant
/// belongs to a later approval (the user revoked the app in between), so it does not
/// resurrect a code or device grant from before the revocation.
pub fn covers_grant(consent: Option<&Consent>, granted_at: Option<OffsetDateTime>) -> bool {
    match (consent, granted_at) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(c), Some(at)) => c.created_at <= at,
    }
}

/// The Buzz budgets a spend of an app for a user is checked against (SPEC 6, SPEC 13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Budgets {
    /// Spend is allowed within these budgets (empty: no cap).
    Within(BuzzLimit),
    /// No consent and not the app's owner: no spending at all, whatever the purpose.
    NoConsent,
}

impl Budgets {
    /// The budgets of an app's token for `user`: the consent's, and when `user` owns the
    /// app, also the owner's own cap on it (`ownerBuzzLimit`: the owner consented by
    /// registering the app, and their `client_credentials` tokens need no consent). Every
    /// budget applies, so the tighter one wins.
    pub fn for_app(
        consent: Option<&Consent>,
        user_is_owner: bool,
        owner_limit: &BuzzLimit,
    ) -> Budgets {
        let mut budgets: Vec<Budget> = Vec::new();
        if let Some(c) = consent {
            budgets.extend(c.buzz_limit.budgets().iter().cloned());
        } else if !user_is_owner {
            return Budgets::NoConsent;
        }
        if user_is_owner {
            budgets.extend(owner_limit.budgets().iter().cloned());
        }
        Budgets::Within(BuzzLimit::from_validated(budgets))
    }

    /// The limit to report (introspection, `/api/v1/me`): `None` when nothing may be spent.
    pub fn reported(&self) -> Option<BuzzLimit> {
        match self {
            Budgets::Within(l) => Some(l.clone()),
            Budgets::NoConsent => None,
        }
    }
}

/// The user's answer on the consent page.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub remember: bool,
    /// `None`: the form carried no `buzz_limit` field, keep what is stored (or the default
    /// for a first grant that asks for AIServicesWrite). `Some(empty)`: no cap.
    pub buzz_limit: Option<BuzzLimit>,
    /// The resources of the approved request (they replace the stored ones, as the scope does).
    pub resources: Vec<String>,
}

/// The consent to store after an approval. The approved scope replaces the stored one (the
/// user saw exactly this set); the Buzz limit is replaced only when the form sent one.
pub fn record_approval(
    catalogue: &Catalogue,
    existing: Option<&Consent>,
    user_id: UserId,
    client_id: &ClientId,
    scope: Scope,
    approval: &Approval,
    now: OffsetDateTime,
) -> Consent {
    let buzz_limit = match (&approval.buzz_limit, existing) {
        (Some(limit), _) => limit.clone(),
        (None, Some(c)) => c.buzz_limit.clone(),
        (None, None) if scope.intersects(catalogue.capped()) => BuzzLimit::consent_default(),
        (None, None) => BuzzLimit::default(),
    };
    Consent {
        user_id,
        client_id: client_id.clone(),
        scope: scope | catalogue.always_granted(),
        remembered: approval.remember,
        buzz_limit,
        resources: approval.resources.clone(),
        created_at: existing.map_or(now, |c| c.created_at),
        updated_at: now,
        revision: existing.map_or(0, |c| c.revision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

    fn consent(scope: Scope, remembered: bool) -> Consent {
        Consent {
            user_id: UserId(1),
            client_id: ClientId::parse("app").unwrap(),
            scope,
            remembered,
            buzz_limit: BuzzLimit::default(),
            resources: Vec::new(),
            created_at: T0,
            updated_at: T0,
            revision: 0,
        }
    }

    #[test]
    fn remembered_consent_covering_the_request_skips_the_page() {
        let c = consent(Scope::AI_SERVICES, true);
        assert_eq!(
            decide(Some(&c), Scope::USER_READ | Scope::BUZZ_READ, &[]),
            ConsentDecision::Skip
        );
        assert_eq!(
            decide(Some(&c), Scope::AI_SERVICES, &[]),
            ConsentDecision::Skip
        );
    }

    #[test]
    fn wider_request_re_prompts() {
        let c = consent(Scope::AI_SERVICES, true);
        assert_eq!(
            decide(Some(&c), Scope::AI_SERVICES | Scope::VAULT_READ, &[]),
            ConsentDecision::Prompt
        );
    }

    #[test]
    fn unremembered_or_missing_consent_prompts() {
        assert_eq!(
            decide(Some(&consent(Scope::FULL, false)), Scope::USER_READ, &[]),
            ConsentDecision::Prompt
        );
        assert_eq!(decide(None, Scope::USER_READ, &[]), ConsentDecision::Prompt);
    }

    #[test]
    fn a_resource_the_user_has_not_approved_re_prompts() {
        let mut c = consent(Scope::AI_SERVICES, true);
        let a = "https://a.example/mcp".to_owned();
        let b = "https://b.example/mcp".to_owned();
        assert_eq!(
            decide(Some(&c), Scope::USER_READ, std::slice::from_ref(&a)),
            ConsentDecision::Prompt,
            "a remembered consent without resources covers none"
        );
        c.resources = vec![a.clone()];
        assert_eq!(
            decide(Some(&c), Scope::USER_READ, std::slice::from_ref(&a)),
            ConsentDecision::Skip
        );
        assert_eq!(
            decide(Some(&c), Scope::USER_READ, &[]),
            ConsentDecision::Skip
        );
        assert_eq!(
            decide(Some(&c), Scope::USER_READ, &[a, b]),
            ConsentDecision::Prompt
        );
    }

    #[test]
    fn a_grant_is_covered_only_by_a_consent_that_existed_when_it_was_made() {
        let c = consent(Scope::USER_READ, true);
        assert!(covers_grant(Some(&c), Some(T0)));
        assert!(covers_grant(
            Some(&c),
            Some(T0 + time::Duration::seconds(1))
        ));
        assert!(
            !covers_grant(Some(&c), Some(T0 - time::Duration::seconds(1))),
            "a code from before a revoke and a new approval stays dead"
        );
        assert!(covers_grant(Some(&c), None));
        assert!(!covers_grant(None, Some(T0)));
        assert!(!covers_grant(None, None), "no consent means no tokens");
    }

    #[test]
    fn no_consent_means_no_spending_except_for_the_owner_under_their_own_cap() {
        let owner_cap = BuzzLimit::per_period(100, 1).unwrap();
        assert_eq!(
            Budgets::for_app(None, false, &owner_cap),
            Budgets::NoConsent
        );
        assert_eq!(
            Budgets::for_app(None, true, &owner_cap),
            Budgets::Within(owner_cap.clone())
        );
        assert_eq!(
            Budgets::for_app(None, true, &BuzzLimit::unlimited()),
            Budgets::Within(BuzzLimit::unlimited())
        );
        let mut c = consent(Scope::AI_SERVICES, true);
        c.buzz_limit = BuzzLimit::per_period(5000, 1).unwrap();
        let Budgets::Within(both) = Budgets::for_app(Some(&c), true, &owner_cap) else {
            panic!("owner with consent may spend");
        };
        assert_eq!(both.budgets().len(), 2, "both caps apply to the owner");
        assert_eq!(
            Budgets::for_app(Some(&c), false, &owner_cap),
            Budgets::Within(c.buzz_limit.clone()),
            "the owner's cap never applies to other users"
        );
        assert_eq!(Budgets::NoConsent.reported(), None);
    }

    #[test]
    fn approval_without_remember_still_records_a_grant() {
        let id = ClientId::parse("app").unwrap();
        let a = Approval {
            remember: false,
            buzz_limit: None,
            resources: Vec::new(),
        };
        let c = record_approval(
            &Catalogue::civitai(),
            None,
            UserId(1),
            &id,
            Scope::BUZZ_READ,
            &a,
            T0,
        );
        assert!(!c.remembered);
        assert_eq!(c.scope, Scope::BUZZ_READ | Scope::USER_READ);
    }

    #[test]
    fn first_ai_services_grant_gets_the_default_daily_cap() {
        let id = ClientId::parse("app").unwrap();
        let a = Approval {
            remember: true,
            buzz_limit: None,
            resources: Vec::new(),
        };
        let c = record_approval(
            &Catalogue::civitai(),
            None,
            UserId(1),
            &id,
            Scope::AI_SERVICES,
            &a,
            T0,
        );
        assert_eq!(c.buzz_limit, BuzzLimit::consent_default());
        let c2 = record_approval(
            &Catalogue::civitai(),
            None,
            UserId(1),
            &id,
            Scope::BUZZ_READ,
            &a,
            T0,
        );
        assert!(c2.buzz_limit.is_unlimited());
    }

    #[test]
    fn approval_replaces_scope_keeps_created_at_and_keeps_limit_when_absent() {
        let mut old = consent(Scope::AI_SERVICES, true);
        old.buzz_limit = BuzzLimit::per_period(100, 7).unwrap();
        let later = T0 + time::Duration::days(1);
        let a = Approval {
            remember: true,
            buzz_limit: None,
            resources: Vec::new(),
        };
        let c = record_approval(
            &Catalogue::civitai(),
            Some(&old),
            UserId(1),
            &old.client_id.clone(),
            Scope::USER_READ,
            &a,
            later,
        );
        assert_eq!(c.scope, Scope::USER_READ);
        assert_eq!(c.created_at, T0);
        assert_eq!(c.updated_at, later);
        assert_eq!(c.buzz_limit, old.buzz_limit);
        let cleared = Approval {
            remember: true,
            buzz_limit: Some(BuzzLimit::default()),
            resources: Vec::new(),
        };
        let c = record_approval(
            &Catalogue::civitai(),
            Some(&old),
            UserId(1),
            &old.client_id.clone(),
            Scope::USER_READ,
            &cleared,
            later,
        );
        assert!(c.buzz_limit.is_unlimited());
    }
}
