//! Contract cases: Access and refresh tokens, families, rotation and API keys.

#[allow(unused_imports)]
use super::prelude::*;

/// The row of `hash`, which must be stored.
async fn stored(
    tokens: &impl AsRef<dyn buzzgate_domain::ports::TokenStore>,
    hash: &TokenHash,
) -> buzzgate_domain::token::TokenRecord {
    tokens.as_ref().find(hash).await.unwrap().expect("stored")
}

pub async fn tokens_insert_find_revoke(p: &Ports) {
    let (users, clients, tokens) = need!(p, users, clients, tokens);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let (_, t) = fx::token(TokenKind::Access, u.id, Some(&c.id), None);
    assert_eq!(
        tokens.insert(std::slice::from_ref(&t)).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_eq!(tokens.find(&t.hash).await.unwrap(), Some(t.clone()));
    assert!(matches!(
        tokens.insert(std::slice::from_ref(&t)).await,
        Err(StoreError::Conflict(_))
    ));
    let at = now();
    let revoked = tokens.revoke(&t.hash, at).await.unwrap().expect("existed");
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(stored(&tokens, &t.hash).await.revoked_at, Some(at));
    assert_eq!(
        tokens.revoke(&TokenHash::of("nope"), at).await.unwrap(),
        None
    );
    assert_eq!(tokens.find(&TokenHash::of("nope")).await.unwrap(), None);
}

pub async fn family_revocation_leaves_a_tombstone(p: &Ports) {
    let (users, clients, tokens) = need!(p, users, clients, tokens);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let fam = fx::family();
    let (_, a) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fam));
    let (_, r) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fam));
    let (_, other) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fx::family()));
    tokens.insert(&[a.clone(), r.clone()]).await.unwrap();
    tokens.insert(std::slice::from_ref(&other)).await.unwrap();
    let revoked: HashSet<_> = tokens
        .revoke_family(fam, now())
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(revoked, HashSet::from([a.hash, r.hash]));
    assert!(
        tokens.revoke_family(fam, now()).await.unwrap().is_empty(),
        "only tokens revoked now are returned"
    );
    assert_eq!(stored(&tokens, &other.hash).await.revoked_at, None);
    let (_, late) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fam));
    assert_eq!(
        tokens.insert(std::slice::from_ref(&late)).await.unwrap(),
        InsertOutcome::FamilyRevoked
    );
    assert_eq!(
        tokens.find(&late.hash).await.unwrap(),
        None,
        "nothing of a refused insert is written"
    );
    // A family revoked before any of its tokens exists refuses them too.
    let early = fx::family();
    tokens.revoke_family(early, now()).await.unwrap();
    let (_, t) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(early));
    assert_eq!(
        tokens.insert(std::slice::from_ref(&t)).await.unwrap(),
        InsertOutcome::FamilyRevoked
    );
}

