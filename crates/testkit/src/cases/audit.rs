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
        client_id: Some(client),
        since: Some(t0 + Duration::seconds(3)),
        ..Default::default()
    };
    assert_eq!(audit.query(&since).await.unwrap().len(), 2);
}
