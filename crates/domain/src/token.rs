//! Opaque tokens: generation (`civitai_` + 64 hex, 256 bits), SHA-256 hashing (only hashes are
//! stored), TTLs, kinds, families, and the lifecycle state of a stored token.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use crate::buzz::BuzzLimit;
use crate::error::Error;
use crate::ids::{ClientId, FamilyId, TokenId, UserId};
use crate::ports::Random;
use crate::scope::{OidcScopes, Scope};

/// The prefix of access tokens, refresh tokens and API keys. Default `civitai_`; operators
/// may change it (existing tokens keep working: lookups hash the whole presented string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPrefix(String);

impl TokenPrefix {
    /// 0..=32 chars of `[a-z0-9_-]`, so a token stays a safe header value and URL component.
    pub fn parse(s: &str) -> Result<TokenPrefix, Error> {
        if s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            Ok(TokenPrefix(s.to_owned()))
        } else {
            Err(Error::invalid_request(
                "token prefix must be at most 32 characters of [a-z0-9_-]",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TokenPrefix {
    fn default() -> Self {
        TokenPrefix("civitai_".to_owned())
    }
}

/// A freshly minted secret in plaintext: returned to the client once, never stored, never
/// logged (`Debug` redacts it).
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken(String);

impl PlainToken {
    /// `prefix` + 64 lowercase hex characters of 32 random bytes.
    pub fn generate(prefix: &TokenPrefix, random: &dyn Random) -> PlainToken {
        let mut bytes = [0u8; 32];
        random.fill(&mut bytes);
        PlainToken(format!("{}{}", prefix.as_str(), hex::encode(bytes)))
    }

    /// 64 lowercase hex characters (authorization and device codes carry no prefix).
    pub fn generate_unprefixed(random: &dyn Random) -> PlainToken {
        Self::generate(&TokenPrefix(String::new()), random)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainToken(<redacted>)")
    }
}

/// SHA-256 of a token, code or secret: the only form that is stored or used as a key.
/// Tokens carry 256 bits of entropy, so a fast unsalted hash is enough (no dictionary to try).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(s: &str) -> TokenHash {
        TokenHash(Sha256::digest(s.as_bytes()).into())
    }

    /// Hashes a token as presented by a caller, refusing what cannot be one of ours
    /// (empty, over 512 bytes, non-printable) so junk never reaches a store.
    pub fn of_presented(s: &str) -> Option<TokenHash> {
        (!s.is_empty() && s.len() <= 512 && s.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| TokenHash::of(s))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<TokenHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(TokenHash(out))
    }

    /// Constant-time equality, for comparing against a presented value.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

impl Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TokenHash::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("expected 64 hex characters"))
    }
}

/// What a stored token is. Refresh tokens are never bearers; API keys are bearers of users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TokenKind {
    Access,
    Refresh,
    ApiKey,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
            TokenKind::ApiKey => "apiKey",
        }
    }
    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "access" => Some(TokenKind::Access),
            "refresh" => Some(TokenKind::Refresh),
            "apiKey" => Some(TokenKind::ApiKey),
            _ => None,
        }
    }
    /// The RFC 7662 / RFC 7009 `token_type` name.
    pub fn type_hint(self) -> &'static str {
        match self {
            TokenKind::Access | TokenKind::ApiKey => "access_token",
            TokenKind::Refresh => "refresh_token",
        }
    }
    /// May this kind authenticate a request as a bearer?
    pub fn is_bearer(self) -> bool {
        matches!(self, TokenKind::Access | TokenKind::ApiKey)
    }
}

/// Lifetimes. Defaults are the contract's: access 1 h, refresh 30 d, code 10 min, device 15 min.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    pub access: Duration,
    pub refresh: Duration,
    pub code: Duration,
    pub device: Duration,
    pub session: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Ttls {
            access: Duration::seconds(3600),
            refresh: Duration::days(30),
            code: Duration::seconds(600),
            device: Duration::seconds(900),
            session: Duration::days(14),
        }
    }
}

/// Is something that expires at `expires_at` still valid at `now`? Valid strictly before the
/// expiry instant: a 3600 s token is valid at t+3599 and expired at t+3600.
pub fn is_live(expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    expires_at.is_none_or(|e| now < e)
}