pub async fn rotation_applies_the_decision(p: &Ports) {
    let (users, clients, tokens) = need!(p, users, clients, tokens);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let (_, r) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fx::family()));
    tokens.insert(std::slice::from_ref(&r)).await.unwrap();
    let at = now();
    let first = fx::rotation(&c.id, at, GRACE);
    let RotationDecision::Rotate {
        mark_rotated: true,
        access,
        refresh,
        superseded,
    } = tokens.rotate_refresh(&r.hash, &first).await.unwrap()
    else {
        panic!("first use rotates")
    };
    assert_eq!(
        tokens.find(&access.hash).await.unwrap(),
        Some(access.clone())
    );
    assert_eq!(
        tokens.find(&refresh.hash).await.unwrap(),
        Some(refresh.clone())
    );
    assert_eq!((refresh.family_id, refresh.user_id), (r.family_id, u.id));
    assert_eq!(stored(&tokens, &r.hash).await.rotated_at, Some(at));
    assert!(superseded.is_empty(), "the first rotation retires nothing");
    let retry = fx::rotation(&c.id, at + Duration::seconds(3), GRACE);
    let RotationDecision::Rotate {
        mark_rotated: false,
        superseded,
        ..
    } = tokens.rotate_refresh(&r.hash, &retry).await.unwrap()
    else {
        panic!("a retry inside the grace window rotates")
    };
    assert_eq!(
        superseded,
        vec![refresh.hash],
        "the retry retires the first successor: one live head"
    );
    assert_eq!(
        stored(&tokens, &refresh.hash).await.revoked_at,
        Some(retry.now)
    );
    assert_eq!(
        stored(&tokens, &access.hash).await.revoked_at,
        None,
        "access tokens already handed out live on until they expire"
    );
    assert_eq!(
        stored(&tokens, &r.hash).await.rotated_at,
        Some(at),
        "a retry does not move the window"
    );
    assert!(
        tokens
            .find(&retry.new_refresh.hash)
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn rotation_reuse_after_grace_writes_nothing(p: &Ports) {
    let (users, clients, tokens) = need!(p, users, clients, tokens);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let fam = fx::family();
    let (_, r) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fam));
    tokens.insert(std::slice::from_ref(&r)).await.unwrap();
    let at = now();
    tokens
        .rotate_refresh(&r.hash, &fx::rotation(&c.id, at, GRACE))
        .await
        .unwrap();
    let late = fx::rotation(&c.id, at + GRACE, GRACE);
    match tokens.rotate_refresh(&r.hash, &late).await.unwrap() {
        RotationDecision::RevokeFamily { family, .. } => assert_eq!(family, fam),
        other => panic!("{other:?}"),
    }
    assert_eq!(tokens.find(&late.new_refresh.hash).await.unwrap(), None);
    // After the service revokes the family, its tokens refuse rotation.
    tokens.revoke_family(fam, now()).await.unwrap();
    let again = fx::rotation(&c.id, now(), GRACE);
    assert!(matches!(
        tokens.rotate_refresh(&r.hash, &again).await.unwrap(),
        RotationDecision::Reject(Error::InvalidGrant(_))
    ));
}

pub async fn rotation_of_unknown_token_is_rejected(p: &Ports) {
    let (users, clients, tokens) = need!(p, users, clients, tokens);
    let (_, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let r = fx::rotation(&c.id, now(), GRACE);
    assert!(matches!(
        tokens
            .rotate_refresh(&TokenHash::of("unknown"), &r)
            .await
            .unwrap(),
        RotationDecision::Reject(_)
    ));
    assert_eq!(tokens.find(&r.new_access.hash).await.unwrap(), None);
}

pub async fn revoke_for_user_client(p: &Ports) {
    let (users, clients, tokens) = need!(p, users, clients, tokens);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let other_user = fx::user(users.as_ref()).await;
    let (_, mine) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fx::family()));
    let (_, theirs) = fx::token(TokenKind::Access, other_user.id, Some(&c.id), None);
    tokens
        .insert(&[mine.clone(), theirs.clone()])
        .await
        .unwrap();
    let revoked = tokens
        .revoke_for_user_client(u.id, &c.id, now())
        .await
        .unwrap();
    assert_eq!(revoked, vec![mine.hash]);
    assert!(stored(&tokens, &mine.hash).await.revoked_at.is_some());
    assert!(stored(&tokens, &theirs.hash).await.revoked_at.is_none());
}

