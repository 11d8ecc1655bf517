//! Builders of valid domain values for the contract cases and adapters' own tests.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration as StdDuration, Instant};

use buzzgate_domain::Scope;
use buzzgate_domain::buzz::{
    BuzzLimit, Currency, IdempotencyKey, SpendPurpose, SpendRequest, SpendSubject,
};
use buzzgate_domain::client::{Client, ClientSecret};
use buzzgate_domain::error::StoreError;
use buzzgate_domain::grant::authorization_code::{
    self, AuthorizationCodeRecord, CodeGrant, CodeRedemption,
};
use buzzgate_domain::grant::device_code::{self, DeviceAuthorization};
use buzzgate_domain::grant::refresh_token::RefreshRotation;
use buzzgate_domain::ids::{ClientId, FamilyId, SpendId, UserId};
use buzzgate_domain::pkce::{CodeChallenge, CodeVerifier};
use buzzgate_domain::ports::{ClientStore, InsertOutcome, OsRandom, TokenStore, UserStore};
use buzzgate_domain::token::{NewToken, PlainToken, TokenKind, TokenMinter, TokenRecord};
use buzzgate_domain::user::{NewUser, User, Username};
use time::{Duration, OffsetDateTime};

static SEQ: AtomicU64 = AtomicU64::new(1);

fn seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// The wall clock truncated to whole milliseconds, so every store round-trips it exactly.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t - Duration::nanoseconds(i64::from(t.nanosecond() % 1_000_000))
}

/// A fresh user in the store.
pub async fn user(users: &dyn UserStore) -> User {
    let new = NewUser {
        username: Username::parse(&format!(
            "user{}x{}",
            seq(),
            buzzgate_domain::ids::new_uuid(&OsRandom).simple()
        ))
        .expect("valid username"),
        email: Some("someone@example.com".into()),
        email_verified: true,
        password: None,
        roles: vec![],
    };
    users
        .create(&new, Some("$argon2id$fake".into()), now())
        .await
        .expect("create user")
}

/// A confidential client with every grant, owned by `owner`, not yet stored.
pub fn client(owner: UserId) -> Client {
    let reg = buzzgate_domain::memory::sample_registration(&format!("Contract app {}", seq()));
    let secret = ClientSecret::generate(&OsRandom);
    Client::new(
        ClientId::generate(&OsRandom),
        owner,
        reg.validate(&buzzgate_domain::Catalogue::civitai())
            .expect("valid registration"),
        Some(&secret),
        now(),
    )
}

/// A user and a stored client of theirs.
pub async fn user_and_client(users: &dyn UserStore, clients: &dyn ClientStore) -> (User, Client) {
    let u = user(users).await;
    let c = client(u.id);
    clients.insert(&c).await.expect("insert client");
    (u, c)
}

/// A token row of `kind` for (user, client), in `family`.
pub fn token(
    kind: TokenKind,
    user: UserId,
    client: Option<&ClientId>,
    family: Option<FamilyId>,
) -> (PlainToken, TokenRecord) {
    let new = new_token(kind, user, client, Scope::AI_SERVICES, family, Some(now()));
    TokenMinter::default().mint(new, now(), &OsRandom)
}

fn new_token(
    kind: TokenKind,
    user: UserId,
    client: Option<&ClientId>,
    scope: Scope,
    family: Option<FamilyId>,
    auth_time: Option<OffsetDateTime>,
) -> NewToken {
    NewToken {
        kind,
        client_id: client.cloned(),
        user_id: user,
        scope,
        family_id: family,
        auth_time,
        oidc: Default::default(),
        // Non-empty, so every store's round trip of a token covers the audience column.
        audience: vec!["https://api.example.com/mcp".into()],
    }
}

pub fn family() -> FamilyId {
    FamilyId::generate(&OsRandom)
}

/// A rotation of a refresh token of `client` at `now` with `grace`.
pub fn rotation(client: &ClientId, at: OffsetDateTime, grace: Duration) -> RefreshRotation {
    let blank = |kind| new_token(kind, UserId(0), None, Scope::NONE, None, None);
    let minter = TokenMinter::default();
    RefreshRotation {
        client_id: client.clone(),
        ceiling: Scope::FULL,
        requested: None,
        requested_resources: Vec::new(),
        always: Scope::USER_READ,
        now: at,
        grace,
        new_access: minter.mint(blank(TokenKind::Access), at, &OsRandom).1,
        new_refresh: minter.mint(blank(TokenKind::Refresh), at, &OsRandom).1,
    }
}

/// An authorization code record for (user, client), valid for 600 s from now.
pub fn code(user: UserId, client: &ClientId) -> AuthorizationCodeRecord {
    let verifier = CodeVerifier::generate(&OsRandom);
    let grant = CodeGrant {
        client_id: client.clone(),
        user_id: user,
        redirect_uri: "https://app.example.com/cb".into(),
        scope: Scope::AI_SERVICES,
        code_challenge: CodeChallenge::from_verifier(&verifier),
        nonce: Some("n".into()),
        auth_time: now(),
        oidc: Default::default(),
        resources: vec![
            "https://api.example.com/mcp".into(),
            "urn:example:second".into(),
        ],
    };
    authorization_code::issue(grant, now(), Duration::seconds(600), &OsRandom).1
}

