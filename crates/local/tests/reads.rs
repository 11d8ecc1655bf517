//! The read caches (`CachedClients`, `CachedConsents`, `CachedUsers`): a faithful store for the
//! node that writes through them (the whole contract suite runs over them), and a bound on
//! what another node's change may take to be seen here.

use std::sync::Arc;
use std::time::Duration;

use buzzgate_domain::buzz::BuzzLimit;
use buzzgate_domain::memory::MemoryStore;
use buzzgate_domain::ports::{ClientStore, Conditional, ConsentStore, SystemClock, UserStore};
use buzzgate_local::{CachedClients, CachedConsents, CachedUsers};
use buzzgate_testkit::{self as fx, Ports, contract_suite, now};

const TTL: Duration = Duration::from_millis(200);

async fn ports() -> Option<Ports> {
    let store = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
    Some(Ports {
        clients: Some(Arc::new(CachedClients::new(store.clone(), TTL))),
        consents: Some(Arc::new(CachedConsents::new(store.clone(), TTL))),
        users: Some(Arc::new(CachedUsers::new(store.clone(), TTL))),
        tokens: Some(store.clone()),
        codes: Some(store.clone()),
        devices: Some(store.clone()),
        sessions: Some(store.clone()),
        buzz: Some(store.clone()),
        audit: Some(store),
        ..Ports::default()
    })
}

contract_suite!(cached, ports());

/// A store reached directly (another node) and through a cache (this node).
fn two_views() -> (Arc<MemoryStore>, CachedClients, CachedConsents) {
    let store = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
    let clients = CachedClients::new(store.clone(), TTL);
    let consents = CachedConsents::new(store.clone(), TTL);
    (store, clients, consents)
}

#[tokio::test]
async fn another_node_s_change_is_seen_within_the_ttl() {
    let (store, clients, consents) = two_views();
    let user = fx::user(store.as_ref()).await;
    let client = fx::client(user.id);
    store.insert(&client).await.unwrap();
    assert!(clients.get(&client.id).await.unwrap().is_some());
    // Another node deletes the app: this node may serve its copy, but not beyond the TTL.
    ClientStore::delete(store.as_ref(), &client.id)
        .await
        .unwrap();
    assert!(
        clients.get(&client.id).await.unwrap().is_some(),
        "served from memory"
    );
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
    assert!(
        clients.get(&client.id).await.unwrap().is_none(),
        "seen after the TTL"
    );

    let app = fx::client(user.id);
    store.insert(&app).await.unwrap();
    let consent = fx::consent(user.id, &app.id);
    assert_eq!(
        store.save(&consent, None).await.unwrap(),
        Conditional::Written
    );
    assert!(consents.get(user.id, &app.id).await.unwrap().is_some());
    ConsentStore::delete(store.as_ref(), user.id, &app.id)
        .await
        .unwrap();
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
    assert!(
        consents.get(user.id, &app.id).await.unwrap().is_none(),
        "a revoked consent is gone after the TTL"
    );
}

