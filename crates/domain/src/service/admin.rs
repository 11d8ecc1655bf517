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

/// What [`AdminService::set_banned`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct BanChange {
    /// The user as stored now.
    pub user: User,
    /// Whether the ban state changed (`false`: the user was already banned, or not banned).
    pub changed: bool,
    /// Live tokens the ban revoked now (always 0 when lifting a ban).
    pub tokens_revoked: usize,
}

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
    /// in, their sessions stop resolving, no grant issues them tokens (`TokenService::admit`),
    /// and the ban revokes every live token of theirs in the same call: access and refresh
    /// tokens of every app (their families tombstoned, so a rotation racing the ban leaves no
    /// live head) and personal API keys, dropped from every node's token cache. The ban is
    /// stored first and the tokens revoked second, so a grant that read the user before the
    /// ban and wrote its tokens before the revocation is revoked with the rest.
    ///
    /// Banning a banned user keeps the first ban's time and revokes again whatever was
    /// issued since (a grant that read the user before the ban reached its node); it is
    /// audited again (`again=true`). Lifting a ban does **not** restore revoked tokens: the
    /// user signs in and authorizes anew. Audited as `user.banned` (metadata `by`: the
    /// caller, `tokens`: how many were revoked) and `user.unbanned` (only when a ban was
    /// lifted). Unknown names are `not_found`.
    pub async fn set_banned(
        &self,
        caller: &Caller,
        username: &str,
        banned: bool,
    ) -> Result<BanChange, Error> {
        caller.admin(Access::Write)?;
        let deps = &self.deps;
        let missing = || Error::not_found(format!("No user is named {username}"));
        let name = Username::parse(username)?;
        let mut user = deps
            .users
            .find_by_username(&name)
            .await?
            .ok_or_else(missing)?;
        let changed = user.is_banned() != banned;
        if changed {
            let at = banned.then(|| deps.now());
            user = deps
                .users
                .set_banned(user.id, at)
                .await?
                .ok_or_else(missing)?;
        }
        if !banned {
            if changed {
                let ev = AuditEvent::new(AuditKind::UserUnbanned, deps.now())
                    .user(user.id)
                    .meta("by", caller.kind());
                deps.audit(ev).await;
            }
            return Ok(BanChange {
                user,
                changed,
                tokens_revoked: 0,
            });
        }
        let revoked = deps.tokens.revoke_for_user(user.id, deps.now()).await?;
        deps.invalidate(&revoked).await?;
        let mut ev = AuditEvent::new(AuditKind::UserBanned, deps.now())
            .user(user.id)
            .meta("by", caller.kind())
            .meta("tokens", revoked.len());
        if !changed {
            ev = ev.meta("again", true);
        }
        deps.audit(ev).await;
        Ok(BanChange {
            user,
            changed,
            tokens_revoked: revoked.len(),
        })
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

    use crate::audit::AuditKind;
    use crate::ids::{ClientId, FamilyId, UserId};
    use crate::memory::MemoryStore;
    use crate::ports::{InsertOutcome, ManualClock, SeededRandom};
    use crate::scope::Scope;
    use crate::service::{Buzzgate, Caller, Config, Credentials};
    use crate::token::{NewToken, PlainToken, TokenHash, TokenKind, TokenMinter, TokenRecord};
    use crate::user::{NewUser, Username};

    /// A gate over one memory store, whose token cache is a store of its own (as a node's
    /// cache is not its database): only the service's invalidation drops a cached token.
    async fn gate_and_store(names: &[&str]) -> (Buzzgate, MemoryStore) {
        let clock = Arc::new(ManualClock::at_epoch());
        let store = MemoryStore::new(clock.clone());
        let mut deps = store.deps(Arc::new(SeededRandom::new(3)), Config::default());
        deps.cache = Arc::new(MemoryStore::new(clock));
        let g = Buzzgate::new(deps);
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
        (g, store)
    }

    async fn gate_with(names: &[&str]) -> Buzzgate {
        gate_and_store(names).await.0
    }

    /// A stored token of `kind` for `user` (an app's when `client` is set).
    async fn token(
        g: &Buzzgate,
        kind: TokenKind,
        user: UserId,
        client: Option<&ClientId>,
        family: Option<FamilyId>,
    ) -> (PlainToken, TokenRecord) {
        let new = NewToken {
            kind,
            client_id: client.cloned(),
            user_id: user,
            scope: Scope::USER_READ,
            family_id: family,
            auth_time: None,
            oidc: Default::default(),
            audience: Vec::new(),
        };
        let minted = TokenMinter::default().mint(new, g.deps.now(), g.deps.random.as_ref());
        let stored = g.deps.tokens.insert(std::slice::from_ref(&minted.1)).await;
        assert_eq!(stored.unwrap(), InsertOutcome::Inserted);
        minted
    }

    async fn accepted(g: &Buzzgate, t: &PlainToken) -> bool {
        g.tokens().validate_bearer(t.expose()).await.is_ok()
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
    async fn a_ban_stops_sign_in_and_sessions_and_lifting_it_restores_sign_in() {
        let g = gate_with(&["ada"]).await;
        let op = Caller::operator();
        let sessions = g.sessions();
        let login = || sessions.login("ada", "correct horse battery", None);
        let (cookie, _) = login().await.unwrap();
        let creds = Credentials {
            session: Some(cookie.expose().to_owned()),
            ..Credentials::default()
        };
        assert!(matches!(
            g.callers().identify(&creds).await.unwrap(),
            Caller::Session(_)
        ));
        let banned = g.admin().set_banned(&op, "ada", true).await.unwrap();
        assert!(banned.changed && banned.user.is_banned());
        let first = banned.user.banned_at;
        assert!(login().await.is_err());
        assert!(g.deps.active_user(banned.user.id).await.unwrap().is_none());
        // A session opened before the ban no longer resolves: its requests are anonymous.
        assert!(sessions.resolve(cookie.expose()).await.unwrap().is_none());
        assert_eq!(
            g.callers().identify(&creds).await.unwrap(),
            Caller::Anonymous
        );
        // Banning again keeps the first time.
        let again = g.admin().set_banned(&op, "ada", true).await.unwrap();
        assert!(!again.changed);
        assert_eq!(again.user.banned_at, first);
        let lifted = g.admin().set_banned(&op, "ada", false).await.unwrap();
        assert!(lifted.changed && !lifted.user.is_banned());
        assert_eq!(lifted.tokens_revoked, 0);
        assert!(login().await.is_ok());
        let err = g.admin().set_banned(&op, "nobody", true).await.unwrap_err();
        assert_eq!(err.code(), "not_found");
        assert!(err.description().contains("No user is named nobody"));
    }

    #[tokio::test]
    async fn a_ban_revokes_every_live_token_of_the_user_and_is_audited() {
        let (g, store) = gate_and_store(&["ada", "bob"]).await;
        let op = Caller::operator();
        let all = g.admin().users(&op, 0, 10).await.unwrap();
        let (ada, bob) = (all[0].id, all[1].id);
        let app = ClientId::generate(g.deps.random.as_ref());
        let family = FamilyId::generate(g.deps.random.as_ref());
        let (access, _) = token(&g, TokenKind::Access, ada, Some(&app), Some(family)).await;
        let (_, refresh) = token(&g, TokenKind::Refresh, ada, Some(&app), Some(family)).await;
        let (robot, _) = token(&g, TokenKind::Access, ada, Some(&app), None).await;
        let (key, _) = token(&g, TokenKind::ApiKey, ada, None, None).await;
        let (bobs, _) = token(&g, TokenKind::Access, bob, Some(&app), None).await;
        // Validated once, so each sits in the token cache.
        for t in [&access, &robot, &key, &bobs] {
            assert!(accepted(&g, t).await);
            let hash = TokenHash::of_presented(t.expose()).unwrap();
            assert!(g.deps.cache.get(&hash).await.unwrap().is_some());
        }

        // Only an admin may ban, and a refused call revokes nothing.
        let err = g.admin().set_banned(&Caller::Anonymous, "ada", true).await;
        assert!(err.is_err());
        assert!(accepted(&g, &access).await);

        let ban = g.admin().set_banned(&op, "ada", true).await.unwrap();
        assert!(ban.changed);
        assert_eq!(ban.tokens_revoked, 4, "access, refresh, app token, API key");
        // Refused by validation alone, which never reads the user (cache included).
        for t in [&access, &robot, &key] {
            assert!(!accepted(&g, t).await);
        }
        assert!(accepted(&g, &bobs).await, "other users keep theirs");
        assert!(g.deps.tokens.list_api_keys(ada).await.unwrap().is_empty());
        let row = g.deps.tokens.find(&refresh.hash).await.unwrap().unwrap();
        assert!(row.revoked_at.is_some());
        // The family is tombstoned: a rotation that lost the race writes nothing.
        let (_, late) = TokenMinter::default().mint(
            NewToken {
                kind: TokenKind::Refresh,
                client_id: Some(app.clone()),
                user_id: ada,
                scope: Scope::USER_READ,
                family_id: Some(family),
                auth_time: None,
                oidc: Default::default(),
                audience: Vec::new(),
            },
            g.deps.now(),
            g.deps.random.as_ref(),
        );
        assert_eq!(
            g.deps.tokens.insert(&[late]).await.unwrap(),
            InsertOutcome::FamilyRevoked
        );
        let events = store.audit_events();
        let banned = events.last().unwrap();
        assert_eq!(banned.kind, AuditKind::UserBanned);
        assert_eq!(banned.user_id, Some(ada));
        assert_eq!(banned.metadata["by"], "operator");
        assert_eq!(banned.metadata["tokens"], "4");
        assert!(!banned.metadata.contains_key("again"));

        // Lifting the ban restores no token.
        let lifted = g.admin().set_banned(&op, "ada", false).await.unwrap();
        assert_eq!((lifted.changed, lifted.tokens_revoked), (true, 0));
        for t in [&access, &robot, &key] {
            assert!(!accepted(&g, t).await);
        }
        let unbanned = store.audit_events().pop().unwrap();
        assert_eq!(unbanned.kind, AuditKind::UserUnbanned);
        assert_eq!(unbanned.user_id, Some(ada));
        assert_eq!(unbanned.metadata["by"], "operator");
        let count = store.audit_events().len();
        let same = g.admin().set_banned(&op, "ada", false).await.unwrap();
        assert!(!same.changed);
        assert_eq!(store.audit_events().len(), count, "nothing to record");

        // A key made after the unban is live until the next ban, which takes it too; a ban
        // of a banned user revokes what was issued since and says it was a repeat.
        let (fresh, _) = token(&g, TokenKind::ApiKey, ada, None, None).await;
        assert!(accepted(&g, &fresh).await);
        let ban = g.admin().set_banned(&op, "ada", true).await.unwrap();
        assert_eq!((ban.changed, ban.tokens_revoked), (true, 1));
        assert!(!accepted(&g, &fresh).await);
        let (meanwhile, _) = token(&g, TokenKind::ApiKey, ada, None, None).await;
        let again = g.admin().set_banned(&op, "ada", true).await.unwrap();
        assert_eq!((again.changed, again.tokens_revoked), (false, 1));
        assert!(!accepted(&g, &meanwhile).await);
        let repeat = store.audit_events().pop().unwrap();
        assert_eq!(repeat.kind, AuditKind::UserBanned);
        assert_eq!(repeat.metadata["again"], "true");
        assert_eq!(repeat.metadata["tokens"], "1");
    }
}
