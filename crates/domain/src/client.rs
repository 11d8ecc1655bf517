//! OAuth apps (clients): registration and update rules, redirect URI and origin parsing and
//! matching, client secrets, and client authentication at the token-side endpoints.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use url::Url;

use crate::buzz::BuzzLimit;
use crate::error::Error;
use crate::ids::{ClientId, UserId};
use crate::ports::Random;
use crate::scope::Scope;

/// Most redirect URIs (and allowed origins) one client may register.
pub const MAX_REDIRECT_URIS: usize = 20;
/// Most allowed origins one client may register.
pub const MAX_ALLOWED_ORIGINS: usize = 20;
/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

// ---------------------------------------------------------------------------------------------
// Grants, kinds, access modes
// ---------------------------------------------------------------------------------------------

/// A grant type a client may register, with its RFC wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GrantType {
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    #[serde(rename = "refresh_token")]
    RefreshToken,
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::DeviceCode,
    ];

    /// What a registration gets when it names no grants.
    pub const DEFAULT: [GrantType; 2] = [GrantType::AuthorizationCode, GrantType::RefreshToken];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    /// The grant with this exact wire name.
    pub fn parse(s: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the client can keep a secret (a server) or not (a browser or native app).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    Confidential,
    Public,
}

/// Who may authorize the app; set by admins only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    #[default]
    Open,
    Testers,
    Disabled,
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::Open => "open",
            AccessMode::Testers => "testers",
            AccessMode::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<AccessMode> {
        match s {
            "open" => Some(AccessMode::Open),
            "testers" => Some(AccessMode::Testers),
            "disabled" => Some(AccessMode::Disabled),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Redirect URIs
// ---------------------------------------------------------------------------------------------

/// Which of the three permitted shapes a redirect URI has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedirectKind {
    /// `https://…`, any host (including loopback).
    Https,
    /// `http://` on `localhost`, `127.0.0.1` or `[::1]` (RFC 8252 §7.3).
    LoopbackHttp,
    /// A reverse-DNS private-use scheme such as `com.example.app:/callback` (RFC 8252 §7.1).
    PrivateUse,
}

/// A registrable redirect URI. Kept exactly as given, because matching is character for
/// character; the parsed form is only used to classify it and to derive an origin.
#[derive(Clone)]
pub struct RedirectUri {
    raw: String,
    url: Url,
    kind: RedirectKind,
    loopback: bool,
}

impl RedirectUri {
    pub const MAX_LEN: usize = 2000;

    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |why: &'static str| Err(Error::invalid_request(why));
        if s.is_empty() {
            return bad("redirect_uri must not be empty");
        }
        if s.len() > Self::MAX_LEN {
            return bad("redirect_uri must be at most 2000 characters");
        }
        // `Url::parse` silently strips or rewrites whitespace, controls and backslashes; the
        // stored string would then differ from what a browser is sent to. Refuse them instead.
        if !s.bytes().all(|b| b.is_ascii_graphic()) || s.contains('\\') {
            return bad(
                "redirect_uri must be printable ASCII without spaces, control characters or backslashes",
            );
        }
        if s.contains('#') {
            return bad("redirect_uri must not contain a fragment (#)");
        }
        let Ok(url) = Url::parse(s) else {
            return bad("redirect_uri must be an absolute URL");
        };
        if !url.username().is_empty() || url.password().is_some() {
            return bad("redirect_uri must not contain user credentials (user@host)");
        }
        match url.scheme() {
            "http" | "https" => {
                let Some(host) = literal_host(s, &url) else {
                    return bad(
                        "redirect_uri must be scheme://host[:port]/path with a plainly written host and no user credentials",
                    );
                };
                let loopback = is_loopback_host(host);
                let kind = if url.scheme() == "https" {
                    RedirectKind::Https
                } else if loopback {
                    RedirectKind::LoopbackHttp
                } else {
                    return bad(
                        "redirect_uri must use https; http is only allowed on localhost, 127.0.0.1 or [::1]",
                    );
                };
                Ok(RedirectUri {
                    raw: s.to_owned(),
                    url,
                    kind,
                    loopback,
                })
            }
            // RFC 8252 §7.1: private-use schemes must be reverse-DNS names, which always
            // contain a dot. This also refuses javascript:, data:, file:, ftp: and bare `myapp:`.
            scheme if scheme.contains('.') && s.len() > scheme.len() + 1 => Ok(RedirectUri {
                raw: s.to_owned(),
                url,
                kind: RedirectKind::PrivateUse,
                loopback: false,
            }),
            _ => bad(
                "redirect_uri must use https, http on a loopback host, or a reverse-DNS private-use scheme (com.example.app:/callback)",
            ),
        }
    }

    /// The URI exactly as registered.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn kind(&self) -> RedirectKind {
        self.kind
    }

    /// An http(s) URI whose host is `localhost`, `127.0.0.1` or `[::1]`.
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    /// The path and query exactly as written (everything after the authority).
    fn raw_path_and_query(&self) -> &str {
        split_hierarchical(&self.raw).map_or("", |(_, _, rest)| rest)
    }

    /// RFC 8252 §7.3: a loopback request matches a loopback registration on any port, with
    /// loopback hosts interchangeable, but the same scheme and the same raw path and query.
    fn loopback_matches(&self, requested: &RedirectUri) -> bool {
        self.loopback
            && requested.loopback
            && self.url.scheme() == requested.url.scheme()
            && self.raw_path_and_query() == requested.raw_path_and_query()
    }
}

