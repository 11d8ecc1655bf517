//! Micro-benchmarks of the domain's hot pure functions (issue 10, docs/benchmarks.md):
//! `cargo bench -p buzzgate-domain --bench hot`. What every token request pays before any I/O:
//! minting and hashing a token, parsing a scope, verifying PKCE, deciding a Buzz spend.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use time::OffsetDateTime;

use buzzgate_domain::Catalogue;
use buzzgate_domain::buzz::{
    BuzzLimit, Currency, IdempotencyKey, SpendPurpose, SpendRequest, SpendSubject,
};
use buzzgate_domain::ids::{ClientId, SpendId, UserId};
use buzzgate_domain::pkce::{CodeChallenge, CodeVerifier};
use buzzgate_domain::ports::SeededRandom;
use buzzgate_domain::token::{NewToken, TokenHash, TokenKind, TokenMinter};
use buzzgate_domain::{OidcScopes, Scope};

fn tokens(c: &mut Criterion) {
    let minter = TokenMinter::default();
    let random = SeededRandom::new(7);
    let now = OffsetDateTime::UNIX_EPOCH;
    c.bench_function("mint an access token (random, SHA-256, record)", |b| {
        b.iter(|| {
            let new = NewToken {
                kind: TokenKind::Access,
                client_id: None,
                user_id: UserId(1),
                scope: Scope::AI_SERVICES,
                family_id: None,
                auth_time: None,
                oidc: OidcScopes::NONE,
                audience: Vec::new(),
            };
            black_box(minter.mint(new, now, &random))
        })
    });
    let (plain, _) = minter.mint(
        NewToken {
            kind: TokenKind::Access,
            client_id: None,
            user_id: UserId(1),
            scope: Scope::AI_SERVICES,
            family_id: None,
            auth_time: None,
            oidc: OidcScopes::NONE,
            audience: Vec::new(),
        },
        now,
        &random,
    );
    c.bench_function("hash a presented token", |b| {
        b.iter(|| black_box(TokenHash::of_presented(black_box(plain.expose()))))
    });
}

fn scopes(c: &mut Criterion) {
    let catalogue = Catalogue::civitai();
    c.bench_function("parse scope `openid AIServices VaultRead`", |b| {
        b.iter(|| black_box(catalogue.parse_request(black_box("openid AIServices VaultRead"))))
    });
    c.bench_function("parse scope `114689`", |b| {
        b.iter(|| black_box(catalogue.parse(black_box("114689"))))
    });
}

fn pkce(c: &mut Criterion) {
    let verifier = CodeVerifier::generate(&SeededRandom::new(3));
    let challenge = CodeChallenge::from_verifier(&verifier);
    c.bench_function("verify PKCE S256", |b| {
        b.iter(|| black_box(challenge.verify(black_box(&verifier))))
    });
}

fn budgets(c: &mut Criterion) {
    let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(400);
    let limit = BuzzLimit::per_period(5_000, 1).expect("a valid limit");
    let req = SpendRequest::new(
        SpendId::generate(&SeededRandom::new(1)),
        UserId(1),
        SpendSubject::OAuth(ClientId::parse("app").expect("an id")),
        ClientId::parse("rs").expect("an id"),
        SpendPurpose::AiServices,
        10,
        Currency::yellow(),
        IdempotencyKey::parse("k-1").expect("a key"),
        None,
        limit,
        now,
    )
    .expect("a valid spend");
    c.bench_function("decide a capped spend", |b| {
        b.iter(|| {
            let windows = black_box(req.windows());
            black_box(req.decide(black_box(1_000), &vec![100; windows.len()]))
        })
    });
}

criterion_group!(hot, tokens, scopes, pkce, budgets);
criterion_main!(hot);
