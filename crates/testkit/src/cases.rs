//! The contract cases. Each takes the adapter's [`Ports`] and returns at once when the ports
//! it needs are not provided. Assertions are the port docs of `buzzgate_domain::ports`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use buzzgate_domain::audit::{AuditEvent, AuditKind, AuditQuery};
use buzzgate_domain::buzz::{BuzzLimit, Currency, SpendSubject, status_windows};
use buzzgate_domain::consent::Consent;
use buzzgate_domain::grant::authorization_code::CodeRedemption;
use buzzgate_domain::grant::device_code::{DevicePoll, DeviceResolution, DeviceStatus};
use buzzgate_domain::grant::refresh_token::RotationDecision;
use buzzgate_domain::ports::{InsertOutcome, RateWindow, RefundOutcome, SpendOutcome};
use buzzgate_domain::token::{TokenHash, TokenKind};
use buzzgate_domain::user::{Session, Username};
use buzzgate_domain::{Error, Scope, StoreError};
use time::Duration;

use crate::Ports;
use crate::fixtures::{self as fx, now};

macro_rules! need {
    ($p:expr, $($port:ident),+) => {
        ($(match &$p.$port { Some(x) => x.clone(), None => return },)+)
    };
}

const GRACE: Duration = Duration::seconds(10);

// ----- clients and consents -------------------------------------------------------------------

pub async fn clients_round_trip(p: &Ports) {
    let (users, clients) = need!(p, users, clients);
    let (owner, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    assert_eq!(clients.get(&c.id).await.unwrap().as_ref(), Some(&c));
    assert!(matches!(
        clients.insert(&c).await,
        Err(StoreError::Conflict(_))
    ));
    let mut changed = c.clone();
    changed.name = "Renamed".into();
    changed.allowed_scopes = Scope::READ_ONLY;
    changed.owner_buzz_limit = BuzzLimit::per_period(100, 1).unwrap();
    changed.updated_at = now() + Duration::seconds(1);
    assert!(clients.update(&changed).await.unwrap());
    assert_eq!(clients.get(&c.id).await.unwrap(), Some(changed.clone()));
    let mut later = fx::client(owner.id);
    later.created_at = now() + Duration::seconds(5);
    clients.insert(&later).await.unwrap();
    let listed = clients.list_by_owner(owner.id).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| s.client.id.clone())
            .collect::<Vec<_>>(),
        vec![later.id.clone(), c.id.clone()]
    );
    assert!(
        listed
            .iter()
            .all(|s| s.active_tokens == 0 && s.consents == 0)
    );
    let ghost = fx::client(owner.id);
    assert!(!clients.update(&ghost).await.unwrap());
    assert_eq!(clients.get(&ghost.id).await.unwrap(), None);
}

pub async fn client_delete_cascades(p: &Ports) {
    let (users, clients, tokens, consents) = need!(p, users, clients, tokens, consents);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let fam = fx::family();
    let (_, access) = fx::token(TokenKind::Access, u.id, Some(&c.id), Some(fam));
    let (_, refresh) = fx::token(TokenKind::Refresh, u.id, Some(&c.id), Some(fam));
    assert_eq!(
        tokens
            .insert(&[access.clone(), refresh.clone()])
            .await
            .unwrap(),
        InsertOutcome::Inserted
    );
    consents.upsert(&consent(u.id, &c.id)).await.unwrap();
    let summaries = clients.list_by_owner(u.id).await.unwrap();
    assert_eq!((summaries[0].active_tokens, summaries[0].consents), (2, 1));
    // An adapter that holds clients and codes (or devices) cascades to them too.
    let code = fx::code(u.id, &c.id);
    let device = fx::device(&c);
    let same_store_codes = p.codes.is_some() && p.devices.is_some();
    if same_store_codes {
        p.codes.as_ref().unwrap().insert(&code).await.unwrap();
        p.devices.as_ref().unwrap().insert(&device).await.unwrap();
    }
    if let Some(audit) = &p.audit {
        audit
            .record(
                &AuditEvent::new(AuditKind::TokenIssued, now())
                    .client(&c.id)
                    .user(u.id),
            )
            .await
            .unwrap();
    }
    let deleted: HashSet<TokenHash> = clients
        .delete(&c.id)
        .await
        .unwrap()
        .expect("existed")
        .into_iter()
        .collect();
    assert_eq!(deleted, HashSet::from([access.hash, refresh.hash]));
    assert_eq!(tokens.find(&access.hash).await.unwrap(), None);
    assert_eq!(consents.get(u.id, &c.id).await.unwrap(), None);
    assert_eq!(clients.get(&c.id).await.unwrap(), None);
    assert_eq!(clients.delete(&c.id).await.unwrap(), None);
    if same_store_codes {
        assert_eq!(
            p.codes
                .as_ref()
                .unwrap()
                .redeem(&code.hash, fx::family())
                .await
                .unwrap(),
            CodeRedemption::NotFound
        );
        assert_eq!(
            p.devices
                .as_ref()
                .unwrap()
                .find_by_user_code(&device.user_code)
                .await
                .unwrap(),
            None
        );
    }
    if let Some(audit) = &p.audit {
        let q = AuditQuery {
            client_id: Some(c.id.clone()),
            ..Default::default()
        };
        assert_eq!(
            audit.query(&q).await.unwrap().len(),
            1,
            "audit rows outlive the app"
        );
    }
}

