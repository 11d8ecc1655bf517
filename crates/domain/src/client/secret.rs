//! Client secrets: generation (256 bits), the SHA-256 form stored, and the constant-time check.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::ports::Random;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SeededRandom;
    use proptest::prelude::*;

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

    proptest! {
        #[test]
        fn secret_hash_verifies_exactly_its_secret(a in "\\PC{0,40}", b in "\\PC{0,40}") {
            let h = SecretHash::of(&a);
            prop_assert!(h.verify(&a));
            prop_assert_eq!(h.verify(&b), a == b);
        }
    }
}
