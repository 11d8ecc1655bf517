//! The device flow around the token endpoint: starting it, and the verification page's
//! lookup, approval and denial.

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditKind};
use crate::client::{Client, ClientAuth};
use crate::consent::{self, Approval};
use crate::error::{Error, StoreError};
use crate::grant::device_code::{self, DeviceAuthorization, DeviceResolution, UserCode};
use crate::ids::UserId;
use crate::scope::Scope;
use crate::token::PlainToken;

use super::Deps;

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

impl DeviceService {
    /// `POST /device`.
    pub async fn start(
        &self,
        auth: &ClientAuth,
        scope: Option<&str>,
    ) -> Result<DeviceStarted, Error> {
        let deps = &self.deps;
        let client = deps.authenticate_client(auth).await?;
        let requested = match scope.filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(Scope::parse(s)?),
            None => None,
        };
        let ttl = deps.config.minter.ttls.device;
        // A user-code collision is astronomically rare but possible; try a few fresh codes.
        for _ in 0..4 {
            let started =
                device_code::start(&client, requested, deps.now(), ttl, deps.random.as_ref())?;
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

    /// The verification page's lookup: which app asks for what.
    pub async fn info(&self, user_code: &str) -> Result<(DeviceAuthorization, Client), Error> {
        let deps = &self.deps;
        let code = UserCode::normalize(user_code)
            .ok_or_else(|| Error::invalid_request("Invalid or expired code"))?;
        let rec = deps
            .devices
            .find_by_user_code(&code)
            .await?
            .filter(|r| crate::token::is_live(Some(r.expires_at), deps.now()))
            .ok_or_else(|| Error::invalid_grant("Invalid or expired code"))?;
        let client = deps
            .clients
            .get(&rec.client_id)
            .await?
            .ok_or_else(|| Error::invalid_grant("Unknown application"))?;
        Ok((rec, client))
    }

    /// Approve or deny. Approval records a grant for (user, app) so caps and Connected-Apps
    /// revocation apply to device logins too.
    pub async fn resolve(
        &self,
        user: UserId,
        user_code: &str,
        approve: bool,
        ip: Option<&str>,
    ) -> Result<DeviceAuthorization, Error> {
        let deps = &self.deps;
        let code = UserCode::normalize(user_code)
            .ok_or_else(|| Error::invalid_request("Invalid or expired code"))?;
        let now = deps.now();
        let resolution = DeviceResolution {
            user_id: user,
            approve,
            now,
        };
        let rec = deps.devices.resolve(&code, &resolution).await??;
        if approve {
            let existing = deps.consents.get(user, &rec.client_id).await?;
            let approval = Approval {
                remember: existing.as_ref().is_some_and(|c| c.remembered),
                buzz_limit: None,
            };
            let record = consent::record_approval(
                existing.as_ref(),
                user,
                &rec.client_id,
                rec.scope,
                &approval,
                now,
            );
            deps.consents.upsert(&record).await?;
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