impl PartialEq for RedirectUri {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for RedirectUri {}

impl std::hash::Hash for RedirectUri {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectUri({})", self.raw)
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for RedirectUri {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for RedirectUri {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RedirectUri::parse(&s).map_err(|e| serde::de::Error::custom(e.description()))
    }
}

/// The registered URI that `requested` designates: exact string equality first, then the
/// RFC 8252 loopback rule (any port, loopback hosts interchangeable, same scheme, path and
/// query). Non-loopback URIs are never matched loosely: no prefix, case or slash tolerance.
pub fn match_redirect_uri<'a>(
    registered: &'a [RedirectUri],
    requested: &str,
) -> Option<&'a RedirectUri> {
    if let Some(exact) = registered.iter().find(|r| r.raw == requested) {
        return Some(exact);
    }
    // Parsing applies the full hygiene (no fragment, no userinfo, literal host) to the
    // requested value before any loose comparison.
    let requested = RedirectUri::parse(requested).ok()?;
    if !requested.loopback {
        return None;
    }
    registered.iter().find(|r| r.loopback_matches(&requested))
}

/// Splits `scheme://authority rest` on the raw string; `rest` is the path and query as written.
fn split_hierarchical(raw: &str) -> Option<(&str, &str, &str)> {
    let (scheme, after) = raw.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Some((scheme, &after[..end], &after[end..]))
}

/// The host as literally written in an http(s) URI, provided it is exactly what `url` parsed.
/// This refuses `https:evil.com`, percent-encoded or numeric-shorthand hosts (`127.1`), and
/// any `@` in the authority, so what is checked is what a browser will visit.
fn literal_host<'a>(raw: &'a str, url: &Url) -> Option<&'a str> {
    let (scheme, authority, _) = split_hierarchical(raw)?;
    if !scheme.eq_ignore_ascii_case(url.scheme()) || authority.contains('@') {
        return None;
    }
    let host = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, port) = authority.split_at(close + 1);
        (port.is_empty() || port.starts_with(':')).then_some(host)?
    } else {
        authority.split_once(':').map_or(authority, |(h, _)| h)
    };
    let parsed = url.host_str()?;
    (!host.is_empty() && host.eq_ignore_ascii_case(parsed)).then_some(host)
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "[::1]"
}

// ---------------------------------------------------------------------------------------------
// Origins
// ---------------------------------------------------------------------------------------------

/// A browser origin `scheme://host[:port]`, lowercase, default port dropped, so that it
/// compares equal to the `Origin` header a browser sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