#[tokio::test]
async fn this_node_s_writes_are_seen_at_once() {
    let (store, clients, consents) = two_views();
    let user = fx::user(store.as_ref()).await;
    let client = fx::client(user.id);
    clients.insert(&client).await.unwrap();
    let mut read = Arc::unwrap_or_clone(clients.get(&client.id).await.unwrap().unwrap());
    read.name = "Renamed".into();
    assert_eq!(clients.update(&read).await.unwrap(), Conditional::Written);
    assert_eq!(
        clients.get(&client.id).await.unwrap().unwrap().name,
        "Renamed"
    );
    assert!(clients.delete(&client.id).await.unwrap().is_some());
    assert!(clients.get(&client.id).await.unwrap().is_none());

    let app = fx::client(user.id);
    clients.insert(&app).await.unwrap();
    let consent = fx::consent(user.id, &app.id);
    consents.save(&consent, None).await.unwrap();
    assert!(consents.get(user.id, &app.id).await.unwrap().is_some());
    let limit = BuzzLimit::per_period(10, 1).unwrap();
    consents
        .set_buzz_limit(user.id, &app.id, &limit, now())
        .await
        .unwrap();
    assert_eq!(
        consents
            .get(user.id, &app.id)
            .await
            .unwrap()
            .unwrap()
            .buzz_limit,
        limit
    );
    assert!(consents.delete(user.id, &app.id).await.unwrap());
    assert!(consents.get(user.id, &app.id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_stale_compare_and_set_drops_the_copy_so_the_retry_reads_afresh() {
    let (store, clients, _) = two_views();
    let user = fx::user(store.as_ref()).await;
    let client = fx::client(user.id);
    store.insert(&client).await.unwrap();
    let mine = clients.get(&client.id).await.unwrap().unwrap();
    // Another node edits the app after this node cached it.
    let mut theirs = Arc::unwrap_or_clone(
        ClientStore::get(store.as_ref(), &client.id)
            .await
            .unwrap()
            .unwrap(),
    );
    theirs.name = "Theirs".into();
    assert_eq!(store.update(&theirs).await.unwrap(), Conditional::Written);
    let mut edit = Arc::unwrap_or_clone(mine);
    edit.description = "mine".into();
    assert_eq!(clients.update(&edit).await.unwrap(), Conditional::Stale);
    let fresh = clients.get(&client.id).await.unwrap().unwrap();
    assert_eq!(fresh.name, "Theirs", "read again, not the stale copy");
    let mut edit = Arc::unwrap_or_clone(fresh);
    edit.description = "mine".into();
    assert_eq!(clients.update(&edit).await.unwrap(), Conditional::Written);
}

#[tokio::test]
async fn users_are_served_from_memory_and_unknown_ids_are_not_kept() {
    let store = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
    let users = CachedUsers::new(store.clone(), TTL);
    let u = fx::user(&users).await;
    assert_eq!(users.get(u.id).await.unwrap().unwrap().id, u.id);
    let nobody = buzzgate_domain::ids::UserId(987_654);
    assert!(users.get(nobody).await.unwrap().is_none());
    assert!(format!("{users:?}").contains("entries"));
}

#[tokio::test]
async fn a_consent_s_absence_is_remembered_for_peek_only() {
    let (store, clients, consents) = two_views();
    let user = fx::user(store.as_ref()).await;
    let app = fx::client(user.id);
    clients.insert(&app).await.unwrap();
    assert!(consents.peek(user.id, &app.id).await.unwrap().is_none());
    // Another node grants the app: a grant's check (`get`) sees it at once, since a
    // remembered absence is never its answer ...
    let consent = fx::consent(user.id, &app.id);
    store.save(&consent, None).await.unwrap();
    assert!(consents.get(user.id, &app.id).await.unwrap().is_some());
    ConsentStore::delete(store.as_ref(), user.id, &app.id)
        .await
        .unwrap();
    // ... while `peek` may answer from memory, absence included, within the TTL.
    let other = fx::client(user.id);
    clients.insert(&other).await.unwrap();
    assert!(consents.peek(user.id, &other.id).await.unwrap().is_none());
    store
        .save(&fx::consent(user.id, &other.id), None)
        .await
        .unwrap();
    assert!(
        consents.peek(user.id, &other.id).await.unwrap().is_none(),
        "the absence is served from memory"
    );
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
    assert!(
        consents.peek(user.id, &other.id).await.unwrap().is_some(),
        "seen after the TTL"
    );
    // A write through this node drops a remembered absence at once.
    let third = fx::client(user.id);
    clients.insert(&third).await.unwrap();
    assert!(consents.peek(user.id, &third.id).await.unwrap().is_none());
    consents
        .save(&fx::consent(user.id, &third.id), None)
        .await
        .unwrap();
    assert!(consents.peek(user.id, &third.id).await.unwrap().is_some());
}
