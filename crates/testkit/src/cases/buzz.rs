//! Contract cases: Buzz: credits, spends, refunds and caps.

#[allow(unused_imports)]
use super::prelude::*;

/// The Buzz store, and a user of a client.
type BuzzFixture = (
    Arc<dyn buzzgate_domain::ports::BuzzStore>,
    buzzgate_domain::ids::UserId,
    buzzgate_domain::ids::ClientId,
);

async fn buzz_setup(p: &Ports) -> Option<BuzzFixture> {
    let buzz = p.buzz.clone()?;
    let (users, clients) = (p.users.clone()?, p.clients.clone()?);
    let (u, c) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    Some((buzz, u.id, c.id))
}

/// [`buzz_setup`], the user holding `yellow` yellow Buzz.
async fn funded(p: &Ports, yellow: u64) -> Option<BuzzFixture> {
    let (buzz, u, c) = buzz_setup(p).await?;
    buzz.credit(u, &Currency::yellow(), yellow, now())
        .await
        .unwrap();
    Some((buzz, u, c))
}

/// Spends `amount` (key "refunded") and refunds it.
async fn spend_and_refund(
    buzz: &dyn buzzgate_domain::ports::BuzzStore,
    u: buzzgate_domain::ids::UserId,
    c: &buzzgate_domain::ids::ClientId,
    amount: u64,
) {
    let refunded = fx::spend(u, c, amount, "refunded", BuzzLimit::default());
    buzz.spend(&refunded).await.unwrap();
    let rs = fx::resource_server();
    buzz.refund(refunded.id, &rs, now()).await.unwrap();
}

/// A spend (under no cap) made `ago` before now.
fn spent_ago(
    u: buzzgate_domain::ids::UserId,
    c: &buzzgate_domain::ids::ClientId,
    amount: u64,
    key: &str,
    ago: Duration,
) -> buzzgate_domain::buzz::SpendRequest {
    let mut spend = fx::spend(u, c, amount, key, BuzzLimit::default());
    spend.now = now() - ago;
    spend
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
    let first = spent_ago(u, &c, 1, "h1", Duration::seconds(5));
    for spend in [first, fx::spend(u, &c, 2, "h2", BuzzLimit::default())] {
        buzz.spend(&spend).await.unwrap();
    }
    let history = buzz.history(u, 10).await.unwrap();
    assert_eq!(
        history.iter().map(|e| e.amount).collect::<Vec<_>>(),
        vec![2, 1],
        "newest first"
    );
    assert_eq!(buzz.history(u, 1).await.unwrap().len(), 1);
}

