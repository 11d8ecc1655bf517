//! Registration and update: the owner's create and edit requests, and the per-field rules both
//! apply before a [`Client`] is created or replaced.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Client, ClientKind, GrantType, Origin, RedirectKind, RedirectUri};
use crate::buzz::BuzzLimit;
use crate::catalogue::Catalogue;
use crate::error::Error;
use crate::scope::{Scope, ScopeError, ScopeValue};

/// Most redirect URIs (and allowed origins) one client may register.
pub const MAX_REDIRECT_URIS: usize = 20;
/// Most allowed origins one client may register.
pub const MAX_ALLOWED_ORIGINS: usize = 20;
/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// The raw create request of SPEC 3.9, as the owner sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientRegistration {
    pub name: String,
    pub description: Option<String>,
    pub redirect_uris: Vec<String>,
    pub allowed_origins: Option<Vec<String>>,
    pub is_confidential: Option<bool>,
    /// A mask, a string of names, or an array of names; seed 004's `scopes` is the same
    /// field. Absent: every scope of the catalogue.
    #[serde(alias = "scopes")]
    pub allowed_scopes: Option<ScopeValue>,
    pub grants: Option<Vec<String>>,
    /// The owner's own cap on what the app may spend for them through `client_credentials`
    /// (SPEC 13); absent or empty: none.
    pub owner_buzz_limit: Option<BuzzLimit>,
}

/// A registration that passed every rule; only this can create a [`Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedRegistration {
    pub name: String,
    pub description: String,
    pub redirect_uris: Vec<RedirectUri>,
    pub allowed_origins: Vec<Origin>,
    pub kind: ClientKind,
    pub allowed_scopes: Scope,
    pub grants: Vec<GrantType>,
    pub owner_buzz_limit: BuzzLimit,
}

impl ClientRegistration {
    pub fn validate(self, catalogue: &Catalogue) -> Result<ValidatedRegistration, Error> {
        let kind = if self.is_confidential.unwrap_or(true) {
            ClientKind::Confidential
        } else {
            ClientKind::Public
        };
        let name = validate_name(&self.name)?;
        let description = validate_description(self.description.as_deref().unwrap_or(""))?;
        let redirect_uris = validate_redirect_uris(&self.redirect_uris, kind)?;
        let allowed_origins = validate_origins(
            self.allowed_origins.as_deref().unwrap_or(&[]),
            &redirect_uris,
        )?;
        let allowed_scopes = match &self.allowed_scopes {
            None => catalogue.all(),
            Some(v) => validate_scopes(v, catalogue)?,
        };
        let grants = validate_grants(self.grants.as_deref(), kind)?;
        let owner_buzz_limit = self.owner_buzz_limit.unwrap_or_default();
        owner_buzz_limit.validate()?;
        Ok(ValidatedRegistration {
            name,
            description,
            redirect_uris,
            allowed_origins,
            kind,
            allowed_scopes,
            grants,
            owner_buzz_limit,
        })
    }
}

/// An owner's edit (SPEC 3.9). Kind, grants, verification and access mode cannot be changed
/// here. Absent fields stay as they are; an empty `allowedOrigins` re-derives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
    #[serde(alias = "scopes")]
    pub allowed_scopes: Option<ScopeValue>,
    /// The owner's cap on the app's own spending (`[]` removes it); only the owner may set it.
    pub owner_buzz_limit: Option<BuzzLimit>,
}

impl ClientUpdate {
    /// Whether this edit touches what only the app's owner may change.
    pub fn is_owner_only(&self) -> bool {
        self.owner_buzz_limit.is_some()
    }

    /// The client after this edit, with the same per-field rules as registration.
    pub fn apply(
        self,
        client: &Client,
        now: OffsetDateTime,
        catalogue: &Catalogue,
    ) -> Result<Client, Error> {
        let mut next = client.clone();
        if let Some(name) = self.name {
            next.name = validate_name(&name)?;
        }
        if let Some(description) = self.description {
            next.description = validate_description(&description)?;
        }
        if let Some(uris) = self.redirect_uris {
            next.redirect_uris = validate_redirect_uris(&uris, client.kind)?;
        }
        if let Some(origins) = self.allowed_origins {
            next.allowed_origins = validate_origins(&origins, &next.redirect_uris)?;
        }
        if let Some(v) = &self.allowed_scopes {
            next.allowed_scopes = validate_scopes(v, catalogue)?;
        }
        if let Some(limit) = self.owner_buzz_limit {
            limit.validate()?;
            next.owner_buzz_limit = limit;
        }
        next.updated_at = now;
        Ok(next)
    }
}