/// `TokenStore::revoke_for_user`: every live token of the user, of every app and every
/// kind, revoked at once; families tombstoned; other users untouched; only what was live is
/// returned.
pub async fn revoke_for_user_takes_every_token(p: &Ports) {
    let (users, clients, tokens) = need!(p, users, clients, tokens);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let (other_user, other_app) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let fam = fx::family();
    let (_, access) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fam));
    let (_, refresh) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fam));
    // On another user's app, with no family (client credentials shape), and an API key.
    let (_, elsewhere) = fx::token(TokenKind::Access, u.id, Some(&other_app.id), None);
    let (_, key) = fx::token(TokenKind::ApiKey, u.id, None, None);
    let (_, gone) = fx::token(TokenKind::ApiKey, u.id, None, None);
    let (_, theirs) = fx::token(TokenKind::Access, other_user.id, Some(&c.id), None);
    let (_, their_key) = fx::token(TokenKind::ApiKey, other_user.id, None, None);
    tokens
        .insert(&[access.clone(), refresh.clone()])
        .await
        .unwrap();
    tokens
        .insert(&[
            elsewhere.clone(),
            key.clone(),
            gone.clone(),
            theirs.clone(),
            their_key.clone(),
        ])
        .await
        .unwrap();
    let earlier = now() - Duration::seconds(5);
    tokens.revoke(&gone.hash, earlier).await.unwrap();

    let at = now();
    let revoked: HashSet<_> = tokens
        .revoke_for_user(u.id, at)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        revoked,
        HashSet::from([access.hash, refresh.hash, elsewhere.hash, key.hash]),
        "every live token of the user, once each; not the one revoked before"
    );
    for t in [&access, &refresh, &elsewhere, &key] {
        assert_eq!(stored(&tokens, &t.hash).await.revoked_at, Some(at));
    }
    assert_eq!(stored(&tokens, &gone.hash).await.revoked_at, Some(earlier));
    assert_eq!(stored(&tokens, &theirs.hash).await.revoked_at, None);
    assert_eq!(stored(&tokens, &their_key.hash).await.revoked_at, None);
    assert!(tokens.list_api_keys(u.id).await.unwrap().is_empty());
    assert_eq!(tokens.list_api_keys(other_user.id).await.unwrap().len(), 1);
    assert!(
        tokens
            .revoke_for_user(u.id, now())
            .await
            .unwrap()
            .is_empty(),
        "only tokens revoked now are returned"
    );
    // The family is tombstoned: a successor written after the revocation is refused, and
    // its refresh token no longer rotates.
    let (_, late) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fam));
    assert_eq!(
        tokens.insert(&[late]).await.unwrap(),
        InsertOutcome::FamilyRevoked
    );
    assert!(matches!(
        tokens
            .rotate_refresh(&refresh.hash, &fx::rotation(&c.id, now(), GRACE))
            .await
            .unwrap(),
        RotationDecision::Reject(_)
    ));
    // Tokens issued afterwards (the caller decides whether it may) are new and live.
    let (_, next) = fx::token(TokenKind::ApiKey, u.id, None, None);
    tokens.insert(std::slice::from_ref(&next)).await.unwrap();
    assert_eq!(stored(&tokens, &next.hash).await.revoked_at, None);
}

/// `TokenStore::revoke_for_user` racing 63 rotations of one of the user's refresh tokens
/// (odd tasks on the second node): whatever the interleaving, no token of the family is
/// left live, each rotation either happened before the revocation (and its successors were
/// revoked by it) or found the tombstone and wrote nothing, and no call fails.
pub async fn concurrent_rotations_racing_a_user_revocation_leave_no_live_head(p: &Ports) {
    let Some((users, clients, tokens)) = need_opt(p) else {
        return;
    };
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let fam = fx::family();
    let (_, r) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fam));
    tokens.insert(std::slice::from_ref(&r)).await.unwrap();
    let at = now();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let tokens = p.node(i).tokens.clone().unwrap_or_else(|| tokens.clone());
            let (hash, rot, user) = (r.hash, fx::rotation(&c.id, at, GRACE), u.id);
            tokio::spawn(async move {
                if i == 32 {
                    let revoked = tokens
                        .revoke_for_user(user, at)
                        .await
                        .expect("a race is never an error");
                    Err(revoked)
                } else {
                    Ok(tokens
                        .rotate_refresh(&hash, &rot)
                        .await
                        .expect("a race is never an error"))
                }
            })
        })
        .collect();
    let mut decisions = Vec::new();
    let mut revoked = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(d) => decisions.push(d),
            Err(hashes) => revoked = hashes,
        }
    }
    assert!(revoked.contains(&r.hash), "the presented token was live");
    let mut written = vec![r.hash];
    for d in &decisions {
        match d {
            RotationDecision::Rotate {
                access, refresh, ..
            } => written.extend([access.hash, refresh.hash]),
            // After the revocation: the tombstone (or the revoked row) refuses.
            RotationDecision::Reject(_) | RotationDecision::RevokeFamily { .. } => {}
        }
    }
    for h in &written {
        let row = stored(&tokens, h).await;
        assert!(
            row.revoked_at.is_some(),
            "a {} token of the family outlived the revocation",
            row.kind.as_str()
        );
    }
    // And a rotation now writes nothing.
    let after = fx::rotation(&c.id, now(), GRACE);
    assert!(matches!(
        tokens.rotate_refresh(&r.hash, &after).await.unwrap(),
        RotationDecision::Reject(_)
    ));
    assert_eq!(tokens.find(&after.new_refresh.hash).await.unwrap(), None);
}

