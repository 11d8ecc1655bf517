//! `/readyz` (SPEC 11): not ready only when the node cannot issue tokens (a required store
//! is down); a failing optional dependency (Redis) is "degraded" with a 200.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use buzzgate_domain::memory::MemoryStore;
use buzzgate_domain::ports::{OsRandom, SystemClock};
use buzzgate_domain::service::{Buzzgate, Config};
use buzzgate_http::{AppState, Readiness, Settings, router};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Check {
    name: &'static str,
    required: bool,
    up: bool,
}

#[async_trait]
impl Readiness for Check {
    fn name(&self) -> &str {
        self.name
    }
    fn required(&self) -> bool {
        self.required
    }
    async fn check(&self) -> Result<(), String> {
        if self.up {
            Ok(())
        } else {
            Err("connection refused".into())
        }
    }
}

async fn readyz(database_up: bool, redis_up: bool) -> (StatusCode, Value) {
    let store = MemoryStore::new(Arc::new(SystemClock));
    let core = Buzzgate::new(store.deps(Arc::new(OsRandom), Config::default()));
    let checks: Vec<Arc<dyn Readiness>> = vec![
        Arc::new(Check {
            name: "database",
            required: true,
            up: database_up,
        }),
        Arc::new(Check {
            name: "redis",
            required: false,
            up: redis_up,
        }),
    ];
    let app = router(AppState::new(core, Settings::default(), checks));
    let res = app
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn a_redis_outage_is_degraded_not_unready() {
    assert_eq!(
        readyz(true, true).await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
    assert_eq!(
        readyz(true, false).await,
        (
            StatusCode::OK,
            json!({"status": "degraded", "degraded": {"redis": "connection refused"}})
        ),
        "the node still issues and validates tokens from the database"
    );
    let (status, body) = readyz(false, false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["failing"], json!({"database": "connection refused"}));
}
