//! The device flow around the token endpoint: starting it, and the verification page's
//! lookup, approval and denial.

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditKind};
use crate::client::{Client, ClientAuth};
use crate::consent::{Approval, Consent};
use crate::error::{Error, StoreError};
use crate::grant::device_code::{self, DeviceAuthorization, DeviceResolution, UserCode};

use crate::token::PlainToken;
use crate::user::Role;

use super::rate_limit::Bucket;
use super::tokens::check_origin;
use super::{Access, Caller, Deps};

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone)]
pub struct DeviceStarted {
    pub device_code: PlainToken,
    pub user_code: UserCode,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: u64,
}

#[derive(Debug, Clone)]
pub struct DeviceService {
    pub(crate) deps: Arc<Deps>,
}

/// `POST /device` as sent.
#[derive(Debug, Clone)]
pub struct DeviceStartRequest {
    pub client: ClientAuth,
    /// The browser `Origin` header (checked against a public client's allowed origins).
    pub origin: Option<String>,
    pub ip: Option<String>,
    pub scope: Option<String>,
}

impl DeviceService {
    /// `POST /device`: the same client checks as the token endpoint (authentication
    /// throttled per address, the browser origin of a public client, the client's request
    /// bucket), and a `disabled` app gets nothing.
    pub async fn start(&self, req: &DeviceStartRequest) -> Result<DeviceStarted, Error> {
        let deps = &self.deps;
        let ip = req.ip.as_deref();
        let client = deps.authenticate_and_count(&req.client, ip, true).await?;
        check_origin(deps, &client, req.origin.as_deref(), ip).await?;
        client.check_enabled()?;
        let scope = req.scope.as_deref();
        let requested = match scope.filter(|s| !s.trim().is_empty()) {
            Some(s) => deps.catalogue().parse_permissions(s)?,
            None => None,
        };
        let ttl = deps.config.minter.ttls.device;
        // A user-code collision is astronomically rare but possible; try a few fresh codes.
        for _ in 0..4 {
            let started = device_code::start(
                &client,
                requested,
                deps.catalogue().always_granted(),
                deps.now(),
                ttl,
                deps.random.as_ref(),
            )?;
            match deps.devices.insert(&started.record).await {
                Ok(()) => {
                    let uri = deps.config.verification_uri();
                    let user_code = started.record.user_code.clone();
                    return Ok(DeviceStarted {
                        verification_uri_complete: format!("{uri}?code={}", user_code.as_str()),
                        verification_uri: uri,
                        device_code: started.device_code,
                        user_code,
                        expires_in: ttl.whole_seconds(),
                        interval: started.record.interval,
                    });
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::ServerError(
            "could not allocate a unique user code".into(),
        ))
    }

    /// The verification page's lookup: which app asks for what (signed-in users only).
    /// Wrong or expired codes count against the user's guess budget (RFC 8628 5.1,
    /// `docs/security.md` section 7); once it is spent, lookups are `rate_limited`.
    pub async fn info(
        &self,
        caller: &Caller,
        user_code: &str,
    ) -> Result<(DeviceAuthorization, Client), Error> {
        let user = caller.signed_in(Access::Read)?.user;
        let deps = &self.deps;
        let guesses = Bucket::DeviceCodeFailures(user);
        deps.check_failures(guesses).await?;
        let Some(code) = UserCode::normalize(user_code) else {
            deps.record_failure(guesses).await;
            return Err(Error::invalid_request("Invalid or expired code"));
        };
        let found = deps
            .devices
            .find_by_user_code(&code)
            .await?
            .filter(|r| crate::token::is_live(Some(r.expires_at), deps.now()));
        let Some(rec) = found else {
            deps.record_failure(guesses).await;
            return Err(Error::invalid_grant("Invalid or expired code"));
        };
        let client = deps
            .clients
            .get(&rec.client_id)
            .await?
            .ok_or_else(|| Error::invalid_grant("Unknown application"))?;
        Ok((rec, Arc::unwrap_or_clone(client)))
    }

    /// Approve or deny, by the signed-in user with the CSRF proof. Approval records a grant
    /// for (user, app) so caps and Connected-Apps revocation apply to device logins too; an
    /// app whose access mode does not admit the user cannot be approved.
    pub async fn resolve(
        &self,
        caller: &Caller,
        user_code: &str,
        approve: bool,
        ip: Option<&str>,
    ) -> Result<DeviceAuthorization, Error> {
        let signed_in = caller.signed_in(Access::Write)?;
        let user = signed_in.user;
        let deps = &self.deps;
        let guesses = Bucket::DeviceCodeFailures(user);
        deps.check_failures(guesses).await?;
        let Some(code) = UserCode::normalize(user_code) else {
            deps.record_failure(guesses).await;
            return Err(Error::invalid_request("Invalid or expired code"));
        };
        let now = deps.now();
        if approve
            && let Some(rec) = deps.devices.find_by_user_code(&code).await?
            && let Some(client) = deps.clients.get(&rec.client_id).await?
        {
            // The code's own state (expired, used) is the atomic step's to report below.
            let tester = deps
                .users
                .get(user)
                .await?
                .is_some_and(|u| u.has_role(Role::Tester));
            client.admits_user(tester)?;
        }
        let resolution = DeviceResolution {
            user_id: user,
            auth_time: signed_in.signed_in_at,
            approve,
            now,
        };
        let rec = match deps.devices.resolve(&code, &resolution).await? {
            Ok(rec) => rec,
            Err(e) => {
                deps.record_failure(guesses).await;
                return Err(e);
            }
        };
        if approve {
            // A device approval keeps the stored "remember", Buzz limit and resources.
            let keep = |existing: Option<&Consent>| Approval {
                remember: existing.is_some_and(|c| c.remembered),
                buzz_limit: None,
                resources: existing.map(|c| c.resources.clone()).unwrap_or_default(),
            };
            deps.record_consent(user, &rec.client_id, rec.scope, keep, now)
                .await?;
        }
        let kind = if approve {
            AuditKind::AuthorizationGranted
        } else {
            AuditKind::AuthorizationDenied
        };
        let ev = AuditEvent::new(kind, now)
            .user(user)
            .client(&rec.client_id)
            .scope(rec.scope)
            .ip(ip)
            .meta("grant", "device_code");
        deps.audit(ev).await;
        Ok(rec)
    }
}
