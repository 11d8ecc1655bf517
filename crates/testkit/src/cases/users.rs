//! Contract cases: Users and sessions.

#[allow(unused_imports)]
use super::prelude::*;

pub async fn users_round_trip(p: &Ports) {
    let (users,) = need!(p, users);
    let u = fx::user(users.as_ref()).await;
    assert_eq!(users.get(u.id).await.unwrap(), Some(u.clone()));
    let upper = Username::parse(&u.username.as_str().to_uppercase()).unwrap();
    assert_eq!(
        users.find_by_username(&upper).await.unwrap(),
        Some(u.clone()),
        "case-insensitive"
    );
    let dup = buzzgate_domain::user::NewUser {
        username: upper,
        email: None,
        email_verified: false,
        password: None,
        roles: vec![],
    };
    assert!(matches!(
        users.create(&dup, None, now()).await,
        Err(StoreError::Conflict(_))
    ));
    let other = fx::user(users.as_ref()).await;
    assert_ne!(other.id, u.id);
    assert_eq!(
        users
            .find_by_username(&Username::parse("nobody-here-at-all").unwrap())
            .await
            .unwrap(),
        None
    );
}

pub async fn sessions_round_trip(p: &Ports) {
    let (sessions,) = need!(p, sessions);
    let (_, s) = Session::start(
        buzzgate_domain::ids::UserId(7),
        now(),
        Duration::hours(1),
        &buzzgate_domain::ports::OsRandom,
    );
    sessions.insert(&s).await.unwrap();
    assert_eq!(sessions.get(&s.id_hash).await.unwrap(), Some(s.clone()));
    sessions.delete(&s.id_hash).await.unwrap();
    assert_eq!(sessions.get(&s.id_hash).await.unwrap(), None);
    sessions.delete(&s.id_hash).await.unwrap();
    assert!(sessions.sweep_expired(now(), 10).await.unwrap() <= 10);
}
