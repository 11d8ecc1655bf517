//! The device-code grant (RFC 8628): one poll of the device authorization, and tokens once the
//! user approved.

use crate::client::{Client, GrantType};
use crate::error::Error;
use crate::grant::device_code::DevicePoll;
use crate::ids::FamilyId;
use crate::scope::OidcScopes;
use crate::token::{TokenHash, TokenResponse};

use super::{Issue, TokenService, consent_gone, required};

impl TokenService {
    pub(super) async fn device_token(
        &self,
        client: &Client,
        device_code: &Option<String>,
        ip: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        if !client.allows_grant(GrantType::DeviceCode) {
            return Err(Error::UnauthorizedClient(
                "Client not authorized for device flow".into(),
            ));
        }
        let code = required(device_code, "device_code")?;
        let hash = TokenHash::of_presented(code)
            .ok_or_else(|| Error::invalid_grant("Invalid grant: unknown device_code"))?;
        client.check_enabled()?;
        let deps = &self.deps;
        let poll = DevicePoll {
            client_id: client.id.clone(),
            now: deps.now(),
        };
        let grant = deps.devices.poll(&hash, &poll).await?.result?;
        self.admit(client, grant.user_id).await?;
        if !self
            .consent_stands(grant.user_id, &client.id, Some(grant.approved_at))
            .await?
        {
            return Err(consent_gone());
        }
        let family = FamilyId::generate(deps.random.as_ref());
        let scope = grant
            .scope
            .trim_to_ceiling(client.ceiling(), deps.catalogue().always_granted());
        let issue = Issue {
            client,
            user_id: grant.user_id,
            scope,
            family: Some(family),
            auth_time: Some(grant.auth_time),
            with_refresh: client.allows_grant(GrantType::RefreshToken),
            grant: "device_code",
            ip,
            oidc: OidcScopes::NONE,
            audience: Vec::new(),
            grant_audience: Vec::new(),
        };
        let (response, _) = self.issue(issue).await?;
        self.confirm_consent(grant.user_id, client, Some(grant.approved_at), Some(family))
            .await?;
        Ok(response)
    }
}
