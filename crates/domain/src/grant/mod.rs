//! One module per grant: the pure rules each grant applies. Services call them; atomic steps
//! (code redemption, rotation, device polling) hand their decision object to one port method
//! so the adapter can apply it inside one transaction.

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod refresh_token;

#[cfg(test)]
pub(crate) mod fixtures {
    use time::OffsetDateTime;
    use time::macros::datetime;

    use crate::client::{Client, ClientRegistration, ClientSecret};
    use crate::ids::{ClientId, UserId};
    use crate::ports::SeededRandom;

    pub const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);
    pub const SECRET_SEED: u64 = 42;

    /// A confidential client with every grant and a Full ceiling; its secret is
    /// `ClientSecret::generate(&SeededRandom::new(SECRET_SEED))`.
    pub fn confidential(id: &str) -> Client {
        let reg = crate::memory::sample_registration("Test App");
        let secret = ClientSecret::generate(&SeededRandom::new(SECRET_SEED));
        Client::new(
            ClientId::parse(id).unwrap(),
            UserId(100),
            reg.validate(&crate::catalogue::Catalogue::civitai())
                .unwrap(),
            Some(&secret),
            T0,
        )
    }

    pub fn public(id: &str) -> Client {
        let reg = ClientRegistration {
            name: "Public App".into(),
            description: None,
            redirect_uris: vec![
                "com.example.app:/cb".into(),
                "https://spa.example.com/cb".into(),
            ],
            allowed_origins: None,
            is_confidential: Some(false),
            allowed_scopes: None,
            grants: None,
            owner_buzz_limit: None,
        };
        Client::new(
            ClientId::parse(id).unwrap(),
            UserId(100),
            reg.validate(&crate::catalogue::Catalogue::civitai())
                .unwrap(),
            None,
            T0,
        )
    }
}
