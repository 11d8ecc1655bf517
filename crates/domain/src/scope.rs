//! Bitwise scopes: the bit set a token, a consent and an app's ceiling carry, and Civitai's
//! values (seed 003: flags, presets, labels), from which the default catalogue is built. What
//! the bits are called, parsing names, and which one is always granted belong to the
//! operator's catalogue ([`crate::catalogue::Catalogue`], docs/scopes.md).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A set of scope bits, 0..=62 (bit 63 is never held). Civitai's catalogue defines bits
/// 0..=24; an operator's may define any of the 63 ([`crate::catalogue`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Scope(u64);

/// One named flag with its consent-page label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeFlag {
    pub name: &'static str,
    pub scope: Scope,
    pub label: &'static str,
}

/// One named preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopePreset {
    pub name: &'static str,
    pub label: &'static str,
    pub scope: Scope,
}

/// Why a scope string was refused. All map to `invalid_scope`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("scope is empty")]
    Empty,
    #[error("scope must not be negative")]
    Negative,
    #[error("scope has bits outside the defined flags")]
    OutOfRange,
    #[error("scope has bits outside the defined flags (maximum {0})")]
    Undefined(u64),
    #[error("unknown scope name `{0}`")]
    UnknownName(String),
    #[error("scope is not a decimal mask or a list of scope names")]
    Malformed,
}

impl From<ScopeError> for crate::Error {
    fn from(e: ScopeError) -> Self {
        crate::Error::invalid_scope(format!("Invalid scope value: {e}"))
    }
}

impl Scope {
    pub const NONE: Scope = Scope(0);
    /// Every bit a scope may hold (0..=62).
    pub const ANY_BITS: u64 = (1 << 63) - 1;
    pub const USER_READ: Scope = Scope(1);
    pub const USER_WRITE: Scope = Scope(1 << 1);
    pub const MODELS_READ: Scope = Scope(1 << 2);
    pub const MODELS_WRITE: Scope = Scope(1 << 3);
    pub const MODELS_DELETE: Scope = Scope(1 << 4);
    pub const MEDIA_READ: Scope = Scope(1 << 5);
    pub const MEDIA_WRITE: Scope = Scope(1 << 6);
    pub const MEDIA_DELETE: Scope = Scope(1 << 7);
    pub const ARTICLES_READ: Scope = Scope(1 << 8);
    pub const ARTICLES_WRITE: Scope = Scope(1 << 9);
    pub const ARTICLES_DELETE: Scope = Scope(1 << 10);
    pub const BOUNTIES_READ: Scope = Scope(1 << 11);
    pub const BOUNTIES_WRITE: Scope = Scope(1 << 12);
    pub const BOUNTIES_DELETE: Scope = Scope(1 << 13);
    pub const AI_SERVICES_READ: Scope = Scope(1 << 14);
    pub const AI_SERVICES_WRITE: Scope = Scope(1 << 15);
    pub const BUZZ_READ: Scope = Scope(1 << 16);
    pub const COLLECTIONS_READ: Scope = Scope(1 << 17);
    pub const COLLECTIONS_WRITE: Scope = Scope(1 << 18);
    pub const SOCIAL_WRITE: Scope = Scope(1 << 19);
    pub const SOCIAL_TIP: Scope = Scope(1 << 20);
    pub const NOTIFICATIONS_READ: Scope = Scope(1 << 21);
    pub const NOTIFICATIONS_WRITE: Scope = Scope(1 << 22);
    pub const VAULT_READ: Scope = Scope(1 << 23);
    pub const VAULT_WRITE: Scope = Scope(1 << 24);

    /// Every defined flag: `(1 << 25) - 1` = 33554431. Frozen.
    pub const FULL: Scope = Scope((1 << 25) - 1);
    /// All `*Read` flags = 10701093.
    pub const READ_ONLY: Scope = Scope(10_701_093);
    /// ReadOnly plus the content write flags and SocialWrite = 11492205.
    pub const CREATOR: Scope = Scope(11_492_205);
    /// UserRead | AIServicesRead | AIServicesWrite | BuzzRead = 114689 (114688 without UserRead).
    pub const AI_SERVICES: Scope = Scope(114_689);

