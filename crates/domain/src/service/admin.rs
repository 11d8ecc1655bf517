//! What administrators read: every app (searched) and the audit log (SPEC 9, SPEC 13's
//! admin row). Changes to an app go through `ClientService::administer`.

use std::sync::Arc;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::audit::{AuditEvent, AuditKind, AuditQuery};
use crate::client::Client;
use crate::error::Error;
use crate::ids::{ClientId, UserId};
use crate::user::{User, Username};

use super::{Access, Caller, Deps};

/// The audit log's filters as people type them (the `/admin` page, `GET
/// /api/v1/admin/audit`, `buzzgate audit query`); blank fields are no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// A username or a numeric user id.
    pub user: Option<String>,
    /// A client ID.
    pub client: Option<String>,
    /// An event kind (`token.issued`, …).
    pub kind: Option<String>,
    /// From (inclusive) and to (exclusive): RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` or
    /// `YYYY-MM-DD` read as UTC.
    pub since: Option<String>,
    pub until: Option<String>,
    /// 1 to 1000 (default 100).
    pub limit: Option<String>,
    /// How many matches to skip, newest first.
    pub offset: Option<String>,
}

/// Deepest page of the audit log reachable by offset (older events: narrow the time range).
pub const MAX_AUDIT_OFFSET: usize = 100_000;

fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A time as the filters take it.
pub fn parse_instant(field: &str, s: &str) -> Result<OffsetDateTime, Error> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let day = format_description!("[year]-[month]-[day]");
    if let Ok(t) = time::PrimitiveDateTime::parse(s, &seconds)
        .or_else(|_| time::PrimitiveDateTime::parse(s, &minutes))
    {
        return Ok(t.assume_utc());
    }
    if let Ok(d) = time::Date::parse(s, &day) {
        return Ok(d.midnight().assume_utc());
    }
    Err(Error::invalid_request(format!(
        "`{field}` must be a date and time like 2026-12-02T09:30 (UTC) or RFC 3339"
    )))
}

/// Most apps one search returns.
pub const MAX_SEARCH_RESULTS: usize = 200;

/// Most users one page of [`AdminService::users`] returns.
pub const MAX_USER_PAGE: u32 = 1000;

#[derive(Debug, Clone)]
pub struct AdminService {
    pub(crate) deps: Arc<Deps>,
}

impl AdminService {
    /// Apps whose name contains `text` (any case) or whose id is `text`, newest first; every
    /// app when `text` is blank. At most `limit` (capped at [`MAX_SEARCH_RESULTS`]).
    pub async fn search_apps(
        &self,
        caller: &Caller,
        text: &str,
        limit: usize,
    ) -> Result<Vec<Client>, Error> {
        caller.admin(Access::Read)?;
        let text = text.trim();
        if text.chars().count() > 128 || text.chars().any(char::is_control) {
            return Err(Error::invalid_request(
                "search text must be at most 128 characters",
            ));
        }
        let limit = limit.clamp(1, MAX_SEARCH_RESULTS);
        Ok(self.deps.clients.search(text, limit).await?)
    }

    /// Users of the directory in id order, after the id `after` (0: from the first), at most
    /// `limit` (1 to [`MAX_USER_PAGE`]).
    pub async fn users(&self, caller: &Caller, after: i64, limit: u32) -> Result<Vec<User>, Error> {
        caller.admin(Access::Read)?;
        Ok(self
            .deps
            .users
            .list(after.max(0), limit.clamp(1, MAX_USER_PAGE))
            .await?)
    }

    /// Bans the user named `username` (`banned`), or lifts the ban. A banned user cannot sign
    /// in, their sessions stop resolving, and tokens acting for them are refused wherever the
    /// user is read (refresh, userinfo, introspection, Buzz spends). Banning a banned user
    /// keeps the first ban's time. Unknown names are `not_found`.
    pub async fn set_banned(
        &self,
        caller: &Caller,
        username: &str,
        banned: bool,
    ) -> Result<User, Error> {
        caller.admin(Access::Write)?;
        let missing = || Error::not_found(format!("No user is named {username}"));
        let name = Username::parse(username)?;
        let user = self
            .deps
            .users
            .find_by_username(&name)
            .await?
            .ok_or_else(missing)?;
        if user.is_banned() == banned {
            return Ok(user);
        }
        let at = banned.then(|| self.deps.now());
        self.deps
            .users
            .set_banned(user.id, at)
            .await?
            .ok_or_else(missing)
    }

