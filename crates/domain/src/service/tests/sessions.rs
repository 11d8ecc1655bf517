//! Sessions: login, resolution, logout.

use crate::service::Credentials;

use super::{bare_user, err_code, harness};

#[tokio::test]
async fn login_checks_the_password_and_sessions_resolve_until_logout() {
    let h = harness().await;
    let s = h.gate.sessions();
    assert_eq!(
        err_code(s.login("ada", "wrong password", None).await),
        "access_denied"
    );
    assert_eq!(
        err_code(s.login("nobody", "correct horse battery", None).await),
        "access_denied"
    );
    let (cookie, session) = s.login("ADA", "correct horse battery", None).await.unwrap();
    let (found, user) = s.resolve(cookie.expose()).await.unwrap().unwrap();
    assert_eq!((found.user_id, user.id), (h.user, h.user));
    assert!(session.check_csrf(Some(&found.csrf_token)).is_ok());
    let without_csrf = Credentials {
        session: Some(cookie.expose().to_owned()),
        ..Credentials::default()
    };
    let caller = h.gate.callers().identify(&without_csrf).await.unwrap();
    assert_eq!(
        err_code(s.logout(&caller).await),
        "access_denied",
        "signing out is a change: it needs the CSRF proof"
    );
    let with_csrf = Credentials {
        csrf_token: Some(session.csrf_token.clone()),
        ..without_csrf
    };
    let caller = h.gate.callers().identify(&with_csrf).await.unwrap();
    s.logout(&caller).await.unwrap();
    assert!(s.resolve(cookie.expose()).await.unwrap().is_none());
    let dup = bare_user("Ada", None);
    assert_eq!(err_code(s.create_user(dup).await), "conflict");
}
