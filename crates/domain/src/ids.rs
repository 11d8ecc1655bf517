//! Identifiers. Users have integer ids (Civitai's `sub` is a decimal string of one); clients are
//! uuid v4 strings; families, tokens and spends are uuids made from the randomness port.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ports::Random;

/// A user of the directory. Rendered as a decimal `sub`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An OAuth client id. Self-service apps get a uuid v4; ids are opaque to everything else, but
/// bounded and printable so a hostile value cannot reach a store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    pub const MAX_LEN: usize = 128;

    /// Accepts any visible-ASCII id of 1..=128 characters (lookups then decide if it exists).
    pub fn parse(s: &str) -> Option<ClientId> {
        (!s.is_empty() && s.len() <= Self::MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| ClientId(s.to_owned()))
    }

    /// A fresh uuid v4 id.
    pub fn generate(random: &dyn Random) -> ClientId {
        ClientId(new_uuid(random).to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            pub fn generate(random: &dyn Random) -> Self {
                $name(new_uuid(random))
            }
            pub fn parse(s: &str) -> Option<Self> {
                uuid::Uuid::try_parse(s).ok().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

uuid_id!(
    /// A refresh-token family: every token descending from one grant (code or device approval).
    FamilyId
);
uuid_id!(
    /// A token row (access, refresh or API key); API keys are listed and deleted by it.
    TokenId
);
uuid_id!(
    /// A Buzz ledger entry (a spend), the handle for refunds.
    SpendId
);

/// A uuid v4 built from 16 bytes of the randomness port.
pub fn new_uuid(random: &dyn Random) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    random.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SeededRandom;

    #[test]
    fn client_ids_are_bounded_printable_ascii() {
        assert!(ClientId::parse("3f1c-abc").is_some());
        assert!(ClientId::parse("").is_none());
        assert!(ClientId::parse("has space").is_none());
        assert!(ClientId::parse("é").is_none());
        assert!(ClientId::parse(&"a".repeat(129)).is_none());
        assert!(ClientId::parse(&"a".repeat(128)).is_some());
    }

    #[test]
    fn generated_ids_are_uuid_v4_and_differ() {
        let r = SeededRandom::new(7);
        let a = ClientId::generate(&r);
        let b = ClientId::generate(&r);
        assert_ne!(a, b);
        let u = uuid::Uuid::parse_str(a.as_str()).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(FamilyId::parse(&FamilyId(u).to_string()), Some(FamilyId(u)));
    }
}