    /// The flags, in bit order, with the consent-page labels of research section (d).
    pub const FLAGS: [ScopeFlag; 25] = [
        flag(
            "UserRead",
            Scope::USER_READ,
            "Read profile, settings & email",
        ),
        flag("UserWrite", Scope::USER_WRITE, "Update profile & settings"),
        flag("ModelsRead", Scope::MODELS_READ, "Browse & download models"),
        flag("ModelsWrite", Scope::MODELS_WRITE, "Upload & edit models"),
        flag("ModelsDelete", Scope::MODELS_DELETE, "Delete models"),
        flag(
            "MediaRead",
            Scope::MEDIA_READ,
            "View images, videos & posts",
        ),
        flag(
            "MediaWrite",
            Scope::MEDIA_WRITE,
            "Upload media & create posts",
        ),
        flag("MediaDelete", Scope::MEDIA_DELETE, "Delete media & posts"),
        flag("ArticlesRead", Scope::ARTICLES_READ, "Read articles"),
        flag(
            "ArticlesWrite",
            Scope::ARTICLES_WRITE,
            "Create & edit articles",
        ),
        flag("ArticlesDelete", Scope::ARTICLES_DELETE, "Delete articles"),
        flag("BountiesRead", Scope::BOUNTIES_READ, "View bounties"),
        flag(
            "BountiesWrite",
            Scope::BOUNTIES_WRITE,
            "Create & manage bounties",
        ),
        flag("BountiesDelete", Scope::BOUNTIES_DELETE, "Delete bounties"),
        flag(
            "AIServicesRead",
            Scope::AI_SERVICES_READ,
            "View generation & training history",
        ),
        flag(
            "AIServicesWrite",
            Scope::AI_SERVICES_WRITE,
            "Generate, train & scan",
        ),
        flag("BuzzRead", Scope::BUZZ_READ, "View buzz balance & history"),
        flag(
            "CollectionsRead",
            Scope::COLLECTIONS_READ,
            "View collections",
        ),
        flag(
            "CollectionsWrite",
            Scope::COLLECTIONS_WRITE,
            "Manage collections",
        ),
        flag(
            "SocialWrite",
            Scope::SOCIAL_WRITE,
            "Follow, react, comment & review",
        ),
        flag("SocialTip", Scope::SOCIAL_TIP, "Tip other users (reserved)"),
        flag(
            "NotificationsRead",
            Scope::NOTIFICATIONS_READ,
            "Read notifications",
        ),
        flag(
            "NotificationsWrite",
            Scope::NOTIFICATIONS_WRITE,
            "Manage notification preferences",
        ),
        flag("VaultRead", Scope::VAULT_READ, "View vault"),
        flag("VaultWrite", Scope::VAULT_WRITE, "Manage vault"),
    ];

    /// The presets of the registration UI, also accepted by name in scope requests.
    pub const PRESETS: [ScopePreset; 4] = [
        ScopePreset {
            name: "ReadOnly",
            label: "Read Only",
            scope: Scope::READ_ONLY,
        },
        ScopePreset {
            name: "Creator",
            label: "Creator",
            scope: Scope::CREATOR,
        },
        ScopePreset {
            name: "AIServices",
            label: "AI Services",
            scope: Scope::AI_SERVICES,
        },
        ScopePreset {
            name: "Full",
            label: "Full Access",
            scope: Scope::FULL,
        },
    ];

    /// A mask from raw bits; `None` when bit 63 is set (a catalogue uses bits 0..=62,
    /// [`crate::catalogue::MAX_BIT`]). Whether each bit means something is the catalogue's
    /// question ([`crate::catalogue::Catalogue::check`]).
    pub const fn from_bits(bits: u64) -> Option<Scope> {
        if bits & !Scope::ANY_BITS == 0 {
            Some(Scope(bits))
        } else {
            None
        }
    }

