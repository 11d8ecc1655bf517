//! Client ID metadata documents (SPEC 14, issue 13): a `client_id` that is an https URL is
//! the document there; the app is stored on first sight, kept up to date at authorization,
//! and refused with the reason when the document lies or cannot be had.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::audit::AuditKind;
use crate::client::{AuthMethod, ClientAuth};
use crate::error::Error;
use crate::ids::ClientId;
use crate::pkce::CodeVerifier;
use crate::ports::{ClientMetadataDocuments, FetchError, SeededRandom};
use crate::service::Config;
use crate::service::authorize::AuthorizeOutcome;
use crate::service::documents::Freshness;

use super::{H, answer, code_grant, harness_with_deps, query, signed_in};

const URL: &str = "https://agent.example/oauth/client.json";
const CB: &str = "http://127.0.0.1:33418/callback";

/// Documents served from memory, counting fetches (a test double of the fetcher).
#[derive(Default)]
struct Documents {
    served: Mutex<HashMap<String, Result<Vec<u8>, FetchError>>>,
    fetches: AtomicUsize,
}

impl Documents {
    fn serve(&self, url: &str, body: serde_json::Value) {
        self.served
            .lock()
            .unwrap()
            .insert(url.into(), Ok(serde_json::to_vec(&body).unwrap()));
    }
    fn fail(&self, url: &str, e: FetchError) {
        self.served.lock().unwrap().insert(url.into(), Err(e));
    }
    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ClientMetadataDocuments for Documents {
    async fn fetch(&self, url: &str) -> Result<Arc<Vec<u8>>, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        match self.served.lock().unwrap().get(url) {
            Some(Ok(body)) => Ok(Arc::new(body.clone())),
            Some(Err(e)) => Err(e.clone()),
            None => Err(FetchError::Unreachable("it answered 404 Not Found".into())),
        }
    }
}

fn document(redirect: &str, name: &str) -> serde_json::Value {
    serde_json::json!({
        "client_id": URL,
        "client_name": name,
        "redirect_uris": [redirect],
        "scope": "UserRead BuzzRead",
    })
}

async fn harness_with_documents(docs: Option<Arc<Documents>>) -> H {
    harness_with_deps(Config::default(), |d| {
        d.documents = docs.map(|x| x as Arc<dyn ClientMetadataDocuments>);
    })
    .await
}

impl H {
    /// Ada authorizes the document client with `redirect`, approving.
    async fn authorize_document(&self, redirect: &str, v: &CodeVerifier) -> AuthorizeOutcome {
        let mut p = self.params("UserRead", v);
        p.client_id = Some(URL.into());
        p.redirect_uri = Some(redirect.into());
        self.gate
            .authorize()
            .decide(
                &p,
                &signed_in(self.user),
                &answer(true, true, None),
                Some("203.0.113.9"),
            )
            .await
            .unwrap()
    }

    fn document_auth(&self) -> ClientAuth {
        ClientAuth {
            client_id: ClientId::parse(URL).unwrap(),
            secret: None,
            method: AuthMethod::None,
        }
    }
}

fn rejection(outcome: AuthorizeOutcome) -> String {
    match outcome {
        AuthorizeOutcome::Reject(e @ Error::InvalidClient { .. }) => e.description().into_owned(),
        other => panic!("expected invalid_client, got {other:?}"),
    }
}

#[tokio::test]
async fn a_document_client_is_stored_on_first_sight_and_completes_the_flow() {
    let docs = Arc::new(Documents::default());
    docs.serve(URL, document(CB, "Agent"));
    let h = harness_with_documents(Some(docs.clone())).await;
    let v = CodeVerifier::generate(&SeededRandom::new(5));
    let code = match h.authorize_document(CB, &v).await {
        AuthorizeOutcome::Redirect { location } => {
            assert!(location.starts_with(CB), "{location}");
            query(&location, "code").unwrap()
        }
        other => panic!("{other:?}"),
    };
    let stored = h
        .gate
        .deps
        .clients
        .get(&ClientId::parse(URL).unwrap())
        .await
        .unwrap()
        .expect("stored on first sight");
    assert!(stored.is_unowned() && !stored.is_verified && !stored.is_confidential());
    assert!(stored.redirects_only_to_loopback());
    assert!(h.audit_kinds().contains(&AuditKind::ClientCreated));

    // The token endpoint uses the stored app: no new fetch.
    let before = docs.fetches();
    let mut req = h.token_req(code_grant(&code, Some(v.as_str()), CB));
    req.client = h.document_auth();
    let tokens = h.token(req).await.unwrap();
    assert_eq!(docs.fetches(), before);
    assert!(h.active(tokens.access_token.expose()).await);
}

