//! Contract cases: The audit log.

#[allow(unused_imports)]
use super::prelude::*;

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
        client_id: Some(client.clone()),
        since: Some(t0 + Duration::seconds(3)),
        ..Default::default()
    };
    assert_eq!(audit.query(&since).await.unwrap().len(), 2);
    // A time range is half-open: [since, until).
    let range = AuditQuery {
        client_id: Some(client.clone()),
        since: Some(t0 + Duration::seconds(1)),
        until: Some(t0 + Duration::seconds(3)),
        ..Default::default()
    };
    let ids = |events: Vec<AuditEvent>| {
        events
            .iter()
            .map(|e| e.metadata["i"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(audit.query(&range).await.unwrap()), vec!["2", "1"]);
    // Pages: offset skips the newest matches; the pages together are the whole list.
    let page = |offset| AuditQuery {
        client_id: Some(client.clone()),
        limit: 2,
        offset,
        ..Default::default()
    };
    assert_eq!(ids(audit.query(&page(0)).await.unwrap()), vec!["4", "3"]);
    assert_eq!(ids(audit.query(&page(2)).await.unwrap()), vec!["2", "1"]);
    assert_eq!(ids(audit.query(&page(4)).await.unwrap()), vec!["0"]);
    assert!(audit.query(&page(6)).await.unwrap().is_empty());
}

/// `insert_audited`: a store that keeps the audit log writes the event of the outcome in the
/// same commit (issued for a live family, revoked for a tombstoned one); a store that does
/// not (`false`) writes the tokens only.
pub async fn insert_audited_records_the_outcome(p: &Ports) {
    let (tokens, audit, users, clients) = need!(p, tokens, audit, users, clients);
    let (user, app) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let client = app.id;
    let events = |tag: &str| buzzgate_domain::ports::OutcomeEvents {
        inserted: AuditEvent::new(AuditKind::TokenIssued, now())
            .client(&client)
            .meta("case", tag),
        family_revoked: AuditEvent::new(AuditKind::TokenRevoked, now())
            .client(&client)
            .meta("case", tag),
    };
    let fam = buzzgate_domain::ids::FamilyId::generate(&buzzgate_domain::ports::OsRandom);
    let (_, live) = fx::token(TokenKind::Refresh, user.id, Some(&client), Some(fam));
    let (outcome, recorded) = tokens
        .insert_audited(std::slice::from_ref(&live), &events("live"))
        .await
        .unwrap();
    assert_eq!(outcome, InsertOutcome::Inserted);
    assert!(tokens.find(&live.hash).await.unwrap().is_some());
    tokens.revoke_family(fam, now()).await.unwrap();
    let (_, late) = fx::token(TokenKind::Access, user.id, Some(&client), Some(fam));
    let (outcome, _) = tokens
        .insert_audited(std::slice::from_ref(&late), &events("late"))
        .await
        .unwrap();
    assert_eq!(outcome, InsertOutcome::FamilyRevoked);
    assert!(tokens.find(&late.hash).await.unwrap().is_none());
    if !recorded {
        return;
    }
    let written = audit
        .query(&AuditQuery {
            client_id: Some(client.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let seen: Vec<(AuditKind, String)> = written
        .iter()
        .map(|e| (e.kind, e.metadata["case"].clone()))
        .collect();
    assert!(
        seen.contains(&(AuditKind::TokenIssued, "live".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(AuditKind::TokenRevoked, "late".into())),
        "{seen:?}"
    );
    assert_eq!(
        seen.len(),
        2,
        "one event per insert, of its outcome: {seen:?}"
    );
}

/// `rotate_refresh_audited` writes the rotation's event, completed with the user and the
/// new scope, when (and only when) it rotates; a store that does not returns `false`.
pub async fn rotate_refresh_audited_records_the_rotation(p: &Ports) {
    let (tokens, audit, users, clients) = need!(p, tokens, audit, users, clients);
    let (user, app) = fx::user_and_client(users.as_ref(), clients.as_ref()).await;
    let (_, r) = fx::token(
        TokenKind::Refresh,
        user.id,
        Some(&app.id),
        Some(fx::family()),
    );
    tokens.insert(std::slice::from_ref(&r)).await.unwrap();
    let refreshed = |tag: &str| {
        AuditEvent::new(AuditKind::TokenRefreshed, now())
            .client(&app.id)
            .meta("case", tag)
    };
    let at = now();
    let rotation = fx::rotation(&app.id, at, Duration::ZERO);
    let (decision, recorded) = tokens
        .rotate_refresh_audited(&r.hash, &rotation, &refreshed("first"))
        .await
        .unwrap();
    let RotationDecision::Rotate { access, .. } = &decision else {
        panic!("first use rotates: {decision:?}")
    };
    let (decision, again) = tokens
        .rotate_refresh_audited(&r.hash, &rotation, &refreshed("reuse"))
        .await
        .unwrap();
    assert!(
        matches!(decision, RotationDecision::RevokeFamily { .. }),
        "{decision:?}"
    );
    assert!(!again, "a reuse is not a rotation: nothing recorded");
    if !recorded {
        return;
    }
    let written = audit
        .query(&AuditQuery {
            client_id: Some(app.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let seen: Vec<_> = written
        .iter()
        .map(|e| (e.kind, e.metadata["case"].clone(), e.user_id, e.scope))
        .collect();
    assert_eq!(
        seen,
        vec![(
            AuditKind::TokenRefreshed,
            "first".to_string(),
            Some(user.id),
            Some(access.scope)
        )],
        "one event, of the rotation, with its user and scope"
    );
}
