//! Contract cases: Authorization codes and device authorizations.

#[allow(unused_imports)]
use super::prelude::*;

async fn user_client_for_codes(
    p: &Ports,
) -> Option<(
    buzzgate_domain::ids::UserId,
    buzzgate_domain::client::Client,
)> {
    // Codes reference a client; adapters without a client store still get a valid record.
    match (&p.users, &p.clients) {
        (Some(users), Some(clients)) => {
            let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
            Some((u.id, c))
        }
        _ => Some((
            buzzgate_domain::ids::UserId(1),
            fx::client(buzzgate_domain::ids::UserId(1)),
        )),
    }
}

pub async fn codes_redeem_once(p: &Ports) {
    let (codes,) = need!(p, codes);
    let (u, c) = user_client_for_codes(p).await.unwrap();
    let rec = fx::code(u, &c.id);
    codes.insert(&rec).await.unwrap();
    let fam = fx::family();
    match codes.redeem(&rec.hash, fam).await.unwrap() {
        CodeRedemption::Redeemed(got) => {
            assert_eq!(got.redeemed, Some(fam));
            assert_eq!(
                buzzgate_domain::grant::authorization_code::AuthorizationCodeRecord {
                    redeemed: None,
                    ..got
                },
                rec
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        codes.redeem(&rec.hash, fx::family()).await.unwrap(),
        CodeRedemption::AlreadyRedeemed { family: Some(fam) }
    );
    assert_eq!(
        codes.redeem(&TokenHash::of("unknown"), fam).await.unwrap(),
        CodeRedemption::NotFound
    );
}

pub async fn concurrent_redeemers_have_one_winner(p: &Ports) {
    let (codes,) = need!(p, codes);
    let (u, c) = user_client_for_codes(p).await.unwrap();
    let rec = fx::code(u, &c.id);
    codes.insert(&rec).await.unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let codes = p.node(i).codes.clone().unwrap_or_else(|| codes.clone());
            let (hash, fam) = (rec.hash, fx::family());
            tokio::spawn(async move {
                (
                    fam,
                    codes
                        .redeem(&hash, fam)
                        .await
                        .expect("a race is never an error"),
                )
            })
        })
        .collect();
    let (winners, seen_families) = fx::redemption_race(tasks).await;
    assert_eq!(winners.len(), 1);
    assert_eq!(
        seen_families,
        HashSet::from([Some(winners[0])]),
        "losers learn the winner's family"
    );
}

pub async fn code_sweep_is_bounded(p: &Ports) {
    let (codes,) = need!(p, codes);
    let (u, c) = user_client_for_codes(p).await.unwrap();
    let live = fx::code(u, &c.id);
    let mut dead = Vec::new();
    for _ in 0..3 {
        let mut d = fx::code(u, &c.id);
        d.expires_at = now() - Duration::seconds(1);
        codes.insert(&d).await.unwrap();
        dead.push(d);
    }
    codes.insert(&live).await.unwrap();
    // Stores that expire keys themselves (Redis) may sweep nothing; SQL stores sweep in batches.
    for _ in 0..100 {
        let n = codes.sweep_expired(now(), 2).await.unwrap();
        assert!(n <= 2, "a batch never exceeds its bound");
        if n < 2 {
            break;
        }
    }
    for d in &dead {
        assert_eq!(
            codes.redeem(&d.hash, fx::family()).await.unwrap(),
            CodeRedemption::NotFound
        );
    }
    assert!(matches!(
        codes.redeem(&live.hash, fx::family()).await.unwrap(),
        CodeRedemption::Redeemed(_)
    ));
}

pub async fn devices_resolve_and_poll(p: &Ports) {
    let (devices,) = need!(p, devices);
    let (u, c) = user_client_for_codes(p).await.unwrap();
    let rec = fx::device(&c);
    devices.insert(&rec).await.unwrap();
    assert_eq!(
        devices.find_by_user_code(&rec.user_code).await.unwrap(),
        Some(rec.clone())
    );
    let poll = DevicePoll {
        client_id: c.id.clone(),
        now: now(),
    };
    let step = devices.poll(&rec.device_hash, &poll).await.unwrap();
    assert_eq!(step.result, Err(Error::AuthorizationPending));
    let stored = devices
        .find_by_user_code(&rec.user_code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.last_polled_at,
        Some(poll.now),
        "the poll was recorded"
    );
    let at = now();
    let approve = DeviceResolution {
        user_id: u,
        auth_time: at - Duration::hours(1),
        approve: true,
        now: at,
    };
    let approved = devices
        .resolve(&rec.user_code, &approve)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(approved.status, DeviceStatus::Approved { .. }));
    assert_eq!(
        devices
            .find_by_user_code(&rec.user_code)
            .await
            .unwrap()
            .map(|d| d.status),
        Some(approved.status.clone()),
        "the sign-in time and the approval time are both kept"
    );
    assert!(
        devices
            .resolve(&rec.user_code, &approve)
            .await
            .unwrap()
            .is_err(),
        "only pending codes resolve"
    );
    let later = DevicePoll {
        client_id: c.id.clone(),
        now: now() + Duration::seconds(6),
    };
    let grant = devices
        .poll(&rec.device_hash, &later)
        .await
        .unwrap()
        .result
        .unwrap();
    assert_eq!(grant.user_id, u);
    assert_eq!(
        (grant.auth_time, grant.approved_at),
        (at - Duration::hours(1), at)
    );
    let stored = devices
        .find_by_user_code(&rec.user_code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, DeviceStatus::Consumed);
    let unknown = devices
        .poll(&TokenHash::of("unknown"), &poll)
        .await
        .unwrap();
    assert_eq!(unknown.result.unwrap_err().code(), "invalid_grant");
    let unknown_code =
        buzzgate_domain::grant::device_code::UserCode::normalize("ZZZZ-ZZZZ").unwrap();
    assert!(
        devices
            .resolve(&unknown_code, &approve)
            .await
            .unwrap()
            .is_err()
    );
}

pub async fn concurrent_polls_issue_once(p: &Ports) {
    let (devices,) = need!(p, devices);
    let (u, c) = user_client_for_codes(p).await.unwrap();
    let rec = fx::device(&c);
    devices.insert(&rec).await.unwrap();
    devices
        .resolve(
            &rec.user_code,
            &DeviceResolution {
                user_id: u,
                auth_time: now(),
                approve: true,
                now: now(),
            },
        )
        .await
        .unwrap()
        .unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (devices, hash, poll) = (
                p.node(i).devices.clone().unwrap_or_else(|| devices.clone()),
                rec.device_hash,
                DevicePoll {
                    client_id: c.id.clone(),
                    now: now(),
                },
            );
            tokio::spawn(async move {
                devices
                    .poll(&hash, &poll)
                    .await
                    .expect("a race is never an error")
                    .result
            })
        })
        .collect();
    let mut grants = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            grants += 1;
        }
    }
    assert_eq!(grants, 1);
}

pub async fn device_user_codes_are_unique(p: &Ports) {
    let (devices,) = need!(p, devices);
    let (_, c) = user_client_for_codes(p).await.unwrap();
    let a = fx::device(&c);
    let mut b = fx::device(&c);
    b.user_code = a.user_code.clone();
    devices.insert(&a).await.unwrap();
    assert!(matches!(
        devices.insert(&b).await,
        Err(StoreError::Conflict(_))
    ));
}
