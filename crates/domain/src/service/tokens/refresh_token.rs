//! The `refresh_token` grant: rotation in one atomic step of the store, with reuse outside the
//! grace window revoking the whole family.

use crate::audit::{AuditEvent, AuditKind};
use crate::client::{AccessMode, Client, GrantType};
use crate::error::Error;
use crate::grant::refresh_token::{RefreshRotation, RotationDecision};
use crate::ids::UserId;
use crate::scope::{OidcScopes, Scope};
use crate::token::{NewToken, TokenHash, TokenKind, TokenResponse};

use super::{TokenService, required};

impl TokenService {
    pub(super) async fn refresh(
        &self,
        client: &Client,
        token: &Option<String>,
        scope: &Option<String>,
        resources: &[String],
        ip: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        if !client.allows_grant(GrantType::RefreshToken) {
            return Err(Error::UnauthorizedClient(
                "Unauthorized client: refresh_token is not registered".into(),
            ));
        }
        let token = required(token, "refresh_token")?;
        let deps = &self.deps;
        let requested = match scope.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => deps.catalogue().parse_permissions(s)?,
            None => None,
        };
        let hash = TokenHash::of_presented(token)
            .ok_or_else(|| Error::invalid_grant("Invalid grant: refresh token is invalid"))?;
        client.check_enabled()?;
        if client.access_mode == AccessMode::Testers {
            // Only this mode needs to know the user before rotating.
            if let Some(row) = deps.tokens.find(&hash).await?
                && row.client_id.as_ref() == Some(&client.id)
            {
                self.admit(client, row.user_id).await?;
            }
        }
        let now = deps.now();
        let blank = |kind| NewToken {
            kind,
            client_id: None,
            user_id: UserId(0),
            scope: Scope::NONE,
            family_id: None,
            auth_time: None,
            oidc: OidcScopes::NONE,
            audience: Vec::new(),
        };
        let (access, new_access) =
            deps.config
                .minter
                .mint(blank(TokenKind::Access), now, deps.random.as_ref());
        let (refresh, new_refresh) =
            deps.config
                .minter
                .mint(blank(TokenKind::Refresh), now, deps.random.as_ref());
        let rotation = RefreshRotation {
            client_id: client.id.clone(),
            ceiling: client.ceiling(),
            requested,
            requested_resources: crate::resource::parse_resources(resources)?,
            always: deps.catalogue().always_granted(),
            now,
            grace: deps.config.refresh_grace,
            new_access,
            new_refresh,
        };
        let refreshed = AuditEvent::new(AuditKind::TokenRefreshed, now)
            .client(&client.id)
            .ip(ip);
        // With a store that is also the audit log, the event shares the rotation's commit: it
        // records the rotation that committed (docs/benchmarks.md, "W2"). A consent found
        // withdrawn just below then revokes the family the rotation extended.
        let (decision, recorded) = if deps.config.audit_with_tokens {
            deps.tokens
                .rotate_refresh_audited(&hash, &rotation, &refreshed)
                .await?
        } else {
            (deps.tokens.rotate_refresh(&hash, &rotation).await?, false)
        };
        let event = decision.audited(&refreshed);
        match decision {
            RotationDecision::Rotate {
                access: rec,
                superseded,
                ..
            } => {
                // Earlier retries' successors, retired in the rotation: no node may keep
                // accepting them from its read cache.
                deps.invalidate(&superseded).await?;
                if let Some(ev) = event.filter(|_| !recorded) {
                    deps.audit(ev).await;
                }
                self.confirm_consent(rec.user_id, client, None, rec.family_id)
                    .await?;
                Ok(TokenResponse {
                    access_token: access,
                    expires_in: deps.config.minter.ttls.access.whole_seconds(),
                    refresh_token: Some(refresh),
                    scope: rec.scope,
                    id_token: None,
                })
            }
            RotationDecision::RevokeFamily { family, presented } => {
                let revoked = deps.tokens.revoke_family(family, now).await?;
                deps.invalidate(&revoked).await?;
                let ev = AuditEvent::new(AuditKind::TokenReuseDetected, now)
                    .user(presented.user_id)
                    .client(&client.id)
                    .ip(ip)
                    .meta("grant", "refresh_token")
                    .meta("family", family)
                    .meta("revoked", revoked.len());
                deps.audit(ev).await;
                Err(Error::invalid_grant(
                    "Invalid grant: refresh token has already been used",
                ))
            }
            RotationDecision::Reject(e) => Err(e),
        }
    }
}