    /// The audit log filtered as people typed it: the query it stands for, and its page.
    pub async fn audit_filtered(
        &self,
        caller: &Caller,
        f: &AuditFilter,
    ) -> Result<(AuditQuery, Vec<AuditEvent>), Error> {
        caller.admin(Access::Read)?;
        let mut q = AuditQuery::default();
        if let Some(u) = blank(&f.user) {
            q.user_id = Some(match u.parse::<i64>() {
                Ok(id) => UserId(id),
                Err(_) => {
                    let name = Username::parse(u)?;
                    self.deps
                        .users
                        .find_by_username(&name)
                        .await?
                        .ok_or_else(|| Error::invalid_request(format!("No user is named {u}")))?
                        .id
                }
            });
        }
        if let Some(c) = blank(&f.client) {
            q.client_id = Some(
                ClientId::parse(c)
                    .ok_or_else(|| Error::invalid_request("`client` is not a client ID"))?,
            );
        }
        if let Some(k) = blank(&f.kind) {
            q.kind = Some(AuditKind::parse(k).ok_or_else(|| {
                Error::invalid_request(format!(
                    "`kind` must be one of {}",
                    AuditKind::ALL.map(AuditKind::as_str).join(", ")
                ))
            })?);
        }
        if let Some(t) = blank(&f.since) {
            q.since = Some(parse_instant("since", t)?);
        }
        if let Some(t) = blank(&f.until) {
            q.until = Some(parse_instant("until", t)?);
        }
        if let Some(l) = blank(&f.limit) {
            q.limit = l
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=AuditQuery::MAX_LIMIT).contains(l))
                .ok_or_else(|| Error::invalid_request("`limit` must be 1 to 1000"))?;
        }
        if let Some(o) = blank(&f.offset) {
            q.offset = o
                .parse::<usize>()
                .ok()
                .filter(|o| *o <= MAX_AUDIT_OFFSET)
                .ok_or_else(|| Error::invalid_request("`offset` must be 0 to 100000"))?;
        }
        let events = self.audit(caller, &q).await?;
        Ok((q, events))
    }

    /// One page of the audit log, newest first.
    pub async fn audit(
        &self,
        caller: &Caller,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, Error> {
        caller.admin(Access::Read)?;
        if let (Some(since), Some(until)) = (query.since, query.until)
            && until <= since
        {
            return Err(Error::invalid_request("`until` must be after `since`"));
        }
        Ok(self.deps.audit.query(query).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::memory::MemoryStore;
    use crate::ports::{ManualClock, SeededRandom};
    use crate::service::{Buzzgate, Caller, Config};
    use crate::user::{NewUser, Username};

    async fn gate_with(names: &[&str]) -> Buzzgate {
        let clock = Arc::new(ManualClock::at_epoch());
        let store = MemoryStore::new(clock);
        let g = Buzzgate::new(store.deps(Arc::new(SeededRandom::new(3)), Config::default()));
        for name in names {
            g.sessions()
                .create_user(NewUser {
                    username: Username::parse(name).unwrap(),
                    email: None,
                    email_verified: false,
                    password: Some("correct horse battery".into()),
                    roles: vec![],
                })
                .await
                .unwrap();
        }
        g
    }

    #[tokio::test]
    async fn users_are_listed_in_pages_by_id() {
        let g = gate_with(&["ada", "bob", "cy"]).await;
        let op = Caller::operator();
        let all = g.admin().users(&op, 0, 100).await.unwrap();
        let names: Vec<&str> = all.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(names, ["ada", "bob", "cy"]);
        let page = g.admin().users(&op, all[0].id.0, 1).await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].username.as_str(), "bob");
        assert!(g.admin().users(&Caller::Anonymous, 0, 10).await.is_err());
    }

    #[tokio::test]
    async fn a_ban_stops_sign_in_and_lifting_it_restores_it() {
        let g = gate_with(&["ada"]).await;
        let op = Caller::operator();
        let sessions = g.sessions();
        let login = || sessions.login("ada", "correct horse battery", None);
        assert!(login().await.is_ok());
        let banned = g.admin().set_banned(&op, "ada", true).await.unwrap();
        assert!(banned.is_banned());
        let first = banned.banned_at;
        assert!(login().await.is_err());
        assert!(g.deps.active_user(banned.id).await.unwrap().is_none());
        // Banning again keeps the first time.
        let again = g.admin().set_banned(&op, "ada", true).await.unwrap();
        assert_eq!(again.banned_at, first);
        let lifted = g.admin().set_banned(&op, "ada", false).await.unwrap();
        assert!(!lifted.is_banned());
        assert!(login().await.is_ok());
        let err = g.admin().set_banned(&op, "nobody", true).await.unwrap_err();
        assert_eq!(err.code(), "not_found");
        assert!(err.description().contains("No user is named nobody"));
    }
}
