//! Contract cases: Registered apps and the consents users gave them.

#[allow(unused_imports)]
use super::prelude::*;

pub async fn clients_round_trip(p: &Ports) {
    let (users, clients) = need!(p, users, clients);
    let (owner, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    assert_eq!(clients.get(&c.id).await.unwrap().as_deref(), Some(&c));
    assert!(matches!(
        clients.insert(&c).await,
        Err(StoreError::Conflict(_))
    ));
    let mut changed = c.clone();
    changed.name = "Renamed".into();
    changed.allowed_scopes = Scope::READ_ONLY;
    changed.owner_buzz_limit = BuzzLimit::per_period(100, 1).unwrap();
    changed.registration_token = Some(buzzgate_domain::client::SecretHash::of("registration"));
    changed.updated_at = now() + Duration::seconds(1);
    assert_eq!(
        clients.update(&changed).await.unwrap(),
        Conditional::Written
    );
    let stored = clients.get(&c.id).await.unwrap().expect("still there");
    assert_eq!(stored.revision, changed.revision + 1, "a write adds one");
    assert_eq!(
        *stored,
        buzzgate_domain::client::Client {
            revision: stored.revision,
            ..changed.clone()
        }
    );
    let mut stale = changed.clone();
    stale.name = "From a stale read".into();
    assert_eq!(
        clients.update(&stale).await.unwrap(),
        Conditional::Stale,
        "written on condition that the revision read is still stored"
    );
    assert_eq!(clients.get(&c.id).await.unwrap(), Some(stored));
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
    assert_eq!(clients.update(&ghost).await.unwrap(), Conditional::Missing);
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
    assert_eq!(
        consents.save(&consent(u.id, &c.id), None).await.unwrap(),
        Conditional::Written
    );
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

use fx::consent;

/// `ConsentStore::peek` may lag other nodes' writes (by the adapter's documented bound), never
/// the writes made through the same store: after each one it answers what `get` answers.
pub async fn consent_peek_sees_the_store_s_own_writes(p: &Ports) {
    let (users, clients, consents) = need!(p, users, clients, consents);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    assert_eq!(consents.peek(u.id, &c.id).await.unwrap(), None);
    let first = consent(u.id, &c.id);
    consents.save(&first, None).await.unwrap();
    let stored = consents.get(u.id, &c.id).await.unwrap();
    assert!(stored.is_some());
    assert_eq!(consents.peek(u.id, &c.id).await.unwrap(), stored, "a grant");
    let limit = BuzzLimit::per_period(25, 1).unwrap();
    consents
        .set_buzz_limit(u.id, &c.id, &limit, now())
        .await
        .unwrap();
    let peeked = consents.peek(u.id, &c.id).await.unwrap().expect("granted");
    assert_eq!(peeked.buzz_limit, limit, "a changed cap");
    assert!(consents.delete(u.id, &c.id).await.unwrap());
    assert_eq!(
        consents.peek(u.id, &c.id).await.unwrap(),
        None,
        "a revocation"
    );
}

pub async fn consents_round_trip(p: &Ports) {
    let (users, clients, consents) = need!(p, users, clients, consents);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let c2 = fx::client(u.id);
    clients.insert(&c2).await.unwrap();
    let first = consent(u.id, &c.id);
    assert_eq!(
        consents.save(&first, None).await.unwrap(),
        Conditional::Written
    );
    assert_eq!(
        consents.get(u.id, &c.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        consents.save(&first, None).await.unwrap(),
        Conditional::Stale,
        "an insert finds one recorded meanwhile"
    );
    let mut replaced = first.clone();
    replaced.scope = Scope::USER_READ;
    replaced.remembered = false;
    replaced.buzz_limit = BuzzLimit::default();
    replaced.updated_at = now() + Duration::seconds(1);
    replaced.created_at = now() + Duration::seconds(1);
    assert_eq!(
        consents.save(&replaced, Some(0)).await.unwrap(),
        Conditional::Written
    );
    let stored = consents.get(u.id, &c.id).await.unwrap().unwrap();
    assert_eq!(
        stored,
        Consent {
            created_at: first.created_at,
            revision: 1,
            ..replaced.clone()
        },
        "created_at is never rewritten"
    );
    assert_eq!(
        consents.save(&replaced, Some(0)).await.unwrap(),
        Conditional::Stale
    );
    let mut second = consent(u.id, &c2.id);
    second.created_at = now() + Duration::seconds(3);
    consents.save(&second, None).await.unwrap();
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
    assert_eq!(edited.revision, 2, "a cap edit is a write too");
    assert_eq!(
        consents.save(&replaced, Some(1)).await.unwrap(),
        Conditional::Stale,
        "an approval read before the cap edit does not overwrite it"
    );
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
    assert_eq!(clients.update(&conf).await.unwrap(), Conditional::Written);
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

/// Two edits from one read: the second is refused instead of undoing the first (an owner's
/// rename must not clear an admin's `isVerified`). Every task reads, all meet at a barrier,
/// then all write; the losers read again and retry. Without the condition every first write
/// "succeeds" and all but the last edit are lost.
pub async fn concurrent_client_edits_are_never_lost(p: &Ports) {
    let (users, clients) = need!(p, users, clients);
    let (_, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    const TASKS: usize = 32;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..TASKS {
        let clients = p.node(i).clients.clone().expect("clients");
        let (id, barrier) = (c.id.clone(), barrier.clone());
        set.spawn(async move {
            let uri = buzzgate_domain::client::RedirectUri::parse(&format!(
                "https://edits.example/cb/{i}"
            ))
            .unwrap();
            let mut first = true;
            loop {
                let mut next = buzzgate_domain::client::Client::clone(
                    &clients.get(&id).await.unwrap().expect("the app"),
                );
                if std::mem::take(&mut first) {
                    barrier.wait().await;
                }
                next.redirect_uris.push(uri.clone());
                match clients.update(&next).await.unwrap() {
                    Conditional::Written => return,
                    Conditional::Stale => tokio::task::yield_now().await,
                    Conditional::Missing => panic!("the app vanished"),
                }
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let end = clients.get(&c.id).await.unwrap().unwrap();
    let edits = end
        .redirect_uris
        .iter()
        .filter(|u| u.to_string().starts_with("https://edits.example/"))
        .count();
    assert_eq!(edits, TASKS, "every edit survives: {:?}", end.redirect_uris);
    assert_eq!(end.revision, c.revision + TASKS as u64);
}

/// Concurrent consent writes from stale reads, as `concurrent_client_edits_are_never_lost`:
/// each task adds one scope bit; every bit survives. And a consent revoked between the read
/// and the write stays revoked: the write is `Stale`, not a resurrection with the old
/// creation time (which would let a code issued before the revocation redeem).
pub async fn concurrent_consent_edits_are_never_lost(p: &Ports) {
    let (users, clients, consents) = need!(p, users, clients, consents);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let mut base = consent(u.id, &c.id);
    base.scope = Scope::USER_READ;
    consents.save(&base, None).await.unwrap();
    const TASKS: u32 = 16;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS as usize));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..TASKS {
        let consents = p.node(i as usize).consents.clone().expect("consents");
        let (cid, barrier) = (c.id.clone(), barrier.clone());
        set.spawn(async move {
            let bit = Scope::from_bits(1 << (i + 1)).expect("a scope flag");
            let mut first = true;
            loop {
                let read = consents.get(u.id, &cid).await.unwrap().expect("consent");
                if std::mem::take(&mut first) {
                    barrier.wait().await;
                }
                let mut next = read.clone();
                next.scope = read.scope.union(bit);
                match consents.save(&next, Some(read.revision)).await.unwrap() {
                    Conditional::Written => return,
                    Conditional::Stale => tokio::task::yield_now().await,
                    Conditional::Missing => panic!("the app vanished"),
                }
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let end = consents.get(u.id, &c.id).await.unwrap().unwrap();
    assert_eq!(
        end.scope.bits(),
        (1 << (TASKS + 1)) - 1,
        "every bit survives"
    );
    assert_eq!(end.revision, u64::from(TASKS));

    // Revoked between the read and the write: stays revoked.
    assert!(consents.delete(u.id, &c.id).await.unwrap());
    let mut late = end.clone();
    late.updated_at = now() + Duration::seconds(30);
    assert_eq!(
        consents.save(&late, Some(end.revision)).await.unwrap(),
        Conditional::Stale
    );
    assert_eq!(consents.get(u.id, &c.id).await.unwrap(), None);
    // Re-approving from a fresh read records a new consent, created now.
    late.created_at = late.updated_at;
    assert_eq!(
        consents.save(&late, None).await.unwrap(),
        Conditional::Written
    );
    let again = consents.get(u.id, &c.id).await.unwrap().unwrap();
    assert_eq!((again.created_at, again.revision), (late.updated_at, 0));
    // An app deleted meanwhile: nothing is stored.
    clients.delete(&c.id).await.unwrap();
    assert_eq!(
        consents.save(&late, None).await.unwrap(),
        Conditional::Missing
    );
    assert_eq!(
        consents.save(&late, Some(0)).await.unwrap(),
        Conditional::Missing
    );
}

/// `search`: case-insensitive name substring or exact id, newest first, wildcards literal.
pub async fn clients_search(p: &Ports) {
    let (users, clients) = need!(p, users, clients);
    let owner = fx::user(users.as_ref()).await;
    let tag = buzzgate_domain::ids::new_uuid(&buzzgate_domain::ports::OsRandom).simple();
    let mut first = fx::client(owner.id);
    first.name = format!("Srch{tag} 50%_off");
    clients.insert(&first).await.unwrap();
    let mut second = fx::client(owner.id);
    second.name = format!("srch{tag} plain");
    second.created_at = first.created_at + Duration::seconds(1);
    clients.insert(&second).await.unwrap();
    let ids = |found: Vec<buzzgate_domain::client::Client>| {
        found.into_iter().map(|c| c.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(clients.search(&format!("SRCH{tag}"), 10).await.unwrap()),
        vec![second.id.clone(), first.id.clone()],
        "case-insensitive, newest first"
    );
    assert_eq!(
        ids(clients.search(&format!("{tag} 50%_off"), 10).await.unwrap()),
        vec![first.id.clone()]
    );
    assert!(
        clients
            .search(&format!("{tag}%"), 10)
            .await
            .unwrap()
            .is_empty(),
        "% is a plain character"
    );
    assert_eq!(
        ids(clients.search(first.id.as_str(), 10).await.unwrap()),
        vec![first.id.clone()]
    );
    assert_eq!(
        clients
            .search(&format!("srch{tag}"), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(!clients.search("", 5).await.unwrap().is_empty());
}
