//! ES256 id_tokens and the JWKS: an adapter of the domain's `IdTokenSigner` port over
//! RustCrypto's P-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use buzzgate_domain::error::Error;
use buzzgate_domain::ports::{IdTokenClaims, IdTokenSigner};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
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

    /// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_pem(&self) -> Result<String, String> {
        public_pem(self.key.verifying_key())
    }

    fn from_key(key: SigningKey) -> Es256Signer {
        let kid = kid_of(key.verifying_key());
        Es256Signer { key, kid }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The key id: the first 8 bytes of SHA-256 over the uncompressed SEC1 point, in hex. Kept
/// as it was before key sets (not the RFC 7638 thumbprint) so that id_tokens signed before an
/// upgrade still find their key in the JWKS by `kid`.
fn kid_of(key: &VerifyingKey) -> String {
    let point = key.to_encoded_point(false);
    let digest = Sha256::digest(point.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn public_pem(key: &VerifyingKey) -> Result<String, String> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())
}

fn jwk(key: &VerifyingKey, kid: &str) -> serde_json::Value {
    let point = key.to_encoded_point(false);
    let x = point.x().map(|x| B64.encode(x)).unwrap_or_default();
    let y = point.y().map(|y| B64.encode(y)).unwrap_or_default();
    serde_json::json!({
        "kty": "EC", "crv": "P-256", "x": x, "y": y,
        "use": "sig", "alg": "ES256", "kid": kid,
    })
}

/// A public key that no longer signs but stays in the JWKS until `until` (Unix seconds), so
/// that id_tokens it signed before a rotation still verify.
#[derive(Clone, PartialEq, Eq)]
pub struct RetiredKey {
    key: VerifyingKey,
    kid: String,
    until: i64,
}

impl std::fmt::Debug for RetiredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetiredKey")
            .field("kid", &self.kid)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

impl RetiredKey {
    /// A retired key from SPKI PEM (`-----BEGIN PUBLIC KEY-----`), published until `until`.
    pub fn from_pem(pem: &str, until: i64) -> Result<RetiredKey, String> {
        let key = VerifyingKey::from_public_key_pem(pem)
            .map_err(|e| format!("not a P-256 public key: {e}"))?;
        Ok(RetiredKey {
            kid: kid_of(&key),
            key,
            until,
        })
    }

    pub fn to_pem(&self) -> Result<String, String> {
        public_pem(&self.key)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Until when (Unix seconds) the key is published.
    pub fn until(&self) -> i64 {
        self.until
    }
}

/// The id_token keys of a node: the current key, which signs, and the retired ones, which are
/// only published (the `IdTokenSigner` adapter; where the keys are kept is the caller's
/// business).
#[derive(Debug)]
pub struct Es256KeySet {
    current: Es256Signer,
    retired: Vec<RetiredKey>,
}

impl Es256KeySet {
    /// The set, without the retired keys whose window ended by `now` (Unix seconds) or whose
    /// key is the current one.
    pub fn new(current: Es256Signer, retired: Vec<RetiredKey>, now: i64) -> Es256KeySet {
        let mut set = Es256KeySet { current, retired };
        set.drop_expired(now);
        set
    }

    fn drop_expired(&mut self, now: i64) {
        let current = self.current.kid.clone();
        let mut seen = std::collections::HashSet::new();
        self.retired
            .retain(|r| r.until > now && r.kid != current && seen.insert(r.kid.clone()));
    }

    pub fn current(&self) -> &Es256Signer {
        &self.current
    }

    pub fn retired(&self) -> &[RetiredKey] {
        &self.retired
    }

    /// `next` becomes the current key; the current one is retired until `until`; keys whose
    /// window ended by `now` are dropped.
    pub fn rotate(self, next: Es256Signer, until: i64, now: i64) -> Es256KeySet {
        let old = RetiredKey {
            key: *self.current.key.verifying_key(),
            kid: self.current.kid.clone(),
            until,
        };
        let mut retired = vec![old];
        retired.extend(self.retired);
        Es256KeySet::new(next, retired, now)
    }

    /// The JWKS as of `now`: the current key, then the retired keys still in their window.
    pub fn jwks_at(&self, now: i64) -> serde_json::Value {
        let mut keys = vec![jwk(self.current.key.verifying_key(), &self.current.kid)];
        keys.extend(
            self.retired
                .iter()
                .filter(|r| r.until > now)
                .map(|r| jwk(&r.key, &r.kid)),
        );
        serde_json::json!({ "keys": keys })
    }
}

impl IdTokenSigner for Es256KeySet {
    fn sign(&self, claims: &IdTokenClaims) -> Result<String, Error> {
        self.current.sign(claims)
    }

    fn jwks(&self) -> serde_json::Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.jwks_at(now)
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
        serde_json::json!({ "keys": [jwk(self.key.verifying_key(), &self.kid)] })
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

    #[test]
    fn a_rotated_set_signs_with_the_new_key_and_publishes_the_old_one_until_its_end() {
        let old = Es256Signer::generate().unwrap();
        let old_kid = old.kid().to_owned();
        let old_pem = old.public_pem().unwrap();
        let set = Es256KeySet::new(old, vec![], 100);
        let next = Es256Signer::generate().unwrap();
        let next_kid = next.kid().to_owned();
        let set = set.rotate(next, 200, 100);
        assert_eq!(set.current().kid(), next_kid);
        assert_eq!(set.retired()[0].kid(), old_kid);
        assert_eq!(RetiredKey::from_pem(&old_pem, 1).unwrap().kid(), old_kid);
        let kids = |now| -> Vec<String> {
            set.jwks_at(now)["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(kids(150), vec![next_kid.clone(), old_kid.clone()]);
        assert_eq!(kids(200), vec![next_kid.clone()]);
        let header = set.sign(&claims()).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(header.split('.').next().unwrap()).unwrap())
                .unwrap();
        assert_eq!(header["kid"], next_kid);
        // Rotating again after the window drops the first key.
        let set = set.rotate(Es256Signer::generate().unwrap(), 400, 300);
        assert_eq!(set.retired().len(), 1);
        assert_eq!(set.retired()[0].kid(), next_kid);
    }
}