    /// Bits a scope can never hold (bit 63) are dropped.
    pub const fn from_bits_truncate(bits: u64) -> Scope {
        Scope(bits & Scope::ANY_BITS)
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses a decimal mask: digits only (a sign, even `+`, is refused), every bit below 63.
    /// Which bits are defined is the catalogue's check.
    pub fn from_decimal(s: &str) -> Result<Scope, ScopeError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ScopeError::Empty);
        }
        if let Some(rest) = s.strip_prefix('-') {
            return if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                Err(ScopeError::Negative)
            } else {
                Err(ScopeError::Malformed)
            };
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ScopeError::Malformed);
        }
        // Any number with more significant digits than u64 can hold is out of range, however
        // long: strip leading zeros so "000…1" still parses.
        let digits = s.trim_start_matches('0');
        if digits.len() > 20 {
            return Err(ScopeError::OutOfRange);
        }
        let value: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| ScopeError::Malformed)?
        };
        u64::try_from(value)
            .ok()
            .and_then(Scope::from_bits)
            .ok_or(ScopeError::OutOfRange)
    }

    /// `self ⊆ other`.
    pub const fn is_subset_of(self, other: Scope) -> bool {
        self.0 & !other.0 == 0
    }

    /// Every bit of `required` is present.
    pub const fn contains(self, required: Scope) -> bool {
        required.is_subset_of(self)
    }

    /// At least one bit in common.
    pub const fn intersects(self, other: Scope) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn union(self, other: Scope) -> Scope {
        Scope(self.0 | other.0)
    }

    pub const fn intersection(self, other: Scope) -> Scope {
        Scope(self.0 & other.0)
    }

    pub const fn difference(self, other: Scope) -> Scope {
        Scope(self.0 & !other.0)
    }

    /// Trims to the app's ceiling and adds the always-granted scope (`UserRead` in Civitai's
    /// catalogue, [`crate::catalogue::Catalogue::always_granted`]): what a token may carry.
    pub const fn trim_to_ceiling(self, ceiling: Scope, always: Scope) -> Scope {
        self.intersection(ceiling).union(always)
    }

    /// The bits requested beyond the ceiling (shown as "not granted" where useful).
    pub const fn beyond_ceiling(self, ceiling: Scope, always: Scope) -> Scope {
        self.difference(ceiling.union(always))
    }

    /// The single bits set, lowest first.
    pub fn each_bit(self) -> impl Iterator<Item = Scope> {
        (0..64u32)
            .filter(move |b| self.0 & (1 << b) != 0)
            .map(|b| Scope(1 << b))
    }

    /// The authoritative decimal form (`"114689"`).
    pub fn to_decimal_string(self) -> String {
        self.0.to_string()
    }
}

const fn flag(name: &'static str, scope: Scope, label: &'static str) -> ScopeFlag {
    ScopeFlag { name, scope, label }
}

impl std::ops::BitOr for OidcScopes {
    type Output = OidcScopes;
    fn bitor(self, rhs: OidcScopes) -> OidcScopes {
        self.union(rhs)
    }
}

impl std::ops::BitOr for Scope {
    type Output = Scope;
    fn bitor(self, rhs: Scope) -> Scope {
        self.union(rhs)
    }
}

impl std::ops::BitAnd for Scope {
    type Output = Scope;
    fn bitand(self, rhs: Scope) -> Scope {
        self.intersection(rhs)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({})", self.0)
    }
}

impl TryFrom<u64> for Scope {
    type Error = ScopeError;
    fn try_from(v: u64) -> Result<Self, ScopeError> {
        Scope::from_bits(v).ok_or(ScopeError::OutOfRange)
    }
}

impl From<Scope> for u64 {
    fn from(s: Scope) -> u64 {
        s.0
    }
}

/// Lossless: bit 63 is never set, so every scope is a non-negative `i64` (how SQL stores it).
impl From<Scope> for i64 {
    fn from(s: Scope) -> i64 {
        i64::try_from(s.0).unwrap_or(i64::MAX)
    }
}

