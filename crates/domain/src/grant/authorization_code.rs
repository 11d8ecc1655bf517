//! The authorization_code grant: code issuance at authorize, and the checks after the atomic
//! single-use take (expiry, client binding, redirect_uri equality, PKCE, current ceiling).

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::client::Client;
use crate::error::Error;
use crate::ids::{ClientId, FamilyId, UserId};
use crate::pkce::{CodeChallenge, CodeVerifier};
use crate::ports::Random;
use crate::scope::{OidcScopes, Scope};
use crate::token::{PlainToken, TokenHash, is_live};

/// A stored authorization code (the plaintext goes to the client once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationCodeRecord {
    pub hash: TokenHash,
    pub client_id: ClientId,
    pub user_id: UserId,
    /// The redirect URI exactly as sent at authorize (with its loopback port).
    pub redirect_uri: String,
    /// Granted scope (trimmed to the ceiling, with UserRead).
    pub scope: Scope,
    pub code_challenge: CodeChallenge,
    pub nonce: Option<String>,
    /// The OpenID Connect scopes of the request (`openid` asks for an id_token).
    #[serde(default)]
    pub oidc: OidcScopes,
    /// The resources (RFC 8707) the authorization covers; empty: none named.
    #[serde(default)]
    pub resources: Vec<String>,
    pub auth_time: OffsetDateTime,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// Set by the atomic take: the family the redemption created. A second presentation
    /// revokes that family (RFC 6749 §4.1.2).
    pub redeemed: Option<FamilyId>,
}

/// Everything a new code binds.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub client_id: ClientId,
    pub user_id: UserId,
    pub redirect_uri: String,
    pub scope: Scope,
    pub code_challenge: CodeChallenge,
    pub nonce: Option<String>,
    pub oidc: OidcScopes,
    pub resources: Vec<String>,
    pub auth_time: OffsetDateTime,
}

/// Mints a code: 64 hex (256 bits), valid for `ttl` (600 s by default).
pub fn issue(
    grant: CodeGrant,
    now: OffsetDateTime,
    ttl: Duration,
    random: &dyn Random,
) -> (PlainToken, AuthorizationCodeRecord) {
    let code = PlainToken::generate_unprefixed(random);
    let record = AuthorizationCodeRecord {
        hash: code.hash(),
        client_id: grant.client_id,
        user_id: grant.user_id,
        redirect_uri: grant.redirect_uri,
        scope: grant.scope,
        code_challenge: grant.code_challenge,
        nonce: grant.nonce,
        oidc: grant.oidc,
        resources: grant.resources,
        auth_time: grant.auth_time,
        issued_at: now,
        expires_at: now + ttl,
        redeemed: None,
    };
    (code, record)
}

/// The outcome of the atomic single-use take ([`crate::ports::CodeStore::redeem`]).
// One outcome per redemption, moved once: boxing the record would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum CodeRedemption {
    /// This caller won: the code is now marked redeemed with the caller's family.
    Redeemed(AuthorizationCodeRecord),
    /// Someone redeemed it before: the family they created (to revoke).
    AlreadyRedeemed {
        family: Option<FamilyId>,
    },
    NotFound,
}