fn validate_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(Error::invalid_request("name must be 1-128 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid_request(
            "name must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

fn validate_description(description: &str) -> Result<String, Error> {
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid_request(
            "description must be at most 500 characters",
        ));
    }
    // Line breaks are fine in prose; other controls only serve to spoof the consent page.
    if description
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Error::invalid_request(
            "description must not contain control characters",
        ));
    }
    Ok(description.to_owned())
}

fn validate_redirect_uris(uris: &[String], kind: ClientKind) -> Result<Vec<RedirectUri>, Error> {
    if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
        return Err(Error::invalid_request(
            "redirectUris must contain 1-20 URIs",
        ));
    }
    let mut out: Vec<RedirectUri> = Vec::with_capacity(uris.len());
    for (i, raw) in uris.iter().enumerate() {
        let uri = RedirectUri::parse(raw).map_err(|e| {
            Error::invalid_request(format!("redirectUris[{i}]: {}", e.description()))
        })?;
        // A private-use scheme can be claimed by any app on the device, so it proves nothing
        // about who receives the code; only PKCE-bound public clients may rely on it.
        if uri.kind() == RedirectKind::PrivateUse && kind == ClientKind::Confidential {
            return Err(Error::invalid_request(format!(
                "redirectUris[{i}]: private-use URI schemes are only allowed for public clients"
            )));
        }
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    Ok(out)
}