pub async fn buzz_spend_replay_and_conflict(p: &Ports) {
    let Some((buzz, u, c)) = funded(p, 50).await else {
        return;
    };
    let req = fx::spend(u, &c, 30, "k", BuzzLimit::default());
    let SpendOutcome::Spent {
        entry, balance: 20, ..
    } = buzz.spend(&req).await.unwrap()
    else {
        panic!("spent")
    };
    assert_eq!(entry.id, req.id);
    let again = fx::spend(u, &c, 30, "k", BuzzLimit::default());
    assert_eq!(
        buzz.spend(&again).await.unwrap(),
        SpendOutcome::Replayed {
            entry: entry.clone(),
            balance: 20,
            report: vec![],
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
    let Some((buzz, u, c)) = funded(p, 10).await else {
        return;
    };
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
    spend_and_refund(buzz.as_ref(), u, &c, 20).await;
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
    let Some((buzz, u, c)) = funded(p, 100).await else {
        return;
    };
    let first = fx::spend(u, &c, 10, "shared-key", BuzzLimit::default());
    assert!(matches!(
        buzz.spend(&first).await.unwrap(),
        SpendOutcome::Spent { balance: 90, .. }
    ));
    let mut other = fx::spend(u, &c, 10, "shared-key", BuzzLimit::default());
    other.resource_server = buzzgate_domain::ids::ClientId::parse("another-rs").unwrap();
    let SpendOutcome::Spent {
        entry, balance: 80, ..
    } = buzz.spend(&other).await.unwrap()
    else {
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
    let Some((buzz, u, c)) = funded(p, 1000).await else {
        return;
    };
    let old = spent_ago(u, &c, 100, "old", Duration::days(2));
    for spend in [old, fx::spend(u, &c, 10, "new", BuzzLimit::default())] {
        buzz.spend(&spend).await.unwrap();
    }
    spend_and_refund(buzz.as_ref(), u, &c, 1).await;
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
    let Some((buzz, u, c)) = funded(p, 1_000_000).await else {
        return;
    };
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
    let Some((buzz, u, c)) = funded(p, 100).await else {
        return;
    };
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

/// `spend_audited`: a store that is also the audit log writes the event of a charge in its
/// commit, and none for a replay or a refusal; one that is not writes none and says so.
pub async fn spend_audited_records_only_charges(p: &Ports) {
    let Some((buzz, u, c)) = funded(p, 10).await else {
        return;
    };
    let Some(audit) = p.audit.clone() else {
        return;
    };
    let event = |key: &str| {
        AuditEvent::new(AuditKind::BuzzSpent, now())
            .user(u)
            .meta("spend", key)
    };
    let first = fx::spend(u, &c, 7, "a1", BuzzLimit::default());
    let (out, recorded) = buzz.spend_audited(&first, &event("a1")).await.unwrap();
    assert!(matches!(out, SpendOutcome::Spent { .. }), "{out:?}");
    let (out, again) = buzz.spend_audited(&first, &event("replay")).await.unwrap();
    assert!(matches!(out, SpendOutcome::Replayed { .. }), "{out:?}");
    assert_eq!(again, recorded);
    let over = fx::spend(u, &c, 7, "a2", BuzzLimit::default());
    let (out, _) = buzz.spend_audited(&over, &event("refused")).await.unwrap();
    assert_eq!(out, SpendOutcome::Rejected(Error::InsufficientFunds));
    let written: Vec<String> = audit
        .query(&AuditQuery {
            kind: Some(AuditKind::BuzzSpent),
            user_id: Some(u),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|e| {
            e.metadata
                .get("spend")
                .map(ToString::to_string)
                .unwrap_or_default()
        })
        .collect();
    let expected: Vec<String> = if recorded { vec!["a1".into()] } else { vec![] };
    assert_eq!(written, expected);
    assert_eq!(
        buzz.balances(u).await.unwrap(),
        vec![(Currency::yellow(), 3)]
    );
}

/// `req.report`: the windows' sums with the spend counted (what the receipt's limits show),
/// or nothing when the store leaves them to the caller; a replay reports them too.
pub async fn spend_reports_its_windows(p: &Ports) {
    let Some((buzz, u, c)) = funded(p, 100).await else {
        return;
    };
    let cap = BuzzLimit::per_period(50, 1).unwrap();
    let charge = |amount: u64, key: &str| {
        let mut req = fx::spend(u, &c, amount, key, cap.clone());
        req.report = status_windows(&cap, now());
        req
    };
    let report = |out: SpendOutcome| match out {
        SpendOutcome::Spent { report, .. } | SpendOutcome::Replayed { report, .. } => report,
        SpendOutcome::Rejected(e) => panic!("{e:?}"),
    };
    let first = report(buzz.spend(&charge(10, "r1")).await.unwrap());
    if first.is_empty() {
        return; // this store leaves the sums to the caller (window_spend)
    }
    assert_eq!(first, vec![10]);
    assert_eq!(
        report(buzz.spend(&charge(15, "r2")).await.unwrap()),
        vec![25]
    );
    assert_eq!(
        report(buzz.spend(&charge(10, "r1")).await.unwrap()),
        vec![25],
        "a replay charges nothing and reports the same windows"
    );
}
