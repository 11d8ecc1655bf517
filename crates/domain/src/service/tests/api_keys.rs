//! API keys: bearers of their own kind, listed and deleted, read-only by default.

use crate::scope::Scope;
use crate::service::api_keys::NewApiKey;
use crate::service::tokens::Subject;

use super::{err_code, harness, signed_in, token_caller};

#[tokio::test]
async fn api_keys_are_bearers_of_type_api_key_listed_and_deleted() {
    let h = harness().await;
    let caller = signed_in(h.user);
    let new = NewApiKey {
        name: "ci".into(),
        scope: Some(Scope::BUZZ_READ.into()),
        buzz_limit: None,
        expires_in_days: Some(1),
    };
    let (key, rec) = h.gate.api_keys().create(&caller, new).await.unwrap();
    let me = h.me(key.expose()).await.unwrap();
    assert_eq!(me.subject, Subject::ApiKey(rec.id.to_string()));
    assert_eq!(h.gate.api_keys().list(&caller).await.unwrap().len(), 1);
    h.gate.api_keys().delete(&caller, rec.id).await.unwrap();
    assert!(!h.active(key.expose()).await);
    assert_eq!(
        err_code(h.gate.api_keys().delete(&caller, rec.id).await),
        "not_found"
    );
    let by_token = token_caller(h.user, None, Scope::FULL);
    let new = NewApiKey {
        name: "x".into(),
        scope: Some(Scope::FULL.into()),
        buzz_limit: None,
        expires_in_days: None,
    };
    assert_eq!(
        err_code(h.gate.api_keys().create(&by_token, new).await),
        "access_denied"
    );
}

#[tokio::test]
async fn api_keys_default_to_read_only() {
    let h = harness().await;
    let new = NewApiKey {
        name: "default".into(),
        scope: None,
        buzz_limit: None,
        expires_in_days: None,
    };
    let (_, rec) = h
        .gate
        .api_keys()
        .create(&signed_in(h.user), new)
        .await
        .unwrap();
    assert_eq!(rec.scope, Scope::READ_ONLY | Scope::USER_READ);
}
