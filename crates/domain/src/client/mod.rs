//! OAuth apps (clients): registration and update rules, redirect URI and origin parsing and
//! matching, client secrets, and client authentication at the token-side endpoints.
//!
//! One file per job: `grants` (grant types, kinds, access modes), `redirect_uri`, `origin`,
//! `secret`, `registration` (create and update rules); the [`Client`] itself and its
//! authentication live here. Every type is re-exported here, at `client::`.

pub mod document;
pub mod dynamic;
mod grants;
mod origin;
mod redirect_uri;
mod registration;
mod secret;

use std::fmt;

use time::OffsetDateTime;

use crate::buzz::BuzzLimit;
use crate::error::Error;
use crate::ids::{ClientId, UserId};
use crate::scope::Scope;

pub use grants::{AccessMode, ClientKind, GrantType};
pub use origin::Origin;
pub use redirect_uri::{RedirectKind, RedirectUri, match_redirect_uri};
pub use registration::{
    ClientRegistration, ClientUpdate, MAX_ALLOWED_ORIGINS, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS,
    MAX_REDIRECT_URIS, ValidatedRegistration,
};
pub use secret::{ClientSecret, SecretHash};

/// A registered OAuth app.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub id: ClientId,
    pub owner: UserId,
    pub name: String,
    pub description: String,
    pub redirect_uris: Vec<RedirectUri>,
    pub allowed_origins: Vec<Origin>,
    pub kind: ClientKind,
    /// `None` for public clients; for a confidential client `None` means no secret matches.
    pub secret_hash: Option<SecretHash>,
    pub grants: Vec<GrantType>,
    pub allowed_scopes: Scope,
    pub access_mode: AccessMode,
    pub is_verified: bool,
    pub is_resource_server: bool,
    /// The owner's cap on the app's spending for the owner through `client_credentials`
    /// (empty: none). Consented users' caps live on their consents.
    pub owner_buzz_limit: BuzzLimit,
    /// The hash of the registration access token of a dynamically registered app (RFC 7592,
    /// docs/mcp.md): what lets its registrant read, update and delete it. `None` for every
    /// other app.
    pub registration_token: Option<SecretHash>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// How many times the stored client has been replaced: the condition of
    /// `ClientStore::update`, so an edit made from a stale read cannot undo another.
    pub revision: u64,
}

impl Client {
    /// A new client from a validated registration. Only a confidential client keeps a hash of
    /// `secret`; a public client never has one, whatever is passed.
    pub fn new(
        id: ClientId,
        owner: UserId,
        reg: ValidatedRegistration,
        secret: Option<&ClientSecret>,
        now: OffsetDateTime,
    ) -> Client {
        let secret_hash = match reg.kind {
            ClientKind::Confidential => secret.map(|s| SecretHash::of(s.expose())),
            ClientKind::Public => None,
        };
        Client {
            id,
            owner,
            name: reg.name,
            description: reg.description,
            redirect_uris: reg.redirect_uris,
            allowed_origins: reg.allowed_origins,
            kind: reg.kind,
            secret_hash,
            grants: reg.grants,
            allowed_scopes: reg.allowed_scopes,
            access_mode: AccessMode::Open,
            is_verified: false,
            is_resource_server: false,
            owner_buzz_limit: reg.owner_buzz_limit,
            registration_token: None,
            created_at: now,
            updated_at: now,
            revision: 0,
        }
    }

    pub fn is_confidential(&self) -> bool {
        self.kind == ClientKind::Confidential
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
    }

    /// See [`match_redirect_uri`].
    pub fn match_redirect_uri(&self, requested: &str) -> Option<&RedirectUri> {
        match_redirect_uri(&self.redirect_uris, requested)
    }

    /// The most a token of this app may carry (before `UserRead` is added).
    pub fn ceiling(&self) -> Scope {
        self.allowed_scopes
    }

    /// The browser `Origin` check of SPEC 3.2: only public clients that registered origins are
    /// checked. No `Origin` header (a native app, a server) passes.
    pub fn check_origin(&self, origin: Option<&str>) -> Result<(), Error> {
        if self.is_confidential() || self.allowed_origins.is_empty() {
            return Ok(());
        }
        let Some(origin) = origin else {
            return Ok(());
        };
        match Origin::parse(origin) {
            Ok(o) if self.allowed_origins.contains(&o) => Ok(()),
            _ => Err(Error::OriginNotAllowed),
        }
    }

