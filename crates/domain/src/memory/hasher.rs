//! `InsecureTestHasher`: a fast, deliberately weak `PasswordHasher` for tests.

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::ports::PasswordHasher;

/// A fast, deliberately weak password hasher (salted SHA-256) so tests do not spend seconds
/// in argon2. Never use it for real passwords: production wires `buzzgate_crypto::Argon2Hasher`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InsecureTestHasher;

#[async_trait]
impl PasswordHasher for InsecureTestHasher {
    async fn hash(&self, password: &str, salt: [u8; 16]) -> Result<String, Error> {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(password.as_bytes());
        Ok(format!(
            "test${}${}",
            hex::encode(salt),
            hex::encode(h.finalize())
        ))
    }
    async fn verify(&self, password: &str, phc: &str) -> bool {
        let mut parts = phc.split('$');
        let (Some("test"), Some(salt), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        let mut bytes = [0u8; 16];
        if hex::decode_to_slice(salt, &mut bytes).is_err() {
            return false;
        }
        self.hash(password, bytes)
            .await
            .is_ok_and(|h| subtle::ConstantTimeEq::ct_eq(h.as_bytes(), phc.as_bytes()).into())
    }
}
