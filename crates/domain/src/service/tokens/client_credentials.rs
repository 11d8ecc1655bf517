//! The `client_credentials` grant: a confidential app acting for its owner, without a refresh
//! token.

use crate::client::Client;
use crate::error::Error;
use crate::grant::client_credentials;
use crate::scope::OidcScopes;
use crate::token::TokenResponse;

use super::{Issue, TokenService};

impl TokenService {
    pub(super) async fn client_credentials(
        &self,
        client: &Client,
        scope: &Option<String>,
        resources: &[String],
        ip: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        // No user consent stands between the app and a resource here: the app's own token
        // is for whatever resources it names.
        let audience = crate::resource::parse_resources(resources)?;
        let requested = match scope.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => self.deps.catalogue().parse_permissions(s)?,
            None => None,
        };
        let scope = client_credentials::grant_scope(
            client,
            requested,
            self.deps.catalogue().always_granted(),
        )?;
        self.admit(client, client.owner).await?;
        let issue = Issue {
            client,
            user_id: client.owner,
            scope,
            family: None,
            auth_time: None,
            with_refresh: false,
            grant: "client_credentials",
            ip,
            oidc: OidcScopes::NONE,
            grant_audience: audience.clone(),
            audience,
        };
        Ok(self.issue(issue).await?.0)
    }
}
