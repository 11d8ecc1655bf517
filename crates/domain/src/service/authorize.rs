//! The authorize endpoint and the consent decision (SPEC 3.1), end to end.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditKind};
use crate::authorize::{self as rules, AuthorizationRequest, AuthorizeParams};
use crate::buzz::BuzzLimit;
use crate::catalogue::ScopeLine;
use crate::client::Client;
use crate::consent::{self, Approval, ConsentDecision};
use crate::error::Error;
use crate::grant::authorization_code::{self, CodeGrant};
use crate::ids::UserId;
use crate::scope::Scope;
use crate::user::{Role, User};

use super::documents::Freshness;
use super::rate_limit::Bucket;
use super::{Access, Caller, Deps};

/// What the HTTP layer must answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthorizeOutcome {
    /// JSON error, never a redirect (unknown client, bad redirect URI, access mode).
    Reject(Error),
    /// 303 to the login page with a `returnUrl` back here.
    LoginRequired,
    /// 302 to the client with `error`, `state` and `iss`.
    RedirectError { location: String },
    /// Render the consent page.
    Consent(Box<ConsentPrompt>),
    /// 302/303 to the client with `code`, `state` and `iss` (or `error=access_denied`).
    Redirect { location: String },
}

/// What the consent page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentPrompt {
    pub client: Client,
    pub request: AuthorizationRequest,
    /// Bits asked for beyond the app's ceiling (trimmed, shown as not granted).
    pub trimmed: Scope,
    /// One line per scope the request holds, with the catalogue's labels.
    pub lines: Vec<ScopeLine>,
    /// The lines of `trimmed`.
    pub trimmed_lines: Vec<ScopeLine>,
    /// Show the Buzz cap control (the request holds a scope that spends within caps:
    /// AIServicesWrite in Civitai's catalogue).
    pub show_buzz_cap: bool,
    /// The cap to pre-fill: the stored one, else 5000 per day.
    pub buzz_limit: BuzzLimit,
}

/// The consent form's answer.
#[derive(Debug, Clone)]
pub struct ConsentAnswer {
    pub approved: bool,
    pub remember: bool,
    /// The raw `buzz_limit` field (JSON), absent when the form had none. Wins over `buzz_cap`.
    pub buzz_limit: Option<String>,
    /// The page's cap controls, when the form had them.
    pub buzz_cap: Option<crate::buzz::CapForm>,
}

#[derive(Debug, Clone)]
pub struct AuthorizeService {
    pub(crate) deps: Arc<Deps>,
}

/// A request that passed the checks that come before the consent decision.
enum Checked {
    Done(AuthorizeOutcome),
    Valid(Box<(Client, AuthorizationRequest, User)>),
}

/// The signed-in user behind an authorize request and when they signed in (`auth_time`).
type Person = (UserId, OffsetDateTime);

/// Who may authorize: a signed-in user (or an operator acting for one); anyone else is sent
/// to the login page.
fn person(caller: &Caller, now: OffsetDateTime) -> Option<Person> {
    match caller {
        Caller::Session(s) => Some((s.user, s.signed_in_at)),
        Caller::Operator {
            acting_for: Some(u),
        } => Some((*u, now)),
        _ => None,
    }
}

