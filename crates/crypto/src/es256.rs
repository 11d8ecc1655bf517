//! ES256 id_tokens and the JWKS: an adapter of the domain's `IdTokenSigner` port over
//! RustCrypto's P-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use buzzgate_domain::error::Error;
use buzzgate_domain::ports::{IdTokenClaims, IdTokenSigner};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use sha2::{Digest, Sha256};

/// One P-256 key. `Debug` shows the key id only.
pub struct Es256Signer {
    key: SigningKey,
    kid: String,
}

impl std::fmt::Debug for Es256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Es256Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Es256Signer {
    /// A fresh key from the OS generator.
    pub fn generate() -> Result<Es256Signer, String> {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::getrandom(&mut bytes).map_err(|e| e.to_string())?;
            // A scalar outside [1, n) is astronomically unlikely; draw again if it happens.
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return Ok(Self::from_key(key));
            }
        }
    }

    /// A key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Es256Signer, String> {
        SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_key)
            .map_err(|e| format!("not a PKCS#8 P-256 private key: {e}"))
    }

    /// The key as PKCS#8 PEM, for persisting a generated key.
    pub fn to_pem(&self) -> Result<String, String> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|z| z.to_string())
            .map_err(|e| e.to_string())
    }

    fn from_key(key: SigningKey) -> Es256Signer {
        let point = key.verifying_key().to_encoded_point(false);
        let digest = Sha256::digest(point.as_bytes());
        let kid = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Es256Signer { key, kid }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

impl IdTokenSigner for Es256Signer {
    fn sign(&self, claims: &IdTokenClaims) -> Result<String, Error> {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let payload = serde_json::to_vec(claims)
            .map_err(|_| Error::ServerError("could not encode id_token".into()))?;
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string().as_bytes()),
            B64.encode(payload)
        );
        let sig: Signature = self.key.sign(signing_input.as_bytes());
        Ok(format!("{signing_input}.{}", B64.encode(sig.to_bytes())))
    }

    fn jwks(&self) -> serde_json::Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        let x = point.x().map(|x| B64.encode(x)).unwrap_or_default();
        let y = point.y().map(|y| B64.encode(y)).unwrap_or_default();
        serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "use": "sig", "alg": "ES256", "kid": self.kid,
        }]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;

    fn claims() -> IdTokenClaims {
        IdTokenClaims {
            iss: "http://127.0.0.1:8080".into(),
            sub: "1".into(),
            aud: "client".into(),
            iat: 1,
            exp: 3601,
            nonce: Some("n".into()),
            auth_time: 1,
            name: None,
            preferred_username: None,
            picture: None,
            email: None,
            email_verified: None,
        }
    }

    #[test]
    fn signature_verifies_against_the_published_jwk() {
        let s = Es256Signer::generate().unwrap();
        let jwt = s.sign(&claims()).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let jwk = &s.jwks()["keys"][0];
        let mut sec1 = vec![4u8];
        sec1.extend(B64.decode(jwk["x"].as_str().unwrap()).unwrap());
        sec1.extend(B64.decode(jwk["y"].as_str().unwrap()).unwrap());
        let vk = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let sig = Signature::from_slice(&B64.decode(parts[2]).unwrap()).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        vk.verify(input.as_bytes(), &sig).unwrap();
        assert!(vk.verify(b"tampered", &sig).is_err());
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], s.kid());
        let payload: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["nonce"], "n");
    }

    #[test]
    fn pem_round_trip_keeps_the_key_id() {
        let s = Es256Signer::generate().unwrap();
        let again = Es256Signer::from_pem(&s.to_pem().unwrap()).unwrap();
        assert_eq!(s.kid(), again.kid());
        assert!(Es256Signer::from_pem("nope").is_err());
    }
}
