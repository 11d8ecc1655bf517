//! The `authorization_code` grant: redeem the code once, check it, issue tokens (and an
//! id_token for OpenID Connect); a replayed code revokes what it issued.

use crate::audit::{AuditEvent, AuditKind};
use crate::client::{Client, GrantType};
use crate::error::Error;
use crate::grant::authorization_code::{self, CodeRedemption};
use crate::ids::FamilyId;
use crate::pkce::CodeVerifier;
use crate::ports::IdTokenClaims;
use crate::scope::OidcScopes;
use crate::token::{TokenHash, TokenResponse};

use super::{Issue, TokenService, consent_gone, required};

impl TokenService {
    pub(super) async fn exchange_code(
        &self,
        client: &Client,
        code: &Option<String>,
        verifier: &Option<String>,
        redirect_uri: &Option<String>,
        resources: &[String],
        ip: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(Error::UnauthorizedClient(
                "Unauthorized client: authorization_code is not registered".into(),
            ));
        }
        let code = required(code, "code")?;
        let verifier = required(verifier, "code_verifier")?;
        let redirect_uri = required(redirect_uri, "redirect_uri")?;
        let requested = crate::resource::parse_resources(resources)?;
        let hash = TokenHash::of_presented(code)
            .ok_or_else(|| Error::invalid_grant("Invalid grant: authorization code is invalid"))?;
        let deps = &self.deps;
        let family = FamilyId::generate(deps.random.as_ref());
        let record = match deps.codes.redeem(&hash, family).await? {
            CodeRedemption::Redeemed(r) => r,
            CodeRedemption::NotFound => {
                return Err(Error::invalid_grant(
                    "Invalid grant: authorization code is invalid",
                ));
            }
            CodeRedemption::AlreadyRedeemed { family } => {
                if let Some(family) = family {
                    let now = deps.now();
                    let revoked = deps.tokens.revoke_family(family, now).await?;
                    deps.invalidate(&revoked).await?;
                    let ev = AuditEvent::new(AuditKind::TokenReuseDetected, now)
                        .client(&client.id)
                        .ip(ip)
                        .meta("grant", "authorization_code")
                        .meta("revoked", revoked.len());
                    deps.audit(ev).await;
                }
                return Err(Error::invalid_grant(
                    "Invalid grant: authorization code has already been used",
                ));
            }
        };
        let now = deps.now();
        let scope = authorization_code::validate_redeemed(
            &record,
            client,
            redirect_uri,
            CodeVerifier::parse(verifier),
            now,
            deps.catalogue().always_granted(),
        )?;
        let audience = crate::resource::narrow(&record.resources, &requested)?;
        self.admit(client, record.user_id).await?;
        if !self
            .consent_stands(record.user_id, &client.id, Some(record.issued_at))
            .await?
        {
            return Err(consent_gone());
        }
        let with_refresh = client.allows_grant(GrantType::RefreshToken);
        let issue = Issue {
            client,
            user_id: record.user_id,
            scope,
            family: Some(family),
            auth_time: Some(record.auth_time),
            with_refresh,
            grant: "authorization_code",
            ip,
            oidc: record.oidc,
            audience,
            grant_audience: record.resources.clone(),
        };
        // The code was taken by this request and no other: it answers with tokens. If a
        // replay of the code revoked the family before our rows were written, they are
        // refused by the family's tombstone: the tokens are issued and revoked at once, as
        // RFC 6749 §4.1.2 asks, and exactly one request ever sees a token response.
        let (mut response, _) = self.issue(issue).await?;
        self.confirm_consent(record.user_id, client, Some(record.issued_at), Some(family))
            .await?;
        // OIDC: an id_token when the request asked for `openid`, and (as Civitai does) when it
        // carried a nonce.
        let wants_id_token = record.nonce.is_some() || record.oidc.contains(OidcScopes::OPENID);
        if let (true, Some(signer)) = (wants_id_token, deps.id_tokens.as_ref()) {
            let mut claims = IdTokenClaims {
                iss: deps.config.issuer.clone(),
                sub: record.user_id.to_string(),
                aud: client.id.to_string(),
                iat: now.unix_timestamp(),
                exp: (now + deps.config.minter.ttls.access).unix_timestamp(),
                nonce: record.nonce,
                auth_time: record.auth_time.unix_timestamp(),
                name: None,
                preferred_username: None,
                picture: None,
                email: None,
                email_verified: None,
            };
            if record.oidc.contains(OidcScopes::PROFILE) || record.oidc.contains(OidcScopes::EMAIL)
            {
                let info = self.user_info(record.user_id, record.oidc).await?;
                claims.name = info.name;
                claims.preferred_username = info.preferred_username;
                claims.picture = info.picture;
                claims.email = info.email;
                claims.email_verified = info.email_verified;
            }
            response.id_token = Some(signer.sign(&claims)?);
        }
        Ok(response)
    }
}