impl AuthorizeService {
    /// Runs SPEC 3.1 steps 1 to 5 for `user` (None: not signed in).
    async fn check(
        &self,
        params: &AuthorizeParams,
        user: Option<Person>,
        ip: Option<&str>,
    ) -> Result<Checked, Error> {
        let deps = &self.deps;
        let client = match rules::client_id_param(params) {
            Some(id) => match deps.find_client(&id, ip, Freshness::Current).await {
                Ok(found) => found,
                // A metadata document that cannot be had or is wrong: said plainly, never
                // redirected (its redirect URIs are not known to be the client's).
                Err(e @ Error::InvalidClient { .. }) => {
                    return Ok(Checked::Done(AuthorizeOutcome::Reject(e)));
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let (client, target) = match rules::resolve_client(params, client.as_deref()) {
            Ok((c, t)) => (c.clone(), t),
            Err(e) => return Ok(Checked::Done(AuthorizeOutcome::Reject(e))),
        };
        let Some((user_id, _)) = user else {
            return Ok(Checked::Done(AuthorizeOutcome::LoginRequired));
        };
        deps.check_rate(Bucket::AuthorizeUser(user_id)).await?;
        let Some(user) = deps.active_user(user_id).await? else {
            return Ok(Checked::Done(AuthorizeOutcome::LoginRequired));
        };
        if let Err(e) = client.admits_user(user.has_role(Role::Tester)) {
            let ev = AuditEvent::new(AuditKind::AuthorizationDenied, deps.now())
                .user(user.id)
                .client(&client.id)
                .ip(ip)
                .meta("reason", client.access_mode.as_str());
            deps.audit(ev).await;
            return Ok(Checked::Done(AuthorizeOutcome::Reject(e)));
        }
        match rules::validate(params, &client, &target, deps.catalogue()) {
            Ok(req) => Ok(Checked::Valid(Box::new((client, req, user)))),
            Err(e) => Ok(Checked::Done(AuthorizeOutcome::RedirectError {
                location: e.location(&deps.config.issuer),
            })),
        }
    }

    /// `GET /authorize` (and a POST without `approved`): never approves by itself, but issues a
    /// code silently when a remembered consent covers the request.
    pub async fn authorize(
        &self,
        params: &AuthorizeParams,
        caller: &Caller,
        ip: Option<&str>,
    ) -> Result<AuthorizeOutcome, Error> {
        let person = person(caller, self.deps.now());
        let (client, req, user) = match self.check(params, person, ip).await? {
            Checked::Done(o) => return Ok(o),
            Checked::Valid(v) => *v,
        };
        let auth_time = person.map_or(self.deps.now(), |(_, t)| t);
        let existing = self.deps.consents.get(user.id, &client.id).await?;
        match consent::decide(existing.as_ref(), req.scope, &req.resources) {
            ConsentDecision::Skip => {
                let location = self
                    .issue_code(&client, &req, (user.id, auth_time), ip, "remembered")
                    .await?;
                Ok(AuthorizeOutcome::Redirect { location })
            }
            ConsentDecision::Prompt => {
                let buzz_limit = match existing {
                    Some(c) if !c.buzz_limit.is_unlimited() => c.buzz_limit,
                    _ => BuzzLimit::consent_default(),
                };
                let catalogue = self.deps.catalogue();
                let trimmed = req
                    .requested_scope
                    .beyond_ceiling(client.ceiling(), catalogue.always_granted());
                Ok(AuthorizeOutcome::Consent(Box::new(ConsentPrompt {
                    lines: catalogue.lines(req.scope),
                    trimmed_lines: catalogue.lines(trimmed),
                    trimmed,
                    show_buzz_cap: req.scope.intersects(catalogue.capped()),
                    buzz_limit,
                    client,
                    request: req,
                })))
            }
        }
    }

    /// `POST /authorize` from the consent form: the signed-in user with the CSRF proof.
    /// Re-validates everything: the form's hidden fields are as untrusted as a query string.
    pub async fn decide(
        &self,
        params: &AuthorizeParams,
        caller: &Caller,
        answer: &ConsentAnswer,
        ip: Option<&str>,
    ) -> Result<AuthorizeOutcome, Error> {
        let signed_in = caller.signed_in(Access::Write)?;
        let person = (signed_in.user, signed_in.signed_in_at);
        let (client, req, user) = match self.check(params, Some(person), ip).await? {
            Checked::Done(o) => return Ok(o),
            Checked::Valid(v) => *v,
        };
        let deps = &self.deps;
        let now = deps.now();
        if !answer.approved {
            let ev = AuditEvent::new(AuditKind::AuthorizationDenied, now)
                .user(user.id)
                .client(&client.id)
                .scope(req.scope)
                .ip(ip);
            deps.audit(ev).await;
            return Ok(AuthorizeOutcome::Redirect {
                location: rules::denied_location(&req, &deps.config.issuer),
            });
        }
        let chosen = match (&answer.buzz_limit, &answer.buzz_cap) {
            (None, Some(form)) => form.to_limit().map(Some),
            (json, _) => BuzzLimit::parse_form_field(json.as_deref()),
        };
        let buzz_limit = match chosen {
            Ok(l) => l,
            Err(e) => {
                let err = rules::RedirectError {
                    target: rules::RedirectTarget {
                        redirect_uri: req.redirect_uri.clone(),
                        state: Some(req.state.clone()),
                    },
                    error: e,
                };
                return Ok(AuthorizeOutcome::RedirectError {
                    location: err.location(&deps.config.issuer),
                });
            }
        };
        let approval = Approval {
            remember: answer.remember,
            buzz_limit,
            resources: req.resources.clone(),
        };
        let (existing, record) = deps
            .record_consent(user.id, &client.id, req.scope, |_| approval.clone(), now)
            .await?;
        if existing.as_ref().map(|c| &c.buzz_limit) != Some(&record.buzz_limit) {
            let ev = AuditEvent::new(AuditKind::BuzzLimitSet, now)
                .user(user.id)
                .client(&client.id)
                .meta(
                    "buzzLimit",
                    serde_json::to_string(&record.buzz_limit).unwrap_or_default(),
                );
            deps.audit(ev).await;
        }
        let location = self
            .issue_code(&client, &req, person, ip, "approved")
            .await?;
        Ok(AuthorizeOutcome::Redirect { location })
    }

    async fn issue_code(
        &self,
        client: &Client,
        req: &AuthorizationRequest,
        (user, auth_time): Person,
        ip: Option<&str>,
        how: &str,
    ) -> Result<String, Error> {
        let deps = &self.deps;
        let now = deps.now();
        let grant = CodeGrant {
            client_id: client.id.clone(),
            user_id: user,
            redirect_uri: req.redirect_uri.clone(),
            scope: req.scope,
            code_challenge: req.code_challenge.clone(),
            nonce: req.nonce.clone(),
            oidc: req.oidc,
            resources: req.resources.clone(),
            auth_time,
        };
        let (code, record) = authorization_code::issue(
            grant,
            now,
            deps.config.minter.ttls.code,
            deps.random.as_ref(),
        );
        deps.codes.insert(&record).await?;
        let ev = AuditEvent::new(AuditKind::AuthorizationGranted, now)
            .user(user)
            .client(&client.id)
            .scope(req.scope)
            .ip(ip)
            .meta("consent", how);
        deps.audit(ev).await;
        Ok(rules::success_location(
            req,
            code.expose(),
            &deps.config.issuer,
        ))
    }
}
