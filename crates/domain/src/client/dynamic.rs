//! Dynamic client registration (RFC 7591, SPEC 14; docs/mcp.md): how an MCP client that knows
//! nothing but a URL gets a `client_id`. Only public clients (PKCE, no secret) with https or
//! loopback redirect URIs; the app has no owner ([`UserId::NOBODY`]), is unverified, and says
//! so on the consent page and in `/admin`.

use serde::{Deserialize, Serialize};

use super::{Client, ClientRegistration, GrantType, RedirectKind, RedirectUri};
use crate::catalogue::Catalogue;
use crate::error::Error;
use crate::ids::UserId;
use crate::scope::ScopeValue;

/// The RFC 7591 §2 metadata a client sends (unknown fields are ignored, as §2 allows).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DynamicRegistration {
    /// RFC 7592 §2.2: an update names the app it replaces (ignored at registration, where
    /// the server assigns the ID).
    pub client_id: Option<String>,
    pub redirect_uris: Vec<String>,
    pub client_name: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    /// Space-separated scope names (or a mask) the client may ask for; absent: every scope.
    pub scope: Option<String>,
    pub client_uri: Option<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    /// SEP-837: `native` or `web` (informational).
    pub application_type: Option<String>,
}

/// The RFC 7591 §3.2.1 / RFC 7592 §3 answer (keys in sorted order, as every body of this
/// server). No field is ever an empty string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisteredClient {
    pub client_id: String,
    pub client_id_issued_at: i64,
    pub client_name: String,
    pub grant_types: Vec<&'static str>,
    pub redirect_uris: Vec<String>,
    pub registration_access_token: String,
    pub registration_client_uri: String,
    pub response_types: Vec<&'static str>,
    pub scope: String,
    pub token_endpoint_auth_method: &'static str,
}

impl RegisteredClient {
    /// The registration of `client` as its registrant sees it: `access_token` is the one
    /// just issued or just presented (only its hash is stored); the management URI is under
    /// `issuer`'s registration endpoint.
    pub fn of(
        client: &Client,
        catalogue: &Catalogue,
        issuer: &str,
        access_token: &str,
    ) -> RegisteredClient {
        RegisteredClient {
            client_id: client.id.as_str().to_owned(),
            client_id_issued_at: client.created_at.unix_timestamp(),
            client_name: client.name.clone(),
            grant_types: client.grants.iter().map(|g| g.as_str()).collect(),
            redirect_uris: client
                .redirect_uris
                .iter()
                .map(|u| u.as_str().to_owned())
                .collect(),
            registration_access_token: access_token.to_owned(),
            registration_client_uri: format!(
                "{issuer}/api/auth/oauth/register/{}",
                client.id.as_str()
            ),
            response_types: vec!["code"],
            scope: catalogue.names_string(client.allowed_scopes),
            token_endpoint_auth_method: "none",
        }
    }
}

fn metadata(d: impl Into<crate::error::Description>) -> Error {
    Error::InvalidClientMetadata(d.into())
}