fn consent(user: buzzgate_domain::ids::UserId, client: &buzzgate_domain::ids::ClientId) -> Consent {
    Consent {
        user_id: user,
        client_id: client.clone(),
        scope: Scope::AI_SERVICES,
        remembered: true,
        buzz_limit: BuzzLimit::consent_default(),
        created_at: now(),
        updated_at: now(),
    }
}

pub async fn consents_round_trip(p: &Ports) {
    let (users, clients, consents) = need!(p, users, clients, consents);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let c2 = fx::client(u.id);
    clients.insert(&c2).await.unwrap();
    let first = consent(u.id, &c.id);
    consents.upsert(&first).await.unwrap();
    assert_eq!(
        consents.get(u.id, &c.id).await.unwrap(),
        Some(first.clone())
    );
    let mut replaced = first.clone();
    replaced.scope = Scope::USER_READ;
    replaced.remembered = false;
    replaced.buzz_limit = BuzzLimit::default();
    replaced.updated_at = now() + Duration::seconds(1);
    consents.upsert(&replaced).await.unwrap();
    assert_eq!(consents.get(u.id, &c.id).await.unwrap(), Some(replaced));
    let mut second = consent(u.id, &c2.id);
    second.created_at = now() + Duration::seconds(3);
    consents.upsert(&second).await.unwrap();
    let listed: Vec<_> = consents
        .list_for_user(u.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(listed, vec![c2.id.clone(), c.id.clone()], "newest first");
    let limit = BuzzLimit::per_period(50, 7).unwrap();
    let later = now() + Duration::seconds(9);
    let edited = consents
        .set_buzz_limit(u.id, &c.id, &limit, later)
        .await
        .unwrap()
        .expect("the consent exists");
    assert_eq!((&edited.buzz_limit, edited.updated_at), (&limit, later));
    assert_eq!(edited.created_at, first.created_at, "created_at is kept");
    assert_eq!(consents.get(u.id, &c.id).await.unwrap(), Some(edited));
    assert!(consents.delete(u.id, &c.id).await.unwrap());
    assert!(!consents.delete(u.id, &c.id).await.unwrap());
    assert_eq!(consents.get(u.id, &c.id).await.unwrap(), None);
    assert_eq!(
        consents
            .set_buzz_limit(u.id, &c.id, &limit, later)
            .await
            .unwrap(),
        None,
        "a cap edit never brings a revoked consent back"
    );
    assert_eq!(consents.get(u.id, &c.id).await.unwrap(), None);
}

pub async fn origins_registered_by_public_clients(p: &Ports) {
    let (users, clients) = need!(p, users, clients);
    let (owner, confidential) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let unique = format!(
        "https://{}.example",
        buzzgate_domain::ids::new_uuid(&buzzgate_domain::ports::OsRandom).simple()
    );
    let origin = buzzgate_domain::client::Origin::parse(&unique).unwrap();
    assert!(!clients.origin_registered(&origin).await.unwrap());
    let mut conf = confidential.clone();
    conf.allowed_origins = vec![origin.clone()];
    assert!(clients.update(&conf).await.unwrap());
    assert!(
        !clients.origin_registered(&origin).await.unwrap(),
        "a confidential client's origins grant no CORS"
    );
    let mut public = fx::client(owner.id);
    public.kind = buzzgate_domain::client::ClientKind::Public;
    public.secret_hash = None;
    public.allowed_origins = vec![origin.clone()];
    clients.insert(&public).await.unwrap();
    assert!(clients.origin_registered(&origin).await.unwrap());
    let other = buzzgate_domain::client::Origin::parse("https://other.invalid").unwrap();
    assert!(!clients.origin_registered(&other).await.unwrap());
}

// ----- tokens ---------------------------------------------------------------------------------

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
    assert_eq!(
        tokens.find(&t.hash).await.unwrap().unwrap().revoked_at,
        Some(at)
    );
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
    assert_eq!(
        tokens.find(&other.hash).await.unwrap().unwrap().revoked_at,
        None
    );
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
    assert_eq!(
        tokens.find(&r.hash).await.unwrap().unwrap().rotated_at,
        Some(at)
    );
    let retry = fx::rotation(&c.id, at + Duration::seconds(3), GRACE);
    assert!(matches!(
        tokens.rotate_refresh(&r.hash, &retry).await.unwrap(),
        RotationDecision::Rotate {
            mark_rotated: false,
            ..
        }
    ));
    assert_eq!(
        tokens.find(&r.hash).await.unwrap().unwrap().rotated_at,
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
    assert!(
        tokens
            .find(&mine.hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        tokens
            .find(&theirs.hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
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
    let mut expired = Vec::new();
    for _ in 0..5 {
        let (_, mut t) = fx::token(TokenKind::Access, u.id, Some(&c.id), None);
        t.expires_at = Some(t0 - Duration::seconds(10));
        expired.push(t);
    }
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
    for d in &decisions {
        if let RotationDecision::Rotate { refresh, .. } = d {
            assert!(tokens.find(&refresh.hash).await.unwrap().is_some());
        }
    }
    assert!(
        tokens
            .find(&presented.hash)
            .await
            .unwrap()
            .unwrap()
            .rotated_at
            .is_some()
    );
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

// ----- codes and devices ----------------------------------------------------------------------

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
    let mut winners = Vec::new();
    let mut seen_families = HashSet::new();
    for t in tasks {
        match t.await.unwrap() {
            (fam, CodeRedemption::Redeemed(_)) => winners.push(fam),
            (_, CodeRedemption::AlreadyRedeemed { family }) => {
                seen_families.insert(family);
            }
            (_, CodeRedemption::NotFound) => panic!("the code exists"),
        }
    }
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

// ----- users and sessions ---------------------------------------------------------------------

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

// ----- Buzz -----------------------------------------------------------------------------------

async fn buzz_setup(
    p: &Ports,
) -> Option<(
    Arc<dyn buzzgate_domain::ports::BuzzStore>,
    buzzgate_domain::ids::UserId,
    buzzgate_domain::ids::ClientId,
)> {
    let buzz = p.buzz.clone()?;
    let (users, clients) = (p.users.clone()?, p.clients.clone()?);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    Some((buzz, u.id, c.id))
}

pub async fn buzz_credit_and_history(p: &Ports) {
    let Some((buzz, u, c)) = buzz_setup(p).await else {
        return;
    };
    assert_eq!(buzz.balances(u).await.unwrap(), vec![]);
    assert_eq!(
        buzz.credit(u, &Currency::yellow(), 100, now())
            .await
            .unwrap(),
        100
    );
    assert_eq!(
        buzz.credit(u, &Currency::yellow(), 5, now()).await.unwrap(),
        105
    );
    buzz.credit(u, &Currency::parse("blue").unwrap(), 7, now())
        .await
        .unwrap();
    assert_eq!(
        buzz.balances(u).await.unwrap(),
        vec![
            (Currency::parse("blue").unwrap(), 7),
            (Currency::yellow(), 105)
        ]
    );
    let mut first = fx::spend(u, &c, 1, "h1", BuzzLimit::default());
    first.now = now() - Duration::seconds(5);
    buzz.spend(&first).await.unwrap();
    buzz.spend(&fx::spend(u, &c, 2, "h2", BuzzLimit::default()))
        .await
        .unwrap();
    let history = buzz.history(u, 10).await.unwrap();
    assert_eq!(
        history.iter().map(|e| e.amount).collect::<Vec<_>>(),
        vec![2, 1],
        "newest first"
    );
    assert_eq!(buzz.history(u, 1).await.unwrap().len(), 1);
}

pub async fn buzz_spend_replay_and_conflict(p: &Ports) {
    let Some((buzz, u, c)) = buzz_setup(p).await else {
        return;
    };
    buzz.credit(u, &Currency::yellow(), 50, now())
        .await
        .unwrap();
    let req = fx::spend(u, &c, 30, "k", BuzzLimit::default());
    let SpendOutcome::Spent { entry, balance: 20 } = buzz.spend(&req).await.unwrap() else {
        panic!("spent")
    };
    assert_eq!(entry.id, req.id);
    let again = fx::spend(u, &c, 30, "k", BuzzLimit::default());
    assert_eq!(
        buzz.spend(&again).await.unwrap(),
        SpendOutcome::Replayed {
            entry: entry.clone(),
            balance: 20
        }
    );
    let different = fx::spend(u, &c, 31, "k", BuzzLimit::default());
    assert!(matches!(
        buzz.spend(&different).await.unwrap(),
        SpendOutcome::Rejected(Error::Conflict(_))
    ));
    let too_much = fx::spend(u, &c, 21, "k2", BuzzLimit::default());
    assert_eq!(
        buzz.spend(&too_much).await.unwrap(),
        SpendOutcome::Rejected(Error::InsufficientFunds)
    );
    let capped = fx::spend(u, &c, 5, "k3", BuzzLimit::per_period(34, 1).unwrap());
    assert_eq!(
        buzz.spend(&capped).await.unwrap(),
        SpendOutcome::Rejected(Error::InsufficientFunds),
        "30 + 5 > 34"
    );
    assert_eq!(
        buzz.balances(u).await.unwrap(),
        vec![(Currency::yellow(), 20)],
        "refusals charge nothing"
    );
}

pub async fn buzz_refund_once(p: &Ports) {
    let Some((buzz, u, c)) = buzz_setup(p).await else {
        return;
    };
    buzz.credit(u, &Currency::yellow(), 10, now())
        .await
        .unwrap();
    let req = fx::spend(u, &c, 4, "r", BuzzLimit::default());
    buzz.spend(&req).await.unwrap();
    let at = now();
    let rs = fx::resource_server();
    let other_rs = buzzgate_domain::ids::ClientId::parse("another-rs").unwrap();
    assert_eq!(
        buzz.refund(req.id, &other_rs, at).await.unwrap(),
        RefundOutcome::NotFound,
        "another resource server's spend looks missing"
    );
    assert_eq!(
        buzz.balances(u).await.unwrap(),
        vec![(Currency::yellow(), 6)],
        "and nothing was credited"
    );
    let RefundOutcome::Refunded { entry, balance: 10 } =
        buzz.refund(req.id, &rs, at).await.unwrap()
    else {
        panic!("refunded")
    };
    assert_eq!(entry.refunded_at, Some(at));
    assert_eq!(entry.resource_server, Some(rs.clone()));
    assert!(matches!(
        buzz.refund(req.id, &rs, now()).await.unwrap(),
        RefundOutcome::AlreadyRefunded { balance: 10, .. }
    ));
    assert_eq!(
        buzz.refund(
            buzzgate_domain::ids::SpendId::generate(&buzzgate_domain::ports::OsRandom),
            &rs,
            now()
        )
        .await
        .unwrap(),
        RefundOutcome::NotFound
    );
}

pub async fn buzz_net_spent_counts_what_was_not_refunded(p: &Ports) {
    let Some((buzz, u, c)) = buzz_setup(p).await else {
        return;
    };
    assert_eq!(buzz.net_spent(u).await.unwrap(), vec![]);
    buzz.credit(u, &Currency::yellow(), 100, now())
        .await
        .unwrap();
    let blue = Currency::parse("blue").unwrap();
    buzz.credit(u, &blue, 50, now()).await.unwrap();
    let kept = fx::spend(u, &c, 30, "kept", BuzzLimit::default());
    buzz.spend(&kept).await.unwrap();
    let refunded = fx::spend(u, &c, 20, "refunded", BuzzLimit::default());
    buzz.spend(&refunded).await.unwrap();
    buzz.refund(refunded.id, &fx::resource_server(), now())
        .await
        .unwrap();
    let mut in_blue = fx::spend(u, &c, 5, "blue", BuzzLimit::default());
    in_blue.currency = blue.clone();
    buzz.spend(&in_blue).await.unwrap();
    assert_eq!(
        buzz.net_spent(u).await.unwrap(),
        vec![(blue, 5), (Currency::yellow(), 30)]
    );
    assert_eq!(
        buzz.net_spent(buzzgate_domain::ids::UserId(u.0 + 1_000_000))
            .await
            .unwrap(),
        vec![],
        "per user"
    );
}

pub async fn buzz_idempotency_keys_are_scoped_to_the_resource_server(p: &Ports) {
    let Some((buzz, u, c)) = buzz_setup(p).await else {
        return;
    };
    buzz.credit(u, &Currency::yellow(), 100, now())
        .await
        .unwrap();
    let first = fx::spend(u, &c, 10, "shared-key", BuzzLimit::default());
    assert!(matches!(
        buzz.spend(&first).await.unwrap(),
        SpendOutcome::Spent { balance: 90, .. }
    ));
    let mut other = fx::spend(u, &c, 10, "shared-key", BuzzLimit::default());
    other.resource_server = buzzgate_domain::ids::ClientId::parse("another-rs").unwrap();
    let SpendOutcome::Spent { entry, balance: 80 } = buzz.spend(&other).await.unwrap() else {
        panic!("a second resource server's key is its own: charged, not replayed");
    };
    assert_eq!(entry.resource_server, Some(other.resource_server.clone()));
    let mut retry = other.clone();
    retry.id = buzzgate_domain::ids::SpendId::generate(&buzzgate_domain::ports::OsRandom);
    assert!(matches!(
        buzz.spend(&retry).await.unwrap(),
        SpendOutcome::Replayed { balance: 80, .. }
    ));
}

pub async fn buzz_window_spend(p: &Ports) {
    let Some((buzz, u, c)) = buzz_setup(p).await else {
        return;
    };
    buzz.credit(u, &Currency::yellow(), 1000, now())
        .await
        .unwrap();
    let mut old = fx::spend(u, &c, 100, "old", BuzzLimit::default());
    old.now = now() - Duration::days(2);
    buzz.spend(&old).await.unwrap();
    buzz.spend(&fx::spend(u, &c, 10, "new", BuzzLimit::default()))
        .await
        .unwrap();
    let refunded = fx::spend(u, &c, 1, "refunded", BuzzLimit::default());
    buzz.spend(&refunded).await.unwrap();
    buzz.refund(refunded.id, &fx::resource_server(), now())
        .await
        .unwrap();
    let limit = BuzzLimit::parse_json(r#"[{"type":"sliding","limit":500,"window":"day","unit":1},{"type":"absolute","limit":900},{"type":"absolute","limit":900,"currencies":["blue"]}]"#).unwrap();
    let windows = status_windows(&limit, now());
    let subject = SpendSubject::OAuth(c.clone());
    assert_eq!(
        buzz.window_spend(u, &subject, &windows).await.unwrap(),
        vec![10, 110, 0]
    );
    let other = SpendSubject::OAuth(buzzgate_domain::ids::ClientId::parse("someone-else").unwrap());
    assert_eq!(
        buzz.window_spend(u, &other, &windows).await.unwrap(),
        vec![0, 0, 0]
    );
}

pub async fn concurrent_spends_never_exceed_the_cap(p: &Ports) {
    let Some((buzz, u, c)) = buzz_setup(p).await else {
        return;
    };
    buzz.credit(u, &Currency::yellow(), 1_000_000, now())
        .await
        .unwrap();
    let cap = 37;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let req = fx::spend(
                u,
                &c,
                1,
                &format!("c{i}"),
                BuzzLimit::per_period(cap, 1).unwrap(),
            );
            let buzz = p.node(i).buzz.clone().unwrap_or_else(|| buzz.clone());
            tokio::spawn(async move { buzz.spend(&req).await.expect("a race is never an error") })
        })
        .collect();
    let mut spent = 0;
    for t in tasks {
        match t.await.unwrap() {
            SpendOutcome::Spent { .. } => spent += 1,
            SpendOutcome::Rejected(e) => assert_eq!(e, Error::InsufficientFunds),
            SpendOutcome::Replayed { .. } => panic!("keys are distinct"),
        }
    }
    assert_eq!(spent, cap);
    assert_eq!(
        buzz.balances(u).await.unwrap(),
        vec![(Currency::yellow(), 1_000_000 - cap as i64)]
    );
}

pub async fn concurrent_duplicate_spends_charge_once(p: &Ports) {
    let Some((buzz, u, c)) = buzz_setup(p).await else {
        return;
    };
    buzz.credit(u, &Currency::yellow(), 100, now())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let req = fx::spend(u, &c, 10, "same", BuzzLimit::default());
            let buzz = p.node(i).buzz.clone().unwrap_or_else(|| buzz.clone());
            tokio::spawn(async move { buzz.spend(&req).await.expect("a race is never an error") })
        })
        .collect();
    let (mut spent, mut replayed) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            SpendOutcome::Spent { .. } => spent += 1,
            SpendOutcome::Replayed { .. } => replayed += 1,
            SpendOutcome::Rejected(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((spent, replayed), (1, 15));
    assert_eq!(
        buzz.balances(u).await.unwrap(),
        vec![(Currency::yellow(), 90)]
    );
}

// ----- audit ----------------------------------------------------------------------------------

pub async fn audit_query(p: &Ports) {
    let (audit,) = need!(p, audit);
    let client = buzzgate_domain::ids::ClientId::generate(&buzzgate_domain::ports::OsRandom);
    let t0 = now();
    for i in 0..5 {
        let e = AuditEvent::new(
            if i % 2 == 0 {
                AuditKind::TokenIssued
            } else {
                AuditKind::TokenRevoked
            },
            t0 + Duration::seconds(i),
        )
        .client(&client)
        .user(buzzgate_domain::ids::UserId(42))
        .scope(Scope::USER_READ)
        .ip(Some("192.0.2.1"))
        .meta("i", i);
        audit.record(&e).await.unwrap();
    }
    let all = audit
        .query(&AuditQuery {
            client_id: Some(client.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|e| e.metadata["i"].clone())
            .collect::<Vec<_>>(),
        vec!["4", "3", "2", "1", "0"]
    );
    assert_eq!(all[0].ip.as_deref(), Some("192.0.2.1"));
    let issued = AuditQuery {
        client_id: Some(client.clone()),
        kind: Some(AuditKind::TokenIssued),
        limit: 2,
        ..Default::default()
    };
    assert_eq!(audit.query(&issued).await.unwrap().len(), 2);
    let since = AuditQuery {
        client_id: Some(client),
        since: Some(t0 + Duration::seconds(3)),
        ..Default::default()
    };
    assert_eq!(audit.query(&since).await.unwrap().len(), 2);
}

// ----- rate limits and the token cache --------------------------------------------------------

fn key() -> String {
    format!(
        "contract:{}",
        buzzgate_domain::ids::new_uuid(&buzzgate_domain::ports::OsRandom).simple()
    )
}

pub async fn rate_limit_fixed_window(p: &Ports) {
    let (rl,) = need!(p, rate_limiter);
    let (k, other) = (key(), key());
    // Mid-window, so the whole case fits in one 60 s window.
    let t = time::macros::datetime!(2026-03-01 10:00:30 UTC);
    let w = RateWindow::containing(t, 60);
    assert_eq!(
        rl.count(&k, w, 0).await.unwrap(),
        0,
        "a read creates nothing"
    );
    for i in 1..=3 {
        assert_eq!(rl.count(&k, w, 1).await.unwrap(), i);
    }
    assert_eq!(rl.count(&k, w, 0).await.unwrap(), 3, "a read adds nothing");
    assert_eq!(rl.count(&k, w, 2).await.unwrap(), 5);
    assert_eq!(
        rl.count(&other, w, 1).await.unwrap(),
        1,
        "keys are independent"
    );
    let next = RateWindow::containing(t + Duration::seconds(30), 60);
    assert_eq!(
        rl.count(&k, next, 1).await.unwrap(),
        1,
        "the next window starts over"
    );
}

pub async fn concurrent_hits_respect_the_limit(p: &Ports) {
    let (rl,) = need!(p, rate_limiter);
    let k = key();
    let t = time::macros::datetime!(2026-03-01 10:00:30 UTC);
    let w = RateWindow::containing(t, 60);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (rl, k) = (
                p.node(i).rate_limiter.clone().unwrap_or_else(|| rl.clone()),
                k.clone(),
            );
            tokio::spawn(async move {
                let n = rl.count(&k, w, 1).await.unwrap();
                buzzgate_domain::rate::decide(n, 20, w, t).allowed
            })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    assert_eq!(allowed, 20, "every count is distinct, so exactly 20 pass");
    assert_eq!(rl.count(&k, w, 0).await.unwrap(), 64);
}

pub async fn cache_round_trip(p: &Ports) {
    let (cache,) = need!(p, cache);
    let (_, t) = fx::token(
        TokenKind::Access,
        buzzgate_domain::ids::UserId(1),
        None,
        None,
    );
    assert_eq!(cache.get(&t.hash).await.unwrap(), None);
    cache.put(&t, now() + Duration::seconds(30)).await.unwrap();
    assert_eq!(cache.get(&t.hash).await.unwrap(), Some(t.clone()));
    cache.invalidate(&[t.hash]).await.unwrap();
    assert_eq!(cache.get(&t.hash).await.unwrap(), None);
    cache.invalidate(&[]).await.unwrap();
    let (_, short) = fx::token(
        TokenKind::Access,
        buzzgate_domain::ids::UserId(1),
        None,
        None,
    );
    cache
        .put(&short, now() + Duration::milliseconds(200))
        .await
        .unwrap();
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    assert_eq!(
        cache.get(&short.hash).await.unwrap(),
        None,
        "entries never outlive `until`"
    );
}

/// A validation that read a token before its revocation must not cache it after: the
/// invalidation's tombstone refuses the late put, on this node and on every other.
pub async fn cache_put_after_invalidate_is_refused(p: &Ports) {
    let (cache,) = need!(p, cache);
    let (_, t) = fx::token(
        TokenKind::Access,
        buzzgate_domain::ids::UserId(1),
        None,
        None,
    );
    cache.invalidate(&[t.hash]).await.unwrap();
    cache.put(&t, now() + Duration::seconds(60)).await.unwrap();
    assert_eq!(
        cache.get(&t.hash).await.unwrap(),
        None,
        "a revoked token is never cached back"
    );
    if let Some(peer) = &p.cache_peer {
        peer.put(&t, now() + Duration::seconds(60)).await.unwrap();
        assert_eq!(
            peer.get(&t.hash).await.unwrap(),
            None,
            "nor by another node"
        );
        assert_eq!(cache.get(&t.hash).await.unwrap(), None);
    }
    let (_, fresh) = fx::token(
        TokenKind::Access,
        buzzgate_domain::ids::UserId(1),
        None,
        None,
    );
    cache
        .put(&fresh, now() + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(
        cache.get(&fresh.hash).await.unwrap(),
        Some(fresh),
        "other tokens are cached as before"
    );
}

/// Puts racing an invalidation of the same hash: once the invalidation is done, no put
/// before or after it leaves the token cached (the tombstone check and the insert are one
/// step against the invalidation). 50 rounds of 16 tasks.
pub async fn concurrent_puts_never_outlive_an_invalidation(p: &Ports) {
    let (cache,) = need!(p, cache);
    for _ in 0..50 {
        let (_, t) = fx::token(
            TokenKind::Access,
            buzzgate_domain::ids::UserId(1),
            None,
            None,
        );
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (cache, t) = (cache.clone(), t.clone());
                tokio::spawn(async move {
                    if i == 8 {
                        cache.invalidate(&[t.hash]).await.unwrap();
                    } else {
                        cache.put(&t, now() + Duration::seconds(60)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            cache.get(&t.hash).await.unwrap(),
            None,
            "a put that raced the invalidation left the revoked token cached"
        );
    }
}

pub async fn cache_invalidation_reaches_peer(p: &Ports) {
    let (cache, peer) = need!(p, cache, cache_peer);
    let (_, t) = fx::token(
        TokenKind::Access,
        buzzgate_domain::ids::UserId(1),
        None,
        None,
    );
    cache.put(&t, now() + Duration::seconds(60)).await.unwrap();
    peer.put(&t, now() + Duration::seconds(60)).await.unwrap();
    assert!(peer.get(&t.hash).await.unwrap().is_some());
    cache.invalidate(&[t.hash]).await.unwrap();
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(1);
    loop {
        if peer.get(&t.hash).await.unwrap().is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the peer still serves a revoked token after 1 s"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}
