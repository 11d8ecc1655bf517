//! `buzzgate-crypto`: the cryptographic adapters of the domain's ports.
//!
//! - [`Argon2Hasher`] (`PasswordHasher`): argon2id on Tokio's blocking pool, at most one hash
//!   per core at a time, so wrong passwords cannot stall the async runtime (SPEC 13).
//! - [`Es256Signer`] (`IdTokenSigner`): ES256 id_tokens and the JWKS over RustCrypto's P-256;
//!   [`Es256KeySet`] adds the retired keys a rotation keeps publishing.
//!
//! Client secrets and tokens are not hashed here: they are 256-bit random values, for which
//! SHA-256 (in the domain) is enough.

mod argon;
mod es256;

pub use argon::Argon2Hasher;
pub use es256::{Es256KeySet, Es256Signer, RetiredKey};