    /// Whether the app may get tokens at all (device start, client credentials): a
    /// `disabled` app may not, whoever asks (SPEC 13).
    pub fn check_enabled(&self) -> Result<(), Error> {
        match self.access_mode {
            AccessMode::Disabled => Err(Error::UnauthorizedClient(
                "This application is not currently available.".into(),
            )),
            AccessMode::Open | AccessMode::Testers => Ok(()),
        }
    }

    /// The access mode at the token endpoint, for the user the tokens would act for: a
    /// `disabled` app gets none (`unauthorized_client`); a `testers` app only for testers
    /// (`invalid_grant`). The same rule as [`Client::admits_user`], in the token endpoint's
    /// vocabulary (RFC 6749 §5.2).
    pub fn admits_at_token(&self, is_tester: bool) -> Result<(), Error> {
        self.check_enabled()?;
        match self.access_mode {
            AccessMode::Testers if !is_tester => Err(Error::invalid_grant(
                "Invalid grant: access to this application is currently limited to testers.",
            )),
            _ => Ok(()),
        }
    }

    /// Whether a user may authorize this app under its access mode.
    pub fn admits_user(&self, is_tester: bool) -> Result<(), Error> {
        match self.access_mode {
            AccessMode::Open => Ok(()),
            AccessMode::Testers if is_tester => Ok(()),
            AccessMode::Testers => Err(Error::access_denied(
                "Access to this application is currently limited to testers.",
            )),
            AccessMode::Disabled => Err(Error::access_denied(
                "This application is not currently available.",
            )),
        }
    }

    /// Client authentication at the token, revoke and introspect endpoints (SPEC 3.2).
    pub fn authenticate(&self, auth: &ClientAuth) -> Result<(), Error> {
        let fail = || Err(Error::invalid_client(auth.method == AuthMethod::Basic));
        if auth.client_id != self.id {
            return fail();
        }
        match self.kind {
            ClientKind::Confidential => match (&self.secret_hash, auth.secret.as_deref()) {
                (Some(hash), Some(presented)) if hash.verify(presented) => Ok(()),
                _ => fail(),
            },
            // An empty secret is how many libraries spell "none" (`client_id:` in Basic);
            // any real secret from a public client is refused so it is never relied upon.
            ClientKind::Public => match auth.secret.as_deref() {
                None | Some("") => Ok(()),
                Some(_) => fail(),
            },
        }
    }

    pub fn require_confidential(&self) -> Result<(), Error> {
        if self.is_confidential() {
            Ok(())
        } else {
            Err(Error::UnauthorizedClient(
                "This grant requires a confidential client".into(),
            ))
        }
    }
}

/// How the client presented its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// `client_secret_basic` (HTTP Basic); failures answer 401.
    Basic,
    /// `client_secret_post` (form or JSON body).
    Post,
    /// `none`: only a `client_id` (public clients).
    None,
}

/// The credentials a request carried. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientAuth {
    pub client_id: ClientId,
    pub secret: Option<String>,
    pub method: AuthMethod,
}

