//! Audit events of SPEC section 9, plus the operator's bans (`user.banned`, `user.unbanned`).
//! Stored without foreign keys, so they outlive deleted apps.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{ClientId, UserId};
use crate::scope::Scope;

/// Every kind of event, with its dotted wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditKind {
    #[serde(rename = "client.created")]
    ClientCreated,
    #[serde(rename = "client.updated")]
    ClientUpdated,
    #[serde(rename = "client.deleted")]
    ClientDeleted,
    #[serde(rename = "client.secret_rotated")]
    ClientSecretRotated,
    #[serde(rename = "authorization.granted")]
    AuthorizationGranted,
    #[serde(rename = "authorization.denied")]
    AuthorizationDenied,
    #[serde(rename = "token.issued")]
    TokenIssued,
    #[serde(rename = "token.refreshed")]
    TokenRefreshed,
    #[serde(rename = "token.revoked")]
    TokenRevoked,
    #[serde(rename = "token.reuse_detected")]
    TokenReuseDetected,
    #[serde(rename = "origin.rejected")]
    OriginRejected,
    #[serde(rename = "buzz.limit_set")]
    BuzzLimitSet,
    #[serde(rename = "buzz.spent")]
    BuzzSpent,
    #[serde(rename = "buzz.refunded")]
    BuzzRefunded,
    /// An operator banned the user (`AdminService::set_banned`); metadata `by` and
    /// `tokens` (how many live tokens the ban revoked).
    #[serde(rename = "user.banned")]
    UserBanned,
    /// An operator lifted the user's ban (revoked tokens stay revoked); metadata `by`.
    #[serde(rename = "user.unbanned")]
    UserUnbanned,
}

impl AuditKind {
    pub const ALL: [AuditKind; 16] = [
        AuditKind::ClientCreated,
        AuditKind::ClientUpdated,
        AuditKind::ClientDeleted,
        AuditKind::ClientSecretRotated,
        AuditKind::AuthorizationGranted,
        AuditKind::AuthorizationDenied,
        AuditKind::TokenIssued,
        AuditKind::TokenRefreshed,
        AuditKind::TokenRevoked,
        AuditKind::TokenReuseDetected,
        AuditKind::OriginRejected,
        AuditKind::BuzzLimitSet,
        AuditKind::BuzzSpent,
        AuditKind::BuzzRefunded,
        AuditKind::UserBanned,
        AuditKind::UserUnbanned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::ClientCreated => "client.created",
            AuditKind::ClientUpdated => "client.updated",
            AuditKind::ClientDeleted => "client.deleted",
            AuditKind::ClientSecretRotated => "client.secret_rotated",
            AuditKind::AuthorizationGranted => "authorization.granted",
            AuditKind::AuthorizationDenied => "authorization.denied",
            AuditKind::TokenIssued => "token.issued",
            AuditKind::TokenRefreshed => "token.refreshed",
            AuditKind::TokenRevoked => "token.revoked",
            AuditKind::TokenReuseDetected => "token.reuse_detected",
            AuditKind::OriginRejected => "origin.rejected",
            AuditKind::BuzzLimitSet => "buzz.limit_set",
            AuditKind::BuzzSpent => "buzz.spent",
            AuditKind::BuzzRefunded => "buzz.refunded",
            AuditKind::UserBanned => "user.banned",
            AuditKind::UserUnbanned => "user.unbanned",
        }
    }

    pub fn parse(s: &str) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event. `metadata` holds small non-secret facts (grant type, reason, amount); never a
/// token, code, secret or password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub kind: AuditKind,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub user_id: Option<UserId>,
    pub client_id: Option<ClientId>,
    pub scope: Option<Scope>,
    pub ip: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

