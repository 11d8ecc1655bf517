//! Resource indicators (RFC 8707, issue 13): the audience a flow names rides on the code and
//! the tokens, a refresh narrows it but never widens it, and a bad one is `invalid_target`.

use crate::error::Error;
use crate::pkce::CodeVerifier;
use crate::ports::SeededRandom;
use crate::service::authorize::AuthorizeOutcome;

use super::{H, answer, code_grant, harness, query, signed_in};

const MCP: &str = "https://mcp.example.com/mcp";
const API: &str = "https://api.example.com/";

impl H {
    /// Authorize + approve naming `resources`; the code and its verifier.
    async fn code_for(&self, resources: &[&str]) -> Result<(String, CodeVerifier), Error> {
        let v = CodeVerifier::generate(&SeededRandom::new(77));
        let mut p = self.params("AIServices", &v);
        p.resources = resources.iter().map(|r| r.to_string()).collect();
        match self
            .gate
            .authorize()
            .decide(&p, &signed_in(self.user), &answer(true, false, None), None)
            .await?
        {
            AuthorizeOutcome::Redirect { location } => Ok((query(&location, "code").unwrap(), v)),
            AuthorizeOutcome::RedirectError { location } => Err(Error::invalid_target(
                query(&location, "error").unwrap_or_default(),
            )),
            other => panic!("{other:?}"),
        }
    }

    async fn exchange_for(
        &self,
        code: &str,
        v: &CodeVerifier,
        resources: &[&str],
    ) -> Result<crate::token::TokenResponse, Error> {
        let mut req = self.token_req(code_grant(
            code,
            Some(v.as_str()),
            "https://app.example.com/cb",
        ));
        req.resources = resources.iter().map(|r| r.to_string()).collect();
        self.gate.tokens().token(req).await
    }

    async fn audience_of(&self, token: &str) -> Vec<String> {
        self.gate
            .tokens()
            .validate_bearer(token)
            .await
            .unwrap()
            .record
            .audience
    }
}

#[tokio::test]
async fn the_named_resources_become_the_audience_and_a_refresh_only_narrows() {
    let h = harness().await;
    let (code, v) = h.code_for(&[MCP, API]).await.unwrap();
    let t = h.exchange_for(&code, &v, &[]).await.unwrap();
    assert_eq!(h.audience_of(t.access_token.expose()).await, vec![MCP, API]);
    // A refresh may pick one of them for the new access token…
    let mut req = h.token_req(crate::service::tokens::GrantRequest::RefreshToken {
        refresh_token: Some(t.refresh_token.as_ref().unwrap().expose().to_owned()),
        scope: None,
    });
    req.resources = vec![MCP.into()];
    let narrowed = h.gate.tokens().token(req).await.unwrap();
    assert_eq!(
        h.audience_of(narrowed.access_token.expose()).await,
        vec![MCP]
    );
    // …and the refresh token keeps the grant's, so the next refresh may pick the other.
    let mut req = h.token_req(crate::service::tokens::GrantRequest::RefreshToken {
        refresh_token: Some(narrowed.refresh_token.as_ref().unwrap().expose().to_owned()),
        scope: None,
    });
    req.resources = vec![API.into()];
    let other = h.gate.tokens().token(req).await.unwrap();
    assert_eq!(h.audience_of(other.access_token.expose()).await, vec![API]);
    // Never widened.
    let mut req = h.token_req(crate::service::tokens::GrantRequest::RefreshToken {
        refresh_token: Some(other.refresh_token.as_ref().unwrap().expose().to_owned()),
        scope: None,
    });
    req.resources = vec!["https://elsewhere.example/".into()];
    assert!(matches!(
        h.gate.tokens().token(req).await,
        Err(Error::InvalidTarget(_))
    ));
}

#[tokio::test]
async fn the_token_request_narrows_within_the_authorization() {
    let h = harness().await;
    let (code, v) = h.code_for(&[MCP, API]).await.unwrap();
    let t = h.exchange_for(&code, &v, &[API]).await.unwrap();
    assert_eq!(h.audience_of(t.access_token.expose()).await, vec![API]);
    let (code, v) = h.code_for(&[MCP]).await.unwrap();
    assert!(matches!(
        h.exchange_for(&code, &v, &[API]).await,
        Err(Error::InvalidTarget(_))
    ));
    // Nothing named anywhere: a token for any resource, as before RFC 8707.
    let (code, v) = h.code_for(&[]).await.unwrap();
    let t = h.exchange_for(&code, &v, &[]).await.unwrap();
    assert!(h.audience_of(t.access_token.expose()).await.is_empty());
    let (code, v) = h.code_for(&[]).await.unwrap();
    assert!(
        matches!(
            h.exchange_for(&code, &v, &[MCP]).await,
            Err(Error::InvalidTarget(_))
        ),
        "a grant that named nothing cannot be turned into one for a resource"
    );
}

#[tokio::test]
async fn a_malformed_resource_is_invalid_target_at_authorize() {
    let h = harness().await;
    for bad in ["/relative", "https://x.example/#f", "not a uri"] {
        let e = h.code_for(&[bad]).await.unwrap_err();
        assert_eq!(e.description(), "invalid_target", "{bad}");
    }
}

#[tokio::test]
async fn a_remembered_consent_covers_only_the_resources_approved() {
    let h = harness().await;
    let v = CodeVerifier::generate(&SeededRandom::new(78));
    let mut p = h.params("AIServices", &v);
    p.resources = vec![MCP.into()];
    h.gate
        .authorize()
        .decide(&p, &signed_in(h.user), &answer(true, true, None), None)
        .await
        .unwrap();
    let stored = h
        .gate
        .deps
        .consents
        .get(h.user, &h.app)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.resources,
        vec![MCP.to_owned()],
        "the consent records them"
    );
    let again = h
        .gate
        .authorize()
        .authorize(&p, &signed_in(h.user), None)
        .await
        .unwrap();
    assert!(
        matches!(again, AuthorizeOutcome::Redirect { .. }),
        "remembered: {again:?}"
    );
    p.resources = vec![API.into()];
    let other = h
        .gate
        .authorize()
        .authorize(&p, &signed_in(h.user), None)
        .await
        .unwrap();
    assert!(
        matches!(other, AuthorizeOutcome::Consent(_)),
        "a resource the user has not approved asks again"
    );
}
