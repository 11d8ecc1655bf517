//! The services when a write loses a race: another writer changes the record between the
//! service's read and its conditional write (`Conditional::Stale`). The service reads again
//! and re-applies its change, so neither edit is lost (docs/domain.md, "Concurrent edits").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::tests::{bare_user, signed_in};
use super::{Buzzgate, Caller, Config};
use crate::client::{Client, ClientRegistration, ClientUpdate, Origin};
use crate::error::Error;
use crate::ids::{ClientId, UserId};
use crate::memory::MemoryStore;
use crate::ports::*;
use crate::token::TokenHash;

/// A client store that lets `meddle` write the client once, just before the service's first
/// conditional write: the interleaving a concurrent admin (or owner) produces.
struct Interleaved {
    inner: MemoryStore,
    done: AtomicBool,
    meddle: fn(&mut Client),
}

#[async_trait]
impl ClientStore for Interleaved {
    async fn insert(&self, client: &Client) -> StoreResult<()> {
        ClientStore::insert(&self.inner, client).await
    }
    async fn get(&self, id: &ClientId) -> StoreResult<Option<Arc<Client>>> {
        ClientStore::get(&self.inner, id).await
    }
    async fn list_by_owner(&self, owner: UserId) -> StoreResult<Vec<ClientSummary>> {
        self.inner.list_by_owner(owner).await
    }
    async fn search(&self, text: &str, limit: usize) -> StoreResult<Vec<Client>> {
        self.inner.search(text, limit).await
    }
    async fn update(&self, client: &Client) -> StoreResult<Conditional> {
        if !self.done.swap(true, Ordering::SeqCst) {
            let mut other = Arc::unwrap_or_clone(
                ClientStore::get(&self.inner, &client.id)
                    .await?
                    .expect("the app"),
            );
            (self.meddle)(&mut other);
            assert_eq!(self.inner.update(&other).await?, Conditional::Written);
        }
        self.inner.update(client).await
    }
    async fn delete(&self, id: &ClientId) -> StoreResult<Option<Vec<TokenHash>>> {
        ClientStore::delete(&self.inner, id).await
    }
    async fn origin_registered(&self, origin: &Origin) -> StoreResult<bool> {
        self.inner.origin_registered(origin).await
    }
}

async fn app(meddle: fn(&mut Client)) -> (Buzzgate, UserId, ClientId) {
    let store = MemoryStore::new(Arc::new(ManualClock::at_epoch()));
    let mut deps = store.deps(Arc::new(SeededRandom::new(5)), Config::default());
    deps.clients = Arc::new(Interleaved {
        inner: store.clone(),
        done: AtomicBool::new(true),
        meddle,
    });
    let gate = Buzzgate::new(deps);
    let owner = gate
        .sessions()
        .create_user(bare_user("owner", Some("correct horse battery")))
        .await
        .unwrap()
        .id;
    let reg = ClientRegistration {
        name: "App".into(),
        redirect_uris: vec!["https://app.example.com/cb".into()],
        ..Default::default()
    };
    let id = gate
        .clients()
        .create(&signed_in(owner), reg)
        .await
        .unwrap()
        .client
        .id;
    // Arm the interleaving only now, for the edit under test.
    let mut deps = store.deps(Arc::new(SeededRandom::new(6)), Config::default());
    deps.clients = Arc::new(Interleaved {
        inner: store,
        done: AtomicBool::new(false),
        meddle,
    });
    (Buzzgate::new(deps), owner, id)
}

#[tokio::test]
async fn an_owner_edit_does_not_undo_an_admin_verification_made_meanwhile() {
    let (gate, owner, id) = app(|c| c.is_verified = true).await;
    let update = ClientUpdate {
        name: Some("Renamed".into()),
        ..Default::default()
    };
    let saved = gate
        .clients()
        .update(&signed_in(owner), &id, update)
        .await
        .unwrap();
    assert_eq!((saved.name.as_str(), saved.is_verified), ("Renamed", true));
    let stored = gate.clients().get(&signed_in(owner), &id).await.unwrap();
    assert_eq!(stored, saved, "the answer is what is stored");
    assert_eq!(stored.revision, 2, "the admin's write, then the owner's");
}

#[tokio::test]
async fn an_admin_switch_does_not_undo_an_owner_rename_made_meanwhile() {
    let (gate, owner, id) = app(|c| c.name = "Owner's name".into()).await;
    let saved = gate
        .clients()
        .administer(&Caller::operator(), &id, Some(true), None, None)
        .await
        .unwrap();
    assert_eq!(
        (saved.name.as_str(), saved.is_verified),
        ("Owner's name", true)
    );
    let stored = gate.clients().get(&signed_in(owner), &id).await.unwrap();
    assert_eq!(stored, saved);
}

#[tokio::test]
async fn a_secret_rotation_keeps_an_edit_made_meanwhile() {
    let (gate, owner, id) = app(|c| c.description = "Edited".into()).await;
    let secret = gate
        .clients()
        .rotate_secret(&signed_in(owner), &id)
        .await
        .unwrap();
    let stored = gate.clients().get(&signed_in(owner), &id).await.unwrap();
    assert_eq!(stored.description, "Edited");
    assert_eq!(
        stored.secret_hash,
        Some(crate::client::SecretHash::of(secret.expose()))
    );
}

/// A store whose record keeps changing under every write: the service gives up after a
/// bounded number of attempts with a `conflict` (409), never loops forever or overwrites.
#[tokio::test]
async fn a_record_that_never_settles_is_a_conflict_after_bounded_attempts() {
    let (gate, owner, id) = app(|_| {}).await;
    let current = gate.clients().get(&signed_in(owner), &id).await.unwrap();
    let mut clients = MockClientStore::new();
    clients
        .expect_get()
        .returning(move |_| Ok(Some(Arc::new(current.clone()))));
    clients
        .expect_update()
        .times(super::CONDITIONAL_ATTEMPTS)
        .returning(|_| Ok(Conditional::Stale));
    let store = MemoryStore::new(Arc::new(ManualClock::at_epoch()));
    let mut deps = store.deps(Arc::new(SeededRandom::new(7)), Config::default());
    deps.clients = Arc::new(clients);
    let err = Buzzgate::new(deps)
        .clients()
        .administer(&Caller::operator(), &id, Some(true), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
}