#[tokio::test]
async fn an_edited_document_takes_effect_at_the_next_authorization() {
    let docs = Arc::new(Documents::default());
    docs.serve(URL, document(CB, "Agent"));
    let h = harness_with_documents(Some(docs.clone())).await;
    let v = CodeVerifier::generate(&SeededRandom::new(6));
    assert!(matches!(
        h.authorize_document(CB, &v).await,
        AuthorizeOutcome::Redirect { .. }
    ));
    let moved = "https://agent.example/cb";
    docs.serve(URL, document(moved, "Agent 2"));
    // The old redirect URI is no longer the app's; the new one is.
    let old = h.authorize_document(CB, &v).await;
    assert!(
        matches!(old, AuthorizeOutcome::Reject(Error::InvalidRequest(_))),
        "{old:?}"
    );
    assert!(matches!(
        h.authorize_document(moved, &v).await,
        AuthorizeOutcome::Redirect { .. }
    ));
    let stored = h
        .gate
        .deps
        .clients
        .get(&ClientId::parse(URL).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "Agent 2");
    assert!(stored.revision >= 1);
}

#[tokio::test]
async fn a_lying_document_is_refused_and_nothing_is_stored() {
    let docs = Arc::new(Documents::default());
    let mut lie = document(CB, "Agent");
    lie["client_id"] = "https://other.example/client.json".into();
    docs.serve(URL, lie);
    let h = harness_with_documents(Some(docs)).await;
    let v = CodeVerifier::generate(&SeededRandom::new(7));
    let why = rejection(h.authorize_document(CB, &v).await);
    assert!(why.contains("client_id is not its own URL"), "{why}");
    let id = ClientId::parse(URL).unwrap();
    assert!(h.gate.deps.clients.get(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_document_that_cannot_be_had_is_refused_with_the_reason() {
    let docs = Arc::new(Documents::default());
    docs.fail(
        URL,
        FetchError::Refused("the host resolves to a non-public address (10.0.0.1)".into()),
    );
    let h = harness_with_documents(Some(docs.clone())).await;
    let v = CodeVerifier::generate(&SeededRandom::new(8));
    let why = rejection(h.authorize_document(CB, &v).await);
    assert!(why.contains("non-public address"), "{why}");

    // Once stored, a document that disappears stops new authorizations, but not the token
    // endpoint's work for grants already made.
    docs.serve(URL, document(CB, "Agent"));
    let code = match h.authorize_document(CB, &v).await {
        AuthorizeOutcome::Redirect { location } => query(&location, "code").unwrap(),
        other => panic!("{other:?}"),
    };
    docs.fail(URL, FetchError::Unreachable("it answered 500".into()));
    let why = rejection(h.authorize_document(CB, &v).await);
    assert!(why.contains("500"), "{why}");
    let mut req = h.token_req(code_grant(&code, Some(v.as_str()), CB));
    req.client = h.document_auth();
    assert!(h.token(req).await.is_ok());
}

#[tokio::test]
async fn without_the_fetcher_a_document_url_is_an_unknown_client() {
    let h = harness_with_documents(None).await;
    let v = CodeVerifier::generate(&SeededRandom::new(9));
    let why = rejection(h.authorize_document(CB, &v).await);
    assert!(why.contains("Unknown client_id"), "{why}");
}

#[tokio::test]
async fn stored_freshness_fetches_only_an_app_never_seen() {
    let docs = Arc::new(Documents::default());
    docs.serve(URL, document(CB, "Agent"));
    let h = harness_with_documents(Some(docs.clone())).await;
    let id = ClientId::parse(URL).unwrap();
    let deps = &h.gate.deps;
    assert!(
        deps.find_client(&id, None, Freshness::Stored)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(docs.fetches(), 1);
    deps.find_client(&id, None, Freshness::Stored)
        .await
        .unwrap();
    assert_eq!(docs.fetches(), 1);
    deps.find_client(&id, None, Freshness::Current)
        .await
        .unwrap();
    assert_eq!(docs.fetches(), 2);
    // An ordinary client ID never reaches the fetcher.
    deps.find_client(&h.app, None, Freshness::Current)
        .await
        .unwrap();
    assert_eq!(docs.fetches(), 2);
}