impl Origin {
    pub const MAX_LEN: usize = 512;

    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || {
            Err(Error::invalid_request(
                "origin must be http(s)://host[:port] with nothing after the host and port",
            ))
        };
        if s.is_empty()
            || s.len() > Self::MAX_LEN
            || !s.bytes().all(|b| b.is_ascii_graphic())
            || s.contains('\\')
        {
            return bad();
        }
        let Some((_, _, rest)) = split_hierarchical(s) else {
            return bad();
        };
        if !(rest.is_empty() || rest == "/") {
            return bad();
        }
        let Ok(url) = Url::parse(s) else {
            return bad();
        };
        if !url.username().is_empty() || url.password().is_some() {
            return bad();
        }
        if literal_host(s, &url).is_none() {
            return bad();
        }
        match origin_of(&url) {
            Some(o) => Ok(o),
            None => bad(),
        }
    }

    /// The origin a browser reports for pages at this redirect URI (http and https only).
    pub fn from_redirect_uri(uri: &RedirectUri) -> Option<Origin> {
        origin_of(&uri.url)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `url` already lowercases the scheme and host and drops the scheme's default port.
fn origin_of(url: &Url) -> Option<Origin> {
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?;
    Some(Origin(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }))
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Origin {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Origin::parse(&s)
    }
}

impl From<Origin> for String {
    fn from(o: Origin) -> String {
        o.0
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// A client secret in plaintext: exists only between generation and the one response that
/// shows it to the owner. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// 64 lowercase hex characters of 32 random bytes (256 bits).
    pub fn generate(random: &dyn Random) -> ClientSecret {
        let mut bytes = [0u8; 32];
        random.fill(&mut bytes);
        ClientSecret(hex::encode(bytes))
    }

    /// The plaintext, for the single response that returns it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// SHA-256 of a client secret, the only form stored. A fast hash is enough: secrets are
/// 256-bit random strings, not guessable passwords (SPEC 5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    pub fn of(secret: &str) -> SecretHash {
        SecretHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// From 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Option<SecretHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(SecretHash(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `presented` is the secret; constant-time over the hashes.
    pub fn verify(&self, presented: &str) -> bool {
        SecretHash::of(presented).0.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to tell rows apart in logs without handing out the whole hash.
        write!(f, "SecretHash({}…)", &self.to_hex()[..8])
    }
}

impl TryFrom<String> for SecretHash {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        SecretHash::from_hex(&s)
            .ok_or_else(|| Error::invalid_request("secret hash must be 64 hex characters"))
    }
}

impl From<SecretHash> for String {
    fn from(h: SecretHash) -> String {
        h.to_hex()
    }
}

// ---------------------------------------------------------------------------------------------
// Registration and update
// ---------------------------------------------------------------------------------------------

/// The raw create request of SPEC 3.9, as the owner sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientRegistration {
    pub name: String,
    pub description: Option<String>,
    pub redirect_uris: Vec<String>,
    pub allowed_origins: Option<Vec<String>>,
    pub is_confidential: Option<bool>,
    pub allowed_scopes: Option<u32>,
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
    pub fn validate(self) -> Result<ValidatedRegistration, Error> {
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
        let allowed_scopes = validate_scopes(self.allowed_scopes.unwrap_or(Scope::FULL.bits()))?;
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
    pub allowed_scopes: Option<u32>,
    /// The owner's cap on the app's own spending (`[]` removes it); only the owner may set it.
    pub owner_buzz_limit: Option<BuzzLimit>,
}

impl ClientUpdate {
    /// Whether this edit touches what only the app's owner may change.
    pub fn is_owner_only(&self) -> bool {
        self.owner_buzz_limit.is_some()
    }

