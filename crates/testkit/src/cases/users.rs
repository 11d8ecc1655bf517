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
    // Listed in id order after a given id; banned and unbanned in place.
    assert_eq!(users.list(u.id.0 - 1, 1).await.unwrap(), vec![u.clone()]);
    let ids: Vec<i64> = users
        .list(u.id.0 - 1, 1000)
        .await
        .unwrap()
        .iter()
        .map(|x| x.id.0)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids.contains(&other.id.0));
    let at = now();
    let banned = users.set_banned(u.id, Some(at)).await.unwrap().unwrap();
    assert_eq!(banned.banned_at, Some(at));
    assert_eq!(users.get(u.id).await.unwrap().unwrap().banned_at, Some(at));
    let lifted = users.set_banned(u.id, None).await.unwrap().unwrap();
    assert_eq!(lifted, u);
    assert_eq!(
        users
            .set_banned(buzzgate_domain::ids::UserId(i64::MAX), Some(at))
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