/// A pending device authorization of `client`, valid for 900 s from now.
pub fn device(client: &Client) -> DeviceAuthorization {
    device_code::start(
        client,
        None,
        Scope::USER_READ,
        now(),
        Duration::seconds(900),
        &OsRandom,
    )
    .expect("client has the device grant")
    .record
}

/// The resource server the fixtures' spends come from.
pub fn resource_server() -> ClientId {
    ClientId::parse("contract-rs").expect("valid id")
}

/// A spend of `amount` by the OAuth app `client` for `user`, under `budgets`, sent by
/// [`resource_server`].
pub fn spend(
    user: UserId,
    client: &ClientId,
    amount: u64,
    key: &str,
    budgets: BuzzLimit,
) -> SpendRequest {
    SpendRequest::new(
        SpendId::generate(&OsRandom),
        user,
        SpendSubject::OAuth(client.clone()),
        resource_server(),
        SpendPurpose::AiServices,
        amount,
        Currency::yellow(),
        IdempotencyKey::parse(key).expect("valid key"),
        None,
        budgets,
        now(),
    )
    .expect("valid spend")
}

/// A remembered AI-services consent of `user` for `client` with the default cap, not yet
/// stored.
pub fn consent(
    user: UserId,
    client: &buzzgate_domain::ids::ClientId,
) -> buzzgate_domain::consent::Consent {
    buzzgate_domain::consent::Consent {
        user_id: user,
        client_id: client.clone(),
        scope: buzzgate_domain::Scope::AI_SERVICES,
        remembered: true,
        buzz_limit: buzzgate_domain::buzz::BuzzLimit::consent_default(),
        // Non-empty, so every store's round trip of a consent covers the column.
        resources: vec!["https://api.example.com/mcp".into()],
        created_at: now(),
        updated_at: now(),
        revision: 0,
    }
}

/// 16 tasks at once, alternating between two nodes, each creating a user named
/// `names[i % 3]` (spellings of one name); how many were created. Every refusal must be a
/// `Conflict`.
pub async fn race_usernames(nodes: [Arc<dyn UserStore>; 2], names: [String; 3]) -> usize {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let node = nodes[i % 2].clone();
            let name = names[i % 3].clone();
            tokio::spawn(async move {
                let new = NewUser {
                    username: Username::parse(&name).unwrap(),
                    email: None,
                    email_verified: false,
                    password: None,
                    roles: vec![],
                };
                node.create(&new, None, now()).await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => created += 1,
            Err(e) => assert!(matches!(e, StoreError::Conflict(_)), "{e:?}"),
        }
    }
    created
}

/// Awaits the tasks of a redemption race, each with the family it offered: the families of
/// the winners, and the families the losers were told. A race is never `NotFound`.
pub async fn redemption_race(
    tasks: Vec<tokio::task::JoinHandle<(FamilyId, CodeRedemption)>>,
) -> (Vec<FamilyId>, HashSet<Option<FamilyId>>) {
    let mut winners = Vec::new();
    let mut told = HashSet::new();
    for t in tasks {
        match t.await.unwrap() {
            (fam, CodeRedemption::Redeemed(_)) => winners.push(fam),
            (_, CodeRedemption::AlreadyRedeemed { family }) => {
                told.insert(family);
            }
            (_, CodeRedemption::NotFound) => panic!("the code exists"),
        }
    }
    (winners, told)
}

/// `n` access tokens of `user` at `client` that expired at `expired_at`, not yet stored.
pub fn expired_tokens(
    user: UserId,
    client: &ClientId,
    n: usize,
    expired_at: OffsetDateTime,
) -> Vec<TokenRecord> {
    let token = |_| {
        let (_, mut t) = token(TokenKind::Access, user, Some(client), None);
        t.expires_at = Some(expired_at);
        t
    };
    (0..n).map(token).collect()
}

/// A store that cannot reach its backend answers `Unavailable`, and soon (within `within`
/// of `started`), instead of hanging or panicking.
pub fn assert_unavailable_soon(err: &StoreError, started: Instant, within: StdDuration) {
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < within, "{:?}", started.elapsed());
}

/// After a sweep: the `live` token is still there, and `late`, a token of a family revoked
/// recently, is still refused (its tombstone survived).
pub async fn assert_sweep_kept(tokens: &dyn TokenStore, live: &TokenRecord, late: TokenRecord) {
    assert!(tokens.find(&live.hash).await.unwrap().is_some());
    assert_eq!(
        tokens.insert(&[late]).await.unwrap(),
        InsertOutcome::FamilyRevoked,
        "a recent tombstone survives the sweep"
    );
}

/// Sweeps in rounds: each `(batch, removed)` calls `sweep(batch)` and expects `removed`.
pub async fn assert_sweeps<F, Fut>(mut sweep: F, rounds: &[(u32, u32)])
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = buzzgate_domain::ports::StoreResult<u32>>,
{
    for (i, &(batch, removed)) in rounds.iter().enumerate() {
        assert_eq!(sweep(batch).await.unwrap(), removed, "round {i}");
    }
}