fn validate_origins(origins: &[String], redirects: &[RedirectUri]) -> Result<Vec<Origin>, Error> {
    if origins.len() > MAX_ALLOWED_ORIGINS {
        return Err(Error::invalid_request(
            "allowedOrigins must contain at most 20 origins",
        ));
    }
    let mut out: Vec<Origin> = Vec::new();
    if origins.is_empty() {
        // As Civitai does: an empty list is derived from the http(s) redirect URIs.
        for origin in redirects.iter().filter_map(Origin::from_redirect_uri) {
            if !out.contains(&origin) {
                out.push(origin);
            }
        }
        return Ok(out);
    }
    for (i, raw) in origins.iter().enumerate() {
        let origin = Origin::parse(raw).map_err(|e| {
            Error::invalid_request(format!("allowedOrigins[{i}]: {}", e.description()))
        })?;
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}

fn validate_scopes(value: &ScopeValue, catalogue: &Catalogue) -> Result<Scope, Error> {
    catalogue.resolve(value).map_err(|e| match (value, e) {
        (ScopeValue::Mask(_), ScopeError::OutOfRange | ScopeError::Undefined(_)) => {
            Error::invalid_scope(format!(
                "allowedScopes must be a mask of defined scope bits (0..={})",
                catalogue.all().bits()
            ))
        }
        (_, e) => Error::invalid_scope(e.to_string()),
    })
}

fn validate_grants(grants: Option<&[String]>, kind: ClientKind) -> Result<Vec<GrantType>, Error> {
    let Some(names) = grants else {
        return Ok(GrantType::DEFAULT.to_vec());
    };
    if names.is_empty() {
        return Err(Error::invalid_request(
            "grants must name at least one grant",
        ));
    }
    let mut out: Vec<GrantType> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let grant = GrantType::parse(name).ok_or_else(|| {
            Error::invalid_request(format!("grants[{i}] is not a supported grant type"))
        })?;
        if !out.contains(&grant) {
            out.push(grant);
        }
    }
    if kind == ClientKind::Public && out.contains(&GrantType::ClientCredentials) {
        return Err(Error::invalid_request(
            "client_credentials requires a confidential client",
        ));
    }
    // A refresh token only ever descends from a user grant; alone it could never be issued.
    if out.contains(&GrantType::RefreshToken)
        && !out.contains(&GrantType::AuthorizationCode)
        && !out.contains(&GrantType::DeviceCode)
    {
        return Err(Error::invalid_request(
            "grants: refresh_token requires authorization_code or device_code",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tests::{client, is_invalid_request, now, public_reg, reg, uris};

    #[test]
    fn registration_defaults_are_confidential_full_scope_code_and_refresh() {
        let v = reg(&["https://app.example.com/cb"])
            .validate(&Catalogue::civitai())
            .unwrap();
        assert_eq!(v.name, "My App");
        assert_eq!(v.description, "");
        assert_eq!(v.kind, ClientKind::Confidential);
        assert_eq!(v.allowed_scopes, Scope::FULL);
        assert_eq!(
            v.grants,
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert_eq!(
            v.allowed_origins,
            vec![Origin::parse("https://app.example.com").unwrap()]
        );
    }

    #[test]
    fn registration_deserializes_from_camel_case_json() {
        let r: ClientRegistration = serde_json::from_str(
            r#"{"name":"X","redirectUris":["https://a.io/cb"],"allowedOrigins":["https://a.io"],
                "isConfidential":false,"allowedScopes":114689,"grants":["authorization_code"]}"#,
        )
        .unwrap();
        let v = r.validate(&Catalogue::civitai()).unwrap();
        assert_eq!(v.kind, ClientKind::Public);
        assert_eq!(v.allowed_scopes, Scope::AI_SERVICES);
        assert_eq!(v.grants, vec![GrantType::AuthorizationCode]);
    }

    #[test]
    fn registration_name_is_trimmed_1_to_128_chars_without_controls() {
        let named = |n: &str| ClientRegistration {
            name: n.into(),
            ..reg(&["https://a.io/cb"])
        };
        assert_eq!(
            named("  Hi  ")
                .validate(&Catalogue::civitai())
                .unwrap()
                .name,
            "Hi"
        );
        assert!(
            named(&"é".repeat(128))
                .validate(&Catalogue::civitai())
                .is_ok()
        );
        for bad in ["", "   ", "a\u{0}b", "tab\there", "new\nline"] {
            assert!(
                is_invalid_request(named(bad).validate(&Catalogue::civitai())),
                "{bad:?}"
            );
        }
        let e = named(&"é".repeat(129))
            .validate(&Catalogue::civitai())
            .unwrap_err();
        assert_eq!(e, Error::invalid_request("name must be 1-128 characters"));
    }

    #[test]
    fn registration_description_is_at_most_500_chars() {
        let described = |d: &str| ClientRegistration {
            description: Some(d.into()),
            ..reg(&["https://a.io/cb"])
        };
        assert!(
            described(&"ü".repeat(500))
                .validate(&Catalogue::civitai())
                .is_ok()
        );
        assert!(
            described("line one\nline two")
                .validate(&Catalogue::civitai())
                .is_ok()
        );
        assert!(is_invalid_request(
            described(&"ü".repeat(501)).validate(&Catalogue::civitai())
        ));
        assert!(is_invalid_request(
            described("bell\u{7}").validate(&Catalogue::civitai())
        ));
    }

    #[test]
    fn registration_needs_1_to_20_valid_redirect_uris() {
        assert!(is_invalid_request(reg(&[]).validate(&Catalogue::civitai())));
        let many: Vec<String> = (0..21).map(|i| format!("https://a.io/cb{i}")).collect();
        let r = ClientRegistration {
            redirect_uris: many[..20].to_vec(),
            ..reg(&[])
        };
        assert_eq!(
            r.validate(&Catalogue::civitai())
                .unwrap()
                .redirect_uris
                .len(),
            20
        );
        let r = ClientRegistration {
            redirect_uris: many,
            ..reg(&[])
        };
        assert!(is_invalid_request(r.validate(&Catalogue::civitai())));
        let e = reg(&["https://a.io/cb", "http://evil.com/cb"])
            .validate(&Catalogue::civitai())
            .unwrap_err();
        assert!(e.description().starts_with("redirectUris[1]: "), "{e:?}");
        let v = reg(&["https://a.io/cb", "https://a.io/cb"])
            .validate(&Catalogue::civitai())
            .unwrap();
        assert_eq!(v.redirect_uris.len(), 1);
    }

    #[test]
    fn private_use_redirects_only_for_public_clients() {
        let e = reg(&["com.example.app:/cb"])
            .validate(&Catalogue::civitai())
            .unwrap_err();
        assert_eq!(
            e,
            Error::invalid_request(
                "redirectUris[0]: private-use URI schemes are only allowed for public clients"
            )
        );
        let v = public_reg(&["com.example.app:/cb"])
            .validate(&Catalogue::civitai())
            .unwrap();
        assert_eq!(v.redirect_uris[0].kind(), RedirectKind::PrivateUse);
        assert!(v.allowed_origins.is_empty());
    }

    #[test]
    fn allowed_origins_are_derived_and_deduplicated_when_absent() {
        let v = public_reg(&[
            "https://app.example.com/a",
            "https://APP.example.com:443/b",
            "http://localhost:3000/cb",
            "com.example.app:/cb",
        ])
        .validate(&Catalogue::civitai())
        .unwrap();
        let got: Vec<_> = v.allowed_origins.iter().map(Origin::as_str).collect();
        assert_eq!(got, ["https://app.example.com", "http://localhost:3000"]);
        let empty = ClientRegistration {
            allowed_origins: Some(vec![]),
            ..public_reg(&["https://a.io/cb"])
        };
        assert_eq!(
            empty
                .validate(&Catalogue::civitai())
                .unwrap()
                .allowed_origins
                .len(),
            1
        );
    }

    #[test]
    fn allowed_origins_are_validated_when_given() {
        let with = |o: &[&str]| ClientRegistration {
            allowed_origins: Some(o.iter().map(|s| s.to_string()).collect()),
            ..public_reg(&["https://a.io/cb"])
        };
        let v = with(&["https://Web.io:443", "https://web.io"])
            .validate(&Catalogue::civitai())
            .unwrap();
        assert_eq!(
            v.allowed_origins,
            vec![Origin::parse("https://web.io").unwrap()]
        );
        let e = with(&["https://web.io", "https://web.io/path"])
            .validate(&Catalogue::civitai())
            .unwrap_err();
        assert!(e.description().starts_with("allowedOrigins[1]: "));
        let many: Vec<String> = (0..21).map(|i| format!("https://w{i}.io")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(is_invalid_request(
            with(&refs).validate(&Catalogue::civitai())
        ));
    }

    #[test]
    fn allowed_scopes_outside_the_flags_is_invalid_scope() {
        let scoped = |bits| ClientRegistration {
            allowed_scopes: Some(ScopeValue::Mask(bits)),
            ..reg(&["https://a.io/cb"])
        };
        assert_eq!(
            scoped(0)
                .validate(&Catalogue::civitai())
                .unwrap()
                .allowed_scopes,
            Scope::NONE
        );
        assert_eq!(
            scoped(114_688)
                .validate(&Catalogue::civitai())
                .unwrap()
                .allowed_scopes
                .bits(),
            114_688
        );
        let e = scoped(33_554_432)
            .validate(&Catalogue::civitai())
            .unwrap_err();
        assert_eq!(
            (e.code(), e.description().as_ref()),
            (
                "invalid_scope",
                "allowedScopes must be a mask of defined scope bits (0..=33554431)"
            )
        );
        let named = |v: serde_json::Value| {
            serde_json::from_value::<ClientRegistration>(serde_json::json!({
                "name": "x", "redirectUris": ["https://a.io/cb"], "scopes": v
            }))
            .unwrap()
            .validate(&Catalogue::civitai())
        };
        assert_eq!(
            named(serde_json::json!(["UserRead", "buzzread"]))
                .unwrap()
                .allowed_scopes,
            Scope::USER_READ | Scope::BUZZ_READ
        );
        assert_eq!(
            named(serde_json::json!("AIServices"))
                .unwrap()
                .allowed_scopes,
            Scope::AI_SERVICES
        );
        let e = named(serde_json::json!(["profile"])).unwrap_err();
        assert_eq!(
            (e.code(), e.description().as_ref()),
            ("invalid_scope", "unknown scope name `profile`")
        );
    }

    #[test]
    fn grant_rules_refuse_unknown_names_and_impossible_combinations() {
        let granted = |g: &[&str], public: bool| ClientRegistration {
            grants: Some(g.iter().map(|s| s.to_string()).collect()),
            is_confidential: Some(!public),
            ..reg(&["https://a.io/cb"])
        };
        assert!(is_invalid_request(
            granted(&["password"], false).validate(&Catalogue::civitai())
        ));
        assert!(is_invalid_request(
            granted(&["implicit"], true).validate(&Catalogue::civitai())
        ));
        assert!(is_invalid_request(
            granted(&[], false).validate(&Catalogue::civitai())
        ));
        assert_eq!(
            granted(&["client_credentials"], true)
                .validate(&Catalogue::civitai())
                .unwrap_err(),
            Error::invalid_request("client_credentials requires a confidential client")
        );
        assert!(is_invalid_request(
            granted(&["refresh_token"], false).validate(&Catalogue::civitai())
        ));
        assert!(is_invalid_request(
            granted(&["refresh_token", "client_credentials"], false)
                .validate(&Catalogue::civitai())
        ));
        let v = granted(
            &[
                "urn:ietf:params:oauth:grant-type:device_code",
                "refresh_token",
                "refresh_token",
            ],
            true,
        )
        .validate(&Catalogue::civitai())
        .unwrap();
        assert_eq!(
            v.grants,
            vec![GrantType::DeviceCode, GrantType::RefreshToken]
        );
        assert!(
            granted(&["client_credentials"], false)
                .validate(&Catalogue::civitai())
                .is_ok()
        );
    }

    // ---- update --------------------------------------------------------------------------

    #[test]
    fn update_applies_the_same_rules_and_keeps_kind_and_grants() {
        let c = client(reg(&["https://a.io/cb"]), None);
        let later = now() + time::Duration::hours(1);
        let u = ClientUpdate {
            name: Some(" New ".into()),
            redirect_uris: Some(vec!["https://b.io/cb".into()]),
            allowed_scopes: Some(Scope::READ_ONLY.into()),
            ..Default::default()
        };
        let next = u.apply(&c, later, &Catalogue::civitai()).unwrap();
        assert_eq!(next.name, "New");
        assert_eq!(next.redirect_uris, uris(&["https://b.io/cb"]));
        assert_eq!(next.allowed_scopes, Scope::READ_ONLY);
        assert_eq!((next.kind, &next.grants), (c.kind, &c.grants));
        // Origins are left alone unless given; an empty list re-derives them.
        assert_eq!(next.allowed_origins, c.allowed_origins);
        assert_eq!((next.created_at, next.updated_at), (c.created_at, later));
        let rederive = ClientUpdate {
            allowed_origins: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(
            rederive
                .apply(&next, later, &Catalogue::civitai())
                .unwrap()
                .allowed_origins,
            vec![Origin::parse("https://b.io").unwrap()]
        );

        let private = ClientUpdate {
            redirect_uris: Some(vec!["com.example.app:/cb".into()]),
            ..Default::default()
        };
        assert!(is_invalid_request(private.clone().apply(
            &c,
            later,
            &Catalogue::civitai()
        )));
        let p = client(public_reg(&["https://a.io/cb"]), None);
        assert!(private.apply(&p, later, &Catalogue::civitai()).is_ok());

        for bad in [
            ClientUpdate {
                name: Some("".into()),
                ..Default::default()
            },
            ClientUpdate {
                redirect_uris: Some(vec![]),
                ..Default::default()
            },
            ClientUpdate {
                allowed_origins: Some(vec!["https://a.io/x".into()]),
                ..Default::default()
            },
        ] {
            assert!(is_invalid_request(bad.apply(
                &c,
                later,
                &Catalogue::civitai()
            )));
        }
        let bad_scope = ClientUpdate {
            allowed_scopes: Some(ScopeValue::Mask(u64::MAX)),
            ..Default::default()
        };
        assert_eq!(
            bad_scope
                .apply(&c, later, &Catalogue::civitai())
                .unwrap_err()
                .code(),
            "invalid_scope"
        );
    }
}