/// `TokenStore::insert` into one family (a code's redemption writing its tokens) racing that
/// family's revocation (the code's replay), 48 inserts with the odd ones on the second node
/// and the revocation in the middle: every insert either wrote its rows before the revocation
/// (which then revoked them) or found the tombstone and wrote nothing. No token of the family
/// is ever left live, and no call fails.
pub async fn concurrent_inserts_racing_a_family_revocation_leave_no_live_token(p: &Ports) {
    let Some((users, clients, tokens)) = need_opt(p) else {
        return;
    };
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let fam = fx::family();
    let at = now();
    let tasks: Vec<_> = (0..49)
        .map(|i| {
            let tokens = p.node(i).tokens.clone().unwrap_or_else(|| tokens.clone());
            let (_, a) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fam));
            let (_, r) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fam));
            tokio::spawn(async move {
                if i == 24 {
                    tokens
                        .revoke_family(fam, at)
                        .await
                        .expect("a race is never an error");
                    None
                } else {
                    let outcome = tokens
                        .insert(&[a.clone(), r.clone()])
                        .await
                        .expect("a race is never an error");
                    Some((outcome, [a.hash, r.hash]))
                }
            })
        })
        .collect();
    // Every task has ended (the revocation too) before any row is checked.
    let mut ended = Vec::new();
    for t in tasks {
        ended.extend(t.await.unwrap());
    }
    for (outcome, hashes) in ended {
        for h in &hashes {
            match outcome {
                InsertOutcome::Inserted => {
                    let row = stored(&tokens, h).await;
                    assert!(
                        row.revoked_at.is_some(),
                        "a token written into the family outlived its revocation: {row:?}"
                    )
                }
                InsertOutcome::FamilyRevoked => assert_eq!(
                    tokens.find(h).await.unwrap(),
                    None,
                    "a refused insert wrote a row"
                ),
            }
        }
    }
    // Whatever the interleaving, an insert after the race is refused.
    let (_, late) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fam));
    assert_eq!(
        tokens.insert(std::slice::from_ref(&late)).await.unwrap(),
        InsertOutcome::FamilyRevoked
    );
}

pub async fn api_keys_list_and_revoke(p: &Ports) {
    let (users, tokens) = need!(p, users, tokens);
    let u = fx::user(users.as_ref()).await;
    let other = fx::user(users.as_ref()).await;
    let (_, mut old) = fx::token(TokenKind::ApiKey, u.id, None, None);
    old.name = Some("old".into());
    old.buzz_limit = Some(BuzzLimit::per_period(10, 7).unwrap());
    let (_, mut new) = fx::token(TokenKind::ApiKey, u.id, None, None);
    new.issued_at = now() + Duration::seconds(2);
    tokens.insert(&[old.clone(), new.clone()]).await.unwrap();
    let listed = tokens.list_api_keys(u.id).await.unwrap();
    assert_eq!(
        listed,
        vec![new.clone(), old.clone()],
        "newest first, with name and limit"
    );
    assert_eq!(
        tokens
            .revoke_api_key(other.id, old.id, now())
            .await
            .unwrap(),
        None,
        "not theirs"
    );
    assert_eq!(
        tokens.revoke_api_key(u.id, old.id, now()).await.unwrap(),
        Some(old.hash)
    );
    assert_eq!(
        tokens.revoke_api_key(u.id, old.id, now()).await.unwrap(),
        None,
        "already revoked"
    );
    assert_eq!(tokens.list_api_keys(u.id).await.unwrap(), vec![new]);
}

