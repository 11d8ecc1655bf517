//! OpenID Connect scopes (issue 18): the id_token they ask for and the claims they release.

use std::sync::Arc;

use crate::error::Error;
use crate::scope::Scope;
use crate::service::Config;

use super::{harness_with_deps, rt};

/// Signs by writing the claims as JSON: the test reads what an id_token would carry.
struct JsonSigner;

impl crate::ports::IdTokenSigner for JsonSigner {
    fn sign(&self, claims: &crate::ports::IdTokenClaims) -> Result<String, Error> {
        Ok(serde_json::to_string(claims).unwrap())
    }
    fn jwks(&self) -> serde_json::Value {
        serde_json::json!({"keys": []})
    }
}

#[tokio::test]
async fn openid_asks_for_an_id_token_and_oidc_scopes_release_their_claims() {
    let h = harness_with_deps(Config::default(), |d| {
        d.id_tokens = Some(Arc::new(JsonSigner))
    })
    .await;
    let (code, v) = h.code("openid email", false).await;
    let t = h.exchange(&code, &v).await.unwrap();
    assert_eq!(t.scope, Scope::USER_READ);
    assert!(
        t.refresh_token.is_some(),
        "offline_access or not, a refresh token"
    );
    let claims: serde_json::Value = serde_json::from_str(
        t.id_token
            .as_deref()
            .expect("openid: an id_token, no nonce needed"),
    )
    .unwrap();
    assert_eq!(claims["sub"], h.user.0.to_string());
    assert_eq!(claims["aud"], h.app.as_str());
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert!(claims.get("nonce").is_none() && claims.get("name").is_none());
    let info = h.userinfo(t.access_token.expose()).await.unwrap();
    assert_eq!(info.email.as_deref(), Some("ada@example.com"));
    assert_eq!(
        (info.username, info.name, info.preferred_username),
        (None, None, None),
        "email alone releases no profile claims"
    );
    // The OIDC scopes survive rotation.
    let r = h.refresh(&rt(&t), Some("openid")).await.unwrap();
    assert_eq!(
        r.scope,
        Scope::USER_READ,
        "OIDC names never narrow a refresh"
    );
    let info = h.userinfo(r.access_token.expose()).await.unwrap();
    assert!(info.email.is_some() && info.name.is_none());

    let (code, v) = h.code("openid profile", false).await;
    let t = h.exchange(&code, &v).await.unwrap();
    let claims: serde_json::Value = serde_json::from_str(t.id_token.as_deref().unwrap()).unwrap();
    assert_eq!(
        (&claims["name"], &claims["preferred_username"]),
        (&serde_json::json!("ada"), &serde_json::json!("ada"))
    );
    assert!(claims.get("email").is_none());

    // A Civitai-style grant: no id_token without a nonce, every claim at userinfo.
    let (code, v) = h.code("1", false).await;
    let t = h.exchange(&code, &v).await.unwrap();
    assert!(t.id_token.is_none());
    let info = h.userinfo(t.access_token.expose()).await.unwrap();
    assert!(info.email.is_some() && info.username.is_some());
}
