//! The client_credentials grant: confidential clients that registered it act as their owner;
//! the default scope is the app's ceiling; no refresh token is issued.

use crate::client::{Client, GrantType};
use crate::error::Error;
use crate::scope::Scope;

/// The scope a client-credentials token carries, or why the client may not have one.
/// Bits beyond the ceiling are refused (no user saw a consent page to trim them on);
/// `always` is the catalogue's always-granted scope.
pub fn grant_scope(
    client: &Client,
    requested: Option<Scope>,
    always: Scope,
) -> Result<Scope, Error> {
    client.require_confidential()?;
    if !client.allows_grant(GrantType::ClientCredentials) {
        return Err(Error::UnauthorizedClient(
            "Unauthorized client: client_credentials is not registered for this client".into(),
        ));
    }
    let ceiling = client.ceiling() | always;
    match requested {
        None => Ok(ceiling),
        Some(s) if s.is_subset_of(ceiling) => Ok(s | always),
        Some(_) => Err(Error::invalid_scope(
            "Invalid scope: requested scope exceeds the client's allowed scopes",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::fixtures::{confidential, public};

    #[test]
    fn default_scope_is_the_ceiling() {
        let mut c = confidential("app");
        c.allowed_scopes = Scope::BUZZ_READ;
        assert_eq!(
            grant_scope(&c, None, Scope::USER_READ).unwrap(),
            Scope::BUZZ_READ | Scope::USER_READ
        );
    }

    #[test]
    fn requested_subset_is_granted_with_user_read() {
        let c = confidential("app");
        assert_eq!(
            grant_scope(&c, Some(Scope::MODELS_READ), Scope::USER_READ).unwrap(),
            Scope::MODELS_READ | Scope::USER_READ
        );
    }

    #[test]
    fn scope_beyond_the_ceiling_is_invalid_scope() {
        let mut c = confidential("app");
        c.allowed_scopes = Scope::BUZZ_READ;
        assert_eq!(
            grant_scope(&c, Some(Scope::VAULT_WRITE), Scope::USER_READ)
                .unwrap_err()
                .code(),
            "invalid_scope"
        );
    }

    #[test]
    fn public_clients_are_unauthorized() {
        assert_eq!(
            grant_scope(&public("spa"), None, Scope::USER_READ)
                .unwrap_err()
                .code(),
            "unauthorized_client"
        );
    }

    #[test]
    fn clients_without_the_grant_are_unauthorized() {
        let mut c = confidential("app");
        c.grants.retain(|g| *g != GrantType::ClientCredentials);
        assert_eq!(
            grant_scope(&c, None, Scope::USER_READ).unwrap_err().code(),
            "unauthorized_client"
        );
    }
}