/// The lifecycle state of a stored token at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Active,
    Expired,
    Revoked,
}

/// A stored token. Holds the hash only; knows its kind, client, user, scope, family, expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub id: TokenId,
    pub hash: TokenHash,
    pub kind: TokenKind,
    /// `None` for personal API keys.
    pub client_id: Option<ClientId>,
    pub user_id: UserId,
    pub scope: Scope,
    /// The grant this token descends from; `None` for API keys and client-credentials tokens.
    pub family_id: Option<FamilyId>,
    /// API keys: the name the user gave it.
    pub name: Option<String>,
    /// API keys: their own Buzz cap (OAuth tokens use the consent's).
    pub buzz_limit: Option<BuzzLimit>,
    pub issued_at: OffsetDateTime,
    /// `None` never expires (API keys without an expiry).
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    /// Refresh tokens: when this token was first exchanged for a successor.
    pub rotated_at: Option<OffsetDateTime>,
    /// When the user authenticated for the grant (OIDC `auth_time`).
    pub auth_time: Option<OffsetDateTime>,
    /// The OpenID Connect scopes of the grant: which userinfo claims are released (none:
    /// a Civitai-style token, every claim `UserRead` allows).
    #[serde(default)]
    pub oidc: OidcScopes,
    /// The resources (RFC 8707) the token is for; empty: any (docs/mcp.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audience: Vec<String>,
}

impl TokenRecord {
    pub fn state(&self, now: OffsetDateTime) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if !is_live(self.expires_at, now) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }

    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.state(now) == TokenState::Active
    }
}

/// What a service needs to mint one token row.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub kind: TokenKind,
    pub client_id: Option<ClientId>,
    pub user_id: UserId,
    pub scope: Scope,
    pub family_id: Option<FamilyId>,
    pub auth_time: Option<OffsetDateTime>,
    pub oidc: OidcScopes,
    /// The resources the token is for (RFC 8707); empty: any.
    pub audience: Vec<String>,
}

/// Mints tokens: one place that knows prefixes and TTLs.
#[derive(Debug, Clone, Default)]
pub struct TokenMinter {
    pub prefix: TokenPrefix,
    pub ttls: Ttls,
}

impl TokenMinter {
    /// A plaintext token and the record to store for it.
    pub fn mint(
        &self,
        new: NewToken,
        now: OffsetDateTime,
        random: &dyn Random,
    ) -> (PlainToken, TokenRecord) {
        let plain = PlainToken::generate(&self.prefix, random);
        let ttl = match new.kind {
            TokenKind::Access => Some(self.ttls.access),
            TokenKind::Refresh => Some(self.ttls.refresh),
            TokenKind::ApiKey => None,
        };
        let record = TokenRecord {
            id: TokenId::generate(random),
            hash: plain.hash(),
            kind: new.kind,
            client_id: new.client_id,
            user_id: new.user_id,
            scope: new.scope,
            family_id: new.family_id,
            name: None,
            buzz_limit: None,
            issued_at: now,
            expires_at: ttl.map(|t| now + t),
            revoked_at: None,
            rotated_at: None,
            auth_time: new.auth_time,
            oidc: new.oidc,
            audience: new.audience,
        };
        (plain, record)
    }
}

