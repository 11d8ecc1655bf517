//! PKCE (RFC 7636), S256 only: a challenge and a verifier that can only hold well-formed
//! values, and the constant-time check that binds a code to the client that asked for it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::ports::Random;

/// The only supported `code_challenge_method`. `plain` is refused: it protects nothing
/// against an attacker who can read the authorization request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CodeChallengeMethod {
    S256,
}

impl CodeChallengeMethod {
    pub fn parse(s: &str) -> Result<Self, Error> {
        // Exact match: RFC 7636 method names are case-sensitive.
        if s == "S256" {
            Ok(CodeChallengeMethod::S256)
        } else {
            Err(Error::invalid_request(
                "Only S256 code_challenge_method is supported",
            ))
        }
    }

    pub fn as_str(self) -> &'static str {
        "S256"
    }
}

/// A `code_challenge`: exactly 43 base64url characters, the unpadded encoding of a SHA-256.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CodeChallenge(String);

impl CodeChallenge {
    pub const LEN: usize = 43;

    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.len() == Self::LEN && s.bytes().all(is_base64url) {
            Ok(CodeChallenge(s.to_owned()))
        } else {
            Err(Error::invalid_request(
                "code_challenge must be 43 base64url characters (the S256 hash of the verifier)",
            ))
        }
    }

    /// BASE64URL-NOPAD(SHA256(ASCII(verifier))).
    pub fn from_verifier(verifier: &CodeVerifier) -> CodeChallenge {
        let digest = Sha256::digest(verifier.0.as_bytes());
        CodeChallenge(URL_SAFE_NO_PAD.encode(digest))
    }

    /// Whether `verifier` hashes to this challenge. Constant-time so that timing does not
    /// reveal how much of a guessed verifier's hash was right.
    pub fn verify(&self, verifier: &CodeVerifier) -> bool {
        let derived = CodeChallenge::from_verifier(verifier);
        derived.0.as_bytes().ct_eq(self.0.as_bytes()).into()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CodeChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A challenge is public (it travels in the authorize URL), so it may be shown.
        write!(f, "CodeChallenge({})", self.0)
    }
}

impl TryFrom<String> for CodeChallenge {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        CodeChallenge::parse(&s)
    }
}

impl From<CodeChallenge> for String {
    fn from(c: CodeChallenge) -> String {
        c.0
    }
}