impl AuditEvent {
    pub fn new(kind: AuditKind, at: OffsetDateTime) -> Self {
        AuditEvent {
            kind,
            at,
            user_id: None,
            client_id: None,
            scope: None,
            ip: None,
            metadata: BTreeMap::new(),
        }
    }
    pub fn user(mut self, u: UserId) -> Self {
        self.user_id = Some(u);
        self
    }
    pub fn client(mut self, c: &ClientId) -> Self {
        self.client_id = Some(c.clone());
        self
    }
    pub fn scope(mut self, s: Scope) -> Self {
        self.scope = Some(s);
        self
    }
    pub fn ip(mut self, ip: Option<&str>) -> Self {
        self.ip = ip.map(str::to_owned);
        self
    }
    pub fn meta(mut self, k: &str, v: impl fmt::Display) -> Self {
        self.metadata.insert(k.to_owned(), v.to_string());
        self
    }
}

/// What an admin asks of the audit log. Newest first, at most `limit` (capped at 1000),
/// skipping the first `offset` matches (pages of `/admin` and `GET /api/v1/admin/audit`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub kind: Option<AuditKind>,
    pub user_id: Option<UserId>,
    pub client_id: Option<ClientId>,
    pub since: Option<OffsetDateTime>,
    /// Events strictly before this instant.
    pub until: Option<OffsetDateTime>,
    pub limit: usize,
    /// How many matching events to skip, newest first (a page's start).
    pub offset: usize,
}

impl AuditQuery {
    pub const MAX_LIMIT: usize = 1000;

    pub fn effective_limit(&self) -> usize {
        if self.limit == 0 {
            100
        } else {
            self.limit.min(Self::MAX_LIMIT)
        }
    }

    pub fn matches(&self, e: &AuditEvent) -> bool {
        self.kind.is_none_or(|k| k == e.kind)
            && self.user_id.is_none_or(|u| Some(u) == e.user_id)
            && self
                .client_id
                .as_ref()
                .is_none_or(|c| Some(c) == e.client_id.as_ref())
            && self.since.is_none_or(|s| e.at >= s)
            && self.until.is_none_or(|u| e.at < u)
    }

    /// The offset as SQL wants it.
    pub fn offset_i64(&self) -> i64 {
        i64::try_from(self.offset).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn every_spec_event_kind_has_its_dotted_name() {
        let names: Vec<_> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
        for n in [
            "client.created",
            "client.updated",
            "client.deleted",
            "client.secret_rotated",
            "authorization.granted",
            "authorization.denied",
            "token.issued",
            "token.refreshed",
            "token.revoked",
            "token.reuse_detected",
            "origin.rejected",
            "buzz.limit_set",
            "buzz.spent",
            "buzz.refunded",
            "user.banned",
            "user.unbanned",
        ] {
            assert!(names.contains(&n), "{n} missing");
            assert_eq!(AuditKind::parse(n).unwrap().as_str(), n);
        }
        // The wire name (serde) and `as_str` never drift apart, and no name is listed twice.
        for k in AuditKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn events_serialise_with_dotted_kind_and_rfc3339_time() {
        let e = AuditEvent::new(
            AuditKind::TokenReuseDetected,
            datetime!(2026-01-01 00:00:00 UTC),
        )
        .user(UserId(5))
        .meta("reason", "outside grace");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["kind"], "token.reuse_detected");
        assert_eq!(json["at"], "2026-01-01T00:00:00Z");
        assert_eq!(json["userId"], 5);
        assert_eq!(json["metadata"]["reason"], "outside grace");
    }

    #[test]
    fn queries_filter_and_cap_their_limit() {
        let e = AuditEvent::new(AuditKind::ClientCreated, datetime!(2026-01-02 00:00:00 UTC))
            .user(UserId(1));
        let q = AuditQuery {
            kind: Some(AuditKind::ClientCreated),
            user_id: Some(UserId(1)),
            ..Default::default()
        };
        assert!(q.matches(&e));
        assert!(
            !AuditQuery {
                user_id: Some(UserId(2)),
                ..Default::default()
            }
            .matches(&e)
        );
        assert!(
            !AuditQuery {
                since: Some(datetime!(2026-01-03 00:00:00 UTC)),
                ..Default::default()
            }
            .matches(&e)
        );
        assert_eq!(
            AuditQuery {
                limit: 5000,
                ..Default::default()
            }
            .effective_limit(),
            1000
        );
        assert_eq!(AuditQuery::default().effective_limit(), 100);
    }
}