impl ClientAuth {
    /// Credentials sent as fields (`client_id`, and `client_secret` when the client has
    /// one): `client_secret_post`, or `none` for a public client. An id that cannot be a
    /// client ID is `invalid_client`; a missing one is `invalid_request`.
    pub fn from_fields(
        client_id: Option<&str>,
        client_secret: Option<&str>,
    ) -> Result<ClientAuth, crate::Error> {
        let id = client_id
            .filter(|s| !s.is_empty())
            .ok_or_else(|| crate::Error::invalid_request("Missing client_id"))?;
        let client_id = ClientId::parse(id).ok_or_else(crate::Error::unknown_client)?;
        Ok(match client_secret {
            Some(s) => ClientAuth {
                client_id,
                secret: Some(s.to_owned()),
                method: AuthMethod::Post,
            },
            None => ClientAuth {
                client_id,
                secret: None,
                method: AuthMethod::None,
            },
        })
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("method", &self.method)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    //! The client's own tests, and the helpers every file of `client` tests with.
    use super::*;
    use crate::ports::SeededRandom;
    use proptest::prelude::*;

    pub(super) fn uri(s: &str) -> RedirectUri {
        RedirectUri::parse(s).unwrap()
    }

    pub(super) fn uris(list: &[&str]) -> Vec<RedirectUri> {
        list.iter().map(|s| uri(s)).collect()
    }

    pub(super) fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-01-01 00:00:00 UTC)
    }

    pub(super) fn reg(redirects: &[&str]) -> ClientRegistration {
        ClientRegistration {
            name: "My App".into(),
            redirect_uris: redirects.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    pub(super) fn public_reg(redirects: &[&str]) -> ClientRegistration {
        ClientRegistration {
            is_confidential: Some(false),
            ..reg(redirects)
        }
    }

    pub(super) fn client(r: ClientRegistration, secret: Option<&ClientSecret>) -> Client {
        Client::new(
            ClientId::parse("app-1").unwrap(),
            UserId(7),
            r.validate(&crate::catalogue::Catalogue::civitai()).unwrap(),
            secret,
            now(),
        )
    }

    fn auth(id: &str, secret: Option<&str>, method: AuthMethod) -> ClientAuth {
        ClientAuth {
            client_id: ClientId::parse(id).unwrap(),
            secret: secret.map(str::to_owned),
            method,
        }
    }

    pub(super) fn is_invalid_request(r: Result<impl fmt::Debug, Error>) -> bool {
        matches!(r, Err(Error::InvalidRequest(_)))
    }

    #[test]
    fn new_client_hashes_the_secret_only_when_confidential() {
        let secret = ClientSecret::generate(&SeededRandom::new(9));
        let c = client(reg(&["https://a.io/cb"]), Some(&secret));
        assert!(c.is_confidential());
        assert!(c.secret_hash.unwrap().verify(secret.expose()));
        assert_eq!(c.access_mode, AccessMode::Open);
        assert!(!c.is_verified && !c.is_resource_server);
        assert_eq!((c.created_at, c.updated_at), (now(), now()));
        assert_eq!(c.ceiling(), Scope::FULL);
        assert!(c.allows_grant(GrantType::AuthorizationCode));
        assert!(!c.allows_grant(GrantType::ClientCredentials));
        let p = client(public_reg(&["https://a.io/cb"]), Some(&secret));
        assert_eq!(p.secret_hash, None);
    }

    #[test]
    fn confidential_client_authenticates_with_its_secret_by_basic_or_post() {
        let secret = ClientSecret::generate(&SeededRandom::new(2));
        let c = client(reg(&["https://a.io/cb"]), Some(&secret));
        for method in [AuthMethod::Basic, AuthMethod::Post] {
            assert_eq!(
                c.authenticate(&auth("app-1", Some(secret.expose()), method)),
                Ok(())
            );
        }
    }

    #[test]
    fn wrong_or_missing_secret_is_invalid_client_flagging_basic() {
        let secret = ClientSecret::generate(&SeededRandom::new(2));
        let c = client(reg(&["https://a.io/cb"]), Some(&secret));
        assert_eq!(
            c.authenticate(&auth("app-1", Some("nope"), AuthMethod::Basic)),
            Err(Error::invalid_client(true))
        );
        assert_eq!(
            c.authenticate(&auth("app-1", Some("nope"), AuthMethod::Post)),
            Err(Error::invalid_client(false))
        );
        assert_eq!(
            c.authenticate(&auth("app-1", None, AuthMethod::None)),
            Err(Error::invalid_client(false))
        );
        // A confidential client created without a secret can never authenticate.
        let no_secret = client(reg(&["https://a.io/cb"]), None);
        assert!(
            no_secret
                .authenticate(&auth("app-1", Some(""), AuthMethod::Post))
                .is_err()
        );
    }

    #[test]
    fn client_id_mismatch_is_invalid_client() {
        let secret = ClientSecret::generate(&SeededRandom::new(2));
        let c = client(reg(&["https://a.io/cb"]), Some(&secret));
        assert_eq!(
            c.authenticate(&auth("app-2", Some(secret.expose()), AuthMethod::Basic)),
            Err(Error::invalid_client(true))
        );
        let p = client(public_reg(&["https://a.io/cb"]), None);
        assert!(
            p.authenticate(&auth("app-2", None, AuthMethod::None))
                .is_err()
        );
    }

    #[test]
    fn public_client_sending_a_secret_is_invalid_client() {
        let p = client(public_reg(&["https://a.io/cb"]), None);
        assert_eq!(
            p.authenticate(&auth("app-1", None, AuthMethod::None)),
            Ok(())
        );
        assert_eq!(
            p.authenticate(&auth("app-1", Some(""), AuthMethod::Basic)),
            Ok(())
        );
        assert_eq!(
            p.authenticate(&auth("app-1", Some("x"), AuthMethod::Post)),
            Err(Error::invalid_client(false))
        );
        assert_eq!(
            p.authenticate(&auth("app-1", Some("x"), AuthMethod::Basic)),
            Err(Error::invalid_client(true))
        );
    }

    #[test]
    fn client_auth_debug_redacts_the_secret() {
        let a = auth("app-1", Some("hunter2-secret"), AuthMethod::Post);
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("hunter2"));
        assert!(dbg.contains("app-1"));
    }

    #[test]
    fn origin_check_applies_only_to_public_clients_with_origins() {
        let p = client(public_reg(&["https://app.example.com/cb"]), None);
        assert_eq!(p.check_origin(Some("https://app.example.com")), Ok(()));
        assert_eq!(p.check_origin(Some("https://APP.example.com:443")), Ok(()));
        assert_eq!(p.check_origin(None), Ok(()));
        for bad in ["https://evil.com", "null", "http://app.example.com", ""] {
            assert_eq!(
                p.check_origin(Some(bad)),
                Err(Error::OriginNotAllowed),
                "{bad}"
            );
        }
        let native = client(public_reg(&["com.example.app:/cb"]), None);
        assert_eq!(native.check_origin(Some("https://evil.com")), Ok(()));
        let c = client(reg(&["https://app.example.com/cb"]), None);
        assert_eq!(c.check_origin(Some("https://evil.com")), Ok(()));
    }

    #[test]
    fn access_mode_gates_who_may_authorize() {
        let mut c = client(reg(&["https://a.io/cb"]), None);
        assert_eq!(c.admits_user(false), Ok(()));
        c.access_mode = AccessMode::Testers;
        assert_eq!(c.admits_user(true), Ok(()));
        assert_eq!(
            c.admits_user(false),
            Err(Error::access_denied(
                "Access to this application is currently limited to testers."
            ))
        );
        c.access_mode = AccessMode::Disabled;
        assert_eq!(
            c.admits_user(true),
            Err(Error::access_denied(
                "This application is not currently available."
            ))
        );
    }

    #[test]
    fn confidential_only_grants_refuse_public_clients() {
        let c = client(reg(&["https://a.io/cb"]), None);
        assert_eq!(c.require_confidential(), Ok(()));
        let p = client(public_reg(&["https://a.io/cb"]), None);
        assert_eq!(
            p.require_confidential(),
            Err(Error::UnauthorizedClient(
                "This grant requires a confidential client".into()
            ))
        );
    }

    #[test]
    fn client_matches_its_redirect_uris() {
        let c = client(
            public_reg(&["http://localhost/cb", "https://a.io/cb"]),
            None,
        );
        assert_eq!(
            c.match_redirect_uri("http://127.0.0.1:7777/cb")
                .map(RedirectUri::as_str),
            Some("http://localhost/cb")
        );
        assert!(c.match_redirect_uri("https://a.io/cb").is_some());
        assert!(c.match_redirect_uri("https://a.io/cb2").is_none());
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,80}") {
            let reg = uris(&["http://localhost/cb", "https://a.io/cb", "com.example.app:/cb"]);
            let _ = RedirectUri::parse(&s);
            let _ = Origin::parse(&s);
            let _ = match_redirect_uri(&reg, &s);
            let _ = SecretHash::from_hex(&s);
            let _ = GrantType::parse(&s);
        }

        #[test]
        fn url_shaped_strings_never_panic(
            scheme in "(https?|com\\.x\\.y|ftp)",
            auth in "[a-z0-9@:\\[\\]%.]{0,20}",
            rest in "[/?a-z0-9.%#]{0,20}",
        ) {
            let s = format!("{scheme}://{auth}{rest}");
            let reg = uris(&["http://localhost/cb"]);
            let _ = RedirectUri::parse(&s);
            let _ = Origin::parse(&s);
            let _ = match_redirect_uri(&reg, &s);
        }
    }
}

/// `text` as a literal inside a SQL `LIKE … ESCAPE '\'` pattern: `\`, `%` and `_` escaped,
/// so a search for `50%_off` finds that name and not every name (the stores' `search`).
pub fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod like_tests {
    #[test]
    fn like_escape_makes_wildcards_literal() {
        assert_eq!(super::like_escape(r"50%_off\x"), r"50\%\_off\\x");
        assert_eq!(super::like_escape("Pixel"), "Pixel");
    }
}