/// A `code_verifier`: 43..=128 unreserved characters `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
/// It is a secret until the code is redeemed, so `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    pub const MIN_LEN: usize = 43;
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, Error> {
        if (Self::MIN_LEN..=Self::MAX_LEN).contains(&s.len()) && s.bytes().all(is_unreserved) {
            Ok(CodeVerifier(s.to_owned()))
        } else {
            Err(Error::invalid_request(
                "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]",
            ))
        }
    }

    /// 32 random bytes, base64url without padding: 43 characters, 256 bits of entropy.
    pub fn generate(random: &dyn Random) -> CodeVerifier {
        let mut bytes = [0u8; 32];
        random.fill(&mut bytes);
        CodeVerifier(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeVerifier(<redacted>)")
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SeededRandom;
    use proptest::prelude::*;

    // RFC 7636 Appendix B (verifier derived from the octets listed there).
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        let v = CodeVerifier::parse(RFC_VERIFIER).unwrap();
        assert_eq!(CodeChallenge::from_verifier(&v).as_str(), RFC_CHALLENGE);
        assert!(CodeChallenge::parse(RFC_CHALLENGE).unwrap().verify(&v));
    }

    #[test]
    fn only_s256_method_is_supported() {
        assert_eq!(
            CodeChallengeMethod::parse("S256").unwrap(),
            CodeChallengeMethod::S256
        );
        assert_eq!(CodeChallengeMethod::S256.as_str(), "S256");
        for bad in ["plain", "s256", "S256 ", "", "SHA256"] {
            assert_eq!(
                CodeChallengeMethod::parse(bad),
                Err(Error::invalid_request(
                    "Only S256 code_challenge_method is supported"
                )),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn challenge_must_be_43_base64url_chars() {
        assert!(CodeChallenge::parse(&"a".repeat(43)).is_ok());
        for bad in [
            "a".repeat(42),
            "a".repeat(44),
            format!("{}=", "a".repeat(42)),
            format!("{}+", "a".repeat(42)),
            format!("{}/", "a".repeat(42)),
            format!("{}é", "a".repeat(41)),
            String::new(),
        ] {
            let e = CodeChallenge::parse(&bad).unwrap_err();
            assert_eq!(e.code(), "invalid_request", "{bad:?}");
        }
    }

    #[test]
    fn verifier_length_bounds_are_43_to_128() {
        assert!(CodeVerifier::parse(&"a".repeat(42)).is_err());
        assert!(CodeVerifier::parse(&"a".repeat(43)).is_ok());
        assert!(CodeVerifier::parse(&"a".repeat(128)).is_ok());
        assert!(CodeVerifier::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn verifier_accepts_only_unreserved_characters() {
        let ok = format!("{}-._~", "Az09".repeat(10));
        assert!(CodeVerifier::parse(&ok).is_ok());
        for c in ['+', '/', '=', ' ', '%', 'é', '\n'] {
            let bad = format!("{}{c}", "a".repeat(43));
            assert_eq!(
                CodeVerifier::parse(&bad),
                Err(Error::invalid_request(
                    "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]"
                ))
            );
        }
    }

    #[test]
    fn wrong_verifier_does_not_verify() {
        let challenge = CodeChallenge::parse(RFC_CHALLENGE).unwrap();
        let other = CodeVerifier::parse(&"a".repeat(43)).unwrap();
        assert!(!challenge.verify(&other));
    }

    #[test]
    fn generated_verifier_is_43_chars_and_differs() {
        let r = SeededRandom::new(3);
        let a = CodeVerifier::generate(&r);
        let b = CodeVerifier::generate(&r);
        assert_eq!(a.as_str().len(), 43);
        assert!(CodeVerifier::parse(a.as_str()).is_ok());
        assert_ne!(a, b);
    }

    #[test]
    fn verifier_debug_is_redacted() {
        let v = CodeVerifier::parse(RFC_VERIFIER).unwrap();
        assert!(!format!("{v:?}").contains(RFC_VERIFIER));
    }

    #[test]
    fn challenge_serde_is_a_validated_string() {
        let c = CodeChallenge::parse(RFC_CHALLENGE).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, format!("\"{RFC_CHALLENGE}\""));
        assert_eq!(serde_json::from_str::<CodeChallenge>(&json).unwrap(), c);
        assert!(serde_json::from_str::<CodeChallenge>("\"short\"").is_err());
    }

    proptest! {
        #[test]
        fn challenge_from_any_valid_verifier_verifies(v in "[A-Za-z0-9._~-]{43,128}") {
            let verifier = CodeVerifier::parse(&v).unwrap();
            let challenge = CodeChallenge::from_verifier(&verifier);
            prop_assert!(CodeChallenge::parse(challenge.as_str()).is_ok());
            prop_assert!(challenge.verify(&verifier));
        }

        #[test]
        fn distinct_verifiers_do_not_cross_verify(
            a in "[A-Za-z0-9._~-]{43,64}",
            b in "[A-Za-z0-9._~-]{43,64}",
        ) {
            prop_assume!(a != b);
            let (a, b) = (CodeVerifier::parse(&a).unwrap(), CodeVerifier::parse(&b).unwrap());
            prop_assert!(!CodeChallenge::from_verifier(&a).verify(&b));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,160}") {
            let _ = CodeVerifier::parse(&s);
            let _ = CodeChallenge::parse(&s);
            let _ = CodeChallengeMethod::parse(&s);
        }

        #[test]
        fn generated_verifiers_always_parse(seed in any::<u64>()) {
            let v = CodeVerifier::generate(&SeededRandom::new(seed));
            prop_assert!(CodeVerifier::parse(v.as_str()).is_ok());
        }
    }
}
