//! argon2id password hashing for the built-in directory (PHC strings, OWASP-recommended
//! parameters: m=19 MiB, t=2, p=1). Client secrets and tokens are not hashed this way: they
//! are 256-bit random values, for which SHA-256 is enough.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;

use crate::error::Error;
use crate::ports::PasswordHasher;

#[derive(Debug, Clone, Copy, Default)]
pub struct Argon2Hasher;

fn argon2() -> Argon2<'static> {
    // The defaults of the argon2 crate are OWASP's first recommendation (m=19456, t=2, p=1).
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &str, salt: [u8; 16]) -> Result<String, Error> {
        let salt = SaltString::encode_b64(&salt)
            .map_err(|_| Error::ServerError("salt encoding failed".into()))?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| Error::ServerError("password hashing failed".into()))
    }

    async fn verify(&self, password: &str, phc: &str) -> bool {
        PasswordHash::new(phc)
            .is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn argon2id_hashes_verify_and_reject_wrong_passwords() {
        let h = Argon2Hasher
            .hash("correct horse battery", [7u8; 16])
            .await
            .unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(Argon2Hasher.verify("correct horse battery", &h).await);
        assert!(!Argon2Hasher.verify("correct horse batterx", &h).await);
        assert!(!Argon2Hasher.verify("anything", "not a phc string").await);
    }
}
