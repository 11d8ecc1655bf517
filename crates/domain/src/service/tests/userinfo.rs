//! `/userinfo` and `/api/v1/me`.

use crate::buzz::BuzzLimit;
use crate::catalogue::Catalogue;
use crate::scope::Scope;
use crate::service::tokens::Subject;

use super::{bearer_creds, err_code, harness};

#[tokio::test]
async fn userinfo_needs_user_read_and_omits_unknown_email_verification() {
    let h = harness().await;
    let t = h.tokens("1").await;
    let info = h.userinfo(t.access_token.expose()).await.unwrap();
    assert_eq!(
        (info.id, info.username.as_deref(), info.email_verified),
        (h.user, Some("ada"), Some(true))
    );
    let key = h.api_key(Some(Scope::NONE)).await;
    // API keys always carry UserRead too; an access token without it can only come from
    // before that rule, so check the contract on the Bearer directly.
    assert!(h.userinfo(key.expose()).await.is_ok());
    let bearer = h.validate(t.access_token.expose()).await.unwrap();
    assert_eq!(
        bearer
            .require(&Catalogue::civitai().need(Scope::MODELS_WRITE))
            .unwrap_err()
            .description(),
        "Token does not have ModelsWrite scope"
    );
    let garbage = bearer_creds("garbage token");
    assert_eq!(
        err_code(h.gate.callers().identify(&garbage).await),
        "invalid_token"
    );
}

#[tokio::test]
async fn me_reports_subject_scope_and_buzz_limit() {
    let h = harness().await;
    let t = h.tokens("114689").await;
    let me = h.me(t.access_token.expose()).await.unwrap();
    assert_eq!(me.subject, Subject::OAuth(h.app.clone()));
    assert_eq!(me.token_scope, Scope::AI_SERVICES);
    assert_eq!(me.buzz_limit, Some(BuzzLimit::consent_default()));
}