/// The RFC 6749 §5.1 success body, before serialisation. `scope` is authoritative.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenResponse {
    pub access_token: PlainToken,
    pub expires_in: i64,
    pub refresh_token: Option<PlainToken>,
    pub scope: Scope,
    pub id_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SeededRandom;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

    fn minted(kind: TokenKind) -> TokenRecord {
        let minter = TokenMinter::default();
        let new = NewToken {
            kind,
            client_id: None,
            user_id: UserId(1),
            scope: Scope::USER_READ,
            family_id: None,
            auth_time: None,
            oidc: Default::default(),
            audience: Vec::new(),
        };
        minter.mint(new, T0, &SeededRandom::new(1)).1
    }

    #[test]
    fn tokens_are_prefix_and_64_lowercase_hex() {
        let t = PlainToken::generate(&TokenPrefix::default(), &SeededRandom::new(3));
        let s = t.expose();
        assert!(s.starts_with("civitai_"));
        let hexpart = &s["civitai_".len()..];
        assert_eq!(hexpart.len(), 64);
        assert!(
            hexpart
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn prefix_is_configurable_and_validated() {
        let p = TokenPrefix::parse("bg_").unwrap();
        assert!(
            PlainToken::generate(&p, &SeededRandom::new(1))
                .expose()
                .starts_with("bg_")
        );
        assert!(TokenPrefix::parse("Bad Prefix").is_err());
        assert!(TokenPrefix::parse(&"a".repeat(33)).is_err());
        assert_eq!(
            PlainToken::generate_unprefixed(&SeededRandom::new(1))
                .expose()
                .len(),
            64
        );
    }

    #[test]
    fn only_the_sha256_is_kept_and_debug_never_shows_the_secret() {
        let t = PlainToken::generate(&TokenPrefix::default(), &SeededRandom::new(9));
        assert_eq!(t.hash(), TokenHash::of(t.expose()));
        // Known vector: SHA-256("abc").
        assert_eq!(
            TokenHash::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!format!("{t:?}").contains(&t.expose()[8..]));
        assert!(!format!("{:?}", t.hash()).contains(&t.hash().to_hex()));
    }

    #[test]
    fn presented_tokens_are_bounded_before_hashing() {
        assert!(TokenHash::of_presented("civitai_abc").is_some());
        assert!(TokenHash::of_presented("").is_none());
        assert!(TokenHash::of_presented(&"a".repeat(513)).is_none());
        assert!(TokenHash::of_presented("with space").is_none());
        assert!(TokenHash::of_presented("nul\0").is_none());
    }

    #[test]
    fn hash_hex_round_trips_and_compares_in_constant_time() {
        let h = TokenHash::of("x");
        assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
        assert!(TokenHash::from_hex("zz").is_none());
        assert!(h.ct_eq(&TokenHash::of("x")));
        assert!(!h.ct_eq(&TokenHash::of("y")));
    }

    #[test]
    fn default_ttls_are_the_contract() {
        let t = Ttls::default();
        assert_eq!(t.access.whole_seconds(), 3600);
        assert_eq!(t.refresh.whole_seconds(), 2_592_000);
        assert_eq!(t.code.whole_seconds(), 600);
        assert_eq!(t.device.whole_seconds(), 900);
    }

    #[test]
    fn access_token_is_active_at_ttl_minus_one_and_expired_at_ttl() {
        let r = minted(TokenKind::Access);
        assert_eq!(r.state(T0 + Duration::seconds(3599)), TokenState::Active);
        assert_eq!(r.state(T0 + Duration::seconds(3600)), TokenState::Expired);
    }

    #[test]
    fn refresh_token_is_active_at_30_days_minus_one_and_expired_at_30_days() {
        let r = minted(TokenKind::Refresh);
        assert!(r.is_active(T0 + Duration::days(30) - Duration::seconds(1)));
        assert_eq!(r.state(T0 + Duration::days(30)), TokenState::Expired);
    }

    #[test]
    fn api_keys_never_expire_unless_set() {
        let r = minted(TokenKind::ApiKey);
        assert_eq!(r.expires_at, None);
        assert!(r.is_active(T0 + Duration::days(3650)));
    }

    #[test]
    fn revoked_wins_over_expired() {
        let mut r = minted(TokenKind::Access);
        r.revoked_at = Some(T0);
        assert_eq!(r.state(T0 + Duration::days(9)), TokenState::Revoked);
    }

    #[test]
    fn only_access_tokens_and_api_keys_are_bearers() {
        assert!(TokenKind::Access.is_bearer());
        assert!(TokenKind::ApiKey.is_bearer());
        assert!(!TokenKind::Refresh.is_bearer());
        assert_eq!(TokenKind::Refresh.type_hint(), "refresh_token");
        assert_eq!(
            TokenKind::parse(TokenKind::ApiKey.as_str()),
            Some(TokenKind::ApiKey)
        );
    }
}