/// A stored mask: negative values are refused.
impl TryFrom<i64> for Scope {
    type Error = ScopeError;
    fn try_from(v: i64) -> Result<Self, ScopeError> {
        u64::try_from(v)
            .map_err(|_| ScopeError::Negative)
            .and_then(Scope::try_from)
    }
}

/// A scope as an owner writes it in a JSON body: a decimal mask (`114689`), a string of
/// names or a mask (`"profile generations"`), or an array of names (seed 004's
/// `["profile", "generations"]`). The catalogue reads it ([`crate::catalogue::Catalogue::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScopeValue {
    Mask(u64),
    Text(String),
    Names(Vec<String>),
}

impl From<Scope> for ScopeValue {
    fn from(s: Scope) -> ScopeValue {
        ScopeValue::Mask(s.bits())
    }
}

/// The OpenID Connect scopes (OIDC Core §3.1.2.1, §5.4, §11). They are not Civitai
/// permissions but what a relying party asks of the sign-in itself: `openid` asks for an
/// id_token, `profile` and `email` for those claims (both read the profile, so they grant
/// `UserRead`), `offline_access` for a refresh token (issued anyway). A request mixes them
/// freely with Civitai's names or a decimal mask: `openid profile 114689`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OidcScopes(u8);

impl OidcScopes {
    pub const NONE: OidcScopes = OidcScopes(0);
    pub const OPENID: OidcScopes = OidcScopes(1);
    pub const PROFILE: OidcScopes = OidcScopes(1 << 1);
    pub const EMAIL: OidcScopes = OidcScopes(1 << 2);
    pub const OFFLINE_ACCESS: OidcScopes = OidcScopes(1 << 3);

    /// Every OIDC scope with its name, as advertised in discovery.
    pub const NAMED: [(&'static str, OidcScopes); 4] = [
        ("openid", OidcScopes::OPENID),
        ("profile", OidcScopes::PROFILE),
        ("email", OidcScopes::EMAIL),
        ("offline_access", OidcScopes::OFFLINE_ACCESS),
    ];

    /// One OIDC scope by name (case-insensitive, like Civitai's names).
    pub fn from_name(name: &str) -> Option<OidcScopes> {
        OidcScopes::NAMED
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, s)| *s)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    /// `None` for bits no OIDC scope has.
    pub fn from_bits(bits: u8) -> Option<OidcScopes> {
        (bits & !0b1111 == 0).then_some(OidcScopes(bits))
    }

    pub const fn contains(self, other: OidcScopes) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn union(self, other: OidcScopes) -> OidcScopes {
        OidcScopes(self.0 | other.0)
    }

    /// The names, in the order of [`OidcScopes::NAMED`].
    pub fn names(self) -> Vec<&'static str> {
        OidcScopes::NAMED
            .iter()
            .filter(|(_, s)| self.contains(*s))
            .map(|(n, _)| *n)
            .collect()
    }
}

impl fmt::Debug for OidcScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OidcScopes({})", self.names().join(" "))
    }
}

/// What a request's `scope` asks for: Civitai's bits and the OIDC scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestedScope {
    pub scope: Scope,
    pub oidc: OidcScopes,
}