impl DynamicRegistration {
    /// The registration this metadata stands for, or the RFC 7591 §3.2.2 error. A request for
    /// a secret (`client_secret_basic` / `_post`) is answered with a public client
    /// (`token_endpoint_auth_method: none`): §2 lets the server replace requested values.
    pub fn validate(self, catalogue: &Catalogue) -> Result<ClientRegistration, Error> {
        if self.redirect_uris.is_empty() {
            return Err(Error::InvalidRedirectUri(
                "redirect_uris must name at least one URI".into(),
            ));
        }
        for u in &self.redirect_uris {
            let parsed =
                RedirectUri::parse(u).map_err(|e| Error::InvalidRedirectUri(e.description()))?;
            if !matches!(
                parsed.kind(),
                RedirectKind::Https | RedirectKind::LoopbackHttp
            ) {
                return Err(Error::InvalidRedirectUri(
                    "a registered redirect URI must be https or loopback http".into(),
                ));
            }
        }
        if let Some(m) = self.token_endpoint_auth_method.as_deref()
            && !matches!(m, "none" | "client_secret_basic" | "client_secret_post")
        {
            return Err(metadata(format!(
                "token_endpoint_auth_method `{}` is not supported (none)",
                m.chars().take(40).collect::<String>()
            )));
        }
        if let Some(types) = &self.response_types
            && types.iter().any(|t| t != "code")
        {
            return Err(metadata("response_types may only be [\"code\"]"));
        }
        let grants = match &self.grant_types {
            None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            Some(list) => {
                let mut out = Vec::new();
                for g in list {
                    match GrantType::parse(g) {
                        Some(grant @ (GrantType::AuthorizationCode | GrantType::RefreshToken)) => {
                            if !out.contains(&grant) {
                                out.push(grant);
                            }
                        }
                        _ => {
                            return Err(metadata(format!(
                                "grant_types: only authorization_code and refresh_token, not `{}`",
                                g.chars().take(60).collect::<String>()
                            )));
                        }
                    }
                }
                if !out.contains(&GrantType::AuthorizationCode) {
                    out.insert(0, GrantType::AuthorizationCode);
                }
                out
            }
        };
        let name = self
            .client_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("Unnamed app")
            .to_owned();
        // The ceiling: the catalogue's scopes named (OpenID Connect names such as
        // `offline_access`, which MCP clients add, are requests, not a ceiling).
        let allowed_scopes = match self.scope.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => {
                let asked = catalogue.parse_request(s).map_err(|e| {
                    metadata(format!("scope: {}", crate::Error::from(e).description()))
                })?;
                Some(ScopeValue::Mask(
                    (asked.scope | catalogue.always_granted()).bits(),
                ))
            }
            _ => None,
        };
        Ok(ClientRegistration {
            name,
            description: None,
            redirect_uris: self.redirect_uris,
            allowed_origins: None,
            is_confidential: Some(false),
            allowed_scopes,
            grants: Some(grants.iter().map(|g| g.as_str().to_owned()).collect()),
            owner_buzz_limit: None,
        })
    }
}

impl UserId {
    /// The owner of an app nobody owns (registered by itself, RFC 7591): no user has it.
    pub const NOBODY: UserId = UserId(0);
}

impl Client {
    /// Registered by itself (RFC 7591), with no owner.
    pub fn is_unowned(&self) -> bool {
        self.owner == UserId::NOBODY
    }

    /// Whether every redirect URI is on this machine (loopback): any program running on the
    /// user's computer could receive the code, so consent warns (SPEC 14).
    pub fn redirects_only_to_loopback(&self) -> bool {
        !self.redirect_uris.is_empty() && self.redirect_uris.iter().all(|u| u.is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(uris: &[&str]) -> DynamicRegistration {
        DynamicRegistration {
            redirect_uris: uris.iter().map(|u| u.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn public_clients_with_https_or_loopback_redirects() {
        let c = Catalogue::civitai();
        let ok = reg(&[
            "http://127.0.0.1:33418/callback",
            "https://agent.example/cb",
        ])
        .validate(&c)
        .unwrap();
        assert_eq!(ok.is_confidential, Some(false));
        assert_eq!(ok.name, "Unnamed app", "never an empty name");
        assert_eq!(
            ok.grants,
            Some(vec!["authorization_code".into(), "refresh_token".into()])
        );
        for bad in [
            &[][..],
            &["com.example.app:/cb"][..],
            &["http://agent.example/cb"][..],
            &["not a uri"][..],
        ] {
            assert!(
                matches!(reg(bad).validate(&c), Err(Error::InvalidRedirectUri(_))),
                "{bad:?}"
            );
        }
        let mut secret = reg(&["https://a.example/cb"]);
        secret.token_endpoint_auth_method = Some("client_secret_basic".into());
        assert_eq!(
            secret.validate(&c).unwrap().is_confidential,
            Some(false),
            "replaced by none"
        );
        let mut jwt = reg(&["https://a.example/cb"]);
        jwt.token_endpoint_auth_method = Some("private_key_jwt".into());
        assert!(matches!(
            jwt.validate(&c),
            Err(Error::InvalidClientMetadata(_))
        ));
        let mut cc = reg(&["https://a.example/cb"]);
        cc.grant_types = Some(vec!["client_credentials".into()]);
        assert!(matches!(
            cc.validate(&c),
            Err(Error::InvalidClientMetadata(_))
        ));
        let mut scoped = reg(&["https://a.example/cb"]);
        scoped.scope = Some("UserRead BuzzRead offline_access".into());
        let v = scoped.clone().validate(&c).unwrap();
        assert_eq!(
            v.allowed_scopes,
            Some(ScopeValue::Mask(
                (crate::Scope::USER_READ | crate::Scope::BUZZ_READ).bits()
            )),
            "OIDC names are not part of the ceiling"
        );
        scoped.scope = Some("Nope".into());
        assert!(matches!(
            scoped.validate(&c),
            Err(Error::InvalidClientMetadata(_))
        ));
    }
}