pub async fn token_sweep_is_bounded(p: &Ports) {
    let (users, clients, tokens) = need!(p, users, clients, tokens);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let t0 = now();
    let expired = fx::expired_tokens(u.id, &c.id, 5, t0 - Duration::seconds(10));
    let (_, live) = fx::token(TokenKind::Access, u.id, Some(&c.id), None);
    let (_, forever) = fx::token(TokenKind::ApiKey, u.id, None, None);
    tokens.insert(&expired).await.unwrap();
    tokens
        .insert(&[live.clone(), forever.clone()])
        .await
        .unwrap();
    // Other tests may share the store: count only what this case planted.
    let mut total = 0;
    for _ in 0..100 {
        let n = tokens.sweep_expired(t0, 2).await.unwrap();
        assert!(n <= 2, "a batch never exceeds its bound");
        total += n;
        if n < 2 {
            break;
        }
    }
    assert!(total >= 5);
    for t in &expired {
        assert_eq!(tokens.find(&t.hash).await.unwrap(), None);
    }
    assert!(tokens.find(&live.hash).await.unwrap().is_some());
    assert!(tokens.find(&forever.hash).await.unwrap().is_some());
}

async fn concurrent_rotations(
    p: &Ports,
    grace: Duration,
) -> Option<(Vec<RotationDecision>, buzzgate_domain::token::TokenRecord)> {
    let (users, clients, tokens) = need_opt(p)?;
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let (_, r) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fx::family()));
    tokens.insert(std::slice::from_ref(&r)).await.unwrap();
    let at = now();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let tokens = p.node(i).tokens.clone().unwrap_or_else(|| tokens.clone());
            let (hash, rot) = (r.hash, fx::rotation(&c.id, at, grace));
            tokio::spawn(async move {
                tokens
                    .rotate_refresh(&hash, &rot)
                    .await
                    .expect("a race is never an error")
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    Some((out, r))
}

#[allow(clippy::type_complexity)]
fn need_opt(
    p: &Ports,
) -> Option<(
    Arc<dyn buzzgate_domain::ports::UserStore>,
    Arc<dyn buzzgate_domain::ports::ClientStore>,
    Arc<dyn buzzgate_domain::ports::TokenStore>,
)> {
    Some((p.users.clone()?, p.clients.clone()?, p.tokens.clone()?))
}

pub async fn concurrent_rotations_inside_grace_all_rotate(p: &Ports) {
    let Some((decisions, presented)) = concurrent_rotations(p, GRACE).await else {
        return;
    };
    let marks = decisions
        .iter()
        .filter(|d| {
            matches!(
                d,
                RotationDecision::Rotate {
                    mark_rotated: true,
                    ..
                }
            )
        })
        .count();
    let rotations = decisions
        .iter()
        .filter(|d| matches!(d, RotationDecision::Rotate { .. }))
        .count();
    assert_eq!(
        (rotations, marks),
        (64, 1),
        "all 64 succeed; exactly one marks the token"
    );
    let tokens = p.tokens.as_ref().unwrap();
    let mut heads = 0;
    let mut retired = 0;
    for d in &decisions {
        if let RotationDecision::Rotate {
            refresh,
            superseded,
            ..
        } = d
        {
            let row = stored(&tokens, &refresh.hash).await;
            if row.revoked_at.is_none() {
                heads += 1;
            }
            retired += superseded.len();
        }
    }
    assert_eq!(
        (heads, retired),
        (1, 63),
        "the family keeps one live head; each retry retired the one before"
    );
    assert!(stored(&tokens, &presented.hash).await.rotated_at.is_some());
}

pub async fn concurrent_rotations_without_grace_have_one_winner(p: &Ports) {
    let Some((decisions, _)) = concurrent_rotations(p, Duration::ZERO).await else {
        return;
    };
    let rotations = decisions
        .iter()
        .filter(|d| matches!(d, RotationDecision::Rotate { .. }))
        .count();
    let revokes = decisions
        .iter()
        .filter(|d| matches!(d, RotationDecision::RevokeFamily { .. }))
        .count();
    assert_eq!((rotations, revokes), (1, 63));
}

/// 32 families rotated at once, each with two live heads (as a retry's successor and the
/// first successor briefly are), each head presented twice, from two nodes where the
/// fixture has them: a store that decides rotations of different families together
/// (Postgres' group commit) must still decide each family as if its rotations came one at a
/// time. In every family the first head used wins: both its uses rotate (one marks it), its
/// first rotation retires the other head, whose uses are refused; one live head remains.
pub async fn concurrent_rotations_of_many_families_are_decided_apart(p: &Ports) {
    let (users, clients, tokens) = need!(p, users, clients, tokens);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let mut heads = Vec::new();
    for _ in 0..32 {
        let family = Some(fx::family());
        let (_, a) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), family);
        let (_, b) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), family);
        tokens.insert(&[a.clone(), b.clone()]).await.unwrap();
        heads.push([a, b]);
    }
    let at = now();
    let tasks: Vec<_> = (0..128)
        .map(|i| {
            let tokens = p.node(i).tokens.clone().unwrap_or_else(|| tokens.clone());
            let (f, h) = (i / 4, (i / 2) % 2);
            let (hash, rot) = (heads[f][h].hash, fx::rotation(&c.id, at, GRACE));
            tokio::spawn(async move { (f, h, tokens.rotate_refresh(&hash, &rot).await) })
        })
        .collect();
    let mut by_family: Vec<Vec<(usize, RotationDecision)>> = vec![Vec::new(); heads.len()];
    for t in tasks {
        let (f, h, d) = t.await.unwrap();
        by_family[f].push((h, d.expect("a rotation is never an error")));
    }
    for (pair, decisions) in heads.iter().zip(&by_family) {
        let winners: Vec<usize> = decisions
            .iter()
            .filter(|(_, d)| matches!(d, RotationDecision::Rotate { .. }))
            .map(|(h, _)| *h)
            .collect();
        assert_eq!(
            winners.len(),
            2,
            "the winning head's two uses rotate: {decisions:?}"
        );
        assert_eq!(winners[0], winners[1], "only one head wins: {decisions:?}");
        let (won, lost) = (&pair[winners[0]], &pair[1 - winners[0]]);
        let mut marks = 0;
        let mut live = 0;
        let mut retired = Vec::new();
        for (h, d) in decisions {
            match d {
                RotationDecision::Rotate {
                    mark_rotated,
                    access,
                    refresh,
                    superseded,
                } => {
                    marks += usize::from(*mark_rotated);
                    assert_eq!((refresh.family_id, access.user_id), (won.family_id, u.id));
                    assert!(tokens.find(&access.hash).await.unwrap().is_some());
                    if stored(&tokens, &refresh.hash).await.revoked_at.is_none() {
                        live += 1;
                    }
                    retired.extend(superseded.iter().copied());
                }
                RotationDecision::Reject(Error::InvalidGrant(_)) => {
                    assert_eq!(pair[*h].hash, lost.hash, "only the retired head is refused");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((marks, live), (1, 1), "one mark, one live head");
        assert_eq!(retired.len(), 2, "the other head, then the first successor");
        assert!(retired.contains(&lost.hash));
        assert!(stored(&tokens, &won.hash).await.rotated_at.is_some());
        assert!(stored(&tokens, &lost.hash).await.revoked_at.is_some());
    }
}