    /// The client after this edit, with the same per-field rules as registration.
    pub fn apply(self, client: &Client, now: OffsetDateTime) -> Result<Client, Error> {
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
        if let Some(bits) = self.allowed_scopes {
            next.allowed_scopes = validate_scopes(bits)?;
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

fn validate_scopes(bits: u32) -> Result<Scope, Error> {
    Scope::from_bits(bits).ok_or_else(|| {
        Error::invalid_scope(format!(
            "allowedScopes must be a mask of defined scope bits (0..={})",
            Scope::FULL.bits()
        ))
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

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

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
    use super::*;
    use crate::ports::SeededRandom;
    use proptest::prelude::*;

    fn uri(s: &str) -> RedirectUri {
        RedirectUri::parse(s).unwrap()
    }

    fn uris(list: &[&str]) -> Vec<RedirectUri> {
        list.iter().map(|s| uri(s)).collect()
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-01-01 00:00:00 UTC)
    }

    fn reg(redirects: &[&str]) -> ClientRegistration {
        ClientRegistration {
            name: "My App".into(),
            redirect_uris: redirects.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn public_reg(redirects: &[&str]) -> ClientRegistration {
        ClientRegistration {
            is_confidential: Some(false),
            ..reg(redirects)
        }
    }

    fn client(r: ClientRegistration, secret: Option<&ClientSecret>) -> Client {
        Client::new(
            ClientId::parse("app-1").unwrap(),
            UserId(7),
            r.validate().unwrap(),
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

    fn is_invalid_request(r: Result<impl fmt::Debug, Error>) -> bool {
        matches!(r, Err(Error::InvalidRequest(_)))
    }

    // ---- redirect URIs -------------------------------------------------------------------

    #[test]
    fn https_redirect_uri_is_stored_exactly_as_given() {
        let u = uri("https://APP.example.com:8443/cb?x=1");
        assert_eq!(u.as_str(), "https://APP.example.com:8443/cb?x=1");
        assert_eq!(u.kind(), RedirectKind::Https);
        assert!(!u.is_loopback());
        assert_eq!(uri("https://localhost/cb").kind(), RedirectKind::Https);
        assert!(uri("https://localhost/cb").is_loopback());
    }

    #[test]
    fn http_redirect_uri_requires_a_loopback_host() {
        for ok in [
            "http://localhost/cb",
            "http://localhost:8080/cb",
            "http://127.0.0.1:5000/cb",
            "http://[::1]:5000/cb",
        ] {
            assert_eq!(uri(ok).kind(), RedirectKind::LoopbackHttp, "{ok}");
        }
        for bad in [
            "http://app.example.com/cb",
            "http://localhost.evil.com:80/cb",
            "http://127.1/cb",
            "http://0x7f.0.0.1/cb",
            "http://127.0.0.2/cb",
            "http://%6cocalhost/cb",
        ] {
            assert!(is_invalid_request(RedirectUri::parse(bad)), "{bad}");
        }
    }

    #[test]
    fn private_use_scheme_must_be_reverse_dns() {
        let u = uri("com.example.app:/callback");
        assert_eq!(u.kind(), RedirectKind::PrivateUse);
        assert!(!u.is_loopback());
        assert_eq!(
            uri("com.example.app://oauth/cb").kind(),
            RedirectKind::PrivateUse
        );
        assert!(RedirectUri::parse("com.example.app:").is_err());
    }

    #[test]
    fn dangerous_and_bare_schemes_are_refused() {
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "ftp://example.com/cb",
            "myapp:/callback",
            "myapp://callback",
            "ws://localhost/cb",
        ] {
            assert!(is_invalid_request(RedirectUri::parse(bad)), "{bad}");
        }
    }

    #[test]
    fn fragment_is_refused_anywhere() {
        for bad in [
            "https://app.example.com/cb#",
            "https://app.example.com/cb#x",
            "com.example.app:/cb#frag",
        ] {
            assert_eq!(
                RedirectUri::parse(bad).unwrap_err(),
                Error::invalid_request("redirect_uri must not contain a fragment (#)")
            );
        }
    }

    #[test]
    fn userinfo_is_refused() {
        for bad in [
            "https://app.example.com@evil.com/cb",
            "https://user:pw@app.example.com/cb",
            "https://@app.example.com/cb",
            "http://localhost@evil.com/cb",
            "com.example.app://user@host/cb",
        ] {
            assert!(is_invalid_request(RedirectUri::parse(bad)), "{bad}");
        }
    }

    #[test]
    fn relative_malformed_and_overlong_uris_are_refused() {
        let long = format!("https://app.example.com/{}", "a".repeat(2000));
        for bad in [
            "",
            "/cb",
            "app.example.com/cb",
            "https:app.example.com/cb",
            "https:/app.example.com/cb",
            "https:\\\\evil.com/cb",
            "https://app.example.com/c b",
            " https://app.example.com/cb",
            "https://app.example.com/cb\n",
            "https://app.exämple.com/cb",
            long.as_str(),
        ] {
            assert!(is_invalid_request(RedirectUri::parse(bad)), "{bad:?}");
        }
        let max = format!("https://a.io/{}", "a".repeat(2000 - 13));
        assert!(RedirectUri::parse(&max).is_ok());
    }

    #[test]
    fn redirect_uri_serde_is_a_validated_string() {
        let u = uri("https://app.example.com/cb");
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            "\"https://app.example.com/cb\""
        );
        assert_eq!(
            serde_json::from_str::<RedirectUri>("\"https://app.example.com/cb\"").unwrap(),
            u
        );
        assert!(serde_json::from_str::<RedirectUri>("\"javascript:alert(1)\"").is_err());
    }

    // ---- matching ------------------------------------------------------------------------

    #[test]
    fn exact_redirect_match_is_character_for_character() {
        let reg = uris(&["https://app.example.com/cb", "com.example.app:/callback"]);
        assert_eq!(
            match_redirect_uri(&reg, "https://app.example.com/cb"),
            Some(&reg[0])
        );
        assert_eq!(
            match_redirect_uri(&reg, "com.example.app:/callback"),
            Some(&reg[1])
        );
        assert_eq!(
            match_redirect_uri(&reg, "com.example.app:/callback/x"),
            None
        );
    }

    #[test]
    fn hostile_near_misses_never_match() {
        let reg = uris(&["https://app.example.com/cb"]);
        for bad in [
            "https://app.example.com/cb/../evil",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/cb/",
            "https://app.example.com/CB",
            "https://app.example.com/c",
            "https://app.example.com.evil.com/cb",
            "https://APP.example.com/cb",
            "https://app.example.com:443/cb",
            "http://app.example.com/cb",
            "https://app.example.com@evil.com/cb",
            "https://evil.com/cb",
            "https://app.example.com/cb#x",
            " https://app.example.com/cb",
        ] {
            assert_eq!(match_redirect_uri(&reg, bad), None, "{bad}");
        }
    }

    #[test]
    fn loopback_redirect_matches_any_port() {
        let reg = uris(&["http://127.0.0.1/callback"]);
        for ok in [
            "http://127.0.0.1:49152/callback",
            "http://127.0.0.1:1/callback",
            "http://127.0.0.1/callback",
        ] {
            assert_eq!(match_redirect_uri(&reg, ok), Some(&reg[0]), "{ok}");
        }
        let with_port = uris(&["http://localhost:3000/cb"]);
        assert_eq!(
            match_redirect_uri(&with_port, "http://localhost:51234/cb"),
            Some(&with_port[0])
        );
    }

    #[test]
    fn loopback_hosts_are_interchangeable() {
        let reg = uris(&["http://localhost:3000/cb"]);
        for ok in [
            "http://127.0.0.1:8080/cb",
            "http://[::1]:9/cb",
            "http://localhost/cb",
        ] {
            assert_eq!(match_redirect_uri(&reg, ok), Some(&reg[0]), "{ok}");
        }
    }

    #[test]
    fn loopback_match_requires_same_scheme_path_and_query() {
        let reg = uris(&["http://localhost:3000/cb?app=1"]);
        for bad in [
            "https://localhost:3000/cb?app=1",
            "http://localhost:4000/cb",
            "http://localhost:4000/cb?app=2",
            "http://localhost:4000/cb/?app=1",
            "http://localhost:4000/CB?app=1",
            "http://localhost:4000/x/../cb?app=1",
        ] {
            assert_eq!(match_redirect_uri(&reg, bad), None, "{bad}");
        }
        assert!(match_redirect_uri(&reg, "http://[::1]:4000/cb?app=1").is_some());
    }

    #[test]
    fn loopback_lookalikes_never_match_loosely() {
        let reg = uris(&["http://localhost:3000/cb"]);
        for bad in [
            "http://localhost.evil.com:80/cb",
            "http://localhost@evil.com:3000/cb",
            "http://evil.com:3000/cb",
            "http://127.0.0.2:3000/cb",
            "http://127.1:3000/cb",
            "http://localhost:3000/cb#x",
        ] {
            assert_eq!(match_redirect_uri(&reg, bad), None, "{bad}");
        }
        // A non-loopback registration never gets port flexibility.
        let remote = uris(&["https://app.example.com:8443/cb"]);
        assert_eq!(
            match_redirect_uri(&remote, "https://app.example.com:9443/cb"),
            None
        );
    }

    // ---- origins -------------------------------------------------------------------------

    #[test]
    fn origin_is_normalised_lowercase_without_default_port() {
        let cases = [
            ("https://App.Example.COM", "https://app.example.com"),
            ("https://app.example.com:443/", "https://app.example.com"),
            ("HTTP://localhost:80", "http://localhost"),
            ("http://localhost:5173", "http://localhost:5173"),
            ("https://app.example.com:80", "https://app.example.com:80"),
            ("http://[::1]:3000", "http://[::1]:3000"),
        ];
        for (raw, want) in cases {
            assert_eq!(Origin::parse(raw).unwrap().as_str(), want, "{raw}");
        }
        assert_eq!(
            serde_json::to_string(&Origin::parse("https://a.io").unwrap()).unwrap(),
            "\"https://a.io\""
        );
        assert!(serde_json::from_str::<Origin>("\"https://a.io/x\"").is_err());
    }

    #[test]
    fn origin_refuses_paths_queries_credentials_and_other_schemes() {
        for bad in [
            "",
            "null",
            "https://a.io/x",
            "https://a.io//",
            "https://a.io?x",
            "https://a.io/#",
            "https://u@a.io",
            "ftp://a.io",
            "com.example.app://a",
            "https://a.io ",
            "https:a.io",
        ] {
            assert!(is_invalid_request(Origin::parse(bad)), "{bad:?}");
        }
    }

    #[test]
    fn origin_is_derived_from_http_redirect_uris_only() {
        assert_eq!(
            Origin::from_redirect_uri(&uri("https://App.example.com:443/cb?x=1"))
                .unwrap()
                .as_str(),
            "https://app.example.com"
        );
        assert_eq!(
            Origin::from_redirect_uri(&uri("http://localhost:3000/cb"))
                .unwrap()
                .as_str(),
            "http://localhost:3000"
        );
        assert_eq!(
            Origin::from_redirect_uri(&uri("com.example.app://host/cb")),
            None
        );
    }

    // ---- secrets -------------------------------------------------------------------------

    #[test]
    fn client_secret_is_256_bits_of_lowercase_hex_and_debug_redacts() {
        let r = SeededRandom::new(1);
        let s = ClientSecret::generate(&r);
        assert_eq!(s.expose().len(), 64);
        assert!(
            s.expose()
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_ne!(s, ClientSecret::generate(&r));
        assert!(!format!("{s:?}").contains(s.expose()));
    }

    #[test]
    fn secret_hash_verifies_only_the_secret_and_round_trips_hex() {
        let h = SecretHash::of("s3cret");
        assert!(h.verify("s3cret"));
        assert!(!h.verify("s3cret "));
        assert!(!h.verify(""));
        assert_eq!(SecretHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(SecretHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(SecretHash::from_hex("abc"), None);
        assert_eq!(SecretHash::from_hex(&"g".repeat(64)), None);
        let dbg = format!("{h:?}");
        assert!(!dbg.contains(&h.to_hex()));
        assert!(dbg.contains(&h.to_hex()[..8]));
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<SecretHash>(&json).unwrap(), h);
    }

    // ---- registration --------------------------------------------------------------------

    #[test]
    fn registration_defaults_are_confidential_full_scope_code_and_refresh() {
        let v = reg(&["https://app.example.com/cb"]).validate().unwrap();
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
        let v = r.validate().unwrap();
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
        assert_eq!(named("  Hi  ").validate().unwrap().name, "Hi");
        assert!(named(&"é".repeat(128)).validate().is_ok());
        for bad in ["", "   ", "a\u{0}b", "tab\there", "new\nline"] {
            assert!(is_invalid_request(named(bad).validate()), "{bad:?}");
        }
        let e = named(&"é".repeat(129)).validate().unwrap_err();
        assert_eq!(e, Error::invalid_request("name must be 1-128 characters"));
    }

    #[test]
    fn registration_description_is_at_most_500_chars() {
        let described = |d: &str| ClientRegistration {
            description: Some(d.into()),
            ..reg(&["https://a.io/cb"])
        };
        assert!(described(&"ü".repeat(500)).validate().is_ok());
        assert!(described("line one\nline two").validate().is_ok());
        assert!(is_invalid_request(described(&"ü".repeat(501)).validate()));
        assert!(is_invalid_request(described("bell\u{7}").validate()));
    }

    #[test]
    fn registration_needs_1_to_20_valid_redirect_uris() {
        assert!(is_invalid_request(reg(&[]).validate()));
        let many: Vec<String> = (0..21).map(|i| format!("https://a.io/cb{i}")).collect();
        let r = ClientRegistration {
            redirect_uris: many[..20].to_vec(),
            ..reg(&[])
        };
        assert_eq!(r.validate().unwrap().redirect_uris.len(), 20);
        let r = ClientRegistration {
            redirect_uris: many,
            ..reg(&[])
        };
        assert!(is_invalid_request(r.validate()));
        let e = reg(&["https://a.io/cb", "http://evil.com/cb"])
            .validate()
            .unwrap_err();
        assert!(e.description().starts_with("redirectUris[1]: "), "{e:?}");
        let v = reg(&["https://a.io/cb", "https://a.io/cb"])
            .validate()
            .unwrap();
        assert_eq!(v.redirect_uris.len(), 1);
    }

    #[test]
    fn private_use_redirects_only_for_public_clients() {
        let e = reg(&["com.example.app:/cb"]).validate().unwrap_err();
        assert_eq!(
            e,
            Error::invalid_request(
                "redirectUris[0]: private-use URI schemes are only allowed for public clients"
            )
        );
        let v = public_reg(&["com.example.app:/cb"]).validate().unwrap();
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
        .validate()
        .unwrap();
        let got: Vec<_> = v.allowed_origins.iter().map(Origin::as_str).collect();
        assert_eq!(got, ["https://app.example.com", "http://localhost:3000"]);
        let empty = ClientRegistration {
            allowed_origins: Some(vec![]),
            ..public_reg(&["https://a.io/cb"])
        };
        assert_eq!(empty.validate().unwrap().allowed_origins.len(), 1);
    }

    #[test]
    fn allowed_origins_are_validated_when_given() {
        let with = |o: &[&str]| ClientRegistration {
            allowed_origins: Some(o.iter().map(|s| s.to_string()).collect()),
            ..public_reg(&["https://a.io/cb"])
        };
        let v = with(&["https://Web.io:443", "https://web.io"])
            .validate()
            .unwrap();
        assert_eq!(
            v.allowed_origins,
            vec![Origin::parse("https://web.io").unwrap()]
        );
        let e = with(&["https://web.io", "https://web.io/path"])
            .validate()
            .unwrap_err();
        assert!(e.description().starts_with("allowedOrigins[1]: "));
        let many: Vec<String> = (0..21).map(|i| format!("https://w{i}.io")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(is_invalid_request(with(&refs).validate()));
    }

    #[test]
    fn allowed_scopes_outside_the_flags_is_invalid_scope() {
        let scoped = |bits| ClientRegistration {
            allowed_scopes: Some(bits),
            ..reg(&["https://a.io/cb"])
        };
        assert_eq!(scoped(0).validate().unwrap().allowed_scopes, Scope::NONE);
        assert_eq!(
            scoped(114_688).validate().unwrap().allowed_scopes.bits(),
            114_688
        );
        assert_eq!(
            scoped(33_554_432).validate().unwrap_err().code(),
            "invalid_scope"
        );
    }

    #[test]
    fn grant_rules_refuse_unknown_names_and_impossible_combinations() {
        let granted = |g: &[&str], public: bool| ClientRegistration {
            grants: Some(g.iter().map(|s| s.to_string()).collect()),
            is_confidential: Some(!public),
            ..reg(&["https://a.io/cb"])
        };
        assert!(is_invalid_request(granted(&["password"], false).validate()));
        assert!(is_invalid_request(granted(&["implicit"], true).validate()));
        assert!(is_invalid_request(granted(&[], false).validate()));
        assert_eq!(
            granted(&["client_credentials"], true)
                .validate()
                .unwrap_err(),
            Error::invalid_request("client_credentials requires a confidential client")
        );
        assert!(is_invalid_request(
            granted(&["refresh_token"], false).validate()
        ));
        assert!(is_invalid_request(
            granted(&["refresh_token", "client_credentials"], false).validate()
        ));
        let v = granted(
            &[
                "urn:ietf:params:oauth:grant-type:device_code",
                "refresh_token",
                "refresh_token",
            ],
            true,
        )
        .validate()
        .unwrap();
        assert_eq!(
            v.grants,
            vec![GrantType::DeviceCode, GrantType::RefreshToken]
        );
        assert!(granted(&["client_credentials"], false).validate().is_ok());
    }

    #[test]
    fn grant_types_use_rfc_wire_names() {
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Some(g));
            let json = serde_json::to_string(&g).unwrap();
            assert_eq!(json, format!("\"{}\"", g.as_str()));
            assert_eq!(serde_json::from_str::<GrantType>(&json).unwrap(), g);
        }
        assert_eq!(
            GrantType::DeviceCode.as_str(),
            "urn:ietf:params:oauth:grant-type:device_code"
        );
        assert_eq!(GrantType::parse("Authorization_Code"), None);
        assert_eq!(GrantType::parse("device_code"), None);
    }

    #[test]
    fn access_mode_wire_names_and_default_open() {
        assert_eq!(AccessMode::default(), AccessMode::Open);
        for m in [AccessMode::Open, AccessMode::Testers, AccessMode::Disabled] {
            assert_eq!(AccessMode::parse(m.as_str()), Some(m));
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.as_str())
            );
        }
        assert_eq!(AccessMode::parse("Open"), None);
        assert_eq!(
            serde_json::to_string(&ClientKind::Public).unwrap(),
            "\"public\""
        );
    }

    // ---- the client ----------------------------------------------------------------------

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

    // ---- update --------------------------------------------------------------------------

    #[test]
    fn update_applies_the_same_rules_and_keeps_kind_and_grants() {
        let c = client(reg(&["https://a.io/cb"]), None);
        let later = now() + time::Duration::hours(1);
        let u = ClientUpdate {
            name: Some(" New ".into()),
            redirect_uris: Some(vec!["https://b.io/cb".into()]),
            allowed_scopes: Some(Scope::READ_ONLY.bits()),
            ..Default::default()
        };
        let next = u.apply(&c, later).unwrap();
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
            rederive.apply(&next, later).unwrap().allowed_origins,
            vec![Origin::parse("https://b.io").unwrap()]
        );

        let private = ClientUpdate {
            redirect_uris: Some(vec!["com.example.app:/cb".into()]),
            ..Default::default()
        };
        assert!(is_invalid_request(private.clone().apply(&c, later)));
        let p = client(public_reg(&["https://a.io/cb"]), None);
        assert!(private.apply(&p, later).is_ok());

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
            assert!(is_invalid_request(bad.apply(&c, later)));
        }
        let bad_scope = ClientUpdate {
            allowed_scopes: Some(u32::MAX),
            ..Default::default()
        };
        assert_eq!(
            bad_scope.apply(&c, later).unwrap_err().code(),
            "invalid_scope"
        );
    }

    // ---- properties ----------------------------------------------------------------------

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

        #[test]
        fn loopback_matches_every_port_and_host(
            port in proptest::option::of(1u16..),
            host in prop::sample::select(vec!["localhost", "127.0.0.1", "[::1]"]),
            path in "/[a-z0-9/_-]{0,20}",
        ) {
            let reg = vec![uri(&format!("http://localhost:3000{path}"))];
            let req = match port {
                Some(p) => format!("http://{host}:{p}{path}"),
                None => format!("http://{host}{path}"),
            };
            prop_assert_eq!(match_redirect_uri(&reg, &req), Some(&reg[0]));
            let other = format!("{req}x");
            prop_assert_eq!(match_redirect_uri(&reg, &other), None);
        }

        #[test]
        fn parsed_redirect_uris_round_trip_and_match_themselves(
            host in "[a-z]{1,10}\\.(com|io)",
            path in "/[A-Za-z0-9/_.-]{0,20}",
            query in proptest::option::of("[a-z0-9=&]{1,10}"),
        ) {
            let raw = match query {
                Some(q) => format!("https://{host}{path}?{q}"),
                None => format!("https://{host}{path}"),
            };
            let u = uri(&raw);
            prop_assert_eq!(u.as_str(), raw.as_str());
            let reg = vec![u.clone()];
            prop_assert_eq!(match_redirect_uri(&reg, &raw), Some(&u));
            let json = serde_json::to_string(&u).unwrap();
            prop_assert_eq!(serde_json::from_str::<RedirectUri>(&json).unwrap(), u);
        }

        #[test]
        fn secret_hash_verifies_exactly_its_secret(a in "\\PC{0,40}", b in "\\PC{0,40}") {
            let h = SecretHash::of(&a);
            prop_assert!(h.verify(&a));
            prop_assert_eq!(h.verify(&b), a == b);
        }
    }
}