impl RequestedScope {
    /// The `scope` a form carries this request back as: the decimal mask, then the OIDC
    /// names (`"1 openid profile"`), which [`crate::catalogue::Catalogue::parse_request`] reads again.
    pub fn to_form_value(self) -> String {
        let mut out = self.scope.to_decimal_string();
        for name in self.oidc.names() {
            out.push(' ');
            out.push_str(name);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn flag_values_match_seed_003() {
        let expected: [(&str, u64); 25] = [
            ("UserRead", 1),
            ("UserWrite", 2),
            ("ModelsRead", 4),
            ("ModelsWrite", 8),
            ("ModelsDelete", 16),
            ("MediaRead", 32),
            ("MediaWrite", 64),
            ("MediaDelete", 128),
            ("ArticlesRead", 256),
            ("ArticlesWrite", 512),
            ("ArticlesDelete", 1024),
            ("BountiesRead", 2048),
            ("BountiesWrite", 4096),
            ("BountiesDelete", 8192),
            ("AIServicesRead", 16384),
            ("AIServicesWrite", 32768),
            ("BuzzRead", 65536),
            ("CollectionsRead", 131072),
            ("CollectionsWrite", 262144),
            ("SocialWrite", 524288),
            ("SocialTip", 1048576),
            ("NotificationsRead", 2097152),
            ("NotificationsWrite", 4194304),
            ("VaultRead", 8388608),
            ("VaultWrite", 16777216),
        ];
        for (f, (name, value)) in Scope::FLAGS.iter().zip(expected) {
            assert_eq!((f.name, f.scope.bits()), (name, value));
        }
        assert_eq!(Scope::FULL.bits(), 33_554_431);
        assert_eq!(
            Scope::FLAGS.iter().fold(Scope::NONE, |a, f| a | f.scope),
            Scope::FULL
        );
    }

    #[test]
    fn presets_are_the_documented_compositions() {
        let read_only = [
            Scope::USER_READ,
            Scope::MODELS_READ,
            Scope::MEDIA_READ,
            Scope::ARTICLES_READ,
            Scope::BOUNTIES_READ,
            Scope::BUZZ_READ,
            Scope::COLLECTIONS_READ,
            Scope::AI_SERVICES_READ,
            Scope::NOTIFICATIONS_READ,
            Scope::VAULT_READ,
        ]
        .into_iter()
        .fold(Scope::NONE, |a, b| a | b);
        assert_eq!(read_only, Scope::READ_ONLY);
        assert_eq!(Scope::READ_ONLY.bits(), 10_701_093);
        let creator = Scope::READ_ONLY
            | Scope::MODELS_WRITE
            | Scope::MEDIA_WRITE
            | Scope::ARTICLES_WRITE
            | Scope::BOUNTIES_WRITE
            | Scope::COLLECTIONS_WRITE
            | Scope::SOCIAL_WRITE;
        assert_eq!(creator, Scope::CREATOR);
        assert_eq!(Scope::CREATOR.bits(), 11_492_205);
        assert_eq!(
            Scope::USER_READ
                | Scope::AI_SERVICES_READ
                | Scope::AI_SERVICES_WRITE
                | Scope::BUZZ_READ,
            Scope::AI_SERVICES
        );
        assert_eq!(Scope::AI_SERVICES.bits(), 114_689);
    }

    #[test]
    fn every_flag_has_a_label() {
        assert!(Scope::FLAGS.iter().all(|f| !f.label.is_empty()));
        assert_eq!(Scope::FLAGS[0].label, "Read profile, settings & email");
        assert_eq!(Scope::FLAGS[15].label, "Generate, train & scan");
    }

    #[test]
    fn decimal_parsing_accepts_every_bit_below_63() {
        assert_eq!(Scope::from_decimal("114689").unwrap(), Scope::AI_SERVICES);
        assert_eq!(Scope::from_decimal("0").unwrap(), Scope::NONE);
        assert_eq!(Scope::from_decimal(" 33554431 ").unwrap(), Scope::FULL);
        assert_eq!(
            Scope::from_decimal("0000000000000000000001").unwrap(),
            Scope::USER_READ
        );
        let top = (1u64 << 63) - 1;
        assert_eq!(Scope::from_decimal(&top.to_string()).unwrap().bits(), top);
    }

    #[test]
    fn decimal_parsing_rejects_negatives() {
        assert_eq!(Scope::from_decimal("-1"), Err(ScopeError::Negative));
    }

    #[test]
    fn decimal_parsing_rejects_non_numbers() {
        for bad in ["1.5", "0x10", "1e3", "12abc", "+3", "--1", "-", " ", ""] {
            assert!(Scope::from_decimal(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn decimal_parsing_rejects_bit_63_and_beyond() {
        assert_eq!(
            Scope::from_decimal(&(1u64 << 63).to_string()),
            Err(ScopeError::OutOfRange)
        );
        assert_eq!(
            Scope::from_decimal(&u64::MAX.to_string()),
            Err(ScopeError::OutOfRange)
        );
        assert_eq!(
            Scope::from_decimal("18446744073709551616"),
            Err(ScopeError::OutOfRange)
        );
        assert_eq!(
            Scope::from_decimal(&"9".repeat(400)),
            Err(ScopeError::OutOfRange)
        );
    }

    #[test]
    fn ceiling_trimming_drops_unregistered_bits_and_adds_the_always_granted() {
        let ceiling = Scope::MODELS_READ | Scope::BUZZ_READ;
        let asked = Scope::MODELS_READ | Scope::VAULT_WRITE;
        let always = Scope::USER_READ;
        assert_eq!(
            asked.trim_to_ceiling(ceiling, always),
            Scope::MODELS_READ | Scope::USER_READ
        );
        assert_eq!(asked.beyond_ceiling(ceiling, always), Scope::VAULT_WRITE);
        assert_eq!(
            Scope::NONE.trim_to_ceiling(Scope::NONE, always),
            Scope::USER_READ
        );
    }

    #[test]
    fn subset_checks() {
        assert!(Scope::USER_READ.is_subset_of(Scope::AI_SERVICES));
        assert!(!Scope::FULL.is_subset_of(Scope::AI_SERVICES));
        assert!(Scope::AI_SERVICES.contains(Scope::AI_SERVICES_WRITE));
        assert!(Scope::NONE.is_subset_of(Scope::NONE));
        assert!(Scope::AI_SERVICES.intersects(Scope::BUZZ_READ | Scope::VAULT_READ));
        assert!(!Scope::AI_SERVICES.intersects(Scope::VAULT_READ));
    }

    #[test]
    fn serde_is_the_bare_number_and_refuses_bit_63() {
        assert_eq!(
            serde_json::to_string(&Scope::AI_SERVICES).unwrap(),
            "114689"
        );
        assert_eq!(serde_json::from_str::<Scope>("5").unwrap(), Scope(5));
        assert_eq!(
            serde_json::from_str::<Scope>("1099511627776")
                .unwrap()
                .bits(),
            1 << 40
        );
        assert!(serde_json::from_str::<Scope>("9223372036854775808").is_err());
    }

    fn any_scope() -> impl Strategy<Value = Scope> {
        (0u64..=Scope::ANY_BITS).prop_map(Scope)
    }

    proptest! {
        #[test]
        fn decimal_round_trips(s in any_scope()) {
            prop_assert_eq!(Scope::from_decimal(&s.to_decimal_string()).unwrap(), s);
        }

        #[test]
        fn each_bit_reassembles_the_scope(s in any_scope()) {
            prop_assert_eq!(s.each_bit().fold(Scope::NONE, |a, b| a | b), s);
            prop_assert!(s.each_bit().all(|b| b.bits().count_ones() == 1));
        }

        #[test]
        fn trimming_is_bounded_idempotent_and_keeps_the_always_granted(
            s in any_scope(), c in any_scope(), bit in 0u32..63
        ) {
            let always = Scope(1 << bit);
            let t = s.trim_to_ceiling(c, always);
            prop_assert!(t.is_subset_of(c | always));
            prop_assert!(t.contains(always));
            prop_assert_eq!(t.trim_to_ceiling(c, always), t);
            prop_assert!(t.difference(always).is_subset_of(s));
        }

        #[test]
        fn union_and_intersection_laws(a in any_scope(), b in any_scope(), c in any_scope()) {
            prop_assert_eq!(a | b, b | a);
            prop_assert_eq!(a & b, b & a);
            prop_assert_eq!((a | b) | c, a | (b | c));
            prop_assert_eq!(a & (b | c), (a & b) | (a & c));
            prop_assert!((a & b).is_subset_of(a));
            prop_assert!(a.is_subset_of(a | b));
            prop_assert_eq!(a.is_subset_of(b), (a & b) == a);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,64}") {
            let _ = Scope::from_decimal(&s);
        }
    }
}