/// Checks a code this caller has just taken. Any failure has already burned the code, which
/// is the point: a PKCE failure must not leave a code to retry against.
pub fn validate_redeemed(
    code: &AuthorizationCodeRecord,
    client: &Client,
    redirect_uri: &str,
    verifier: Result<CodeVerifier, Error>,
    now: OffsetDateTime,
    always: Scope,
) -> Result<Scope, Error> {
    if code.client_id != client.id {
        return Err(Error::invalid_grant(
            "Invalid grant: authorization code was issued to another client",
        ));
    }
    if !is_live(Some(code.expires_at), now) {
        return Err(Error::invalid_grant(
            "Invalid grant: authorization code has expired",
        ));
    }
    if code.redirect_uri != redirect_uri {
        return Err(Error::invalid_grant(
            "Invalid grant: redirect_uri does not match the authorization request",
        ));
    }
    let verifier =
        verifier.map_err(|_| Error::invalid_grant("Invalid grant: code_verifier is malformed"))?;
    if !code.code_challenge.verify(&verifier) {
        return Err(Error::invalid_grant(
            "Invalid grant: PKCE verification failed",
        ));
    }
    // The app may have narrowed its ceiling since the user consented.
    Ok(code.scope.trim_to_ceiling(client.ceiling(), always))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::fixtures::{T0, confidential};
    use crate::ports::SeededRandom;

    fn setup() -> (Client, CodeVerifier, AuthorizationCodeRecord) {
        let client = confidential("app");
        let verifier = CodeVerifier::generate(&SeededRandom::new(5));
        let grant = CodeGrant {
            client_id: client.id.clone(),
            user_id: UserId(7),
            redirect_uri: "https://app.example.com/cb".into(),
            scope: Scope::AI_SERVICES,
            code_challenge: CodeChallenge::from_verifier(&verifier),
            nonce: None,
            auth_time: T0,
            oidc: Default::default(),
            resources: Vec::new(),
        };
        let (_, rec) = issue(grant, T0, Duration::seconds(600), &SeededRandom::new(6));
        (client, verifier, rec)
    }

    #[test]
    fn valid_code_yields_its_scope() {
        let (client, v, rec) = setup();
        assert_eq!(
            validate_redeemed(
                &rec,
                &client,
                "https://app.example.com/cb",
                Ok(v),
                T0,
                Scope::USER_READ
            )
            .unwrap(),
            Scope::AI_SERVICES
        );
    }

    #[test]
    fn code_is_valid_at_599_seconds_and_expired_at_600() {
        let (client, v, rec) = setup();
        let at = |s| T0 + Duration::seconds(s);
        assert!(
            validate_redeemed(
                &rec,
                &client,
                "https://app.example.com/cb",
                Ok(v.clone()),
                at(599),
                Scope::USER_READ
            )
            .is_ok()
        );
        let e = validate_redeemed(
            &rec,
            &client,
            "https://app.example.com/cb",
            Ok(v),
            at(600),
            Scope::USER_READ,
        )
        .unwrap_err();
        assert_eq!(
            e,
            Error::invalid_grant("Invalid grant: authorization code has expired")
        );
    }

    #[test]
    fn redirect_uri_must_equal_the_one_used_at_authorize() {
        let (client, v, rec) = setup();
        let e = validate_redeemed(
            &rec,
            &client,
            "https://app.example.com/cb/",
            Ok(v),
            T0,
            Scope::USER_READ,
        )
        .unwrap_err();
        assert_eq!(e.code(), "invalid_grant");
    }

    #[test]
    fn wrong_verifier_fails_pkce() {
        let (client, _, rec) = setup();
        let other = CodeVerifier::generate(&SeededRandom::new(99));
        let e = validate_redeemed(
            &rec,
            &client,
            "https://app.example.com/cb",
            Ok(other),
            T0,
            Scope::USER_READ,
        )
        .unwrap_err();
        assert_eq!(
            e,
            Error::invalid_grant("Invalid grant: PKCE verification failed")
        );
    }

    #[test]
    fn malformed_verifier_is_invalid_grant() {
        let (client, _, rec) = setup();
        let bad = CodeVerifier::parse("short");
        assert_eq!(
            validate_redeemed(
                &rec,
                &client,
                "https://app.example.com/cb",
                bad,
                T0,
                Scope::USER_READ
            )
            .unwrap_err()
            .code(),
            "invalid_grant"
        );
    }

    #[test]
    fn code_of_another_client_is_refused() {
        let (_, v, rec) = setup();
        let other = confidential("other");
        assert_eq!(
            validate_redeemed(
                &rec,
                &other,
                "https://app.example.com/cb",
                Ok(v),
                T0,
                Scope::USER_READ
            )
            .unwrap_err()
            .code(),
            "invalid_grant"
        );
    }

    #[test]
    fn narrowed_ceiling_trims_the_code_scope_at_redemption() {
        let (mut client, v, rec) = setup();
        client.allowed_scopes = Scope::BUZZ_READ;
        let s = validate_redeemed(
            &rec,
            &client,
            "https://app.example.com/cb",
            Ok(v),
            T0,
            Scope::USER_READ,
        )
        .unwrap();
        assert_eq!(s, Scope::BUZZ_READ | Scope::USER_READ);
    }

    #[test]
    fn issued_codes_are_64_hex_and_stored_hashed() {
        let (client, v, _) = setup();
        let grant = CodeGrant {
            client_id: client.id.clone(),
            user_id: UserId(1),
            redirect_uri: "x".into(),
            scope: Scope::USER_READ,
            code_challenge: CodeChallenge::from_verifier(&v),
            nonce: Some("n".into()),
            auth_time: T0,
            oidc: Default::default(),
            resources: Vec::new(),
        };
        let (code, rec) = issue(grant, T0, Duration::seconds(600), &SeededRandom::new(1));
        assert_eq!(code.expose().len(), 64);
        assert_eq!(rec.hash, TokenHash::of(code.expose()));
        assert_eq!(rec.expires_at - rec.issued_at, Duration::seconds(600));
        assert_eq!(rec.redeemed, None);
    }
}
